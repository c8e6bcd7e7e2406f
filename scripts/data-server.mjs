#!/usr/bin/env node
// The example app's "origin API": GET /posts answers {stamp} with a new value each time, so a
// re-fetch is visible. Bound to 127.0.0.1. Used by the demo (and the e2e suite).
import http from 'node:http'

export function startDataServer(port = 4599) {
  let n = 0
  const server = http.createServer((req, res) => {
    n++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url, stamp: `${new Date().toISOString()} fetch #${n}` }))
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) }))
  })
}
