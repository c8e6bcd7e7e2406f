// Where the example's fetches go: a small local data server (scripts/data-server.mjs) the demo
// and the e2e suite start. Every answer carries a counter, so a re-fetch is visible.
export const DATA_URL = process.env.FLEETCACHE_DEMO_DATA_URL || 'http://127.0.0.1:4599'
export function stamp() {
  return `${new Date().toISOString()} #${Math.random().toString(36).slice(2, 8)}`
}
