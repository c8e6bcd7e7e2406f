#!/usr/bin/env node
// Keeps the platform packages in step with the main package: writes npm/<target>/package.json
// (and its README) for every target in scripts/platforms.json at the main package's version.
//
//   node scripts/sync-versions.mjs           write them (also run by `npm version`)
//   node scripts/sync-versions.mjs --check   exit 1, naming the file, if anything is out of step
//   node scripts/sync-versions.mjs --pack    add optionalDependencies (every platform package at
//                                            the main version) to package.json: `prepack`
//   node scripts/sync-versions.mjs --unpack  take them out again: `postpack`
//
// Why the main package.json in the repository has no optionalDependencies: until a version is
// published, its platform packages are not in the registry, so the lock file could not record
// them and `npm ci` would refuse to run. The packed tarball (what users install) always has them.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const check = process.argv.includes('--check')
const mainFile = path.join(root, 'package.json')
const main = JSON.parse(fs.readFileSync(mainFile, 'utf8'))
const { targets } = JSON.parse(fs.readFileSync(path.join(root, 'scripts', 'platforms.json'), 'utf8'))

const expected = new Map()

function platformPackage(t) {
  const file = `fleetcache.${t.name}.node`
  const pkg = {
    name: `fleetcache-${t.name}`,
    version: main.version,
    description: `The ${t.name} native addon of fleetcache (installed by the fleetcache package; not used on its own)`,
    os: [t.os],
    cpu: [t.cpu],
    ...(t.libc ? { libc: [t.libc] } : {}),
    main: file,
    files: [file],
    license: main.license,
    engines: main.engines,
    repository: main.repository,
    homepage: main.homepage,
    bugs: main.bugs,
  }
  return JSON.stringify(pkg, null, 2) + '\n'
}

function readme(t) {
  return `# fleetcache-${t.name}\n\nThe \`${t.rust}\` native addon of [fleetcache](${main.homepage}).\n` +
    `Installed automatically as an optional dependency of \`fleetcache\` on ${t.name}; do not depend on it directly.\n`
}

for (const t of targets) {
  expected.set(path.join('npm', t.name, 'package.json'), platformPackage(t))
  expected.set(path.join('npm', t.name, 'README.md'), readme(t))
}
if (process.argv.includes('--pack') || process.argv.includes('--unpack')) {
  const { optionalDependencies, ...rest } = main
  const out = process.argv.includes('--pack')
    ? { ...rest, optionalDependencies: Object.fromEntries(targets.map((t) => [`fleetcache-${t.name}`, main.version])) }
    : rest
  fs.writeFileSync(mainFile, JSON.stringify(out, null, 2) + '\n')
  process.exit(0)
}

let stale = 0
for (const [rel, text] of expected) {
  const file = path.join(root, rel)
  const now = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null
  if (now === text) continue
  if (check) {
    console.error(`[versions] ${rel} is out of step with package.json ${main.version}: run node scripts/sync-versions.mjs`)
    stale++
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, text)
    console.log(`[versions] wrote ${rel}`)
  }
}
if (check && stale > 0) process.exit(1)
if (check) console.log(`[versions] the main package and ${targets.length} platform packages are at ${main.version}`)
