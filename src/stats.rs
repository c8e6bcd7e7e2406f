//! The core's counters: plain atomics, bumped on the request path and by the feed poller, read
//! by `stats()`. The list below is their one definition: `Core::stats_snapshot` reads every
//! counter by name (camelCased for JS) and adds the gauges; the boundary copies the snapshot into
//! one JS object, and `index.d.ts`'s `Stats` is checked against it by a test.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        #[derive(Default)]
        pub struct Stats {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        impl Stats {
            /// Every counter as `(snake_case name, value)`.
            pub fn each(&self, mut f: impl FnMut(&'static str, u64)) {
                $( f(stringify!($name), self.$name.load(Ordering::Relaxed)); )*
            }
        }
    };
}

counters! {
    memory_hits,
    backend_hits,
    misses,
    stale,
    expired,
    get_errors,
    get_timeouts,
    corrupt,
    served_from_memory_on_error,
    sets,
    set_errors,
    set_timeouts,
    uploads_queued,
    uploads_landed,
    uploads_superseded,
    uploads_dropped,
    too_large,
    index_errors,
    revalidations,
    revalidate_errors,
    revalidations_queued,
    outbox_retries,
    outbox_overflows,
    outbox_give_ups,
    feed_polls,
    feed_events,
    feed_evictions,
    feed_errors,
    feed_resets,
    leases_won,
    leases_lost,
    invalid_inputs,
    identical_sets,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One reading of `stats()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    Count(f64),
    Flag(bool),
}

/// `memory_hits` → `memoryHits`: the names JS sees.
pub fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_camel_cased_for_js() {
        assert_eq!(camel("served_from_memory_on_error"), "servedFromMemoryOnError");
        assert_eq!(camel("stale"), "stale");
        let s = Stats::default();
        bump(&s.too_large);
        let mut seen = Vec::new();
        s.each(|n, v| seen.push((n, v)));
        assert_eq!(seen.len(), 33);
        assert!(seen.contains(&("too_large", 1)));
    }
}
