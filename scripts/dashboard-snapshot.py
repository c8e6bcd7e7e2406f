"""Draws the panels scripts/dashboard-snapshot.mjs collected, in the dashboard's grid (24 columns,
rows of height units), dark like Grafana's default theme. Usage: dashboard-snapshot.py DATA OUT."""
import json
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
panels = data['panels']
rows = max(p['gridPos']['y'] + p['gridPos']['h'] for p in panels)
unit_w, unit_h = 0.75, 0.42
fig = plt.figure(figsize=(24 * unit_w, rows * unit_h + 0.6), facecolor='#111217')
fig.suptitle(f"{data['title']} — {len(panels)} panels, three instances, {data['seconds']} s (Prometheus-evaluated queries)",
             color='#d8d9da', fontsize=13, x=0.01, ha='left')
colors = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#705da0', '#37872d', '#fade2a']
for p in panels:
    g = p['gridPos']
    left, width = g['x'] / 24, g['w'] / 24
    top = 1 - (g['y'] / rows) * (1 - 0.6 / (rows * unit_h + 0.6)) - 0.6 / (rows * unit_h + 0.6)
    height = (g['h'] / rows) * (1 - 0.6 / (rows * unit_h + 0.6))
    ax = fig.add_axes([left + 0.032, top - height + 0.02, width - 0.04, height - 0.045], facecolor='#181b1f')
    for side in ax.spines.values():
        side.set_color('#2c3235')
    ax.tick_params(colors='#9fa7b3', labelsize=7)
    ax.grid(color='#2c3235', linewidth=0.6)
    ax.set_title(p['title'], color='#d8d9da', fontsize=9, loc='left')
    for i, s in enumerate(p['series'][:10]):
        xs = [x for x, _ in s['points']]
        ys = [y for _, y in s['points']]
        ax.plot(xs, ys, color=colors[i % len(colors)], linewidth=1.2, label=s['legend'][:40])
    if not p['series']:
        ax.text(0.5, 0.5, 'No data', color='#9fa7b3', ha='center', va='center', transform=ax.transAxes)
    elif len(p['series']) > 0:
        ax.legend(fontsize=6, loc='upper left', facecolor='#181b1f', edgecolor='#2c3235', labelcolor='#d8d9da', ncol=3)
    unit = p.get('unit')
    if unit == 'percentunit':
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    elif unit in ('s', 'bytes'):
        ax.set_ylabel(unit, color='#9fa7b3', fontsize=7)
    ax.set_xlabel('seconds', color='#9fa7b3', fontsize=7)
fig.savefig(sys.argv[2], dpi=90, facecolor=fig.get_facecolor())
