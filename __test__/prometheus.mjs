// A strict reader of the Prometheus text exposition format (0.0.4), for the tests: every line
// must be a HELP, a TYPE or a sample of a declared family; label values are unescaped; histograms
// must have cumulative buckets ending in le="+Inf" equal to their _count. Throws on anything
// else, naming the line. (The npm parser used beside it drops histogram labels.)
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( -?\d+)?$/

function labelsOf(body, line) {
  const out = {}
  let i = 0
  while (i < body.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(body.slice(i))
    if (!m) throw new Error(`bad label at ${JSON.stringify(body.slice(i))} in: ${line}`)
    i += m[0].length
    let v = ''
    for (;;) {
      if (i >= body.length) throw new Error(`unterminated label value in: ${line}`)
      const c = body[i++]
      if (c === '"') break
      if (c === '\\') {
        const e = body[i++]
        if (e === 'n') v += '\n'
        else if (e === '\\' || e === '"') v += e
        else throw new Error(`bad escape \\${e} in: ${line}`)
      } else v += c
    }
    if (m[1] in out) throw new Error(`duplicate label ${m[1]} in: ${line}`)
    out[m[1]] = v
    if (body[i] === ',') i++
    else if (i < body.length) throw new Error(`expected , after a label in: ${line}`)
  }
  return out
}

function float(s, line) {
  if (s === '+Inf') return Infinity
  if (s === '-Inf') return -Infinity
  if (s === 'NaN') return NaN
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value ${s} in: ${line}`)
  return Number(s)
}

export function parseExposition(text) {
  if (!text.endsWith('\n')) throw new Error('the text must end with a newline')
  const families = {}
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const [, kind, name, ...rest] = line.split(' ')
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      const f = (families[name] ??= { name, samples: [] })
      if (kind === 'TYPE') {
        if (f.type) throw new Error(`second TYPE for ${name}`)
        if (f.samples.length) throw new Error(`TYPE after samples of ${name}`)
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest[0])) throw new Error(`bad type in: ${line}`)
        f.type = rest[0]
      } else f.help = rest.join(' ')
      continue
    }
    if (line.startsWith('#') || line === '') continue
    const m = SAMPLE.exec(line)
    if (!m) throw new Error(`not a sample: ${line}`)
    const [, sname, , body, v] = m
    const base = Object.keys(families).find((n) => sname === n || (families[n].type === 'histogram' && [`${n}_bucket`, `${n}_sum`, `${n}_count`].includes(sname)))
    if (!base || !families[base].type) throw new Error(`sample of an undeclared family: ${line}`)
    families[base].samples.push({ name: sname, labels: body ? labelsOf(body, line) : {}, value: float(v, line) })
  }
  for (const f of Object.values(families)) {
    if (f.type !== 'histogram') continue
    const series = new Map()
    for (const s of f.samples) {
      const { le, ...rest } = s.labels
      const id = JSON.stringify(Object.entries(rest).sort())
      const h = series.get(id) ?? { labels: rest, buckets: [], sum: undefined, count: undefined }
      series.set(id, h)
      if (s.name.endsWith('_bucket')) h.buckets.push([float(le, s.name), s.value])
      else if (s.name.endsWith('_sum')) h.sum = s.value
      else h.count = s.value
    }
    f.histograms = [...series.values()]
    for (const h of f.histograms) {
      const counts = h.buckets.map((b) => b[1])
      if (h.buckets.at(-1)?.[0] !== Infinity) throw new Error(`${f.name}: no le="+Inf" bucket`)
      if (counts.some((c, i) => i > 0 && c < counts[i - 1])) throw new Error(`${f.name}: buckets not cumulative`)
      if (h.count !== counts.at(-1) || h.sum === undefined) throw new Error(`${f.name}: _count/_sum missing or not the +Inf bucket`)
    }
  }
  return families
}

/** The value of the sample of `family` whose labels include `labels` (a histogram: its count). */
export function sampleValue(families, family, labels = {}) {
  const f = families[family]
  if (!f) return undefined
  const match = (l) => Object.entries(labels).every(([k, v]) => l[k] === v)
  if (f.type === 'histogram') return f.histograms.find((h) => match(h.labels))?.count
  return f.samples.find((s) => match(s.labels))?.value
}
