// What users receive, short of installing it (that is __test__/e2e/installed.e2e.mjs): the loader's
// platform handling, the build phase, versions in step, the Docker example and the release
// workflow (linted, and checked to run what the suites run).
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { lintTool } from '../scripts/lint-tools.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const loader = require('../loader.js')
const { FleetCacheError } = require('../error.js')
const fc = require('../index.js')

/** Runs `node -e code` under `env -i` with only `env`; resolves to exit code and output. */
function bareNode(code, env = {}) {
  const vars = { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', ...env }
  return spawnSync('env', ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), process.execPath, '-e', code], { cwd: root, encoding: 'utf8' })
}

/** The error `fn` throws (undefined if it returns). */
function thrownBy(fn) {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}

describe('loader', () => {
  it('names targets as the platform packages do', () => {
    expect(loader.targetOf('linux', 'x64', 'gnu')).toBe('linux-x64-gnu')
    expect(loader.targetOf('linux', 'arm64', 'musl')).toBe('linux-arm64-musl')
    expect(loader.targetOf('darwin', 'arm64')).toBe('darwin-arm64')
    expect(loader.targetOf('win32', 'x64')).toBe('win32-x64-msvc')
    expect(loader.targetOf()).toBe(`linux-${process.arch}-gnu`) // this machine
    const platforms = JSON.parse(fs.readFileSync(path.join(root, 'scripts', 'platforms.json'), 'utf8')).targets.map((t) => t.name)
    expect(loader.TARGETS).toEqual(platforms)
  })

  it('a platform without a binary: one FleetCacheError naming it, the platforms that have one, and the README section', () => {
    const err = thrownBy(() => loader.load('freebsd-x64', {}))
    expect(err).toBeInstanceOf(FleetCacheError)
    expect(err.code).toBe('FLEETCACHE_NO_BINARY')
    expect(err.message).toContain('freebsd-x64')
    for (const t of loader.TARGETS) expect(err.message).toContain(t)
    expect(err.message).toContain('"Platforms" in the README')
  })

  it('a supported platform whose package is missing: says which package and why', () => {
    const err = thrownBy(() => loader.load('linux-arm64-musl', {}))
    expect(err.code).toBe('FLEETCACHE_NO_BINARY')
    expect(err.message).toContain('`fleetcache-linux-arm64-musl` is not installed')
  })

  it('FLEETCACHE_NATIVE_PATH loads a given addon (how the platform smoke tests load each build)', () => {
    const local = path.join(root, `fleetcache.${loader.targetOf()}.node`)
    expect(loader.load('freebsd-x64', { FLEETCACHE_NATIVE_PATH: local })).toBe(require(local))
  })

  it('the README has the section the error points to', () => {
    expect(fs.readFileSync(path.join(root, 'README.md'), 'utf8')).toMatch(/^## Platforms$/m)
  })
})

describe('the build phase (NEXT_PHASE=phase-production-build)', () => {
  const BUILD = { NEXT_PHASE: 'phase-production-build' }

  it('needs no options: a process-local store, no network, one notice', () => {
    const code = `
      const fc = require('./index.js')
      const H = fc.createCacheHandler({})
      const h = new H({})
      ;(async () => {
        await h.set('/k', { kind: 'APP_ROUTE', body: Buffer.from('x'), status: 200, headers: {} }, { kind: 'APP_ROUTE', cacheControl: { revalidate: 60 } })
        const got = await h.get('/k', { kind: 'APP_ROUTE' })
        fc.createCacheHandler({})
        console.log(JSON.stringify({ hit: got !== null && got.value.body.toString() === 'x' }))
      })()`
    const r = bareNode(code, { ...BUILD, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' })
    expect(r.status, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines.filter((l) => l.startsWith('[fleetcache]'))).toHaveLength(1)
    expect(JSON.parse(lines.pop())).toEqual({ hit: true })
    expect(r.stderr).toBe('')
  })

  it('AWS options are set aside; writeDuringBuild (or FLEETCACHE_WRITE_DURING_BUILD=1) keeps the shared store', () => {
    // The rules themselves are unit-tested where they live (config.rs, the_build_phase_…).
    const code = `
      const fc = require('./index.js')
      const opts = { bucket: 'build-bucket', table: 'build-table', region: 'eu-west-1', s3Endpoint: 'http://127.0.0.1:9', dynamodbEndpoint: 'http://127.0.0.1:9', feedIntervalMs: 0, memoryBytes: 1024 }
      console.log(JSON.stringify([fc._coreFor(opts).backend, fc.stats(opts).memoryBudget, fc._coreFor({ ...opts, writeDuringBuild: true }).backend]))`
    const r = bareNode(code, BUILD)
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout.trim().split('\n').pop())).toEqual(['memory', 1024, 'aws'])
    const env = bareNode(code.replace(', writeDuringBuild: true', ''), { ...BUILD, FLEETCACHE_WRITE_DURING_BUILD: '1' })
    expect(JSON.parse(env.stdout.trim().split('\n').pop())).toEqual(['aws', 1024, 'aws'])
    expect(thrownBy(() => fc.createCacheHandler({ writeDuringBuild: 'yes' })).message).toMatch(/`writeDuringBuild` must be a boolean/)
  })

  it('outside the build, a missing bucket is still an error', () => {
    const r = bareNode("require('./index.js').createCacheHandler({})", {})
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('`bucket` is required')
  })
})

describe('package', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

  it('platform packages are at the main version', () => {
    const r = spawnSync(process.execPath, ['scripts/sync-versions.mjs', '--check'], { cwd: root, encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
  })

  it('hygiene: license, repository, peer dependency on next, engines, no install scripts', () => {
    expect(fs.existsSync(path.join(root, 'LICENSE'))).toBe(true)
    expect(fs.existsSync(path.join(root, 'CHANGELOG.md'))).toBe(true)
    expect(pkg.repository && pkg.homepage && pkg.bugs).toBeTruthy()
    expect(pkg.peerDependencies.next).toBe('>= 15.5.0')
    expect(pkg.engines.node).toBe('>= 20')
    for (const s of ['install', 'postinstall', 'preinstall']) expect(pkg.scripts[s]).toBeUndefined()
    expect(pkg.files).not.toContain('src')
  })

  it('index.d.ts declares exactly the stats the core reports, with their types', () => {
    const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
    const body = /export interface Stats \{([\s\S]*?)\n\}/.exec(dts)[1]
    const declared = Object.fromEntries([...body.matchAll(/^\s+(\w+): (\w+)$/gm)].map((m) => [m[1], m[2]]))
    const got = Object.fromEntries(Object.entries(fc.stats({ backend: 'memory', prefix: 'dts' })).map(([k, v]) => [k, typeof v]))
    expect(got).toEqual(declared)
  })
})

describe('Docker example', () => {
  const file = path.join(root, 'examples', 'docker', 'Dockerfile')
  const text = fs.readFileSync(file, 'utf8')
  const stages = text.split(/^FROM /m).slice(1).map((s) => ({ head: s.split('\n')[0], body: s }))

  it('passes hadolint', () => {
    const r = spawnSync(lintTool('hadolint'), [file], { encoding: 'utf8' })
    expect(r.status, r.stdout + r.stderr).toBe(0)
  })

  it('runs what the installed-package suite runs: npm ci, next build without AWS, the standalone output, seeding at release', () => {
    expect(stages.map((s) => s.head)).toEqual(['node:22-alpine AS deps', 'node:22-alpine AS build', 'node:22-alpine AS run'])
    expect(stages[0].body).toMatch(/RUN npm ci/)
    expect(stages[1].body).toMatch(/RUN npx next build/)
    // No AWS or fleetcache configuration in any build stage.
    for (const s of stages.slice(0, 2)) expect(s.body.split('\n').filter((l) => /^(ENV|ARG)\b/.test(l) && /AWS_|FLEETCACHE_/.test(l))).toEqual([])
    for (const from of ['/app/.next/standalone', '/app/.next/static', '/app/public']) expect(stages[2].body).toContain(from)
    expect(stages[2].body).toMatch(/CMD \["node", "server.js"\]/)
    expect(text).toMatch(/fleetcache seed/)
  })
})

describe('release workflow', () => {
  const file = path.join(root, '.github', 'workflows', 'release.yml')
  const text = fs.readFileSync(file, 'utf8')

  it('passes actionlint', () => {
    const r = spawnSync(lintTool('actionlint'), [file], { encoding: 'utf8', cwd: root })
    expect(r.status, r.stdout + r.stderr).toBe(0)
  })

  it('builds with the same scripts as npm run test:platforms, on every declared target, and publishes with provenance', () => {
    expect(pkg().scripts['test:platforms']).toBe('node scripts/platforms.mjs')
    expect(text).toContain('node scripts/platforms.mjs --json')
    expect(text).toContain('node scripts/platforms.mjs native')
    for (const t of ['darwin-arm64', 'darwin-x64', 'win32-x64-msvc']) expect(text).toContain(`target: ${t}`)
    expect(text).toContain('npm publish --provenance')
    expect(text).toContain('id-token: write')
  })
  const pkg = () => JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
})
