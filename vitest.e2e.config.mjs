import { defineConfig } from 'vitest/config'
export default defineConfig({
  test: { include: ['__test__/e2e/**/*.e2e.mjs'], testTimeout: 120_000, hookTimeout: 600_000, pool: 'forks', fileParallelism: false },
})
