//! The core's counters: plain atomics, bumped on the request path and by the feed poller, read
//! by `stats()`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub memory_hits: AtomicU64,
    pub backend_hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub expired: AtomicU64,
    pub get_errors: AtomicU64,
    pub get_timeouts: AtomicU64,
    pub corrupt: AtomicU64,
    pub served_from_memory_on_error: AtomicU64,
    pub sets: AtomicU64,
    pub set_errors: AtomicU64,
    pub too_large: AtomicU64,
    pub index_errors: AtomicU64,
    pub revalidations: AtomicU64,
    pub revalidate_errors: AtomicU64,
    pub feed_polls: AtomicU64,
    pub feed_events: AtomicU64,
    pub feed_evictions: AtomicU64,
    pub feed_errors: AtomicU64,
    pub feed_resets: AtomicU64,
    pub leases_won: AtomicU64,
    pub leases_lost: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
