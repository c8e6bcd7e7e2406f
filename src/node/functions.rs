//! The addon's free functions: the process's one logger (lines, level, the JS sink) and the key
//! helpers the JS face and the tools share.

use super::*;

/// The URL path a response-cache key stands for (`/index` → `/`), or null for fetch/image keys.
#[napi]
pub fn path_of_key(key: String) -> Option<String> {
    keys::path_of_key(&key)
}

/// What a CDN must purge when a pages-router key is rewritten: the page and its
/// `/_next/data/<buildId>/<path>.json` variant.
#[napi]
pub fn pages_router_paths(key: String, build_id: String) -> Vec<String> {
    keys::pages_router_paths(&key, &build_id)
}

/// Logs through the process's one logger: `[fleetcache] what: message` on stderr (or the sink),
/// at most once every 10 s per `what`.
#[napi]
pub fn warn(what: String, message: String) {
    crate::log::warn(&what, &message)
}

/// A per-operation line, written only at `FLEETCACHE_LOG=debug`.
#[napi]
pub fn debug(what: String, message: String) {
    crate::log::debug(&what, || message)
}

/// Whether `FLEETCACHE_LOG=debug` is in force (JS skips building debug lines otherwise).
#[napi]
pub fn debug_enabled() -> bool {
    crate::log::enabled(crate::log::Level::Debug)
}

/// The JS function lines go to: `(level, event, message)`.
type LogLine = FnArgs<(String, String, String)>;
type LogSinkFn = ThreadsafeFunction<LogLine, (), LogLine, Status, false, true>;

/// Routes every log line (the core's and `index.js`'s) to `sink(level, event, message)` on the
/// JS thread, instead of stderr/stdout; `null` routes them back. The function does not keep the
/// process alive.
#[napi(
    ts_args_type = "sink: ((level: 'error' | 'warn' | 'info' | 'debug', event: string, message: string) => void) | null"
)]
pub fn set_log_sink(sink: Option<LogSinkFn>) {
    crate::log::set_sink(sink.map(|f| -> crate::log::Sink {
        Box::new(move |level, what, msg| {
            let line: LogLine = (level.name().to_string(), what.to_string(), msg.to_string()).into();
            f.call(line, ThreadsafeFunctionCallMode::NonBlocking);
        })
    }))
}

/// Sets the log level and format for this process (`FLEETCACHE_LOG`, `FLEETCACHE_LOG_FORMAT`
/// otherwise).
#[napi]
pub fn configure_log(level: Option<String>, json: Option<bool>) {
    crate::log::configure(level.as_deref(), json)
}

/// A metric family (`lateMetricFamilies()`).
#[napi(object)]
pub struct MetricFamily {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    pub help: String,
}

/// The families that appear only once a core has its AWS clients or its CDN purger, for exporters
/// that create their instruments up front (`metrics::LATE_FAMILIES`).
#[napi]
pub fn late_metric_families() -> Vec<MetricFamily> {
    crate::metrics::LATE_FAMILIES
        .iter()
        .map(|f| MetricFamily { name: f.name.into(), kind: f.kind.name().into(), help: f.help.into() })
        .collect()
}
