#!/usr/bin/env node
// Builds the native addon from source: `--release` (LTO, what ships) by default, `--fast` for
// the test loop. Writes fleetcache.<platform>.node, binding.js and binding.d.ts in the repo root.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const fast = process.argv.includes('--fast') || process.env.FLEETCACHE_BUILD_PROFILE === 'fast'
const args = ['napi', 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts']
args.push(...(fast ? ['--profile', 'fast'] : ['--release']))
console.log(`[build] ${fast ? 'fast (no LTO)' : 'release (LTO)'} build of the native addon`)
const r = spawnSync('npx', args, { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
