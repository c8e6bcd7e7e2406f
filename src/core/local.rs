//! This process's memory as the change feed keeps it honest: the feed's host, starting the
//! background tasks, and dropping or measuring what memory holds.

use super::*;

impl Core {
    /// Starts this core's change-feed poller (when the feed is on) with `spawn`, the executor of
    /// the host (napi's runtime in Node, tokio in tests). The task ends when the core is dropped.
    pub fn start_feed(self: &Arc<Self>, mut spawn: impl FnMut(futures::future::BoxFuture<'static, ()>)) {
        if self.feed.enabled() {
            spawn(Box::pin(feed::run(Arc::downgrade(self))));
        }
        self.replay_spool();
        spawn(Box::pin(super::delivery::retry_outbox(Arc::downgrade(self))));
        // Only an instance that reads the feed is part of the fleet a receipt waits for.
        if self.feed.enabled() && self.cfg.heartbeat_ms > 0 {
            spawn(Box::pin(super::fleet::run(Arc::downgrade(self))));
        }
        if let Some(id) = &self.cfg.cdn.distribution_id {
            let target = Target::CloudFront { distribution_id: id.clone(), endpoint: self.cfg.cdn.endpoint.clone() };
            // Cannot fail: nothing set a target before the core started.
            let _ = self.start_purger(target, spawn);
        }
    }

    /// One round of the feed poller (tests drive it by hand).
    pub async fn poll_feed_once(&self) {
        let b = self.backends().await;
        if self.feed.poll_once(b.tags.as_ref(), &self.mem).await {
            self.indexed.clear();
        }
        self.acknowledge().await;
    }

    /// Forgets everything this process holds in memory (not the shared store).
    pub fn clear_memory(&self) {
        self.mem.epoch.fetch_add(1, Ordering::AcqRel);
        self.mem.l1.clear();
        self.mem.tag_clock.clear();
        self.indexed.clear();
        self.mem.leases.clear();
    }

    /// Size of the stored object for `key` as encoded from the in-memory copy (benchmarks).
    pub fn encoded_len(&self, key: &str) -> Option<usize> {
        let e = self.mem.l1.get(key)?;
        codec::encode(&e, self.cfg.compression_level).ok().map(|b| b.len())
    }

    pub fn memory_entries(&self) -> usize {
        self.mem.l1.len()
    }
}

impl FeedHost for Core {
    fn feed(&self) -> &Feed {
        &self.feed
    }
    async fn poll_feed_once(&self) {
        Core::poll_feed_once(self).await
    }
    fn feed_timed_out(&self) {
        let e = Error::new(ErrorKind::Timeout, "feed poll timed out");
        if self.feed.failed(&e, &self.mem) {
            self.indexed.clear();
        }
    }
}
