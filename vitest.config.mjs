import { defineConfig } from 'vitest/config'
export default defineConfig({
  test: {
    include: ['__test__/**/*.test.mjs'],
    exclude: ['__test__/faults.test.mjs', '**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
