import { defineConfig } from 'vitest/config'
// The fault suite runs alone: it black-holes and floods the local servers, which would slow the
// other suites' timing-sensitive checks if they shared them.
export default defineConfig({
  test: { include: ['__test__/faults.test.mjs'], testTimeout: 200_000, hookTimeout: 120_000, pool: 'forks', fileParallelism: false },
})
