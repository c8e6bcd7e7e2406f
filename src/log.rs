//! The one logger of the process, for the core and the JS face alike (`index.js` logs through
//! `binding.log`).
//!
//! - Levels `error`, `warn`, `info`, `debug` (and `off`), chosen by `FLEETCACHE_LOG` (default
//!   `info`); `debug` adds one line per cache operation (where a `get` was answered from:
//!   memory, S3, or a miss that Next renders).
//! - `FLEETCACHE_LOG_FORMAT=json`: one JSON object per line (`time`, `level`, `event`, `msg`).
//! - Warnings and errors are rate limited: at most one line per kind every 10 s, so an outage is
//!   reported without flooding the host's logs; notices are printed once per process.
//! - A sink set from JS (the `logger` option) receives every line instead of stderr/stdout.
//! - Every line passes [`redact`]: the values of the AWS credential variables never appear.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

const LOG_EVERY_MS: i64 = 10_000;
pub const ENV_LOG: &str = "FLEETCACHE_LOG";
pub const ENV_LOG_FORMAT: &str = "FLEETCACHE_LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// The threshold from `FLEETCACHE_LOG` (0 = off); an unknown value keeps the default and says so.
fn parse_level(v: Option<&str>) -> (u8, Option<String>) {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("info") => (Level::Info as u8, None),
        Some("off" | "none" | "silent") => (0, None),
        Some("error") => (Level::Error as u8, None),
        Some("warn" | "warning") => (Level::Warn as u8, None),
        Some("debug" | "trace") => (Level::Debug as u8, None),
        Some(other) => (
            Level::Info as u8,
            Some(format!("{ENV_LOG}={other:?} is not a level (error, warn, info, debug, off): logging at info")),
        ),
    }
}

/// 255 = not read from the environment yet.
static THRESHOLD: AtomicU8 = AtomicU8::new(255);
static JSON: AtomicU8 = AtomicU8::new(255);

fn threshold() -> u8 {
    let t = THRESHOLD.load(Ordering::Relaxed);
    if t != 255 {
        return t;
    }
    let (t, complaint) = parse_level(std::env::var(ENV_LOG).ok().as_deref());
    THRESHOLD.store(t, Ordering::Relaxed);
    if let Some(c) = complaint {
        emit(Level::Warn, "logging", &c);
    }
    t
}

fn json() -> bool {
    let j = JSON.load(Ordering::Relaxed);
    if j != 255 {
        return j == 1;
    }
    let on = std::env::var(ENV_LOG_FORMAT).is_ok_and(|v| v.trim().eq_ignore_ascii_case("json"));
    JSON.store(u8::from(on), Ordering::Relaxed);
    on
}

/// Whether lines of `level` are written (one relaxed load once initialised: cheap on hot paths).
pub fn enabled(level: Level) -> bool {
    level as u8 <= threshold()
}

/// Sets the threshold and format (tests; `FLEETCACHE_LOG` / `FLEETCACHE_LOG_FORMAT` otherwise).
pub fn configure(level: Option<&str>, json_format: Option<bool>) {
    if let Some(l) = level {
        THRESHOLD.store(parse_level(Some(l)).0, Ordering::Relaxed);
    }
    if let Some(j) = json_format {
        JSON.store(u8::from(j), Ordering::Relaxed);
    }
}

/// Where lines go instead of stderr/stdout: `(level, event, message)`.
pub type Sink = Box<dyn Fn(Level, &str, &str) + Send + Sync>;

fn sink() -> &'static RwLock<Option<Sink>> {
    static SINK: OnceLock<RwLock<Option<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| RwLock::new(None))
}

/// Routes every line to `s` (`None`: back to stderr/stdout).
pub fn set_sink(s: Option<Sink>) {
    *sink().write() = s;
}

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

/// The secrets a line must never carry: the AWS credential variables' values (read once).
fn secrets() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .filter(|v| v.len() >= 8)
            .collect()
    })
}

/// `msg` with secrets and request signatures masked.
pub fn redact(msg: &str) -> String {
    let mut out = msg.to_string();
    for s in secrets() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    for marker in ["Signature=", "x-amz-security-token=", "X-Amz-Security-Token="] {
        let mut from = 0;
        while let Some(i) = out[from..].find(marker) {
            let start = from + i + marker.len();
            let end = out[start..]
                .find(|c: char| c == ',' || c == '&' || c == '"' || c.is_whitespace())
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "[redacted]");
            from = start + "[redacted]".len();
        }
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn iso_time(ms: i64) -> String {
    let (y, m, d) = crate::clock::civil_date(ms);
    let rem = ms.rem_euclid(86_400_000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// One line as written: `[fleetcache] event: msg` (warn, info), `[fleetcache] error: event: msg`,
/// `[fleetcache] debug: event: msg`; or one JSON object.
pub fn format_line(level: Level, what: &str, msg: &str, json: bool, now: i64) -> String {
    if json {
        return format!(
            "{{\"time\":{},\"level\":\"{}\",\"source\":\"fleetcache\",\"event\":{},\"msg\":{}}}",
            json_str(&iso_time(now)),
            level.name(),
            json_str(what),
            json_str(msg)
        );
    }
    let msg = msg.replace('\n', " ");
    match (level, what.is_empty()) {
        (Level::Warn | Level::Info, true) => format!("[fleetcache] {msg}"),
        (Level::Warn | Level::Info, false) => format!("[fleetcache] {what}: {msg}"),
        (_, true) => format!("[fleetcache] {}: {msg}", level.name()),
        (_, false) => format!("[fleetcache] {}: {what}: {msg}", level.name()),
    }
}

/// Writes one line (no rate limit): to the sink when one is set, else stderr (info: stdout).
pub fn emit(level: Level, what: &str, msg: &str) {
    if !enabled(level) {
        return;
    }
    let msg = redact(msg);
    if let Some(s) = sink().read().as_ref() {
        s(level, what, &msg);
        return;
    }
    let line = format_line(level, what, &msg, json(), now_ms());
    if level == Level::Info {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// A warning, unless one of kind `what` was written in the last 10 s.
pub fn warn(what: &str, msg: &str) {
    if enabled(Level::Warn) && global().admit(now_ms(), what) {
        emit(Level::Warn, what, msg);
    }
}

/// An error (something was lost or refused), rate limited like [`warn`].
pub fn error(what: &str, msg: &str) {
    if enabled(Level::Error) && global().admit(now_ms(), what) {
        emit(Level::Error, what, msg);
    }
}

/// A per-operation line, written only at `FLEETCACHE_LOG=debug`. `msg` is built only then.
pub fn debug(what: &str, msg: impl FnOnce() -> String) {
    if enabled(Level::Debug) {
        emit(Level::Debug, what, &msg());
    }
}

/// An info line, once per process for each `what`.
pub fn notice_once(what: &str, msg: &str) {
    static SHOWN: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    if SHOWN.get_or_init(Default::default).lock().insert(what.to_string()) {
        emit(Level::Info, "", msg);
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

    #[test]
    fn levels_and_formats() {
        assert_eq!(parse_level(Some("DEBUG")).0, Level::Debug as u8);
        assert_eq!(parse_level(Some("off")).0, 0);
        assert!(parse_level(Some("loud")).1.unwrap().contains("FLEETCACHE_LOG"));
        assert_eq!(
            format_line(Level::Warn, "S3 circuit open", "5 failures", false, 0),
            "[fleetcache] S3 circuit open: 5 failures"
        );
        assert_eq!(
            format_line(Level::Debug, "get", "/isr: memory hit", false, 0),
            "[fleetcache] debug: get: /isr: memory hit"
        );
        let j = format_line(Level::Error, "set lost", "a \"quoted\"\nline", true, 1_764_662_400_123);
        assert_eq!(
            j,
            r#"{"time":"2025-12-02T08:00:00.123Z","level":"error","source":"fleetcache","event":"set lost","msg":"a \"quoted\"\nline"}"#
        );
    }

    #[test]
    fn signatures_are_masked() {
        let r =
            redact("Authorization: AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=abcdef0123 more");
        assert!(r.contains("Signature=[redacted] more"), "{r}");
        assert!(!r.contains("abcdef0123"));
        assert_eq!(redact("?X-Amz-Signature=f00&b=1"), "?X-Amz-Signature=[redacted]&b=1");
    }
}
