#!/usr/bin/env node
// Builds the native addon from source into fleetcache.<target>.node and the generated types
// binding.d.ts in the repo root (the loader, binding.js + loader.js, is hand-written).
//
//   node scripts/build.mjs            Cargo's `dev` profile: what `npm install` in a clone (the
//                                     `prepare` script), the demo and the tests use. About 2 min
//                                     from cold on 2 cores, and `cargo test` / clippy reuse the
//                                     dependencies it compiled (same profile, same features).
//   node scripts/build.mjs --fast     `fast`: optimised, no LTO (benchmarks while developing)
//   node scripts/build.mjs --release  `release`: LTO, what ships (the release workflow builds the
//                                     platform packages with it; `npm run bench` uses it)
//   FLEETCACHE_BUILD_PROFILE=dev|fast|release chooses the same way.
//
// Nothing is compiled when the addon in the root was built by this script from the same sources,
// profile and toolchain (a stamp in .local/ records them), so `npm test` right after `npm ci`
// does not build again. The Cargo target dir is outside the clone (scripts/cache.mjs).
// Does nothing under `npm pack` / `npm publish` (the platform packages carry the addons).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { root, cargoEnv, cargoTargetDir, rustc, shortHash } from './cache.mjs'

if (['pack', 'publish'].includes(process.env.npm_command)) {
  console.log(`[build] npm ${process.env.npm_command}: no build (the addons ship in the platform packages)`)
  process.exit(0)
}

const PROFILES = {
  dev: { args: [], what: 'dev (unoptimised; the tests and the demo)' },
  fast: { args: ['--profile', 'fast'], what: 'fast (optimised, no LTO)' },
  release: { args: ['--release'], what: 'release (LTO, what ships)' },
}
const argv = process.argv.slice(2)
const profile = argv.includes('--release') ? 'release' : argv.includes('--fast') ? 'fast' : argv.includes('--dev') ? 'dev' : process.env.FLEETCACHE_BUILD_PROFILE || 'dev'
if (!PROFILES[profile]) {
  console.error(`[build] FLEETCACHE_BUILD_PROFILE must be one of ${Object.keys(PROFILES).join(', ')}, got ${JSON.stringify(profile)}`)
  process.exit(2)
}

/** Every file the addon is built from, hashed with the profile and the toolchain. */
function inputsHash() {
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs', path.join('.cargo', 'config.toml')]
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name)
      if (e.isDirectory()) walk(rel)
      else files.push(rel)
    }
  }
  walk('src')
  files.sort()
  return shortHash(profile, rustc(), cargoTargetDir(), ...files.flatMap((f) => {
    const p = path.join(root, f)
    return [f, fs.existsSync(p) ? fs.readFileSync(p) : '']
  }))
}

const { targetOf } = createRequire(import.meta.url)('../loader.js')
const addon = path.join(root, `fleetcache.${targetOf()}.node`)
const stampFile = path.join(root, '.local', 'build-stamp.json')
const inputs = inputsHash()
let stamp = null
try {
  stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8'))
} catch {}
const built = fs.existsSync(addon) ? fs.statSync(addon) : null
if (stamp && built && stamp.inputs === inputs && built.size === stamp.size && built.mtimeMs === stamp.mtimeMs && !argv.includes('--force')) {
  console.log(`[build] ${path.basename(addon)} is up to date (${profile} profile, same sources): nothing to build`)
  process.exit(0)
}

console.log(`[build] ${PROFILES[profile].what} build of the native addon (Cargo target dir ${cargoTargetDir()})`)
const started = Date.now()
const r = spawnSync('npx', ['napi', 'build', '--platform', '--no-js', '--dts', 'binding.d.ts', ...PROFILES[profile].args], { cwd: root, stdio: 'inherit', env: cargoEnv() })
if (r.status !== 0) process.exit(r.status ?? 1)
const st = fs.statSync(addon)
fs.mkdirSync(path.dirname(stampFile), { recursive: true })
fs.writeFileSync(stampFile, JSON.stringify({ profile, inputs, size: st.size, mtimeMs: st.mtimeMs }))
console.log(`[build] ${path.basename(addon)} (${profile}, ${(st.size / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(0)} s`)
