// The `fleetcache` command's argument handling and the build-output reader, without a server.
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const root = path.resolve(import.meta.dirname, '..')
const { normalizePagePath, readBuild } = require('../tools/seed.js')

const cli = (...args) => spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), ...args], {
  encoding: 'utf8',
  env: { PATH: process.env.PATH, FLEETCACHE_BACKEND: 'memory' },
})

describe('fleetcache command', () => {
  it('bad usage exits 2 and names the problem', () => {
    let r = cli('prune')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/prune needs --keep N/)
    r = cli('prune', '--keep', '0')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/--keep must be an integer ≥ 1, got "0"/)
    r = cli('frobnicate')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/unknown command "frobnicate"/)
    r = cli('seed', '--bogus')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/unknown option --bogus/)
    expect(cli().status).toBe(2)
    expect(cli('--help').stdout).toMatch(/seed \[distDir\]/)
  })

  it('flags are per command, checked, and suggested', () => {
    let r = cli('sede')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/unknown command "sede" \(did you mean `seed`\?\)/)])
    r = cli('doctor', '--keep', '3', '--concurrency', '9')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/doctor: unknown option --keep/)])
    r = cli('seed', '--concurency', '4')
    expect(r.stderr).toMatch(/unknown option --concurency \(did you mean --concurrency\?\)/)
    r = cli('seed', '--dry-run=false')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/--dry-run takes no value/)])
    r = cli('prune', '--keep')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/--keep needs a value/)])
    r = cli('prune', '--keep', '2x')
    expect(r.stderr).toMatch(/--keep must be an integer/)
    r = cli('inspect')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/inspect needs <path\|key>/)])
    r = cli('doctor', 'extra')
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/doctor takes no arguments/)])
  })

  it('purge: --dry-run prints the plan; without a distribution it names the option; no target is a usage error', () => {
    let r = cli('purge', '--path', '/docs', '--path', '/shop/*', '--dry-run')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('3 path(s) asked for; 1 invalidation(s) planned, 3 path(s), estimated $0.000')
    expect(r.stdout).toMatch(/3 path\(s\) \(2 wildcard\), \$0\.000 — dry run: not sent\n {4}\/docs\n {4}\/docs\?_rsc=\*\n {4}\/shop\/\*/)
    r = cli('purge', '--path', '/docs', '--dry-run', '--json')
    expect(JSON.parse(r.stdout).batches[0].paths).toEqual(['/docs', '/docs?_rsc=*'])
    r = cli('purge', '--path', '/docs')
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/cdn\.cloudfront\.distributionId \(FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID, or --distribution-id\)/)
    r = cli('purge')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/purge needs --tag or --path/)
    r = cli('purge', '--path', '/x', '--distribution-id', 'lower')
    expect(r.stderr).toMatch(/`cdn.cloudfront.distributionId` "lower" is not a CloudFront distribution ID/)
  })

  it('--version and per-command help', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    expect(cli('--version').stdout.trim()).toBe(pkg.version)
    const help = cli('seed', '--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/^usage: fleetcache seed \[distDir\]/)
    expect(help.stdout).toMatch(/--dry-run/)
    expect(help.stdout).not.toMatch(/--keep/)
    expect(cli('help', 'inspect').stdout).toMatch(/--build-id/)
  })

  it('seed of a directory without a build says what to do', () => {
    const r = cli('seed', path.join(os.tmpdir(), 'no-such-build'))
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/holds no BUILD_ID: run `next build` first/)
  })

  it('a bad store option is reported by doctor, not thrown', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), 'doctor'], { encoding: 'utf8', env: { PATH: process.env.PATH } })
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/FAIL config: .*bucket/)
  })

  it('seeds a minimal build into the memory backend, and reports what it skipped', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-build-'))
    fs.writeFileSync(path.join(dir, 'BUILD_ID'), 'b1\n')
    fs.mkdirSync(path.join(dir, 'server', 'app'), { recursive: true })
    fs.mkdirSync(path.join(dir, 'server', 'pages'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'prerender-manifest.json'), JSON.stringify({
      routes: {
        '/': { initialRevalidateSeconds: 60, initialExpireSeconds: 600, srcRoute: '/', dataRoute: '/index.rsc' },
        '/api/x': { initialRevalidateSeconds: false, srcRoute: '/api/x', dataRoute: null },
        '/p': { initialRevalidateSeconds: 10, srcRoute: null, dataRoute: '/_next/data/b1/p.json' },
        '/gone': { initialRevalidateSeconds: 10, srcRoute: null, dataRoute: '/_next/data/b1/gone.json' },
        '/lazy': { initialRevalidateSeconds: 10, srcRoute: '/lazy', dataRoute: '/lazy.rsc' },
      },
      notFoundRoutes: ['/gone'],
    }))
    const app = path.join(dir, 'server', 'app')
    fs.writeFileSync(path.join(app, 'index.html'), '<html>home</html>')
    fs.writeFileSync(path.join(app, 'index.rsc'), 'rsc')
    fs.writeFileSync(path.join(app, 'index.meta'), JSON.stringify({
      headers: { 'x-next-cache-tags': '_N_T_/layout' },
      segmentPaths: ['/_tree'],
      routeCache: { key: '/route-cache/APP_PAGE/abc/$/index', isFallback: false },
    }))
    fs.mkdirSync(path.join(app, 'index.segments'))
    fs.writeFileSync(path.join(app, 'index.segments', '_tree.segment.rsc'), 'tree')
    fs.mkdirSync(path.join(app, 'api'))
    fs.writeFileSync(path.join(app, 'api', 'x.body'), '{"ok":1}')
    fs.writeFileSync(path.join(app, 'api', 'x.meta'), JSON.stringify({ status: 200, headers: { 'content-type': 'application/json' } }))
    fs.writeFileSync(path.join(dir, 'server', 'pages', 'p.html'), '<p>p</p>')
    fs.writeFileSync(path.join(dir, 'server', 'pages', 'p.json'), '{"pageProps":{},"__N_SSG":true}')

    const build = readBuild(dir)
    expect(build.buildId).toBe('b1')
    const byPath = Object.fromEntries(build.entries.map((e) => [e.path, e]))
    expect(byPath['/'].key).toBe('/route-cache/APP_PAGE/abc/$/index') // the key the build recorded
    expect(byPath['/api/x'].key).toBe('/api/x') // no record: the bare-path style of older versions
    expect(byPath['/gone'].key).toMatch(/^\/route-cache\/PAGES\/[0-9a-f]{64}\/\$\/gone$/)
    expect(build.skipped.map((s) => s.path)).toEqual(['/lazy'])
    const home = byPath['/'].load()
    expect(home.cacheControl).toEqual({ revalidate: 60, expire: 600 })
    expect(home.value.segmentData.get('/_tree').toString()).toBe('tree')
    expect(Buffer.isBuffer(home.value.rscData)).toBe(true)
    expect(byPath['/api/x'].load().cacheControl).toEqual({ revalidate: false })
    expect(byPath['/gone'].load().value).toBeNull()

    const r = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), 'seed', dir, '--json'], { encoding: 'utf8', env: { PATH: process.env.PATH, FLEETCACHE_BACKEND: 'memory' } })
    expect(r.status, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report).toMatchObject({ buildId: 'b1', total: 4, written: 4, existing: 0, failed: [] })
    expect(r.stderr).toMatch(/seed: 4\/4 \(4 written\)/) // plain progress lines off a terminal

    const dry = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), 'seed', dir, '--dry-run'], { encoding: 'utf8', env: { PATH: process.env.PATH, FLEETCACHE_BACKEND: 'memory' } })
    expect(dry.status, dry.stderr).toBe(0)
    expect(dry.stdout).toMatch(/dry run, nothing written: build b1: 4 entries, 4 would be written/)
    expect(dry.stdout).toMatch(/would write \/api\/x \(APP_ROUTE, 8 B\)/)
  })

  it.skipIf(!process.env.FLEETCACHE_TEST_ENDPOINT)('against S3 + DynamoDB: seed --dry-run writes nothing, inspect decodes what seed wrote', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-build-'))
    fs.writeFileSync(path.join(dir, 'BUILD_ID'), 'b-inspect\n')
    fs.mkdirSync(path.join(dir, 'server', 'app'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'prerender-manifest.json'), JSON.stringify({
      routes: { '/isr': { initialRevalidateSeconds: 60, initialExpireSeconds: 600, srcRoute: '/isr', dataRoute: '/isr.rsc' } },
    }))
    const app = path.join(dir, 'server', 'app')
    fs.writeFileSync(path.join(app, 'isr.html'), '<html>isr</html>')
    fs.writeFileSync(path.join(app, 'isr.rsc'), 'rsc')
    fs.writeFileSync(path.join(app, 'isr.meta'), JSON.stringify({
      headers: { 'x-next-cache-tags': '_N_T_/layout,_N_T_/isr,posts' },
      routeCache: { key: '/route-cache/APP_PAGE/abc/$/isr', isFallback: false },
    }))
    const ep = process.env.FLEETCACHE_TEST_ENDPOINT
    const env = {
      PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: ep, FLEETCACHE_BUCKET: `fc-cli-${process.pid}`, FLEETCACHE_TABLE: `fc-cli-${process.pid}`, FLEETCACHE_PREFIX: `cli${Date.now()}`,
    }
    const run = (...args) => spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), ...args], { encoding: 'utf8', env })
    // The bucket and table, created as the tests' other cores do.
    const mk = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'index.js'))})._coreFor({}).ensureResources().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })`], { encoding: 'utf8', env })
    expect(mk.status, mk.stderr).toBe(0)
    let r = run('seed', dir, '--dry-run')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/1 would be written/)
    r = run('inspect', '/isr', '--build-id', 'b-inspect')
    expect([r.status, r.stdout]).toEqual([1, expect.stringMatching(/nothing stored for \/isr/)])
    r = run('seed', dir, '--json')
    expect(JSON.parse(r.stdout)).toMatchObject({ total: 1, written: 1, existing: 0 }) // the dry run wrote nothing
    r = run('inspect', '/isr')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^\/route-cache\/APP_PAGE\/abc\/\$\/isr\n  kind APP_PAGE, build b-inspect/)
    expect(r.stdout).toMatch(/revalidate 60 s, expire 600 s/)
    expect(r.stdout).toMatch(/posts: never revalidated/)
    r = run('inspect', '/isr', '--json')
    const j = JSON.parse(r.stdout)
    expect(j.entries[0]).toMatchObject({ kind: 'APP_PAGE', buildId: 'b-inspect', revalidate: 60, expire: 600, tagVerdict: 'no tag revalidated since it was written' })
    expect(j.entries[0].storedBytes).toBeGreaterThan(0)
    expect(j.entries[0].tags.map((t) => t.tag).sort()).toEqual(['_N_T_/isr', '_N_T_/layout', 'posts'])
  })

  it("normalizePagePath matches Next's", () => {
    expect(normalizePagePath('/')).toBe('/index')
    expect(normalizePagePath('/index')).toBe('/index/index')
    expect(normalizePagePath('/index/x')).toBe('/index/index/x')
    expect(normalizePagePath('/a/b')).toBe('/a/b')
  })
})
