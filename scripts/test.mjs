#!/usr/bin/env node
// `npm test`: builds the addon (nothing to do right after `npm ci`, whose `prepare` built it),
// starts a local S3 + DynamoDB server (moto, on 127.0.0.1), runs `cargo fmt --check`, clippy,
// `cargo test` and the vitest suites against memory and against that server, then the
// end-to-end suite (the example apps on Next 16 and 15.5, each built once per run, and the packed
// package installed outside the repo; FLEETCACHE_SKIP_E2E=1 skips it), stops the server, then
// smoke-tests the Linux platform addons (scripts/platforms.mjs in the light `smoke` profile; the
// release workflow builds the shipped ones with LTO; FLEETCACHE_SKIP_PLATFORMS=1 skips it).
//
// The platform cross-builds start at once in the background at idle CPU priority (SCHED_IDLE,
// else nice 19): they take only what the suites leave idle, and are waited for before the checks.
// What is compiled and installed is kept outside the clone (scripts/cache.mjs), so a second run
// on the same machine compiles only the crate itself. The summary prints each step's seconds, the
// total against CI's budget, and the slowest three steps.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalAws } from './local-aws.mjs'
import { cargoEnv, cacheDir } from './cache.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// Every step's result, and the last lines of what it printed, for the summary at the end: CI
// keeps only the tail of a long log, and the platform builds print a lot after the suites.
const results = []
const TAIL_LINES = 80
const runStarted = Date.now()
// Lets the e2e suites share a `next build` of the same app variant within this run (next-fleet.mjs).
process.env.FLEETCACHE_RUN_ID = `${runStarted.toString(36)}-${process.pid}`
/** CI's budget for one run of .ci/run, in minutes (CI's hard limit is 90). */
const BUDGET_MIN = 45
// Every cargo command shares the target dir in the build cache.
const cargoVars = cargoEnv('cargo', {})

function run(label, cmd, args, env = {}) {
  console.log(`\n[test] ${label}: ${cmd} ${args.join(' ')}`)
  const started = Date.now()
  // What the step prints goes to this process's stdout and into a file the summary reads back.
  const logFile = path.join(os.tmpdir(), `fleetcache-test-${process.pid}-${results.length}.log`)
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', '"$@" 2>&1 | tee "$FLEETCACHE_STEP_LOG"', 'step', cmd, ...args], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...env, FLEETCACHE_STEP_LOG: logFile },
  })
  const seconds = (Date.now() - started) / 1000
  console.log(`[test] ${label}: exit ${r.status} in ${seconds.toFixed(1)} s`)
  results.push({ label, status: r.status, seconds, logFile })
  return r.status === 0
}

function summary() {
  console.log('\n[test] summary')
  for (const { label, status, seconds } of results) {
    console.log(`[test]   ${status === 0 ? 'ok    ' : 'FAILED'} ${label} (exit ${status}, ${seconds.toFixed(1)} s)`)
  }
  const total = (Date.now() - runStarted) / 60_000
  console.log(`[test] CI total ${total.toFixed(1)} min of ${BUDGET_MIN} (npm test alone; .ci/run's npm ci comes before it)`)
  const slowest = [...results].filter((r) => !r.background).sort((a, b) => b.seconds - a.seconds).slice(0, 3)
  console.log(`[test] slowest: ${slowest.map((r) => `${r.label.replace(/ \(.*$/, '')} ${r.seconds.toFixed(0)} s`).join(', ')}`)
  console.log(`[test] build cache: ${cacheDir()} (node scripts/cache.mjs lists it)`)
  for (const { label, status, logFile } of results) {
    if (status === 0) continue
    let lines = []
    try {
      lines = fs.readFileSync(logFile, 'utf8').split('\n')
    } catch {}
    console.log(`\n[test] the last ${TAIL_LINES} lines of the failed step "${label}":`)
    console.log(lines.slice(-TAIL_LINES).join('\n'))
  }
  for (const { logFile } of results) fs.rmSync(logFile, { force: true })
}

/** Prints the summary and the verdict, and exits with it. */
function finish(passed) {
  for (const job of backgroundJobs) job.kill()
  summary()
  console.log(passed ? '\n[test] all suites passed' : '\n[test] FAILED')
  process.exit(passed ? 0 : 1)
}

/**
 * Starts `node args` in the background at idle CPU priority, its output to a file; `wait()`
 * resolves to its exit code and records it as a step of the summary (its seconds: from its start).
 */
const backgroundJobs = []
function background(label, args) {
  const logFile = path.join(os.tmpdir(), `fleetcache-test-${process.pid}-bg-${results.length}.log`)
  const out = fs.openSync(logFile, 'w')
  const idle = spawnSync('chrt', ['--idle', '0', 'true']).status === 0
  const [cmd, pre] = idle ? ['chrt', ['--idle', '0', 'nice', '-n', '19']] : ['nice', ['-n', '19']]
  console.log(`\n[test] ${label} (in the background${idle ? ', SCHED_IDLE' : ', nice 19'}): node ${args.join(' ')}; output in ${logFile}`)
  const started = Date.now()
  // Its own process group, so a run that ends early stops the compilers under it too.
  const child = spawn(cmd, [...pre, process.execPath, ...args], { cwd: root, stdio: ['ignore', out, out], env: process.env, detached: true })
  const exit = new Promise((resolve) => {
    child.once('error', () => resolve(1))
    child.once('exit', (code) => resolve(code ?? 1))
  })
  const job = {
    kill: () => {
      if (child.exitCode !== null) return
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {}
    },
    wait: async () => {
      const status = await exit
      const seconds = (Date.now() - started) / 1000
      fs.closeSync(out)
      console.log(`\n[test] ${label}: exit ${status} in ${seconds.toFixed(1)} s (its output:)`)
      console.log(fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => /^\[platforms\]|error|warning: unused/i.test(l)).slice(-40).join('\n'))
      results.push({ label, status, seconds, logFile, background: true })
      return status === 0
    },
  }
  backgroundJobs.push(job)
  return job
}

let ok = run('build', 'node', ['scripts/build.mjs'])
if (!ok) finish(false)
if (process.env.CI) {
  // The generated binding is committed; CI fails when it drifts from the Rust source.
  ok = run('generated binding is committed', 'git', ['diff', '--exit-code', '--', 'binding.d.ts'])
  if (!ok) finish(false)
  // `npm install` on a fresh clone must leave the lock file as committed (and `npm ci` work).
  ok = run('npm install leaves package-lock.json unchanged', 'npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'])
  ok = ok && run('package-lock.json unchanged', 'git', ['diff', '--exit-code', '--', 'package-lock.json'])
  if (!ok) finish(false)
}

const platforms = process.env.FLEETCACHE_SKIP_PLATFORMS !== '1' && !process.argv.includes('--e2e-only')
  ? background('platform cross-builds (Linux x64/arm64, gnu/musl, smoke profile)', ['scripts/platforms.mjs', '--profile', 'smoke', '--build-only'])
  : null

console.log('\n[test] starting the local S3 + DynamoDB server (moto)')
const aws = await startLocalAws()
console.log(`[test] moto listening on ${aws.endpoint}`)
const env = { ...aws.env, FLEETCACHE_TEST_ENDPOINT: aws.endpoint }
const e2eOnly = process.argv.includes('--e2e-only')
try {
  if (e2eOnly) {
    ok = run('e2e (example app on Next 16 and 15.5)', 'npx', ['vitest', 'run', '--config', 'vitest.e2e.config.mjs'], env) && ok
    await aws.stop()
    finish(ok)
  }
  ok = run('cargo fmt --check', 'cargo', ['fmt', '--check']) && ok
  ok = run('versions in step', 'node', ['scripts/sync-versions.mjs', '--check']) && ok
  // clippy and cargo test take the features of the addon build (node on) plus `conformance`:
  // `cargo test` then reuses every dependency the addon build compiled (Cargo.toml says why
  // `either` is listed), and the napi boundary is linted and tested too.
  ok = run('cargo clippy (node feature on: the napi boundary is linted too)', 'cargo', ['clippy', '--features', 'conformance', '--all-targets', '--', '-D', 'warnings'], cargoVars) && ok
  ok = run('cargo test', 'cargo', ['test', '--features', 'conformance'], { ...env, ...cargoVars }) && ok
  ok = run('vitest', 'npx', ['vitest', 'run'], env) && ok
  ok = run('faults (revalidations through black holes, refusals and failing writes)', 'npx', ['vitest', 'run', '--config', 'vitest.faults.config.mjs'], env) && ok
  if (process.env.FLEETCACHE_SKIP_E2E !== '1') {
    ok = run('e2e (example app on Next 16 and 15.5; the packed package installed outside the repo)', 'npx', ['vitest', 'run', '--config', 'vitest.e2e.config.mjs'], env) && ok
  }
} finally {
  await aws.stop()
}
if (platforms) {
  const built = await platforms.wait()
  ok = built && ok
  if (built) {
    ok = run('platforms (Linux x64/arm64, gnu/musl: glibc floor, smoke test under each platform\'s Node)', 'node', ['scripts/platforms.mjs', '--profile', 'smoke', '--skip-build']) && ok
  }
}
finish(ok)
