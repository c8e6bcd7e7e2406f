//! Revalidations and feed events on their way to DynamoDB: `revalidate_tags`, the outbox's
//! attempts and retries, `flush` at shutdown, and the breakers' probes.

use super::*;

/// How one attempt at an outbox unit ended.
pub(super) enum Attempt {
    /// With its event's feed number (`None` when the feed is off, or for an upload).
    Landed(Option<u64>),
    Queued(Error),
    GaveUp(Error),
}

/// The retry task: attempts due outbox units until the core is dropped.
pub(super) async fn retry_outbox(core: std::sync::Weak<Core>) {
    loop {
        tokio::time::sleep(Duration::from_millis(outbox::FIRST_BACKOFF_MS as u64 / 2)).await;
        let Some(c) = core.upgrade() else { return };
        if c.outbox.depth() > 0 {
            c.retry_outbox_once().await;
            if let Some(w) = c.outbox.loud_due(c.now()) {
                crate::log::error(
                    "outbox waiting",
                    &format!(
                        "{} revalidations, feed events or uploads have not reached S3/DynamoDB; the oldest for {} s \
                         (honoured here, retried until they land; the rest of the fleet does not see them yet). \
                         Last error: {}",
                        w.units,
                        w.oldest_ms / 1000,
                        w.last_error
                    ),
                );
            }
        }
        c.probe_breakers().await;
    }
}

impl Core {
    /// `revalidateTag(tags, durations)`: `expire_s` None or 0 expires now, N > 0 marks stale now
    /// and expires in N seconds.
    ///
    /// Honoured here at once, for good (see `pinned`); recorded in DynamoDB with its feed event
    /// as one unit per [`tags::MAX_TAGS_PER_UNIT`] tags, through the outbox. Waits at most
    /// `revalidateTimeoutMs` for the units to land: past it, or after a failed first attempt, the
    /// units stay queued and are retried until they land — a refusal (access denied) included,
    /// since a person fixes it — and this resolves `Ok` (the revalidation is not lost, and Next
    /// would only log a rejection). `Err` only when it could not be queued (the outbox is full) or
    /// it can never be valid (past a size limit).
    pub async fn revalidate_tags(&self, tags: &[String], expire_s: Option<f64>) -> Result<()> {
        let (now, expire_s) = self.honour_here(tags, expire_s)?;
        let mut claims = Vec::new();
        for unit in tags::units_of(tags) {
            if self.outbox.merge_revalidation(&unit, now, expire_s) {
                bump(&self.stats.revalidations_queued); // folded into one waiting for the store
                continue;
            }
            match self.outbox.push(Work::Revalidate { tags: unit, at: now, expire_s }) {
                Ok(c) => claims.push(c),
                Err(e) => {
                    bump(&self.stats.outbox_overflows);
                    bump(&self.stats.revalidate_errors);
                    self.log("revalidateTag not queued", &e.to_string());
                    return Err(e);
                }
            }
        }
        self.settle(claims, "revalidateTag").await
    }

    /// The part of a revalidation that is this instance's alone, done at once: the tags are
    /// stale or expired here for good, and their CDN purge is planned. Returns its time and the
    /// checked `expire`.
    pub(super) fn honour_here(&self, tags: &[String], expire_s: Option<f64>) -> Result<(i64, Option<f64>)> {
        let expire_s = match expire_s.map(|e| crate::config::duration_s(e, "revalidateTag's `expire`")).transpose() {
            Ok(e) => e,
            Err(e) => {
                bump(&self.stats.invalid_inputs);
                return Err(e);
            }
        };
        bump(&self.stats.revalidations);
        let now = self.now();
        for t in tags {
            self.mem.tag_clock.apply(t, now, expire_s);
            self.pinned.apply(t, now, expire_s);
        }
        // The CDN's copies of the tags' pages: purged by this instance alone (looked up in the
        // tag index by the purger's task, off this call's path).
        if let Some(p) = self.purger.get() {
            p.add_tags(tags);
        }
        Ok((now, expire_s))
    }

    /// Attempts `claims` once each, waiting at most `revalidateTimeoutMs`; what does not land is
    /// left to the retry task.
    pub(super) async fn settle(&self, claims: Vec<Claim<'_>>, what: &str) -> Result<()> {
        // The caller's promise must settle within revalidateTimeoutMs: stop waiting a little
        // before, leaving time for the answer to reach JS.
        let deadline = Duration::from_millis(self.cfg.revalidate_timeout_ms.saturating_sub(SETTLE_MARGIN_MS).max(1));
        // Paced: the claims not attempted by the deadline go back to the queue (dropped unsettled),
        // ready for the retry task at once.
        use futures::StreamExt;
        let pending: Vec<_> = claims.into_iter().map(|c| self.attempt(c)).collect();
        let attempts = futures::stream::iter(pending).buffer_unordered(UNIT_CONCURRENCY).collect::<Vec<_>>();
        let queued = match tokio::time::timeout(deadline, attempts).await {
            Ok(results) => {
                let mut queued = None;
                for r in results {
                    match r {
                        Attempt::Landed(_) => {}
                        Attempt::Queued(e) => queued = Some(e.to_string()),
                        Attempt::GaveUp(e) => {
                            bump(&self.stats.revalidate_errors);
                            return Err(e);
                        }
                    }
                }
                queued
            }
            Err(_) => Some(format!("not landed within revalidateTimeoutMs ({} ms)", self.cfg.revalidate_timeout_ms)),
        };
        if let Some(why) = queued {
            bump(&self.stats.revalidations_queued);
            self.log(&format!("{what} queued (honoured here; retried until DynamoDB takes it)"), &why);
        }
        Ok(())
    }

    /// One attempt at a unit: it lands, is queued for a retry, or is given up.
    pub(super) async fn attempt(&self, mut claim: Claim<'_>) -> Attempt {
        match self.deliver(&mut claim).await {
            Ok(()) => {
                let seq = claim.unit.seq;
                claim.landed();
                Attempt::Landed(seq)
            }
            Err(e) => {
                if claim.failed(&e, self.now(), jitter()) {
                    bump(&self.stats.outbox_give_ups);
                    self.log("revalidation or feed event given up (it can never be valid)", &e.to_string());
                    Attempt::GaveUp(e)
                } else {
                    bump(&self.stats.outbox_retries);
                    Attempt::Queued(e)
                }
            }
        }
    }

    /// Writes a unit: the state and event together (a revalidation), the event (a `set`'s), or
    /// a queued upload.
    pub(super) async fn deliver(&self, claim: &mut Claim<'_>) -> Result<()> {
        let b = self.backends().await;
        match claim.unit.work.clone() {
            Work::Revalidate { tags, at, expire_s } => {
                let seq = self.feed_seq(b, claim).await?;
                let event = seq.map(|s| (s, self.instance_id.as_str()));
                for (t, st) in b
                    .tags
                    .revalidate_at(tags::Unit { ack: claim.unit.ack, event, tags: &tags, now: at, expire_s })
                    .await?
                {
                    self.mem.tag_clock.merge(&t, st);
                }
                Ok(())
            }
            Work::Announce { event, at } => match self.feed_seq(b, claim).await? {
                Some(seq) => b.tags.announce_at(seq, &FeedRecord::new(self.instance_id.as_str(), event), at).await,
                None => Ok(()),
            },
            Work::Upload { class, entry, body } => self.upload_queued(class, &entry, body).await,
        }
    }

    /// The feed number of the unit's event (`None` when the feed is off), reserved once and kept
    /// across retries.
    pub(super) async fn feed_seq(&self, b: &Backends, claim: &mut Claim<'_>) -> Result<Option<u64>> {
        if self.cfg.feed_interval_ms == 0 {
            return Ok(None);
        }
        if let Some(s) = claim.reusable_seq(self.now()) {
            return Ok(Some(s));
        }
        // In a task of its own: a caller that stops waiting (`revalidateTimeoutMs`) drops this
        // future, and a number DynamoDB handed out but nobody recorded would be a hole for good
        // (every instance drops its memory 2 s later). The task records it in the outbox.
        let (tags, outbox, id, now) = (b.tags.clone(), self.outbox.clone(), claim.unit.id, self.now());
        outbox.begin_reserve(id);
        let reserving = tokio::spawn(async move {
            let r = tags.reserve_seq().await;
            outbox.end_reserve(id, r.as_ref().ok().copied(), now);
            r
        });
        let s = reserving.await.map_err(|e| Error::backend(format!("reserving a feed number: {e}"), true))??;
        claim.reserved(s, now);
        Ok(Some(s))
    }

    /// The feed event of a write of `entry`.
    pub(super) fn key_event(entry: &Entry) -> FeedEvent {
        FeedEvent::Key {
            key: tags::event_key(&entry.key),
            last_modified: entry.last_modified,
            write_id: entry.write_id,
        }
    }

    /// Queues a `set`'s feed event in the outbox (`None` when the feed is off); overflow is
    /// counted and logged.
    pub(super) fn queue_announce(&self, event: FeedEvent) -> Result<Option<Claim<'_>>> {
        if self.cfg.feed_interval_ms == 0 {
            return Ok(None);
        }
        match self.outbox.push(Work::Announce { event, at: self.now() }) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                bump(&self.stats.outbox_overflows);
                self.log("feed event not queued (other instances learn of it only on reload)", &e.to_string());
                Err(e)
            }
        }
    }

    /// Appends a `set`'s event to the change feed through the outbox, waiting as `settle` does.
    pub(super) async fn announce(&self, event: FeedEvent) -> Result<()> {
        match self.queue_announce(event)? {
            Some(c) => self.settle(vec![c], "feed event").await,
            None => Ok(()),
        }
    }

    /// One round of the retry task: attempts every unit that is due (tests drive it by hand).
    pub async fn retry_outbox_once(&self) {
        use futures::StreamExt;
        let due = self.outbox.claim_ready(self.now(), RETRY_BATCH);
        let pending: Vec<_> = due.into_iter().map(|c| self.attempt(c)).collect();
        let results: Vec<Attempt> = futures::stream::iter(pending).buffer_unordered(UNIT_CONCURRENCY).collect().await;
        if results.iter().any(|r| matches!(r, Attempt::Landed(_))) {
            self.outbox.expedite(); // DynamoDB answers again: deliver the rest without waiting
        }
    }

    /// Delivers everything the outbox holds, backoff ignored, for at most `deadline_ms` (SIGTERM);
    /// returns how many units are left.
    pub async fn flush(&self, deadline_ms: u64) -> usize {
        let until = tokio::time::Instant::now() + Duration::from_millis(deadline_ms);
        let work = async {
            while self.outbox.depth() > 0 {
                let due = self.outbox.claim_ready(i64::MAX, RETRY_BATCH);
                if due.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await; // claimed by callers still waiting
                    continue;
                }
                let results = futures::future::join_all(due.into_iter().map(|c| self.attempt(c))).await;
                if !results.iter().any(|r| matches!(r, Attempt::Landed(_))) {
                    tokio::time::sleep(Duration::from_millis(100)).await; // not back yet: do not spin
                }
            }
        };
        let _ = tokio::time::timeout_at(until, work).await;
        let left = self.outbox.depth();
        if left > 0 {
            self.log("shutting down with revalidations not landed", &format!("{left} units left in the outbox"));
        }
        left
    }

    /// Probes a backend whose breaker is open and due (requests never probe: they fail fast).
    pub(super) async fn probe_breakers(&self) {
        let Some(b) = self.backends.get() else { return };
        let Some(br) = &b.breakers else { return };
        // Bounded: an unanswered probe is abandoned (a failure: the breaker stays open).
        let limit = Duration::from_millis(PROBE_TIMEOUT_MS);
        if br.s3.probe_due() {
            let _ = tokio::time::timeout(limit, b.blobs.probe()).await;
        }
        if br.dynamodb.probe_due() {
            let _ = tokio::time::timeout(limit, b.tags.feed_head()).await;
        }
    }
}
