//! What the core reports: `stats()` readings and the metric samples of `/metrics`.

use super::*;

impl Core {
    /// What `stats()` reports: every counter, then the gauges, by their JS names.
    pub fn stats_snapshot(&self) -> Vec<(String, Reading)> {
        let mut out = Vec::with_capacity(32);
        self.stats.each(|name, v| out.push((stats::camel(name), Reading::Count(v as f64))));
        let (reads, writes) = self.tag_store_requests();
        let gauges = [
            ("memoryBytes", Reading::Count(self.l1.bytes() as f64)),
            ("memoryEntries", Reading::Count(self.l1.len() as f64)),
            ("memoryBudget", Reading::Count(self.cfg.memory_bytes as f64)),
            ("evictions", Reading::Count(self.l1.evictions() as f64)),
            ("knownTags", Reading::Count(self.tag_clock.len() as f64)),
            // Revalidations, feed events and uploads not landed yet.
            ("outboxDepth", Reading::Count(self.outbox.depth() as f64)),
            ("queuedUploadBytes", Reading::Count(self.outbox.upload_bytes() as f64)),
            // How long the oldest of them has waited (0 when none waits).
            ("outboxOldestSeconds", Reading::Count((self.outbox.oldest_ms(self.now()) / 1000) as f64)),
            // Whether memory is being served (the feed is being read).
            ("feedTrusted", Reading::Flag(self.feed_trusted())),
            // Circuit breakers (AWS backend): open = calls fail fast.
            (
                "s3BreakerOpen",
                Reading::Flag(self.backends.get().and_then(|b| b.breakers.as_ref()).is_some_and(|b| b.s3.is_open())),
            ),
            (
                "dynamodbBreakerOpen",
                Reading::Flag(
                    self.backends.get().and_then(|b| b.breakers.as_ref()).is_some_and(|b| b.dynamodb.is_open()),
                ),
            ),
            (
                "breakerRejections",
                Reading::Count(
                    self.backends
                        .get()
                        .and_then(|b| b.breakers.as_ref())
                        .map_or(0, |b| b.s3.rejected() + b.dynamodb.rejected()) as f64,
                ),
            ),
            // Requests this core sent to DynamoDB.
            ("dynamodbReads", Reading::Count(reads as f64)),
            ("dynamodbWrites", Reading::Count(writes as f64)),
        ];
        out.extend(gauges.into_iter().map(|(n, r)| (n.to_string(), r)));
        // CDN purges sent by this instance (all 0 when purging is off).
        let (cdn, pending, failed, month) = self.cdn_readings();
        let cdn_readings = [
            ("cdnBatches", cdn.batches as f64),
            ("cdnPathsSent", cdn.paths_sent as f64),
            ("cdnWidenedBatches", cdn.widened_batches as f64),
            ("cdnOverBudgetPaths", cdn.over_budget as f64),
            ("cdnRefusals", cdn.refusals as f64),
            ("cdnFailedBatches", failed as f64),
            ("cdnPendingPaths", pending as f64),
            ("cdnPathsThisMonth", month as f64),
        ];
        out.extend(cdn_readings.into_iter().map(|(n, v)| (n.to_string(), Reading::Count(v))));
        out
    }

    /// Everything `metrics()` exports (see [`crate::metrics`]): the counters by family, gauges,
    /// breaker states, the feed's lag and every S3/DynamoDB request's outcome and latency.
    pub fn metric_samples(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(96);
        self.stats.each(|name, v| {
            let (family, help, labels) = metrics::counter_family(name);
            out.push(Sample::scalar(family, Kind::Counter, help, labels, v as f64));
        });
        let g = |name: &str, help: &'static str, v: f64| Sample::scalar(name, Kind::Gauge, help, vec![], v);
        out.push(g("memory_bytes", "bytes held by the in-memory tier", self.l1.bytes() as f64));
        out.push(g("memory_entries", "entries held by the in-memory tier", self.l1.len() as f64));
        out.push(g(
            "memory_budget_bytes",
            "the in-memory tier's byte budget (memoryBytes)",
            self.cfg.memory_bytes as f64,
        ));
        out.push(Sample::scalar(
            "memory_evictions",
            Kind::Counter,
            "entries evicted from the in-memory tier to stay in budget",
            vec![],
            self.l1.evictions() as f64,
        ));
        out.push(g("known_tags", "tags whose state this instance knows", self.tag_clock.len() as f64));
        out.push(g(
            "outbox_depth",
            "revalidations, feed events and uploads not landed yet (the revalidation queue)",
            self.outbox.depth() as f64,
        ));
        out.push(g("outbox_upload_bytes", "bytes of failed sets queued for upload", self.outbox.upload_bytes() as f64));
        out.push(g(
            "outbox_oldest_seconds",
            "how long the oldest revalidation, feed event or upload not landed yet has waited",
            (self.outbox.oldest_ms(self.now()) / 1000) as f64,
        ));
        out.push(g(
            "feed_trusted",
            "1 while the change feed is read (memory is served), else 0",
            f64::from(u8::from(self.feed_trusted())),
        ));
        out.push(Sample::histogram(
            "feed_lag_seconds",
            "from a change on another instance to its feed event being applied here",
            vec![],
            &self.feed_lag.get(),
        ));
        let (reads, writes) = self.tag_store_requests();
        let rq = "DynamoDB requests sent by the tag store, by kind";
        out.push(Sample::scalar("dynamodb_requests", Kind::Counter, rq, vec![("kind", "read".into())], reads as f64));
        out.push(Sample::scalar("dynamodb_requests", Kind::Counter, rq, vec![("kind", "write".into())], writes as f64));
        if let Some(br) = self.backends.get().and_then(|b| b.breakers.as_ref()) {
            for (name, b) in [("s3", &br.s3), ("dynamodb", &br.dynamodb)] {
                let l = || vec![("backend", name.to_string())];
                out.push(Sample::scalar(
                    "breaker_open",
                    Kind::Gauge,
                    "1 while the backend's circuit breaker is open",
                    l(),
                    f64::from(u8::from(b.is_open())),
                ));
                out.push(Sample::scalar(
                    "breaker_opened",
                    Kind::Counter,
                    "times the backend's circuit breaker opened",
                    l(),
                    b.opened() as f64,
                ));
                out.push(Sample::scalar(
                    "breaker_rejections",
                    Kind::Counter,
                    "calls failed fast by an open breaker",
                    l(),
                    b.rejected() as f64,
                ));
                for (op, m) in b.metrics.snapshot() {
                    for (outcome, n) in &m.outcomes {
                        out.push(Sample::scalar(
                            "backend_requests",
                            Kind::Counter,
                            "S3 and DynamoDB operations by outcome (ok, an error code, or abandoned at a deadline)",
                            vec![
                                ("backend", name.to_string()),
                                ("op", op.to_string()),
                                ("outcome", outcome.to_string()),
                            ],
                            *n as f64,
                        ));
                    }
                    out.push(Sample::histogram(
                        "backend_request_duration_seconds",
                        "latency of S3 and DynamoDB operations",
                        vec![("backend", name.to_string()), ("op", op.to_string())],
                        &m.latency,
                    ));
                }
            }
        }
        self.cdn_samples(&mut out);
        out
    }

    /// The purger's statistics, pending paths, failed batches and the month's path count.
    pub(super) fn cdn_readings(&self) -> (cdn::PlannerStats, usize, u64, u64) {
        match self.purger.get() {
            Some(p) => {
                let (st, pending) = p.stats();
                (st, pending, p.counters.failed_batches.load(Ordering::Relaxed), p.used_this_month())
            }
            None => Default::default(),
        }
    }

    pub(super) fn cdn_samples(&self, out: &mut Vec<Sample>) {
        if self.purger.get().is_none() {
            return;
        }
        let (st, pending, failed, month) = self.cdn_readings();
        let c = |name: &str, help: &'static str, labels: Vec<(&'static str, String)>, v: f64| {
            Sample::scalar(name, Kind::Counter, help, labels, v)
        };
        let paths = "CDN invalidation paths by fate: asked for, sent, or not sent past the monthly ceiling";
        out.push(c("cdn_batches", "CDN invalidation requests sent", vec![], st.batches as f64));
        out.push(c("cdn_paths", paths, vec![("fate", "requested".into())], st.paths_requested as f64));
        out.push(c("cdn_paths", paths, vec![("fate", "sent".into())], st.paths_sent as f64));
        out.push(c("cdn_paths", paths, vec![("fate", "over_budget".into())], st.over_budget as f64));
        out.push(c(
            "cdn_widened_batches",
            "CDN purges widened to wildcards to stay within the monthly ceiling",
            vec![],
            st.widened_batches as f64,
        ));
        out.push(c(
            "cdn_merged_wildcards",
            "page wildcards merged into folder wildcards to fit CloudFront's in-progress limit",
            vec![],
            st.merged as f64,
        ));
        out.push(c(
            "cdn_refusals",
            "CDN purges refused (TooManyInvalidationsInProgress, throttling) and retried",
            vec![],
            st.refusals as f64,
        ));
        out.push(c("cdn_failed_batches", "CDN purges given up on (each one logged)", vec![], failed as f64));
        out.push(c(
            "cdn_cost_dollars",
            "estimated invalidation charges of the purges this instance sent",
            vec![],
            st.cost,
        ));
        out.push(Sample::scalar(
            "cdn_pending_paths",
            Kind::Gauge,
            "paths waiting for the window or for room",
            vec![],
            pending as f64,
        ));
        out.push(Sample::scalar(
            "cdn_month_paths",
            Kind::Gauge,
            "invalidation paths the fleet sent this month, as this instance last read it",
            vec![],
            month as f64,
        ));
    }
}
