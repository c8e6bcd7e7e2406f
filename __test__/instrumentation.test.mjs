// registerCacheHandler refuses, with a line naming the fix, where Next would not read its hook.
// (Where it does — Next 16.4.6 and 15.5.29 as installed — the e2e suite serves through it.)
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Calls registerCacheHandler in a fresh process whose cwd is `dir`; returns what it printed. */
function registerIn(dir, env = {}) {
  const script = `
    const lines = []
    const r = require(${JSON.stringify(path.join(root, 'tools', 'instrumentation.js'))}).registerCacheHandler({ backend: 'memory' }, { log: (m) => lines.push(m) })
    console.log(JSON.stringify({ returned: r, lines, hook: globalThis[Symbol.for('@next/cache-handlers')] ?? null }))`
  const r = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', ...env } })
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

function appWithNext(source) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-register-'))
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"app","private":true}')
  if (source !== undefined) {
    const lib = path.join(dir, 'node_modules', 'next', 'dist', 'server', 'lib', 'incremental-cache')
    fs.mkdirSync(lib, { recursive: true })
    fs.writeFileSync(path.join(dir, 'node_modules', 'next', 'package.json'), '{"name":"next","version":"99.0.0"}')
    fs.writeFileSync(path.join(lib, 'index.js'), source)
  }
  return dir
}

describe('registerCacheHandler', () => {
  it('without next installed: returns null, sets no hook, and says to set cacheHandler', () => {
    const out = registerIn(appWithNext(undefined))
    expect(out.returned).toBeNull()
    expect(out.hook).toBeNull()
    expect(out.lines).toHaveLength(1)
    expect(out.lines[0]).toMatch(/does not read globalThis\[Symbol\.for\('@next\/cache-handlers'\)\]\.FetchCache; set cacheHandler/)
  })

  it('with a next whose IncrementalCache does not read the hook: the same refusal', () => {
    const out = registerIn(appWithNext('class IncrementalCache { constructor({ CurCacheHandler }) { this.h = CurCacheHandler } }\nmodule.exports = { IncrementalCache }\n'))
    expect(out.returned).toBeNull()
    expect(out.hook).toBeNull()
    expect(out.lines[0]).toMatch(/set cacheHandler: require\.resolve\('fleetcache\/handler'\)/)
  })

  it('outside the Node.js runtime it does nothing, silently', () => {
    const out = registerIn(appWithNext(undefined), { NEXT_RUNTIME: 'edge' })
    expect(out).toEqual({ returned: null, lines: [], hook: null })
  })
})
