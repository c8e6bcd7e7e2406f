//! The one logger of the process, for the core and the JS face alike (`index.js` logs through
//! `binding.log`): warnings go to stderr, at most one line per kind every 10 s, so an outage is
//! reported without flooding the host's logs; notices go to stdout once.

use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;

const LOG_EVERY_MS: i64 = 10_000;

#[derive(Default)]
pub struct RateLimitedLog {
    last: Mutex<HashMap<String, i64>>,
}

impl RateLimitedLog {
    /// Whether a line of kind `what` may be printed at `now` (none in the 10 s before).
    pub fn admit(&self, now: i64, what: &str) -> bool {
        let mut last = self.last.lock();
        match last.get_mut(what) {
            Some(t) if now - *t < LOG_EVERY_MS => false,
            Some(t) => {
                *t = now;
                true
            }
            None => {
                last.insert(what.to_string(), now);
                true
            }
        }
    }
}

fn global() -> &'static RateLimitedLog {
    static LOG: OnceLock<RateLimitedLog> = OnceLock::new();
    LOG.get_or_init(RateLimitedLog::default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `[fleetcache] what: msg` on stderr, unless `what` was printed in the last 10 s.
pub fn warn(what: &str, msg: &str) {
    if global().admit(now_ms(), what) {
        eprintln!("[fleetcache] {what}: {msg}");
    }
}

/// `[fleetcache] msg` on stdout, once per process for each `what`.
pub fn notice_once(what: &str, msg: &str) {
    static SHOWN: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    if SHOWN.get_or_init(Default::default).lock().insert(what.to_string()) {
        println!("[fleetcache] {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_every_ten_seconds() {
        let log = RateLimitedLog::default();
        assert!(log.admit(0, "a"));
        assert!(!log.admit(9_999, "a"));
        assert!(log.admit(1, "b"));
        assert!(log.admit(10_000, "a"));
        assert!(!log.admit(19_999, "a"));
    }
}
