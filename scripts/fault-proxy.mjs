// A loopback HTTP proxy between fleetcache and a local S3 / DynamoDB server that injects the
// faults an operator sees on a bad day: a black hole (requests accepted, never answered), refused
// connections (nothing listens), resets, added latency, stalls (a backend that pauses, as a
// starved or collecting server does: nothing is answered during a pause, everything held is
// answered after it), and failures of one named operation (a DynamoDB `X-Amz-Target` such as
// `UpdateItem`, or an S3 method such as `PUT`) with a status and AWS error code. Used by the
// fault suite (`__test__/faults.test.mjs`) and by hand:
//
//   const p = await startFaultProxy('http://127.0.0.1:4566')
//   p.set({ mode: 'blackhole' })            // or 'refuse', 'reset', 'pass'
//   p.set({ latencyMs: 200 })
//   p.set({ stall: { ms: 600, everyMs: 800 } }) // paused for the first 600 ms of every 800
//   p.set({ fail: { op: 'UpdateItem', status: 400, code: 'ProvisionedThroughputExceededException' } })
//   await p.heal()                          // no fault at all, as when started
//   await p.close()
import http from 'node:http'

/** Which operation an AWS request is: the DynamoDB target (`UpdateItem`) or the S3 method (`PUT`). */
export function operationOf(req) {
  const target = req.headers['x-amz-target']
  if (typeof target === 'string') return target.slice(target.indexOf('.') + 1)
  return req.method
}

export async function startFaultProxy(targetUrl, { port = 0 } = {}) {
  const target = new URL(targetUrl)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const healthy = { mode: 'pass', latencyMs: 0, fail: undefined, stall: undefined }
  let fault = healthy
  const held = new Set() // black-holed requests, answered never (their sockets are destroyed on heal/close)
  const sockets = new Set()
  const counts = new Map()

  const server = http.createServer((req, res) => {
    const st = fault.stall
    if (st && fault.mode !== 'blackhole') {
      // Paused: what arrives during a pause is taken up when it ends (in arrival order).
      const into = Date.now() % st.everyMs
      if (into < st.ms) {
        setTimeout(() => handle(req, res), st.ms - into)
        return
      }
    }
    handle(req, res)
  })
  const handle = (req, res) => {
    const op = operationOf(req)
    counts.set(op, (counts.get(op) || 0) + 1)
    if (fault.mode === 'blackhole') {
      held.add(req.socket)
      req.resume()
      return
    }
    if (fault.mode === 'reset') {
      req.socket.resetAndDestroy()
      return
    }
    const f = fault.fail
    if (f && (f.op === op || f.op === '*') && (f.count === undefined || f.count-- > 0)) {
      req.resume()
      req.on('end', () => {
        const dynamo = req.headers['x-amz-target'] !== undefined
        const body = dynamo
          ? JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${f.code}`, message: `injected ${f.code}` })
          : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${f.code}</Code><Message>injected ${f.code}</Message></Error>`
        const type = dynamo ? 'application/x-amz-json-1.0' : 'application/xml'
        res.writeHead(f.status, { 'content-type': type, 'x-amzn-errortype': f.code, 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
      return
    }
    const forward = () => {
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
        (upRes) => {
          res.writeHead(upRes.statusCode, upRes.headers)
          upRes.pipe(res)
        },
      )
      up.on('error', () => res.destroy())
      req.pipe(up)
    }
    if (fault.latencyMs > 0) setTimeout(forward, fault.latencyMs)
    else forward()
  }
  server.keepAliveTimeout = 60_000
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    if (fault.mode === 'blackhole') held.add(s)
  })

  const listen = (p) => new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(p, '127.0.0.1', () => {
      server.off('error', reject)
      resolve(server.address().port)
    })
  })
  const boundPort = await listen(port)
  let listening = true

  const proxy = {
    url: `http://127.0.0.1:${boundPort}`,
    port: boundPort,
    /** Requests seen, by operation. */
    counts,
    /** Changes the fault; fields not given keep their value. Healing drops held connections. */
    async set(next) {
      const was = fault.mode
      fault = { ...fault, ...next }
      if (was === 'blackhole' && fault.mode !== 'blackhole') {
        for (const s of held) s.destroy()
        held.clear()
      }
      if (fault.mode === 'refuse' && listening) {
        listening = false
        for (const s of sockets) s.destroy()
        await new Promise((r) => server.close(() => r()))
      } else if (fault.mode !== 'refuse' && !listening) {
        await listen(boundPort)
        listening = true
      }
    },
    /** Back to no fault at all (every field as when started). */
    async heal() {
      await proxy.set(healthy)
    },
    async close() {
      for (const s of sockets) s.destroy()
      agent.destroy()
      if (listening) await new Promise((r) => server.close(() => r()))
      listening = false
    },
  }
  return proxy
}
