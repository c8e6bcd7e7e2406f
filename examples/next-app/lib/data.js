// Where the example's fetches go: a small local data server (scripts/data-server.mjs) the demo
// and the e2e suite start. Every answer carries a counter, so a re-fetch is visible.
export const DATA_URL = process.env.DEMO_DATA_URL || 'http://127.0.0.1:4599'
// Which build rendered a page (inlined at build time): the e2e suite builds the app twice with
// different variants and checks that neither build ever serves the other's pages.
export const VARIANT = process.env.NEXT_PUBLIC_FLEETCACHE_VARIANT || ''
export function stamp() {
  return `${VARIANT ? `${VARIANT} ` : ''}${new Date().toISOString()} #${Math.random().toString(36).slice(2, 8)}`
}
