// The differential suite (issue 24): one scenario of steps runs, in lockstep, against
//   builtin: Next's built-in cache on one instance (R), the reference,
//   one:     fleetcache on one instance (A),
//   fleet:   fleetcache on two instances (A and B), each step on the one the scenario names,
// and what each step observes (status, x-nextjs-cache, which version of the data the body shows)
// must be the same on all three. Steps are SLOT_MS apart on every target, which covers the feed's
// bound after a revalidation or a render on the other instance (the only difference a fleet may
// show), and makes time pass alike (the short page is fresh two steps after a render, stale three).
//
// Every scenario gets its own pages and tags (`/conf/<kind>/<scenario><target>~<n>`, tags
// `conf-<scenario><target>[-f|-u]`, see examples/next-app/app/conf), so scenarios run side by side
// on the same servers; a restart step holds every scenario's steps back while it restarts.
//
// Used by the e2e suite (suite.mjs: the hand-written scenarios and FLEETCACHE_CONFORMANCE_SCENARIOS
// generated ones, default 100) and by `npm run conformance` (`__test__/e2e/run-conformance.mjs`) for long runs.
import { request } from '../../scripts/next-fleet.mjs'

export const SLOT_MS = 1_200

const PAGES = {
  isr: (id) => `/conf/isr/${id}`,
  short: (id) => `/conf/short/${id}`,
  fetch: (id) => `/conf/fetch/${id}`,
  ucache: (id) => `/conf/ucache/${id}`,
  route: (id) => `/conf/route/${id}`,
  pages: (id) => `/conf-pages/${id}`,
  action: (id) => `/conf/action/${id}`,
  uc: (id) => `/conf/uc/${id}`,
  remote: (id) => `/conf/remote/${id}`,
  img: (id) => `/_next/image?url=${encodeURIComponent(`/conf/img/${id}`)}&w=64&q=75`,
}
/**
 * Next 16 only: updateTag (`action`), 'use cache' results (`uc`, `remote`: 15.5 has no handler
 * interface for them) and optimized images (15.5 keeps them in each instance's own directory).
 */
const NEXT16_KINDS = ['action', 'uc', 'remote', 'img']
/** The kinds of page a version has. */
export const kindsOf = (next16) => Object.keys(PAGES).filter((k) => next16 || !NEXT16_KINDS.includes(k))
/** The kinds a revalidatePath step may name (a pages-router page and an image have none). */
const pathKinds = (kinds) => kinds.filter((k) => k !== 'pages' && k !== 'img')

/** A small seeded generator (mulberry32): the same seed, the same scenario. */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The seed of the `i`-th generated scenario of a run seeded `seed`. */
export const scenarioSeed = (seed, i) => ((seed * 100_003) ^ (i * 2_654_435_761)) >>> 0

/**
 * A random scenario of 10–30 steps over the pages and revalidations `next16` has. `restarts`:
 * whether restart steps may appear (each holds every scenario back for a few seconds).
 */
export function generate(seed, { next16, restarts = true }) {
  const r = prng(seed)
  const pick = (xs) => xs[Math.floor(r() * xs.length)]
  const kinds = kindsOf(next16)
  const on = () => (r() < 0.5 ? 0 : 1)
  const n = () => (r() < 0.6 ? 1 : 2)
  const tag = () => pick(next16 ? ['', '', '-f', '-u', '-c'] : ['', '', '-f', '-u'])
  const ops = [
    [40, () => ({ op: 'get', kind: pick(kinds), n: n(), on: on() })],
    [8, () => ({ op: 'tag', tag: tag(), on: on() })],
    [6, () => ({ op: 'path', kind: pick(pathKinds(kinds)), n: n(), on: on() })],
    [2, () => ({ op: 'path', kind: pick(pathKinds(kinds)), n: n(), type: 'layout', on: on() })],
    [4, () => ({ op: 'pages', n: n(), on: on() })],
    [5, () => ({ op: 'wait', slots: 2 })],
    ...(next16
      ? [
          [8, () => ({ op: 'tag', tag: tag(), profile: 'max', on: on() })],
          [3, () => ({ op: 'tag', tag: tag(), profile: `expire:${pick([0, 2, 30])}`, on: on() })],
          [4, () => ({ op: 'update', n: n(), on: on() })],
        ]
      : [
          [3, () => ({ op: 'expireTag', tag: tag(), on: on() })],
          [2, () => ({ op: 'expirePath', kind: pick(pathKinds(kinds)), n: n(), on: on() })],
        ]),
    ...(restarts ? [[0.4, () => ({ op: 'restart', on: on() })]] : []),
  ]
  const total = ops.reduce((s, [w]) => s + w, 0)
  const steps = []
  const length = 10 + Math.floor(r() * 21)
  while (steps.length < length) {
    let x = r() * total
    const [, make] = ops.find(([w]) => (x -= w) < 0) || ops[0]
    steps.push(make())
  }
  return { name: `generated ${seed}`, seed, steps }
}

/** The hand-written scenarios (unless `handWritten` is false), then `count` generated from `seed`. */
export function scenarios({ next16, count, seed, handWritten: withHandWritten = true }) {
  return [
    ...(withHandWritten ? handWritten(next16) : []),
    ...Array.from({ length: count }, (_, i) => generate(scenarioSeed(seed, i), { next16 })),
  ]
}

/**
 * The hand-written scenarios: the e2e suite's sequences (and issue 24's) in the steps' terms.
 * `on` 0/1 is A/B on the fleet (R or A on the others).
 */
export function handWritten(next16) {
  const s = [
    {
      name: 'a page rendered on one instance is a HIT on the other',
      steps: [{ op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 1 }, { op: 'get', kind: 'isr', n: 1, on: 0 }],
    },
    {
      name: 'revalidatePath on A, then B',
      steps: [{ op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 1 }, { op: 'path', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 1 }, { op: 'get', kind: 'isr', n: 1, on: 0 }],
    },
    {
      name: 'time-based ISR: MISS, HIT, STALE, HIT',
      steps: [{ op: 'get', kind: 'short', n: 1, on: 0 }, { op: 'get', kind: 'short', n: 1, on: 1 }, { op: 'wait', slots: 2 }, { op: 'get', kind: 'short', n: 1, on: 1 }, { op: 'get', kind: 'short', n: 1, on: 0 }],
    },
    {
      name: 'revalidateTag(t) on A: the fetch and unstable_cache pages re-render on B',
      steps: [{ op: 'get', kind: 'fetch', n: 1, on: 1 }, { op: 'get', kind: 'ucache', n: 1, on: 1 }, { op: 'tag', tag: '', on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 1 }, { op: 'get', kind: 'ucache', n: 1, on: 1 }, { op: 'get', kind: 'fetch', n: 2, on: 0 }],
    },
    {
      name: 'pages router: res.revalidate on A, B serves the new page',
      steps: [{ op: 'get', kind: 'pages', n: 1, on: 0 }, { op: 'get', kind: 'pages', n: 1, on: 1 }, { op: 'pages', n: 1, on: 0 }, { op: 'get', kind: 'pages', n: 1, on: 1 }],
    },
    {
      name: 'a route handler, revalidatePath of it',
      steps: [{ op: 'get', kind: 'route', n: 1, on: 0 }, { op: 'get', kind: 'route', n: 1, on: 1 }, { op: 'path', kind: 'route', n: 1, on: 1 }, { op: 'get', kind: 'route', n: 1, on: 0 }],
    },
    {
      name: 'revalidatePath(p, layout)',
      steps: [{ op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'path', kind: 'isr', n: 1, type: 'layout', on: 1 }, { op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 1 }],
    },
    {
      name: 'a restart between a render and its next request',
      steps: [{ op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'restart', on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 1 }],
    },
  ]
  if (next16) {
    s.push(
      {
        // Issue 24: pages fed by one tagged fetch, revalidateTag(t, 'max') twice.
        name: "issue 24: request-time pages fed by one tagged fetch, revalidateTag(t, 'max') twice",
        steps: [
          { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'get', kind: 'fetch', n: 2, on: 1 },
          { op: 'tag', tag: '', profile: 'max', on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 0 },
          { op: 'tag', tag: '', profile: 'max', on: 0 }, { op: 'get', kind: 'fetch', n: 2, on: 1 }, { op: 'get', kind: 'fetch', n: 2, on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 0 },
        ],
      },
      {
        name: "'max' on the unstable_cache tag: STALE, then the new value",
        steps: [{ op: 'get', kind: 'ucache', n: 1, on: 0 }, { op: 'tag', tag: '-u', profile: 'max', on: 1 }, { op: 'get', kind: 'ucache', n: 1, on: 1 }, { op: 'get', kind: 'ucache', n: 1, on: 0 }, { op: 'get', kind: 'ucache', n: 2, on: 1 }],
      },
      {
        name: 'revalidateTag with { expire: 2 }: stale-while-revalidate, then expired',
        steps: [{ op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'tag', tag: '-f', profile: 'expire:2', on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'wait', slots: 2 }, { op: 'get', kind: 'fetch', n: 2, on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 1 }],
      },
      {
        // Next's built-in: a later profiled revalidation replaces the tag's expiry, so a page a hard
        // revalidation had expired (and nobody re-rendered) is served STALE again, with the old data.
        name: "revalidateTag(t), then revalidateTag(t, 'max'): the page nobody re-rendered",
        steps: [
          { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'get', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'fetch', n: 2, on: 1 },
          { op: 'tag', tag: '-f', on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 1 },
          { op: 'tag', tag: '-f', profile: 'max', on: 1 }, { op: 'get', kind: 'fetch', n: 2, on: 0 }, { op: 'get', kind: 'fetch', n: 2, on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 0 },
        ],
      },
      {
        name: "'use cache' and 'use cache: remote' results: served on the other instance, revalidateTag(t, 'max') serves them once more",
        steps: [
          { op: 'get', kind: 'uc', n: 1, on: 0 }, { op: 'get', kind: 'uc', n: 2, on: 1 }, { op: 'get', kind: 'remote', n: 1, on: 1 }, { op: 'get', kind: 'remote', n: 1, on: 0 },
          { op: 'tag', tag: '-c', profile: 'max', on: 0 }, { op: 'get', kind: 'uc', n: 1, on: 1 }, { op: 'get', kind: 'uc', n: 1, on: 0 }, { op: 'get', kind: 'remote', n: 1, on: 1 }, { op: 'get', kind: 'remote', n: 1, on: 0 },
        ],
      },
      {
        name: "'use cache' results: revalidateTag(t), revalidatePath of the page, updateTag",
        steps: [
          { op: 'get', kind: 'uc', n: 1, on: 0 }, { op: 'tag', tag: '', on: 1 }, { op: 'get', kind: 'uc', n: 1, on: 0 }, { op: 'get', kind: 'remote', n: 1, on: 1 },
          { op: 'path', kind: 'remote', n: 1, on: 0 }, { op: 'get', kind: 'remote', n: 1, on: 1 }, { op: 'get', kind: 'uc', n: 2, on: 1 },
          { op: 'update', n: 1, on: 0 }, { op: 'get', kind: 'uc', n: 2, on: 1 }, { op: 'get', kind: 'remote', n: 1, on: 0 },
        ],
      },
      {
        name: 'an optimized image made on A is a HIT on B',
        steps: [{ op: 'get', kind: 'img', n: 1, on: 0 }, { op: 'get', kind: 'img', n: 1, on: 1 }, { op: 'path', kind: 'isr', n: 1, on: 0 }, { op: 'get', kind: 'img', n: 1, on: 1 }],
      },
      {
        name: 'updateTag from a server action on B, A reads the new data',
        steps: [{ op: 'get', kind: 'action', n: 1, on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'update', n: 1, on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 0 }, { op: 'get', kind: 'action', n: 1, on: 0 }],
      },
    )
  } else {
    s.push({
      name: 'unstable_expireTag on A (Next 15)',
      steps: [{ op: 'get', kind: 'fetch', n: 1, on: 1 }, { op: 'expireTag', tag: '', on: 0 }, { op: 'get', kind: 'fetch', n: 1, on: 1 }, { op: 'get', kind: 'fetch', n: 1, on: 1 }],
    })
  }
  return s
}

/** One step in words, for reports. */
export function describeStep(s) {
  const where = s.on === undefined ? '' : ` on ${'AB'[s.on]}`
  switch (s.op) {
    case 'get': return `GET ${s.kind} ~${s.n}${where}`
    case 'tag': return `revalidateTag(t${s.tag}${s.profile ? `, ${s.profile.startsWith('expire:') ? `{ expire: ${s.profile.slice(7)} }` : `'${s.profile}'`}` : ''})${where}`
    case 'path': return `revalidatePath(${s.kind} ~${s.n}${s.type ? `, '${s.type}'` : ''})${where}`
    case 'pages': return `res.revalidate(pages ~${s.n})${where}`
    case 'update': return `updateTag(t) in a server action${where}`
    case 'expireTag': return `unstable_expireTag(t${s.tag})${where}`
    case 'expirePath': return `unstable_expirePath(${s.kind} ~${s.n})${where}`
    case 'wait': return `wait ${s.slots} steps`
    case 'restart': return `restart${where}`
    default: return JSON.stringify(s)
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The id of the server action on /conf/action in the build `url` serves (one per build). */
const actionIds = new Map()
async function actionId(url) {
  if (!actionIds.has(url)) {
    const html = (await request(url, '/conf/action/build')).text
    const id = /name="\$ACTION_ID_([0-9a-f]+)"/.exec(html)?.[1]
    if (!id) throw new Error(`no server action id in ${url}/conf/action/build`)
    actionIds.set(url, id)
  }
  return actionIds.get(url)
}

/**
 * Runs `step` of scenario `group` (the scenario id + the target's letter) on `inst`; what it
 * observed, as text. `versions` numbers the data versions in order of first sight, per target.
 */
async function perform(step, inst, group, versions, plant) {
  const page = (kind, n) => PAGES[kind](`${group}~${n}`)
  // An origin header, as a browser sends (Next warns about a server action request without one).
  const post = async (p, init) => `${(await request(inst.url, p, { method: 'POST', headers: { origin: inst.url }, ...init })).status}`
  const tag = (t) => `conf-${group}${t}`
  switch (step.op) {
    case 'get': {
      const r = await request(inst.url, page(step.kind, step.n))
      if (r.stamp !== undefined && !versions.has(r.stamp)) versions.set(r.stamp, versions.size + 1)
      return `${r.status} ${r.cache} ${r.stamp === undefined ? '-' : `v${versions.get(r.stamp)}`}`
    }
    case 'tag': {
      const profile = plant === 'max-hard' && inst.fleetcache && step.profile === 'max' ? null : step.profile
      return post(`/api/conf?tag=${encodeURIComponent(tag(step.tag))}${profile ? `&profile=${encodeURIComponent(profile)}` : ''}`)
    }
    case 'path':
      return post(`/api/conf?path=${encodeURIComponent(page(step.kind, step.n))}${step.type ? `&type=${step.type}` : ''}`)
    case 'expireTag':
      return post(`/api/conf?expireTag=${encodeURIComponent(tag(step.tag))}`)
    case 'expirePath':
      return post(`/api/conf?expirePath=${encodeURIComponent(page(step.kind, step.n))}`)
    case 'pages':
      return post(`/api/revalidate-pages?path=${encodeURIComponent(page('pages', step.n))}`)
    case 'update': {
      const form = new FormData()
      form.set(`$ACTION_ID_${await actionId(inst.url)}`, '')
      form.set('tag', tag(''))
      return post(page('action', step.n), { body: form })
    }
    default:
      return ''
  }
}

/**
 * Loads every page and API route of the scenarios on a freshly started server (a first request
 * compiles a route's modules, which can take a regeneration past its step), with ids and tags no
 * scenario uses.
 */
export async function warm(inst) {
  const post = (p) => request(inst.url, p, { method: 'POST', headers: { origin: inst.url } })
  for (const page of Object.values(PAGES)) await request(inst.url, page('warm~1'))
  await post('/api/conf?tag=conf-warm')
  await post(`/api/revalidate-pages?path=${encodeURIComponent(PAGES.pages('warm~1'))}`)
  for (const page of Object.values(PAGES)) await request(inst.url, page('warm~1'))
}

/**
 * Who may use a server now: steps enter and leave; a restart waits until none is inside (and
 * the background renders their answers started are done), stops and starts the process, and lets
 * the waiting steps in again.
 */
function gate() {
  let inside = 0
  let restarting = null
  let drained = null
  return {
    async enter() {
      while (restarting) await restarting
      inside++
    },
    leave() {
      if (--inside === 0 && drained) drained()
    },
    async restart(fn) {
      while (restarting) await restarting
      let done
      restarting = new Promise((r) => (done = r))
      if (inside > 0) await new Promise((r) => (drained = r))
      drained = null
      await sleep(SLOT_MS) // the background regenerations of the last answers
      try {
        await fn()
      } finally {
        restarting = null
        done()
      }
    },
  }
}

/**
 * Runs `scenarios` against the targets on `servers` ({ R, A, B }: started apps, each `{ url }`),
 * `parallel` at a time. `restart(name)` replaces servers[name] with a fresh process on the same
 * port; a restart step restarts fleetcache's instance (A, or the fleet's A or B) while the steps
 * of every scenario wait, and never the reference: Next's built-in keeps its tag manifest and the
 * lifetimes of pages rendered at run time in process memory, so a restarted built-in forgets
 * revalidations (README, "Consistency"), which a shared cache must not copy. `plant` (for checking
 * the harness): 'max-hard' sends fleetcache's instances a hard revalidateTag where the step says
 * 'max'. Resolves to the divergences: { scenario, step, observed, report }, each one confirmed by
 * the scenario diverging again when run alone.
 */
export async function runScenarios(scenarios, { servers, restart, run, parallel = 12, plant, verbose = false, log = console.log }) {
  const targets = [
    { name: 'builtin', letter: 'r', names: ['R', 'R'] },
    { name: 'one', letter: 'a', names: ['A', 'A'] },
    { name: 'fleet', letter: 'f', names: ['A', 'B'] },
  ]
  const gates = { R: gate(), A: gate(), B: gate() }
  const divergences = []
  await Promise.all(['R', 'A', 'B'].map((n) => warm(servers[n])))
  const runOne = async (sc, index, found = divergences) => {
    const sid = `${run}x${index}`
    const versions = targets.map(() => new Map())
    const observed = []
    let at = Date.now()
    for (const [k, step] of sc.steps.entries()) {
      const names = [...new Set(targets.map((t) => t.names[step.on ?? 0]))]
      let got
      if (step.op === 'restart') {
        await Promise.all(names.filter((n) => n !== 'R').map((n) => gates[n].restart(async () => {
          await restart(n)
          await warm(servers[n])
        })))
        got = targets.map((t) => (t.name === 'builtin' ? 'kept' : 'restarted'))
        at = Date.now()
      } else {
        // Every target of the step at once: a restart elsewhere holds them all back alike.
        const asked = Date.now()
        await Promise.all(names.map((n) => gates[n].enter()))
        if (Date.now() - asked > SLOT_MS / 2) {
          // Held back by a restart, with every other scenario: spread their steps over a slot
          // again rather than sending them all at once (the targets still step together).
          names.forEach((n) => gates[n].leave())
          await sleep(Math.random() * SLOT_MS)
          await Promise.all(names.map((n) => gates[n].enter()))
        }
        const began = Date.now()
        try {
          got = await Promise.all(targets.map((t, i) => {
            const inst = servers[t.names[step.on ?? 0]]
            return perform(step, Object.assign({ fleetcache: t.name !== 'builtin' }, inst), `${sid}${t.letter}`, versions[i], plant)
              .catch((e) => `error ${e.message}`)
          }))
        } finally {
          names.forEach((n) => gates[n].leave())
        }
        // The next step a slot after this one began (more for a wait), and never less than half a
        // slot after it ended: a step held back by a restart, or slow to answer, still leaves the
        // fleet the feed's bound before the next one.
        const slot = SLOT_MS * (1 + (step.op === 'wait' ? step.slots : 0))
        at = Math.max(at + slot, began + slot, Date.now() + SLOT_MS / 2)
        await sleep(at - Date.now())
      }
      observed.push(got)
      const diverged = step.op !== 'restart' && (got[1] !== got[0] || got[2] !== got[0])
      if (diverged || (verbose && k === sc.steps.length - 1)) {
        const rows = sc.steps.slice(0, k + 1).map((s, j) => `  ${String(j + 1).padStart(2)}. ${describeStep(s).padEnd(44)} ${observed[j].map((o, i) => `${targets[i].name}: ${o}`).join(' | ')}`)
        const report = [
          `${diverged ? 'divergence' : 'agreed'} in "${sc.name}" (scenario ${sid}${sc.seed !== undefined ? `, seed ${sc.seed}: npm run conformance -- --replay ${sc.seed}` : ''}) at step ${k + 1}:`,
          ...rows,
        ].join('\n')
        log(report)
        if (!diverged) continue
        found.push({ scenario: sc, step: k, observed: got, report })
        return
      }
    }
  }
  const queue = scenarios.map((s, i) => [s, i])
  const workers = Math.min(parallel, queue.length)
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    // Scenarios start spread over one slot, so their steps do not all reach the servers at once.
    await sleep((w * SLOT_MS) / workers)
    while (queue.length) {
      const [s, i] = queue.shift()
      await runOne(s, i)
    }
  }))
  // A divergence counts when the scenario diverges again run alone (fresh pages and tags, twice):
  // a semantic difference shows on every run, while `parallel` scenarios on a loaded machine can
  // push one regeneration or feed delivery past its step's slot (a background render still running
  // on the other instance when the next step looks). Those are printed, not counted.
  const confirmed = []
  for (const [n, d] of divergences.entries()) {
    const again = []
    for (let attempt = 1; attempt <= 2 && again.length === 0; attempt++) {
      await runOne(d.scenario, `${n}r${attempt}`, again)
    }
    if (again.length) confirmed.push(d)
    else log(`[conformance] did not diverge again run alone (twice), so not counted (timing under load): "${d.scenario.name}" step ${d.step + 1}`)
  }
  return confirmed
}
