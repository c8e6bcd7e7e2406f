// Installed as a user installs it: the packed tarballs (main package + this platform's package)
// go into a copy of the example app outside the repository, with no link back to it. `next build`
// runs with no fleetcache or AWS configuration (`env -i`, plus only AWS_EC2_METADATA_DISABLED and
// an endpoint on a loopback port that counts connections), then `fleetcache seed` and
// `next start` against the local servers serve HITs; the same with `output: 'standalone'`, run
// from a folder with no other node_modules. Next 15.5's webpack build is checked for warnings too.
import { parseExposition, sampleValue } from '../prometheus.mjs'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { packAll, hostTarget } from '../../scripts/pack.mjs'
import { startApp, request, nextBin, localFleetEnv } from '../../scripts/next-fleet.mjs'
import { startDataServer } from '../../scripts/data-server.mjs'
import { fc } from '../helpers.mjs'

const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const exampleDir = path.join(root, 'examples', 'next-app')
const PORT = 3231 + Number(process.env.FLEETCACHE_E2E_PORT_OFFSET || 0)

/** Copies the example's sources into `dir` as a stand-alone app on `next` `version`. */
function copyApp(dir, { next16 }) {
  fs.mkdirSync(dir, { recursive: true })
  for (const part of ['app', 'pages', 'lib', 'public', 'instrumentation.js']) {
    fs.cpSync(path.join(exampleDir, part), path.join(dir, part), {
      recursive: true,
      filter: (src) => next16 || !src.startsWith(path.join(exampleDir, 'app', 'actions')),
    })
  }
  // The example's config minus what only the in-repo layout needs (turbopack.root points Turbopack
  // at the repository for its `file:` link); Next 15 also rejects Next-16-only keys.
  const config = fs.readFileSync(path.join(exampleDir, 'next.config.js'), 'utf8').split('\n')
    .filter((l) => !/turbopack/.test(l) && (next16 || !/customCacheHandler/.test(l)))
  fs.writeFileSync(path.join(dir, 'next.config.js'), config.join('\n'))
  // App code importing fleetcache, as a user's CDN-purge route would.
  fs.mkdirSync(path.join(dir, 'app', 'api', 'paths'), { recursive: true })
  fs.copyFileSync(path.join(root, '__test__', 'fixtures', 'app-paths-route', 'route.js'), path.join(dir, 'app', 'api', 'paths', 'route.js'))
  const example = JSON.parse(fs.readFileSync(path.join(next16 ? exampleDir : path.join(root, 'examples', 'next15'), 'package.json'), 'utf8'))
  const { fleetcache, ...deps } = example.dependencies
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'installed-app', private: true, dependencies: deps }, null, 2))
}

function npmInstall(dir, tarballs) {
  const r = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed:\n${r.stdout}\n${r.stderr}`)
}

/** A loopback port that accepts and counts connections: the only AWS endpoint the build is given. */
async function connectionTrap() {
  const trap = { count: 0 }
  const server = net.createServer((s) => {
    trap.count++
    s.destroy()
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  trap.url = `http://127.0.0.1:${server.address().port}`
  trap.close = () => new Promise((r) => server.close(r))
  return trap
}

/** `next build` in `dir` under `env -i`: only PATH, a fresh HOME and `extra`. Resolves to its log. */
async function bareBuild(dir, home, extra) {
  const env = { PATH: process.env.PATH, HOME: home, NEXT_TELEMETRY_DISABLED: '1', ...extra }
  const child = spawn('env', ['-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, nextBin(dir), 'build'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout.on('data', (d) => (log += d))
  child.stderr.on('data', (d) => (log += d))
  const code = await new Promise((r) => child.once('exit', r))
  return { code, log }
}

const NOTICE = '[fleetcache] next build: entries stay in this process'
/** Lines of a build log that come from fleetcache (or name it), other than its one build notice. */
function fleetcacheNoise(log) {
  return log.split('\n').filter((l) => /fleetcache|Module not found|Can't resolve/i.test(l) && !l.includes(NOTICE))
}

function runInstalledCli(dir, args, env) {
  return spawnSync(process.execPath, [path.join(dir, 'node_modules', 'fleetcache', 'tools', 'cli.js'), ...args], { cwd: dir, env, encoding: 'utf8' })
}

describe.skipIf(!ep)('installed from the packed tarballs, outside the repository', () => {
  const run = Date.now().toString(36)
  let work, home, app, packed, data, trap, awsEnv
  const started = []

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-installed-'))
    home = path.join(work, 'home')
    fs.mkdirSync(home)
    packed = packAll({ dest: path.join(work, 'tarballs'), targets: [hostTarget()] })
    app = path.join(work, 'app')
    copyApp(app, { next16: true })
    npmInstall(app, [packed.main.tarball, ...Object.values(packed.platforms).map((p) => p.tarball)])
    data = await startDataServer(4900 + Math.floor(Math.random() * 90))
    trap = await connectionTrap()
    awsEnv = localFleetEnv(ep, `installed-${run}`, { DEMO_DATA_URL: data.url })
    await fc._coreFor({ bucket: awsEnv.FLEETCACHE_BUCKET, table: awsEnv.FLEETCACHE_TABLE, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', feedIntervalMs: 0 }).ensureResources()
  }, 600_000)

  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()))
    if (data) await data.close()
    if (trap) await trap.close()
    if (work && process.env.FLEETCACHE_E2E_KEEP !== '1') fs.rmSync(work, { recursive: true, force: true })
  })

  it('the tarballs hold the JS face and the addon, no Rust sources, and the main package lists every platform package', () => {
    const files = packed.main.files
    expect(files).toEqual(expect.arrayContaining(['index.js', 'binding.js', 'loader.js', 'handler.js', 'use-cache.js', 'use-cache.d.ts', 'tools/cli.js', 'tools/index.js', 'tools/seed.js', 'tools/instrumentation.js', 'package.json', 'README.md', 'LICENSE']))
    expect(files.filter((f) => f.endsWith('.rs') || f.endsWith('.node') || f.startsWith('src/') || f === 'Cargo.toml')).toEqual([])
    const manifest = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'fleetcache', 'package.json'), 'utf8'))
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(
      ['darwin-arm64', 'darwin-x64', 'linux-arm64-gnu', 'linux-arm64-musl', 'linux-x64-gnu', 'linux-x64-musl', 'win32-x64-msvc'].map((t) => `fleetcache-${t}`).sort(),
    )
    expect(new Set(Object.values(manifest.optionalDependencies))).toEqual(new Set([manifest.version]))
    expect(manifest.scripts?.install ?? manifest.scripts?.postinstall ?? manifest.scripts?.preinstall).toBeUndefined()
    expect(packed.platforms[hostTarget()].files).toEqual(['README.md', `fleetcache.${hostTarget()}.node`, 'package.json'])
  })

  it('nothing of the repository is on the module path: fleetcache and its addon load from the app\'s node_modules', () => {
    expect(fs.lstatSync(path.join(app, 'node_modules', 'fleetcache')).isSymbolicLink()).toBe(false)
    const probe = "require('fleetcache'); console.log(JSON.stringify(Object.keys(require.cache).filter((f) => f.includes('fleetcache'))))"
    const r = spawnSync('env', ['-i', `PATH=${process.env.PATH}`, `HOME=${home}`, 'AWS_EC2_METADATA_DISABLED=true', process.execPath, '-e', probe], { cwd: app, encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    const loaded = JSON.parse(r.stdout)
    expect(loaded).toContain(path.join(fs.realpathSync(app), 'node_modules', `fleetcache-${hostTarget()}`, `fleetcache.${hostTarget()}.node`))
    expect(loaded.filter((f) => f.startsWith(root + path.sep))).toEqual([])
  })

  it('next build with no AWS configuration: succeeds, makes no network call, prints no fleetcache warning', async () => {
    const { code, log } = await bareBuild(app, home, { AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL: trap.url, DEMO_DATA_URL: data.url })
    expect(code, log).toBe(0)
    expect(trap.count).toBe(0)
    expect(fleetcacheNoise(log)).toEqual([])
    expect(log).toContain(NOTICE)
  })

  it('fleetcache seed, then next start: prerendered and runtime routes HIT', async () => {
    const seeded = runInstalledCli(app, ['seed', '.next', '--json'], awsEnv)
    expect(seeded.status, seeded.stderr).toBe(0)
    expect(JSON.parse(seeded.stdout).written).toBeGreaterThan(5)
    const A = await startApp(PORT, awsEnv, app)
    started.push(A)
    for (const p of ['/posts/1', '/fetch-tags', '/items/1']) expect((await request(A.url, p)).cache, p).toBe('HIT')
    expect((await request(A.url, '/items/7')).cache).toBe('MISS')
    expect((await request(A.url, '/items/7')).cache).toBe('HIT')
    // App code importing fleetcache (serverExternalPackages) shares the handler's store.
    const paths = await (await fetch(`${A.url}/api/paths?tag=posts`)).json()
    expect(paths.paths).toContain('/fetch-tags')
    // The operator's views: the metrics route and the installed command's inspect.
    const m = parseExposition(await (await fetch(`${A.url}/metrics`)).text())
    expect(sampleValue(m, 'fleetcache_gets_total', { result: 's3_hit' })).toBeGreaterThan(0)
    const seen = runInstalledCli(app, ['inspect', '/posts/1'], awsEnv)
    expect(seen.status, seen.stderr).toBe(0)
    expect(seen.stdout).toMatch(/kind PAGES, build /)
    await A.stop()
  })

  it("output: 'standalone': the addon is traced into the output, which serves HITs from a folder with no other node_modules", async () => {
    const cfg = path.join(app, 'next.config.js')
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('module.exports = {', "module.exports = {\n  output: 'standalone',"))
    const { code, log } = await bareBuild(app, home, { AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL: trap.url, DEMO_DATA_URL: data.url })
    expect(code, log).toBe(0)
    expect(trap.count).toBe(0)
    expect(fleetcacheNoise(log)).toEqual([])
    // As Next's docs deploy it: the standalone folder, plus static assets and public/.
    const out = path.join(work, 'deploy')
    fs.cpSync(path.join(app, '.next', 'standalone'), out, { recursive: true })
    fs.cpSync(path.join(app, '.next', 'static'), path.join(out, '.next', 'static'), { recursive: true })
    fs.cpSync(path.join(app, 'public'), path.join(out, 'public'), { recursive: true })
    expect(fs.existsSync(path.join(out, 'node_modules', `fleetcache-${hostTarget()}`, `fleetcache.${hostTarget()}.node`))).toBe(true)
    const seeded = runInstalledCli(app, ['seed', '.next', '--json'], awsEnv)
    expect(seeded.status, seeded.stderr).toBe(0)
    const child = spawn(process.execPath, ['server.js'], { cwd: out, env: { ...awsEnv, PORT: String(PORT + 1), HOSTNAME: '127.0.0.1', NODE_PATH: '' }, stdio: ['ignore', 'ignore', 'inherit'], detached: true })
    const S = {
      url: `http://127.0.0.1:${PORT + 1}`,
      stop: async () => {
        try { process.kill(-child.pid, 'SIGKILL') } catch {}
      },
    }
    started.push(S)
    const until = Date.now() + 60_000
    for (;;) {
      try {
        if ((await fetch(`${S.url}/api/revalidate`)).status < 500) break
      } catch {}
      if (Date.now() > until || child.exitCode !== null) throw new Error('standalone server did not answer')
      await new Promise((r) => setTimeout(r, 250))
    }
    expect((await request(S.url, '/posts/1')).cache).toBe('HIT')
    expect((await request(S.url, '/items/8')).cache).toBe('MISS')
    expect((await request(S.url, '/items/8')).cache).toBe('HIT')
  })

  it("Cache Components (cacheHandlers → fleetcache/use-cache): next build with no AWS configuration is quiet, and a 'use cache' result is computed once", async () => {
    const appcc = path.join(work, 'appcc')
    const ccDir = path.join(root, 'examples', 'cache-components')
    fs.cpSync(path.join(ccDir, 'app'), path.join(appcc, 'app'), { recursive: true })
    const config = fs.readFileSync(path.join(ccDir, 'next.config.js'), 'utf8').split('\n').filter((l) => !/turbopack/.test(l))
    fs.writeFileSync(path.join(appcc, 'next.config.js'), config.join('\n'))
    const { fleetcache, ...deps } = JSON.parse(fs.readFileSync(path.join(ccDir, 'package.json'), 'utf8')).dependencies
    fs.writeFileSync(path.join(appcc, 'package.json'), JSON.stringify({ name: 'installed-cc', private: true, dependencies: deps }, null, 2))
    npmInstall(appcc, [packed.main.tarball, ...Object.values(packed.platforms).map((p) => p.tarball)])
    const { code, log } = await bareBuild(appcc, home, { AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL: trap.url })
    expect(code, log).toBe(0)
    expect(trap.count).toBe(0)
    expect(fleetcacheNoise(log)).toEqual([])
    const C = await startApp(PORT + 2, awsEnv, appcc)
    started.push(C)
    const first = await request(C.url, '/uc/1')
    expect(first.stamp).toBeDefined()
    expect((await request(C.url, '/uc/1')).stamp).toBe(first.stamp)
    const st = JSON.parse((await request(C.url, '/api/cache-stats')).text)
    expect(st.memoryEntries).toBeGreaterThan(0)
  })

  it('Next 15.5 (webpack): next build with no AWS configuration prints no fleetcache warning', async () => {
    const app15 = path.join(work, 'app15')
    copyApp(app15, { next16: false })
    npmInstall(app15, [packed.main.tarball, ...Object.values(packed.platforms).map((p) => p.tarball)])
    const { code, log } = await bareBuild(app15, home, { AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL: trap.url, DEMO_DATA_URL: data.url })
    expect(code, log).toBe(0)
    expect(trap.count).toBe(0)
    expect(fleetcacheNoise(log)).toEqual([])
  })

  it("types: the installed package's declarations, with skipLibCheck: false, assign to the installed next's own CacheHandler types", () => {
    // In its own folder beside the app (a tsconfig or TypeScript in the app would change next build).
    const dir = path.join(work, 'types')
    fs.mkdirSync(dir)
    for (const f of ['fleetcache-types.ts', 'tsconfig.fleetcache-types.json']) fs.copyFileSync(path.join(root, '__test__', 'fixtures', 'types', f), path.join(dir, f))
    const nextVersion = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'next', 'package.json'), 'utf8')).version
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'installed-types', private: true }, null, 2))
    npmInstall(dir, [packed.main.tarball, `next@${nextVersion}`, 'react@19.3.1', 'react-dom@19.3.1', 'typescript@5', '@types/node@20', '@types/react@19', '@types/react-dom@19'])
    const r = spawnSync(process.execPath, [path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.fleetcache-types.json'], { cwd: dir, encoding: 'utf8' })
    const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l))
    // next's own declarations do not pass skipLibCheck: false (its compiled webpack, jest-worker and
    // react-server-dom-webpack types are not shipped): those errors are next's, listed for the record.
    const ours = errors.filter((l) => !l.startsWith('node_modules/next/'))
    expect(ours, r.stdout).toEqual([])
    expect(r.stdout).not.toMatch(/fleetcache-types\.ts|node_modules\/fleetcache\//)
  })
})
