// What a cached function computes: when, where, and a random part, so a test (or a reader) can
// tell a served result from a recomputed one.
export function stamp(label) {
  return `${label} ${new Date().toISOString()} #${Math.random().toString(36).slice(2, 8)} on ${process.env.FLEETCACHE_DEMO_INSTANCE || 'this instance'}`
}
