#!/usr/bin/env node
// Builds the native addon from source: `--release` (LTO, what ships) by default, `--fast` for
// the test loop. Writes fleetcache.<target>.node and the generated types binding.d.ts in the
// repo root (the loader, binding.js + loader.js, is hand-written). Runs as the repository's
// `prepare` script, so `npm install` in a clone builds it; it does nothing under `npm pack` /
// `npm publish` (the platform packages carry the addons, see scripts/platforms.mjs).
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
if (['pack', 'publish'].includes(process.env.npm_command)) {
  console.log(`[build] npm ${process.env.npm_command}: no build (the addons ship in the platform packages)`)
  process.exit(0)
}
const fast = process.argv.includes('--fast') || process.env.FLEETCACHE_BUILD_PROFILE === 'fast'
const args = ['napi', 'build', '--platform', '--no-js', '--dts', 'binding.d.ts']
args.push(...(fast ? ['--profile', 'fast'] : ['--release']))
console.log(`[build] ${fast ? 'fast (no LTO)' : 'release (LTO)'} build of the native addon`)
const r = spawnSync('npx', args, { cwd: root, stdio: 'inherit', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } })
process.exit(r.status ?? 1)
