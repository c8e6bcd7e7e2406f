// The AWS SDK's one TLS stack (rustls, `default-https-client`) reaches an HTTPS endpoint: a
// TLS-terminating proxy on 127.0.0.1 in front of the local moto, with a certificate made for the
// test by a throw-away CA that the process trusts through SSL_CERT_FILE. `fleetcache doctor`
// passes through it, and the cache handler stores and reads an entry through it. An untrusted
// certificate is refused.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { runCli, runNode } from '../scripts/next-fleet.mjs'

const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const root = path.resolve(import.meta.dirname, '..')

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
}

/** A CA and a certificate for localhost / 127.0.0.1 signed by it, in `dir`. */
function makeCerts(dir) {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=fleetcache test CA'], dir)
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir)
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n')
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf'], dir)
}

describe.skipIf(!ep)('HTTPS to AWS endpoints (rustls)', () => {
  let dir, proxy, httpsEndpoint, requests = 0
  const run = Date.now().toString(36)

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tls-'))
    makeCerts(dir)
    const upstream = new URL(ep)
    proxy = https.createServer({ key: fs.readFileSync(path.join(dir, 'server.key')), cert: fs.readFileSync(path.join(dir, 'server.pem')) }, (req, res) => {
      requests++
      const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers)
        r.pipe(res)
      })
      up.on('error', () => res.destroy())
      req.pipe(up)
    })
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r))
    httpsEndpoint = `https://localhost:${proxy.address().port}`
  })
  afterAll(async () => {
    if (proxy) await new Promise((r) => proxy.close(r))
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  const env = (extra) => ({
    PATH: process.env.PATH,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL: httpsEndpoint,
    ...extra,
  })

  it('the cache handler stores and reads an entry over HTTPS, and doctor passes', async () => {
    const code = `
      const fc = require(${JSON.stringify(path.join(root, 'index.js'))})
      const opts = { bucket: 'tls-${run}', table: 'tls-${run}', feedIntervalMs: 0 }
      ;(async () => {
        await fc._coreFor(opts).ensureResources()
        const H = fc.createCacheHandler(opts)
        const h = new H({})
        await h.set('/tls', { kind: 'APP_ROUTE', body: Buffer.from('over tls'), status: 200, headers: {} }, { kind: 'APP_ROUTE', cacheControl: { revalidate: 60 } })
        fc._coreFor(opts).clearMemory()
        const got = await h.get('/tls', { kind: 'APP_ROUTE' })
        console.log(JSON.stringify({ body: got && got.value.body.toString() }))
      })().catch((e) => { console.error(e); process.exit(1) })`
    const before = requests
    const r = await runNode(['-e', code], env({ SSL_CERT_FILE: path.join(dir, 'ca.pem') }))
    expect(r.code, r.err).toBe(0)
    expect(JSON.parse(r.out.trim().split('\n').pop())).toEqual({ body: 'over tls' })
    expect(requests).toBeGreaterThan(before)
    const d = await runCli(['doctor', '--bucket', `tls-${run}`, '--table', `tls-${run}`], env({ SSL_CERT_FILE: path.join(dir, 'ca.pem') }))
    expect(d.out).toContain('everything fleetcache needs is in place')
    expect(d.code).toBe(0)
  })

  it('a certificate the process does not trust is refused', async () => {
    const d = await runCli(['doctor', '--bucket', `tls-${run}`, '--table', `tls-${run}`], env({ SSL_CERT_FILE: '/dev/null' }))
    expect(d.code).toBe(1)
    expect(d.out + d.err).not.toContain('everything fleetcache needs is in place')
  })
})
