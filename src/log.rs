//! The core's logger: one line per kind of event at most every 10 s, on stderr, so an outage is
//! reported without flooding the host's logs.

use std::collections::HashMap;

use parking_lot::Mutex;

const LOG_EVERY_MS: i64 = 10_000;

#[derive(Default)]
pub struct RateLimitedLog {
    last: Mutex<HashMap<&'static str, i64>>,
}

impl RateLimitedLog {
    /// Prints `[fleetcache] what: msg` unless `what` was printed less than 10 s before `now`.
    pub fn log(&self, now: i64, what: &'static str, msg: &str) {
        let mut last = self.last.lock();
        if last.get(what).is_none_or(|t| now - t >= LOG_EVERY_MS) {
            last.insert(what, now);
            eprintln!("[fleetcache] {what}: {msg}");
        }
    }
}
