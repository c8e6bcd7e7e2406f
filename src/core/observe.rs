//! What the core reports: `stats()` readings and the metric samples of `/metrics`.

use super::*;

impl Core {
    /// The core's readings other than its counters, in one table: each one's name in `stats()`,
    /// and the metric family (and labels) `metrics()` exports it under, if any.
    fn gauges(&self) -> Vec<Gauge> {
        use Reading::{Count, Flag};
        let breakers = self.backends.get().and_then(|b| b.breakers.as_ref());
        let (reads, writes) = self.tag_store_requests();
        let kind = |k: &str| vec![("kind", k.to_string())];
        vec![
            Gauge::of("memoryBytes", Count(self.mem.l1.bytes() as f64)).exported(metrics::MEMORY_BYTES),
            Gauge::of("memoryEntries", Count(self.mem.l1.len() as f64)).exported(metrics::MEMORY_ENTRIES),
            Gauge::of("memoryBudget", Count(self.cfg.memory_bytes as f64)).exported(metrics::MEMORY_BUDGET_BYTES),
            Gauge::of("evictions", Count(self.mem.l1.evictions() as f64)).exported(metrics::MEMORY_EVICTIONS),
            Gauge::of("knownTags", Count(self.mem.tag_clock.len() as f64)).exported(metrics::KNOWN_TAGS),
            Gauge::of("outboxDepth", Count(self.outbox.depth() as f64)).exported(metrics::OUTBOX_DEPTH),
            Gauge::of("queuedUploadBytes", Count(self.outbox.upload_bytes() as f64))
                .exported(metrics::OUTBOX_UPLOAD_BYTES),
            Gauge::of("outboxOldestSeconds", Count((self.outbox.oldest_ms(self.now()) / 1000) as f64))
                .exported(metrics::OUTBOX_OLDEST_SECONDS),
            Gauge::of("feedTrusted", Flag(self.feed_trusted())).exported(metrics::FEED_TRUSTED),
            Gauge::of("feedBehindSeconds", Count(self.feed.behind_ms(self.now()) as f64 / 1000.0))
                .exported(metrics::FEED_BEHIND_SECONDS),
            // Per backend in `metrics()`: the breaker families below.
            Gauge::of("s3BreakerOpen", Flag(breakers.is_some_and(|b| b.s3.is_open()))),
            Gauge::of("dynamodbBreakerOpen", Flag(breakers.is_some_and(|b| b.dynamodb.is_open()))),
            Gauge::of(
                "breakerRejections",
                Count(breakers.map_or(0, |b| b.s3.rejected() + b.dynamodb.rejected()) as f64),
            ),
            Gauge::of("dynamodbReads", Count(reads as f64)).exported(metrics::DYNAMODB_REQUESTS).labels(kind("read")),
            Gauge::of("dynamodbWrites", Count(writes as f64))
                .exported(metrics::DYNAMODB_REQUESTS)
                .labels(kind("write")),
        ]
    }

    /// What `stats()` reports: every counter, then the gauges, by their JS names.
    pub fn stats_snapshot(&self) -> Vec<(String, Reading)> {
        let mut out = Vec::with_capacity(48);
        self.stats.each(|name, v| out.push((stats::camel(name), Reading::Count(v as f64))));
        out.extend(self.gauges().into_iter().map(|g| (g.js.to_string(), g.value)));
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
        for g in self.gauges() {
            if let Some(family) = g.family {
                let v = match g.value {
                    Reading::Count(n) => n,
                    Reading::Flag(b) => f64::from(u8::from(b)),
                };
                out.push(family.sample(g.labels, v));
            }
        }
        out.push(Sample::histogram(
            "feed_lag_seconds",
            "from a change on another instance to its feed event being applied here",
            vec![],
            &self.mem.feed_lag.get(),
        ));
        if let Some(br) = self.backends.get().and_then(|b| b.breakers.as_ref()) {
            for (name, b) in [("s3", &br.s3), ("dynamodb", &br.dynamodb)] {
                let l = || vec![("backend", name.to_string())];
                out.push(metrics::BREAKER_OPEN.sample(l(), f64::from(u8::from(b.is_open()))));
                out.push(metrics::BREAKER_OPENED.sample(l(), b.opened() as f64));
                out.push(metrics::BREAKER_REJECTIONS.sample(l(), b.rejected() as f64));
                for (op, m) in b.metrics.snapshot() {
                    for (outcome, n) in &m.outcomes {
                        let labels = vec![
                            ("backend", name.to_string()),
                            ("op", op.to_string()),
                            ("outcome", outcome.to_string()),
                        ];
                        out.push(metrics::BACKEND_REQUESTS.sample(labels, *n as f64));
                    }
                    let d = metrics::BACKEND_REQUEST_DURATION;
                    let labels = vec![("backend", name.to_string()), ("op", op.to_string())];
                    out.push(Sample::histogram(d.name, d.help, labels, &m.latency));
                }
            }
        }
        self.cdn_samples(&mut out);
        self.fleet_view.scraped.store(true, Ordering::Relaxed);
        for (build, n) in self.fleet_view.builds.read().iter() {
            out.push(metrics::FLEET_INSTANCES.sample(vec![("build_id", build.clone())], *n as f64));
        }
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
        use metrics::*;
        let fate = |f: &str| vec![("fate", f.to_string())];
        out.push(CDN_BATCHES.sample(vec![], st.batches as f64));
        out.push(CDN_PATHS.sample(fate("requested"), st.paths_requested as f64));
        out.push(CDN_PATHS.sample(fate("sent"), st.paths_sent as f64));
        out.push(CDN_PATHS.sample(fate("over_budget"), st.over_budget as f64));
        out.push(CDN_WIDENED_BATCHES.sample(vec![], st.widened_batches as f64));
        out.push(CDN_MERGED_WILDCARDS.sample(vec![], st.merged as f64));
        out.push(CDN_REFUSALS.sample(vec![], st.refusals as f64));
        out.push(CDN_FAILED_BATCHES.sample(vec![], failed as f64));
        out.push(CDN_COST_DOLLARS.sample(vec![], st.cost));
        out.push(CDN_PENDING_PATHS.sample(vec![], pending as f64));
        out.push(CDN_MONTH_PATHS.sample(vec![], month as f64));
    }
}

/// One reading of [`Core::gauges`].
struct Gauge {
    js: &'static str,
    value: Reading,
    family: Option<metrics::Family>,
    labels: Vec<(&'static str, String)>,
}

impl Gauge {
    fn of(js: &'static str, value: Reading) -> Gauge {
        Gauge { js, value, family: None, labels: Vec::new() }
    }
    fn exported(self, family: metrics::Family) -> Gauge {
        Gauge { family: Some(family), ..self }
    }
    fn labels(self, labels: Vec<(&'static str, String)>) -> Gauge {
        Gauge { labels, ..self }
    }
}
