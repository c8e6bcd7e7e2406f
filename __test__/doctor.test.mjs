// `fleetcache doctor` against a moto server that enforces IAM policies: a missing table and a
// denied permission are each reported with a fix; the shipped least-privilege policy is enough.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startLocalAws, venvPython } from '../scripts/local-aws.mjs'
import { runCli as cli } from '../scripts/next-fleet.mjs'

const root = path.resolve(import.meta.dirname, '..')
const ep = process.env.FLEETCACHE_TEST_ENDPOINT

const baseEnv = (endpoint, keys, extra) => ({
  PATH: process.env.PATH,
  AWS_ENDPOINT_URL: endpoint,
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  ...keys,
  ...extra,
})

describe.skipIf(!ep)('fleetcache doctor', () => {
  let aws, users
  const bucket = 'doctor-bucket'
  const table = 'doctor-table'

  beforeAll(async () => {
    // moto lets the first 6 requests through unauthenticated (creating two users), then enforces IAM.
    aws = await startLocalAws({ env: { INITIAL_NO_AUTH_ACTION_COUNT: '6' } })
    // moto checks a policy's actions but matches resources against "*" only: the shipped policy's
    // actions are kept, its resources widened to "*".
    const policy = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'aws', 'iam-policy.json'), 'utf8'))
    for (const st of policy.Statement) st.Resource = '*'
    const policyFile = path.join(os.tmpdir(), `fleetcache-policy-${process.pid}.json`)
    fs.writeFileSync(policyFile, JSON.stringify(policy))
    const r = spawnSync(venvPython, [path.join(root, '__test__', 'fixtures', 'iam-setup.py'), aws.endpoint, policyFile, 'dynamodb:UpdateItem'], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    users = JSON.parse(r.stdout)
    // The admin creates the bucket and table as a deploy would.
    const { createRequire } = await import('node:module')
    const fc = createRequire(import.meta.url)('../index.js')
    Object.assign(process.env, users.admin)
    await fc._coreFor({ bucket, table, s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1', feedIntervalMs: 0 }).ensureResources()
  }, 120_000)
  afterAll(async () => {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' })
    if (aws) await aws.stop()
  })

  it('passes with the shipped least-privilege policy (full policy, admin-created resources)', async () => {
    // The policy minus UpdateItem is `limited`; the admin has everything.
    const r = await cli(['doctor', '--bucket', bucket, '--table', table], baseEnv(aws.endpoint, users.admin))
    expect(r.out).toContain('everything fleetcache needs is in place')
    expect(r.code).toBe(0)
  })

  it('reports a missing table with the command that creates it', async () => {
    const r = await cli(['doctor', '--bucket', bucket, '--table', 'no-such-table'], baseEnv(aws.endpoint, users.admin))
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/FAIL table: table `no-such-table` does not exist/)
    expect(r.out).toMatch(/fix: create it in us-east-1 \(AWS_REGION=us-east-1\): aws dynamodb create-table --table-name no-such-table/)
  })

  it('reports a denied permission, naming the action and the policy to fix it', async () => {
    const r = await cli(['doctor', '--bucket', bucket, '--table', table, '--json'], baseEnv(aws.endpoint, users.limited))
    expect(r.code).toBe(1)
    const checks = JSON.parse(r.out)
    const failed = checks.filter((c) => !c.ok)
    expect(failed.map((c) => c.name)).toEqual(['dynamodb:UpdateItem'])
    expect(failed[0].detail).toMatch(/denied/)
    expect(failed[0].fix).toMatch(/allow `dynamodb:UpdateItem`.*iam-policy\.json/)
    // every other request the cache makes was allowed by the policy
    for (const name of ['s3:PutObject', 's3:GetObject', 's3:ListBucket', 's3:DeleteObject', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem']) {
      expect(checks.find((c) => c.name === name), name).toMatchObject({ ok: true })
    }
  })

  it('reports missing credentials and a missing bucket', async () => {
    const none = await cli(['doctor', '--bucket', bucket, '--table', table], { PATH: process.env.PATH, AWS_ENDPOINT_URL: aws.endpoint, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', HOME: os.tmpdir() })
    expect(none.code).toBe(1)
    expect(none.out).toMatch(/FAIL credentials/)
    const nb = await cli(['doctor', '--bucket', 'no-such-bucket', '--table', table], baseEnv(aws.endpoint, users.admin))
    expect(nb.out).toMatch(/FAIL bucket: bucket `no-such-bucket` does not exist/)
    expect(nb.out).toMatch(/fix: create it: aws s3api create-bucket --bucket no-such-bucket --region us-east-1/)
  })

  it('the CloudFormation template is valid and grants exactly the policy\'s actions', () => {
    const tpl = fs.readFileSync(path.join(root, 'examples', 'aws', 'cloudformation.yaml'), 'utf8')
    const policy = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'aws', 'iam-policy.json'), 'utf8'))
    for (const st of policy.Statement) for (const a of st.Action) expect(tpl, a).toContain(a)
    const lint = path.join(path.dirname(venvPython), 'cfn-lint')
    if (fs.existsSync(lint)) {
      const r = spawnSync(lint, [path.join(root, 'examples', 'aws', 'cloudformation.yaml')], { encoding: 'utf8' })
      expect(r.status, r.stdout + r.stderr).toBe(0)
    }
  })
})
