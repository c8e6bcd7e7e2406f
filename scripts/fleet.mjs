// Starts fleet workers (separate Node processes, one native core each) and talks to them.
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-worker.mjs')

export async function startInstance(options, env = {}) {
  const child = fork(worker, [JSON.stringify(options)], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let next = 0
  await new Promise((resolve, reject) => {
    child.once('message', (m) => (m && m.ready ? resolve() : reject(new Error('worker did not start'))))
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
  })
  child.on('message', (m) => {
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    m.error ? p.reject(new Error(m.error)) : p.resolve(m.result)
  })
  child.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error('worker exited'))
    pending.clear()
  })
  const call = (op, args) =>
    new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      child.send({ id, op, args })
    })
  await call('ready')
  return { call, child, kill: () => child.kill('SIGKILL'), stop: () => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : (child.once('exit', r), child.kill('SIGTERM')))) }
}
