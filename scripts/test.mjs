#!/usr/bin/env node
// `npm test`: builds the addon, starts a local S3 + DynamoDB server (moto, on 127.0.0.1), runs
// `cargo fmt --check`, clippy, `cargo test` and the vitest suites against memory and against that
// server, then the end-to-end suite (the example app on Next 16 and 15.5; installs their packages
// on first run, and the packed package installed outside the repository; FLEETCACHE_SKIP_E2E=1
// skips it), stops the server, then cross-builds and smoke-tests the Linux platform addons
// (scripts/platforms.mjs in the light `smoke` profile: the release workflow builds the shipped
// ones with LTO; FLEETCACHE_SKIP_PLATFORMS=1 skips it).
// Set FLEETCACHE_BUILD_PROFILE=fast for a quicker (non-LTO) addon build while developing.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalAws } from './local-aws.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// Every step's result, and the last lines of what it printed, for the summary at the end: CI
// keeps only the tail of a long log, and the platform builds print a lot after the suites.
const results = []
const TAIL_LINES = 80

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
  summary()
  console.log(passed ? '\n[test] all suites passed' : '\n[test] FAILED')
  process.exit(passed ? 0 : 1)
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
  ok = run('cargo clippy (node feature on: the napi boundary is linted too)', 'cargo', ['clippy', '--features', 'conformance', '--all-targets', '--', '-D', 'warnings']) && ok
  ok = run('cargo test', 'cargo', ['test', '--no-default-features', '--features', 'conformance'], env) && ok
  ok = run('vitest', 'npx', ['vitest', 'run'], env) && ok
  ok = run('faults (revalidations through black holes, refusals and failing writes)', 'npx', ['vitest', 'run', '--config', 'vitest.faults.config.mjs'], env) && ok
  if (process.env.FLEETCACHE_SKIP_E2E !== '1') {
    ok = run('e2e (example app on Next 16 and 15.5; the packed package installed outside the repo)', 'npx', ['vitest', 'run', '--config', 'vitest.e2e.config.mjs'], env) && ok
  }
} finally {
  await aws.stop()
}
if (process.env.FLEETCACHE_SKIP_PLATFORMS !== '1') {
  ok = run('platforms (Linux x64/arm64, gnu/musl: cross-build, glibc floor, smoke test under each platform\'s Node)', 'node', ['scripts/platforms.mjs', '--profile', 'smoke']) && ok
}
finish(ok)
