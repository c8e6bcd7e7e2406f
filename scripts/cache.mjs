// Where the project keeps what it compiles, installs or downloads, outside the clone, so a fresh
// clone on the same machine (CI's, right after a session) reuses it. The cache only speeds things
// up: every user of it builds or installs what is missing, so an empty cache (a new machine) gives
// the same results, only slower.
//
//   $FLEETCACHE_CACHE_DIR, else $XDG_CACHE_HOME/fleetcache, else ~/.cache/fleetcache
//     cargo-<key>/        the Cargo target dir of the host builds (addon, clippy, cargo test),
//                         key = rustc's version + Cargo.lock; Cargo keeps each profile apart inside
//     cross-<key>/        the target dir of the platform cross-builds (zig), same key
//     moto-<key>/         the virtualenv of the local S3 + DynamoDB server, key = its pip spec
//     platforms/          zig, cargo-zigbuild, the platforms' Nodes and sysroots
//   The npm packages of the example apps come from npm's own cache (~/.npm).
//
// `node scripts/cache.mjs` prints what is there and its size; `rm -rf` of the folder clears it.
// Target dirs whose key no longer matches are removed when a new one is made (two kept).
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The cache folder (made if missing). */
export function cacheDir() {
  const dir = process.env.FLEETCACHE_CACHE_DIR
    || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'fleetcache')
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

export function shortHash(...parts) {
  const h = crypto.createHash('sha256')
  for (const p of parts) h.update(String(p)).update('\0')
  return h.digest('hex').slice(0, 16)
}

let rustcVersion
/** `rustc -vV` (read once): the toolchain part of every build key. */
export function rustc() {
  if (rustcVersion === undefined) {
    try {
      rustcVersion = execFileSync('rustc', ['-vV'], { encoding: 'utf8' })
    } catch {
      rustcVersion = 'no rustc'
    }
  }
  return rustcVersion
}

/** Keeps the `keep` most recently used folders named `${prefix}-*` in the cache, removes the rest. */
function prune(prefix, keep) {
  const dir = cacheDir()
  const mine = fs.readdirSync(dir)
    .filter((n) => n.startsWith(`${prefix}-`))
    .map((n) => ({ n, t: fs.statSync(path.join(dir, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t)
  for (const { n } of mine.slice(keep)) fs.rmSync(path.join(dir, n), { recursive: true, force: true })
}

/** A keyed folder of the cache: `${prefix}-${key}`, touched on use, older keys pruned. */
function keyed(prefix, key) {
  const dir = path.join(cacheDir(), `${prefix}-${key}`)
  const fresh = !fs.existsSync(dir)
  fs.mkdirSync(dir, { recursive: true })
  const now = new Date()
  fs.utimesSync(dir, now, now)
  if (fresh) prune(prefix, 2)
  return dir
}

/**
 * The Cargo target dir for `kind` ('cargo': host builds, 'cross': platform builds, kept apart
 * so the cross-builds in the background never wait for the lock of the host builds). A
 * CARGO_TARGET_DIR (host) or FLEETCACHE_CROSS_TARGET_DIR (cross) the caller set wins.
 */
export function cargoTargetDir(kind = 'cargo') {
  const mine = kind === 'cross' ? process.env.FLEETCACHE_CROSS_TARGET_DIR : process.env.CARGO_TARGET_DIR
  if (mine) return mine
  const lock = fs.readFileSync(path.join(root, 'Cargo.lock'), 'utf8')
  return keyed(kind, shortHash(rustc(), lock))
}

/** The environment for a cargo command: the target dir above, and no trip to EC2's metadata. */
export function cargoEnv(kind = 'cargo', base = process.env) {
  return { ...base, CARGO_TARGET_DIR: cargoTargetDir(kind), AWS_EC2_METADATA_DISABLED: 'true' }
}

/** A keyed folder for a virtualenv or tool set whose content `spec` decides. */
export function toolDir(prefix, spec) {
  return keyed(prefix, shortHash(spec))
}

/** The folder of the platform tools (zig, Nodes, sysroots): markers inside say what is installed. */
export function platformsDir() {
  const dir = path.join(cacheDir(), 'platforms')
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

function du(p) {
  try {
    return execFileSync('du', ['-sh', p], { encoding: 'utf8' }).split('\t')[0]
  } catch {
    return '?'
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = cacheDir()
  console.log(`fleetcache's build cache: ${dir} (${du(dir)}); clear it with: rm -rf ${dir}`)
  for (const n of fs.readdirSync(dir).sort()) console.log(`  ${n.padEnd(28)} ${du(path.join(dir, n))}`)
}
