#!/usr/bin/env node
// Packs what users install: the main package (`npm pack`: its prepack hook adds the platform
// packages as optionalDependencies) and platform packages from npm/<target>/.
//
//   node scripts/pack.mjs [--dest DIR] [--targets a,b | --all-built]
//
// A platform package is packed from npm/<target>/ when its addon is there (scripts/platforms.mjs
// puts cross-built ones there); for the host target it falls back to the repository's own build
// (fleetcache.<target>.node in the root), staged in a temporary copy so the tree stays clean.
// Prints (and, as a module, returns) the tarballs and the file list of each.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { targets: ALL } = JSON.parse(fs.readFileSync(path.join(root, 'scripts', 'platforms.json'), 'utf8'))

function npmPack(cwd, dest) {
  const r = spawnSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd, encoding: 'utf8', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } })
  if (r.status !== 0) throw new Error(`npm pack in ${cwd} failed:\n${r.stdout}\n${r.stderr}`)
  // npm prints lifecycle output before the JSON report.
  const at = r.stdout.search(/^\[\s*\{/m)
  const json = JSON.parse(r.stdout.slice(at))[0]
  return { tarball: path.join(dest, json.filename), files: json.files.map((f) => f.path).sort(), size: json.size, unpackedSize: json.unpackedSize }
}

/** The host's target name (linux-x64-gnu, …), as the loader computes it. */
export function hostTarget() {
  return createRequire(import.meta.url)('../loader.js').targetOf()
}

/** Packs the main package and the platform packages of `targets` into `dest`. */
export function packAll({ dest = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-pack-')), targets = [hostTarget()] } = {}) {
  fs.mkdirSync(dest, { recursive: true })
  const out = { dest, main: npmPack(root, dest), platforms: {} }
  for (const name of targets) {
    const t = ALL.find((x) => x.name === name)
    if (!t) throw new Error(`unknown target ${name}`)
    const file = `fleetcache.${name}.node`
    let dir = path.join(root, 'npm', name)
    const local = path.join(root, file)
    // The newer of a cross-build in npm/<target>/ and the local build in the root: a stale
    // cross-build must never shadow the addon just built from the current sources.
    const mtime = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : -1)
    if (mtime(local) < 0 && mtime(path.join(dir, file)) < 0) {
      throw new Error(`no addon for ${name}: run npm run build (host) or node scripts/platforms.mjs build ${name}`)
    }
    if (mtime(local) > mtime(path.join(dir, file))) {
      const staged = fs.mkdtempSync(path.join(os.tmpdir(), `fleetcache-${name}-`))
      fs.cpSync(dir, staged, { recursive: true })
      fs.copyFileSync(local, path.join(staged, file))
      dir = staged
    }
    out.platforms[name] = npmPack(dir, dest)
  }
  return out
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2)
  const dest = argv.includes('--dest') ? path.resolve(argv[argv.indexOf('--dest') + 1]) : undefined
  const targets = argv.includes('--all-built')
    ? ALL.filter((t) => t.built).map((t) => t.name)
    : argv.includes('--targets') ? argv[argv.indexOf('--targets') + 1].split(',') : undefined
  const res = packAll({ dest, targets })
  for (const p of [res.main, ...Object.values(res.platforms)]) {
    console.log(`${path.basename(p.tarball)} (${(p.size / 1e6).toFixed(2)} MB packed, ${(p.unpackedSize / 1e6).toFixed(2)} MB unpacked)`)
    for (const f of p.files) console.log(`  ${f}`)
  }
}
