#!/usr/bin/env node
// Local S3 + DynamoDB protocol server for tests and the demo: moto's server mode (PyPI
// `moto[server]`), installed on first use into a virtualenv in the build cache outside the clone
// (scripts/cache.mjs), bound to 127.0.0.1.
//
//   node scripts/local-aws.mjs start   # install if needed, start, wait until it answers
//   node scripts/local-aws.mjs stop    # stop the server this script started
//   node scripts/local-aws.mjs env     # print the env vars that point the AWS SDK at it
//
// As a module: `const aws = await startLocalAws(); ...; await aws.stop()`.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { toolDir } from './cache.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const localDir = path.join(root, '.local')
const stateFile = path.join(localDir, 'moto.json')
export const MOTO_SPEC = 'moto[server,s3,dynamodb]>=5.1,<6'
const python = process.env.PYTHON || 'python3'
// The virtualenv lives in the build cache outside the clone (scripts/cache.mjs), keyed by the
// spec and the Python it was made with, so a fresh clone on the same machine finds it.
const venv = toolDir('moto', `${MOTO_SPEC} ${spawnSync(python, ['--version'], { encoding: 'utf8' }).stdout}`)
export const venvPython = path.join(venv, 'bin', 'python')

function log(msg) {
  console.log(`[local-aws] ${msg}`)
}

/** Creates the virtualenv and installs moto, once. */
export function installMoto() {
  const bin = path.join(venv, 'bin', 'moto_server')
  // Written last: a venv whose install was cut short is made again.
  const marker = path.join(venv, '.installed')
  if (fs.existsSync(bin) && fs.existsSync(marker)) return bin
  fs.mkdirSync(localDir, { recursive: true })
  log(`installing ${MOTO_SPEC} into ${venv} (once)`)
  let r = spawnSync(python, ['-m', 'venv', venv], { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${python} -m venv failed; install python3-venv (apt-get install python3-venv)`)
  r = spawnSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', MOTO_SPEC], { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`pip install ${MOTO_SPEC} failed`)
  fs.writeFileSync(marker, MOTO_SPEC)
  return bin
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

async function waitReady(endpoint, child, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`)
    try {
      const res = await fetch(`${endpoint}/moto-api/`)
      if (res.ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`moto_server did not answer at ${endpoint} within ${timeoutMs} ms`)
}

/** The environment that points the AWS SDK (and fleetcache) at the local server. */
export function awsEnv(endpoint) {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_EC2_METADATA_DISABLED: 'true',
  }
}

/**
 * Starts a moto server on a free loopback port; `stop()` ends it. `env` adds to its environment
 * (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`, after which moto enforces IAM policies).
 */
export async function startLocalAws({ port, quiet = true, env } = {}) {
  const bin = installMoto()
  port = port || (await freePort())
  // moto_server, with request handling serialized (scripts/moto_serialized.py says why).
  const python = path.join(path.dirname(bin), 'python')
  const child = spawn(python, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'moto_serialized.py'), '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, ...env },
    stdio: quiet ? 'ignore' : 'inherit',
    detached: true,
  })
  const endpoint = `http://127.0.0.1:${port}`
  await waitReady(endpoint, child)
  return {
    endpoint,
    pid: child.pid,
    env: awsEnv(endpoint),
    stop: async () => {
      if (child.exitCode !== null) return
      const done = new Promise((r) => child.once('exit', r))
      try { process.kill(-child.pid, 'SIGTERM') } catch { try { child.kill('SIGTERM') } catch {} }
      await Promise.race([done, new Promise((r) => setTimeout(r, 3000))])
      if (child.exitCode === null) try { process.kill(-child.pid, 'SIGKILL') } catch {}
    },
  }
}

async function main() {
  const cmd = process.argv[2]
  if (cmd === 'start') {
    const aws = await startLocalAws({ port: Number(process.env.FLEETCACHE_LOCAL_AWS_PORT) || 4566 })
    fs.writeFileSync(stateFile, JSON.stringify({ pid: aws.pid, endpoint: aws.endpoint }))
    log(`moto (S3 + DynamoDB) listening on ${aws.endpoint}, pid ${aws.pid}`)
    for (const [k, v] of Object.entries(aws.env)) console.log(`export ${k}=${v}`)
    process.exit(0)
  } else if (cmd === 'stop') {
    if (!fs.existsSync(stateFile)) return log('nothing to stop')
    const { pid } = JSON.parse(fs.readFileSync(stateFile, 'utf8'))
    try { process.kill(-pid, 'SIGTERM') } catch { try { process.kill(pid, 'SIGTERM') } catch {} }
    fs.rmSync(stateFile)
    log(`stopped pid ${pid}`)
  } else if (cmd === 'env') {
    const { endpoint } = JSON.parse(fs.readFileSync(stateFile, 'utf8'))
    for (const [k, v] of Object.entries(awsEnv(endpoint))) console.log(`export ${k}=${v}`)
  } else if (cmd === 'install') {
    installMoto()
  } else {
    console.error('usage: local-aws.mjs start|stop|env|install')
    process.exit(2)
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(`[local-aws] ${err.message}`)
    process.exit(1)
  })
}
