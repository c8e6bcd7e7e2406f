// Building and running the example Next app: shared by the demo and the e2e suite.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const appDir = path.join(root, 'examples', 'next-app')
export const nextBin = (dir = appDir) => path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next')

export const app15Dir = path.join(root, 'examples', 'next15')
/** The Cache Components example (Next 16: 'use cache' through cacheHandlers). */
export const appCcDir = path.join(root, 'examples', 'cache-components')
/** Routes that only exist on Next 16 (updateTag). */
const NEXT16_ONLY = ['actions', 'conf/action', 'conf/uc', 'conf/remote', 'conf/img'].map((p) => path.join('app', ...p.split('/')))

/**
 * The environment of an app instance (or tool) on the local S3 + DynamoDB server at `endpoint`,
 * with a bucket and table of its own named `name`; `extra` adds to it.
 */
export function localFleetEnv(endpoint, name, extra = {}) {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    FLEETCACHE_BUCKET: name,
    FLEETCACHE_TABLE: name,
    NEXT_TELEMETRY_DISABLED: '1',
    ...extra,
  }
}

/** Copies the example's sources into examples/next15 (minus Next-16-only routes). */
export function prepareApp15() {
  for (const part of ['app', 'pages', 'lib', 'public', 'next.config.js', 'instrumentation.js']) {
    const to = path.join(app15Dir, part)
    fs.rmSync(to, { recursive: true, force: true })
    fs.cpSync(path.join(appDir, part), to, {
      recursive: true,
      filter: (src) => !NEXT16_ONLY.some((p) => src === path.join(appDir, p) || src.startsWith(path.join(appDir, p) + path.sep)),
    })
  }
  // Next 15 rejects Next-16-only config keys (images.customCacheHandler, turbopack.root) and has no
  // 'use cache' handler interface fleetcache serves.
  const cfg = path.join(app15Dir, 'next.config.js')
  const lines = fs.readFileSync(cfg, 'utf8').split('\n').filter((l) => !/customCacheHandler|turbopack|useCache: true/.test(l))
  fs.writeFileSync(cfg, lines.map((l) => (l.startsWith('const useCacheHandlers =') ? 'const useCacheHandlers = {}' : l)).join('\n'))
  return app15Dir
}

/**
 * Installs the example's packages once. Asynchronous: a test worker blocked for the minutes an
 * install takes misses its RPC deadlines (vitest: "Timeout calling onTaskUpdate").
 */
export async function installApp(dir = appDir) {
  if (fs.existsSync(nextBin(dir))) return
  const started = Date.now()
  const code = await new Promise((resolve, reject) => {
    // --prefer-offline: what npm's cache (~/.npm) holds is used without asking the registry again.
    const child = spawn('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' })
    child.on('error', reject)
    child.on('exit', (c) => resolve(c))
  })
  if (code !== 0) throw new Error(`npm install in ${dir} failed`)
  console.log(`[next-fleet] npm install in ${path.basename(dir)}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

/**
 * `next build` (async: the data API the build fetches from may live in this process), once per
 * test run: `npm test` sets FLEETCACHE_RUN_ID, and a build of the same app into the same dist
 * folder with the same build-time environment (NEXT_*, FLEETCACHE_*, DEMO_*) made earlier in that
 * run is reused, so suites that share an app variant share its build. Resolves to true when it
 * built, false when it reused.
 */
export async function buildApp(env, dir = appDir, quiet = process.env.FLEETCACHE_E2E_VERBOSE !== '1') {
  const run = process.env.FLEETCACHE_RUN_ID
  const key = JSON.stringify(Object.entries(env).filter(([k]) => /^(NEXT_|FLEETCACHE_|DEMO_)/.test(k)).sort())
  const marker = path.join(dir, env.FLEETCACHE_E2E_DIST || '.next', 'fleetcache-build.json')
  if (run) {
    try {
      const m = JSON.parse(fs.readFileSync(marker, 'utf8'))
      if (m.run === run && m.key === key) return false
    } catch {}
  }
  const started = Date.now()
  const child = spawn(process.execPath, [nextBin(dir), 'build'], { cwd: dir, env, stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'ignore' : 'inherit'] })
  const status = await new Promise((r) => child.once('exit', r))
  if (status !== 0) throw new Error(`next build failed in ${dir}`)
  if (run) fs.writeFileSync(marker, JSON.stringify({ run, key }))
  console.log(`[next-fleet] next build of ${path.basename(dir)} into ${env.FLEETCACHE_E2E_DIST || '.next'}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return true
}

/**
 * `next start` on 127.0.0.1:port; resolves once it answers. Readiness is probed with a GET of a
 * POST-only route handler (405, never cached), so no page is requested before the caller does.
 */
export async function startApp(port, env, dir = appDir, quiet = true) {
  const child = spawn(process.execPath, [nextBin(dir), 'start', '-H', '127.0.0.1', '-p', String(port)], {
    cwd: dir,
    env,
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
    detached: true,
  })
  const url = `http://127.0.0.1:${port}`
  const until = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start on ${port} exited with ${child.exitCode}`)
    try {
      if ((await fetch(`${url}/api/revalidate`)).status < 500) break
    } catch {}
    if (Date.now() > until) throw new Error(`next start on ${port} did not answer`)
    await new Promise((r) => setTimeout(r, 250))
  }
  return {
    url,
    port,
    env,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const done = new Promise((r) => child.once('exit', r))
      try { process.kill(-child.pid, 'SIGTERM') } catch {}
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))])
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
    },
  }
}

/** Runs `node <args>` with `env`; resolves to its exit code and output. */
export async function runNode(args, env) {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const code = await new Promise((r) => child.once('exit', r))
  return { code, out, err }
}

/** Runs the `fleetcache` command; resolves to its output. */
export function runCli(args, env) {
  return runNode([path.join(root, 'tools', 'cli.js'), ...args], env)
}

/** Runs the `fleetcache` command with `--json`; resolves to its report. */
export async function fleetcacheCli(args, env) {
  const { code, out, err } = await runCli([...args, '--json'], env)
  try {
    return { code, report: JSON.parse(out), stderr: err }
  } catch {
    throw new Error(`fleetcache ${args.join(' ')} exited ${code}: ${out}\n${err}`)
  }
}

/** GET a page: status, x-nextjs-cache, and the `id="stamp"` text (or JSON stamp). */
export async function request(base, p, init) {
  const r = await fetch(`${base}${p}`, { redirect: 'manual', ...init })
  const text = await r.text()
  let stamp = (/id="stamp">([^<]*)</.exec(text) || [])[1]
  if (stamp === undefined) try { stamp = JSON.parse(text).stamp } catch {}
  // Which build rendered it: the app layout's footer, else the stamp's prefix (pages router, API).
  const variant = (/id="variant">([^<]*)</.exec(text) || [])[1] ?? (typeof stamp === 'string' ? stamp.split(' ')[0] : undefined)
  return { status: r.status, cache: r.headers.get('x-nextjs-cache') || '-', stamp, variant, location: r.headers.get('location'), text }
}
