#!/usr/bin/env node
// Runs one command with the local S3 + DynamoDB server (moto, installed by scripts/local-aws.mjs)
// started for it, FLEETCACHE_TEST_ENDPOINT and dummy credentials set, then stops the server:
//
//   node scripts/with-local-aws.mjs cargo test --test backends
//   node scripts/with-local-aws.mjs npx vitest run __test__/fleet.test.mjs
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalAws } from './local-aws.mjs'

const [cmd, ...args] = process.argv.slice(2)
if (!cmd) {
  console.error('usage: node scripts/with-local-aws.mjs <command> [args…]')
  process.exit(2)
}
process.env.AWS_EC2_METADATA_DISABLED = 'true'
const aws = await startLocalAws()
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...aws.env, FLEETCACHE_TEST_ENDPOINT: aws.endpoint } })
await aws.stop()
process.exit(r.status ?? 1)
