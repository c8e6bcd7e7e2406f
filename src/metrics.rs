//! Histograms and per-request backend metrics, and the one list of what `metrics()` exports.
//!
//! The core's counters live in [`crate::stats`]; this module adds what counters cannot say:
//! latency histograms of S3 and DynamoDB requests (timed in the breaker every request passes
//! through, by operation and outcome) and of the feed's lag (from a change being made on one
//! instance to its event being applied on another). [`Core::metric_samples`] turns everything
//! into [`Sample`]s: `index.js` renders them as Prometheus text and feeds the OpenTelemetry bridge.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Upper bounds (ms) of the latency buckets; one more bucket is +Inf.
pub const LATENCY_BUCKETS_MS: [f64; 14] =
    [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ms: f64,
}

impl Histogram {
    pub fn observe_ms(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let i = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_ms += ms;
    }
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// `(upper bound in seconds, cumulative count)` per bucket, +Inf last; and the sum in seconds.
    pub fn cumulative_s(&self) -> (Vec<(f64, u64)>, f64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            out.push((LATENCY_BUCKETS_MS.get(i).map_or(f64::INFINITY, |b| b / 1000.0), acc));
        }
        (out, self.sum_ms / 1000.0)
    }
}

/// A histogram shared between threads (the feed poller observes, `metrics()` reads).
#[derive(Default)]
pub struct SharedHistogram(Mutex<Histogram>);

impl SharedHistogram {
    pub fn observe_ms(&self, ms: f64) {
        self.0.lock().observe_ms(ms);
    }
    pub fn get(&self) -> Histogram {
        self.0.lock().clone()
    }
}

/// Requests to one backend: by operation, their outcomes and latencies.
#[derive(Default)]
pub struct BackendMetrics {
    ops: Mutex<BTreeMap<&'static str, OpMetrics>>,
}

#[derive(Debug, Clone, Default)]
pub struct OpMetrics {
    /// Outcome (`ok`, an error code such as `FLEETCACHE_TIMEOUT`, or `abandoned`) → count.
    pub outcomes: BTreeMap<&'static str, u64>,
    pub latency: Histogram,
}

impl BackendMetrics {
    pub fn record(&self, op: &'static str, outcome: &'static str, ms: f64) {
        let mut ops = self.ops.lock();
        let m = ops.entry(op).or_default();
        *m.outcomes.entry(outcome).or_default() += 1;
        m.latency.observe_ms(ms);
    }
    pub fn snapshot(&self) -> BTreeMap<&'static str, OpMetrics> {
        self.ops.lock().clone()
    }
}

/// Prometheus metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported series: a counter or gauge value, or a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Family name without the `fleetcache_` prefix or `_total` suffix (`index.js` adds them).
    pub name: String,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    /// Histograms: cumulative buckets `(le seconds, count)` and the sum in seconds.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
}

impl Sample {
    pub fn scalar(name: &str, kind: Kind, help: &'static str, labels: Vec<(&'static str, String)>, value: f64) -> Self {
        Sample { name: name.into(), kind, help, labels, value, buckets: Vec::new(), sum: 0.0 }
    }
    pub fn histogram(name: &str, help: &'static str, labels: Vec<(&'static str, String)>, h: &Histogram) -> Self {
        let (buckets, sum) = h.cumulative_s();
        Sample { name: name.into(), kind: Kind::Histogram, help, labels, value: h.count() as f64, buckets, sum }
    }
}

/// A metric family: its name (without `fleetcache_` or `_total`), kind and help line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Family {
    const fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, kind, help }
    }
    /// A counter or gauge sample of this family.
    pub fn sample(&self, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample::scalar(self.name, self.kind, self.help, labels, value)
    }
}

/// The gauges (and two counters) the core reads from its own state (`Core::gauges`).
pub const MEMORY_BYTES: Family = Family::new("memory_bytes", Kind::Gauge, "bytes held by the in-memory tier");
pub const MEMORY_ENTRIES: Family = Family::new("memory_entries", Kind::Gauge, "entries held by the in-memory tier");
pub const MEMORY_BUDGET_BYTES: Family =
    Family::new("memory_budget_bytes", Kind::Gauge, "the in-memory tier's byte budget (memoryBytes)");
pub const MEMORY_EVICTIONS: Family =
    Family::new("memory_evictions", Kind::Counter, "entries evicted from the in-memory tier to stay in budget");
pub const KNOWN_TAGS: Family = Family::new("known_tags", Kind::Gauge, "tags whose state this instance knows");
pub const OUTBOX_DEPTH: Family = Family::new(
    "outbox_depth",
    Kind::Gauge,
    "revalidations, feed events and uploads not landed yet (the revalidation queue)",
);
pub const OUTBOX_UPLOAD_BYTES: Family =
    Family::new("outbox_upload_bytes", Kind::Gauge, "bytes of failed sets queued for upload");
pub const OUTBOX_OLDEST_SECONDS: Family = Family::new(
    "outbox_oldest_seconds",
    Kind::Gauge,
    "how long the oldest revalidation, feed event or upload not landed yet has waited",
);
pub const FEED_TRUSTED: Family =
    Family::new("feed_trusted", Kind::Gauge, "1 while the change feed is read (memory is served), else 0");
pub const FEED_BEHIND_SECONDS: Family = Family::new(
    "feed_behind_seconds",
    Kind::Gauge,
    "how far behind the feed's head this instance may be: time since it last held every event (grows while it applies nothing)",
);
pub const FLEET_INSTANCES: Family = Family::new(
    "fleet_instances",
    Kind::Gauge,
    "live instances (heartbeats) per build, as this instance last read them (every 4 heartbeats once scraped)",
);
pub const DYNAMODB_REQUESTS: Family =
    Family::new("dynamodb_requests", Kind::Counter, "DynamoDB requests sent by the tag store, by kind");

pub const BREAKER_OPEN: Family =
    Family::new("breaker_open", Kind::Gauge, "1 while the backend's circuit breaker is open");
pub const BREAKER_OPENED: Family =
    Family::new("breaker_opened", Kind::Counter, "times the backend's circuit breaker opened");
pub const BREAKER_REJECTIONS: Family =
    Family::new("breaker_rejections", Kind::Counter, "calls failed fast by an open breaker");
pub const BACKEND_REQUESTS: Family = Family::new(
    "backend_requests",
    Kind::Counter,
    "S3 and DynamoDB operations by outcome (ok, an error code, or abandoned at a deadline)",
);
pub const BACKEND_REQUEST_DURATION: Family =
    Family::new("backend_request_duration_seconds", Kind::Histogram, "latency of S3 and DynamoDB operations");
pub const CDN_BATCHES: Family = Family::new("cdn_batches", Kind::Counter, "CDN invalidation requests sent");
pub const CDN_PATHS: Family = Family::new(
    "cdn_paths",
    Kind::Counter,
    "CDN invalidation paths by fate: asked for, sent, or not sent past the monthly ceiling",
);
pub const CDN_WIDENED_BATCHES: Family = Family::new(
    "cdn_widened_batches",
    Kind::Counter,
    "CDN purges widened to wildcards to stay within the monthly ceiling",
);
pub const CDN_MERGED_WILDCARDS: Family = Family::new(
    "cdn_merged_wildcards",
    Kind::Counter,
    "page wildcards merged into folder wildcards to fit CloudFront's in-progress limit",
);
pub const CDN_REFUSALS: Family = Family::new(
    "cdn_refusals",
    Kind::Counter,
    "CDN purges refused (TooManyInvalidationsInProgress, throttling) and retried",
);
pub const CDN_FAILED_BATCHES: Family =
    Family::new("cdn_failed_batches", Kind::Counter, "CDN purges given up on (each one logged)");
pub const CDN_COST_DOLLARS: Family =
    Family::new("cdn_cost_dollars", Kind::Counter, "estimated invalidation charges of the purges this instance sent");
pub const CDN_PENDING_PATHS: Family =
    Family::new("cdn_pending_paths", Kind::Gauge, "paths waiting for the window or for room");
pub const CDN_MONTH_PATHS: Family = Family::new(
    "cdn_month_paths",
    Kind::Gauge,
    "invalidation paths the fleet sent this month, as this instance last read it",
);

/// The families that appear only once a core has its S3 and DynamoDB clients (breakers, backend
/// requests) or its CDN purger: an exporter that creates its instruments up front (OpenTelemetry,
/// `lib/metrics.js`) reads them here, the one place their names and help are written.
pub const LATE_FAMILIES: &[Family] = &[
    BREAKER_OPEN,
    BREAKER_OPENED,
    BREAKER_REJECTIONS,
    BACKEND_REQUESTS,
    BACKEND_REQUEST_DURATION,
    CDN_BATCHES,
    CDN_PATHS,
    CDN_WIDENED_BATCHES,
    CDN_MERGED_WILDCARDS,
    CDN_REFUSALS,
    CDN_FAILED_BATCHES,
    CDN_COST_DOLLARS,
    CDN_PENDING_PATHS,
    CDN_MONTH_PATHS,
    FLEET_INSTANCES,
];

/// The help line of each counter of [`crate::stats::Stats`], and the family and labels it is
/// exported under (counters that are one series of a labelled family share its name).
pub fn counter_family(snake: &str) -> (&'static str, &'static str, Vec<(&'static str, String)>) {
    let l = |k: &'static str, v: &str| vec![(k, v.to_string())];
    match snake {
        "memory_hits" => ("gets", "get() answers by where they came from", l("result", "memory_hit")),
        "backend_hits" => ("gets", "get() answers by where they came from", l("result", "s3_hit")),
        "misses" => ("gets", "get() answers by where they came from", l("result", "miss")),
        "stale" => ("stale_served", "stale entries served (Next regenerates them in the background)", vec![]),
        "expired" => {
            ("expired", "entries judged expired by a revalidation or their expire time (the get is a miss)", vec![])
        }
        "get_errors" => ("errors", "failed operations by operation (each one logged)", l("op", "get")),
        "set_errors" => ("errors", "failed operations by operation (each one logged)", l("op", "set")),
        "revalidate_errors" => ("errors", "failed operations by operation (each one logged)", l("op", "revalidate")),
        "index_errors" => ("errors", "failed operations by operation (each one logged)", l("op", "index")),
        "feed_errors" => ("errors", "failed operations by operation (each one logged)", l("op", "feed")),
        "get_timeouts" => ("deadline_hits", "operations that passed their deadline", l("op", "get")),
        "set_timeouts" => ("deadline_hits", "operations that passed their deadline", l("op", "set")),
        "corrupt" => ("corrupt_objects", "stored objects that could not be decoded (served as misses)", vec![]),
        "served_from_memory_on_error" => {
            ("served_from_memory_on_error", "gets answered from memory because the store failed", vec![])
        }
        "sets" => ("sets", "set() calls", vec![]),
        "uploads_queued" => ("uploads", "S3 writes of failed sets, queued for retry, by fate", l("fate", "queued")),
        "uploads_landed" => ("uploads", "S3 writes of failed sets, queued for retry, by fate", l("fate", "landed")),
        "uploads_superseded" => {
            ("uploads", "S3 writes of failed sets, queued for retry, by fate", l("fate", "superseded"))
        }
        "uploads_dropped" => ("uploads", "S3 writes of failed sets, queued for retry, by fate", l("fate", "dropped")),
        "too_large" => ("too_large", "sets refused for exceeding maxEntryBytes", vec![]),
        "revalidations" => ("revalidations", "revalidateTag calls", vec![]),
        "revalidations_queued" => {
            ("revalidations_queued", "revalidations left to the outbox after their first attempt", vec![])
        }
        "outbox_retries" => ("outbox_retries", "retried outbox deliveries", vec![]),
        "outbox_overflows" => ("outbox_overflows", "units refused because the outbox was full", vec![]),
        "outbox_give_ups" => ("outbox_give_ups", "outbox units given up on (never valid: past a size limit)", vec![]),
        "feed_polls" => ("feed_polls", "change-feed polls", vec![]),
        "feed_events" => ("feed_events", "change-feed events from other instances applied", vec![]),
        "feed_evictions" => {
            ("feed_evictions", "memory copies dropped because another instance rewrote the key", vec![])
        }
        "feed_resets" => ("feed_resets", "times memory was dropped because the feed could not be trusted", vec![]),
        "leases_won" => ("leases", "regeneration leases by outcome", l("outcome", "won")),
        "leases_lost" => ("leases", "regeneration leases by outcome", l("outcome", "lost")),
        "invalid_inputs" => ("invalid_inputs", "calls refused for bad input (FLEETCACHE_INVALID_INPUT)", vec![]),
        "identical_sets" => (
            "identical_sets",
            "sets whose bytes equal the stored entry's: no S3 body written, no CDN purge, only the freshness moved",
            vec![],
        ),
        _ => ("unknown", "unlisted counter", vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let mut h = Histogram::default();
        for ms in [0.5, 3.0, 3.0, 40_000.0, f64::NAN] {
            h.observe_ms(ms);
        }
        let (b, sum) = h.cumulative_s();
        assert_eq!(b[0], (0.001, 2), "0.5 ms and NaN (as 0)");
        assert_eq!(b[2], (0.005, 4));
        assert_eq!(*b.last().unwrap(), (f64::INFINITY, 5));
        assert!((sum - 40.0065).abs() < 1e-9);
    }

    #[test]
    fn every_counter_has_a_family() {
        crate::stats::Stats::default().each(|name, _| assert_ne!(counter_family(name).0, "unknown", "{name}"));
    }
}
