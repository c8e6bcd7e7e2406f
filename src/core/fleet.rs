//! This instance in the fleet: its heartbeat (see `crate::fleet`), and the fleet as the
//! heartbeats tell it.

use std::sync::Weak;

use super::*;
use crate::fleet::{self, Breakers, FleetStatus, Heartbeat, Receipt, ReceiptInstance};

use super::delivery::Attempt;

/// The live instances per build as this instance last read the heartbeats: the
/// `fleetcache_fleet_instances` gauge. Read by the heartbeat task at the first beat after the first
/// scrape, then every [`FLEET_READ_EVERY`] beats (an instance nobody scrapes reads nothing).
#[derive(Default)]
pub struct FleetView {
    pub scraped: AtomicBool,
    pub builds: parking_lot::RwLock<Vec<(String, u64)>>,
}

/// Every how many heartbeats a scraped instance reads the fleet for its gauge (one Query).
const FLEET_READ_EVERY: u64 = 4;

impl Core {
    /// Reads the fleet into the `fleetcache_fleet_instances` gauge (one Query).
    pub async fn read_fleet_view(&self) -> Result<()> {
        let status = self.fleet_status().await?;
        let mut builds: std::collections::BTreeMap<String, u64> = Default::default();
        for i in status.instances {
            *builds.entry(i.build_id).or_default() += 1;
        }
        *self.fleet_view.builds.write() = builds.into_iter().collect();
        Ok(())
    }

    /// This instance's heartbeat as of now.
    pub fn heartbeat(&self) -> Heartbeat {
        let breakers = self.backends.get().and_then(|b| b.breakers.as_ref());
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
        Heartbeat {
            id: self.instance_id.clone(),
            host: fleet::host_name(),
            pid: std::process::id(),
            build_id: self.build_id(),
            version: env!("CARGO_PKG_VERSION").into(),
            next: self.next_version.read().clone(),
            started_at: self.started_at,
            at: self.now(),
            applied: self.feed.cursor() as i64,
            trusted: self.feed_trusted(),
            breakers: Breakers {
                s3: breakers.is_some_and(|b| b.s3.is_open()),
                dynamodb: breakers.is_some_and(|b| b.dynamodb.is_open()),
            },
            memory_bytes: self.mem.l1.bytes() as i64,
            hits: load(&self.stats.memory_hits) + load(&self.stats.backend_hits),
            misses: load(&self.stats.misses),
            outbox_depth: self.outbox.depth() as i64,
            interval_ms: self.cfg.heartbeat_ms as i64,
        }
    }

    /// Writes this instance's heartbeat: one write, living `fleet::LIFETIMES` intervals. Nothing
    /// once the instance has left.
    pub async fn beat(&self) -> Result<()> {
        if self.left.load(Ordering::Relaxed) {
            return Ok(());
        }
        let hb = self.heartbeat();
        let body = serde_json::to_string(&hb).map_err(|e| Error::invalid(format!("heartbeat: {e}")))?;
        let expires_at_s = hb.at / 1000 + fleet::LIFETIMES * (self.cfg.heartbeat_ms as i64 / 1000).max(1) + 1;
        self.backends().await.tags.put_member(fleet::LIVE, &hb.id, &body, expires_at_s).await
    }

    /// Leaves the fleet (a graceful shutdown): the heartbeat is replaced by one already expired,
    /// so `fleetcache status` and receipts stop counting this instance at once instead of
    /// `fleet::LIFETIMES` intervals later, and no beat follows. One write, when this instance
    /// beats at all (its feed on and `heartbeatMs` > 0).
    pub async fn leave(&self) -> Result<()> {
        if self.left.swap(true, Ordering::Relaxed) || !self.feed.enabled() || self.cfg.heartbeat_ms == 0 {
            return Ok(());
        }
        let hb = self.heartbeat();
        let body = serde_json::to_string(&hb).map_err(|e| Error::invalid(format!("heartbeat: {e}")))?;
        self.backends().await.tags.put_member(fleet::LIVE, &hb.id, &body, hb.at / 1000 - 1).await
    }

    /// The live fleet: the heartbeats not expired (unreadable ones skipped), and the feed head.
    pub async fn fleet_status(&self) -> Result<FleetStatus> {
        let b = self.backends().await;
        let now = self.now();
        let members = b.tags.members(fleet::LIVE, now / 1000).await?;
        let instances = members.iter().filter_map(|(_, body)| serde_json::from_str(body).ok()).collect();
        Ok(FleetStatus { instances, head: b.tags.feed_head().await? as i64, now })
    }

    /// Records Next's version for the heartbeat (the JS face reads it from `next/package.json`).
    pub fn set_next_version(&self, v: Option<String>) {
        *self.next_version.write() = v;
    }
}

impl Core {
    /// Says so for every event a receipt waits for that the last poll applied: one write each,
    /// off the request path. A failed write is logged; that receipt names this instance missing.
    pub(super) async fn acknowledge(&self) {
        let seqs = std::mem::take(&mut *self.mem.acks.lock());
        if seqs.is_empty() {
            return;
        }
        let b = self.backends().await;
        let now = self.now();
        for seq in seqs {
            let group = fleet::ack_group(seq);
            if let Err(e) =
                b.tags.put_member(&group, &self.instance_id, &now.to_string(), now / 1000 + fleet::ACK_TTL_S).await
            {
                crate::log::warn("receipt acknowledgement not written", &e.to_string());
            }
        }
    }

    /// A revalidation of `tags` (as `revalidate_tags`) whose caller waits, up to `timeout_ms`,
    /// until every live instance (a heartbeat) has applied it: each one acknowledges the feed
    /// event when it applies it, at once. Resolves with who has and who has not, and the CDN
    /// purge; `Err` as `revalidate_tags` (bad `expire`, a full outbox, a revalidation that can
    /// never be valid). The JS face runs the same steps itself (`start_receipt`, `read_receipt`)
    /// to report each instance as it applies it.
    pub async fn revalidate_with_receipt(
        &self,
        tags: &[String],
        expire_s: Option<f64>,
        timeout_ms: u64,
    ) -> Result<Receipt> {
        let until = std::time::Instant::now() + Duration::from_millis(timeout_ms);
        let pending = self.start_receipt(tags, expire_s, timeout_ms).await?;
        let mut receipt = loop {
            let r = self.read_receipt(&pending).await;
            if r.queued || r.missing.is_empty() || std::time::Instant::now() >= until {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(RECEIPT_POLL_MS)).await;
        };
        receipt.cdn = pending.cdn_until(until).await;
        Ok(receipt)
    }

    /// The first half of a receipt: the revalidation made (here at once, then in DynamoDB, its
    /// units waiting at most `timeout_ms` to land) and the live fleet it must reach, as of now.
    pub async fn start_receipt(
        &self,
        tags: &[String],
        expire_s: Option<f64>,
        timeout_ms: u64,
    ) -> Result<PendingReceipt> {
        let until = std::time::Instant::now() + Duration::from_millis(timeout_ms);
        // The CDN purge is followed from before the tags reach the purger (dropped with the
        // pending receipt).
        let watch = self.purger.get().map(|p| Watched { watch: p.watch(tags), purger: p.clone() });
        let (made_at, expire_s) = self.honour_here(tags, expire_s)?;
        let b = self.backends().await;
        // Who must apply it: the live fleet as the revalidation is made.
        let live: Vec<Heartbeat> = b
            .tags
            .members(fleet::LIVE, made_at / 1000)
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, body)| serde_json::from_str(body).ok())
            .collect();
        let mut claims = Vec::new();
        for unit in tags::units_of(tags) {
            match self.outbox.push_acked(Work::Revalidate { tags: unit, at: made_at, expire_s }) {
                Ok(c) => claims.push(c),
                Err(e) => {
                    bump(&self.stats.outbox_overflows);
                    bump(&self.stats.revalidate_errors);
                    return Err(e);
                }
            }
        }
        let n = claims.len();
        use futures::StreamExt;
        let pending: Vec<_> = claims.into_iter().map(|c| self.attempt(c)).collect();
        let attempts = futures::stream::iter(pending).buffer_unordered(super::UNIT_CONCURRENCY).collect::<Vec<_>>();
        let results = tokio::time::timeout(until.saturating_duration_since(std::time::Instant::now()), attempts).await;
        let mut events = Vec::new();
        for r in results.as_deref().unwrap_or_default() {
            match r {
                Attempt::Landed(Some(seq)) => events.push(*seq),
                Attempt::GaveUp(e) => {
                    bump(&self.stats.revalidate_errors);
                    return Err(e.clone());
                }
                _ => {}
            }
        }
        let queued = events.len() < n;
        if queued {
            bump(&self.stats.revalidations_queued);
        }
        Ok(PendingReceipt { events, made_at, queued, live, watch, acks: Default::default() })
    }

    /// The receipt as it stands: one read of the acknowledgements per event. Every live instance
    /// that has applied every event is in `instances` (this one at 0 ms), the others in
    /// `missing`; a queued revalidation has reached nobody else yet.
    pub async fn read_receipt(&self, p: &PendingReceipt) -> Receipt {
        // Acknowledgements: instance id → when it had applied every event (ms). An event every
        // live instance has acknowledged is not read again (a wide revalidation has many).
        let mut applied: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        if !p.queued && !p.events.is_empty() {
            let b = self.backends().await;
            let others: Vec<&str> = p.live.iter().map(|h| h.id.as_str()).filter(|id| *id != self.instance_id).collect();
            let mut seen = p.acks.lock().clone();
            for seq in &p.events {
                let known = seen.entry(*seq).or_default();
                if others.iter().all(|id| known.contains_key(*id)) {
                    continue;
                }
                for (id, at) in b.tags.members(&fleet::ack_group(*seq), self.now() / 1000).await.unwrap_or_default() {
                    known.insert(id, at.parse().unwrap_or(0));
                }
            }
            let mut counts: std::collections::HashMap<&str, (usize, i64)> = std::collections::HashMap::new();
            for acks in seen.values() {
                for (id, at) in acks {
                    let e = counts.entry(id.as_str()).or_insert((0, 0));
                    e.0 += 1;
                    e.1 = e.1.max(*at);
                }
            }
            applied = counts
                .into_iter()
                .filter(|(_, (k, _))| *k == p.events.len())
                .map(|(id, (_, at))| (id.to_string(), at))
                .collect();
            *p.acks.lock() = seen;
        }
        let name = |h: &Heartbeat, after: Option<i64>| ReceiptInstance {
            id: h.id.clone(),
            host: h.host.clone(),
            build_id: h.build_id.clone(),
            applied_after_ms: after,
        };
        let mut receipt = Receipt {
            events: p.events.iter().map(|s| *s as i64).collect(),
            made_at: p.made_at,
            queued: p.queued,
            ..Default::default()
        };
        for h in &p.live {
            let after =
                if h.id == self.instance_id { Some(0) } else { applied.get(&h.id).map(|at| (at - p.made_at).max(0)) };
            match after {
                Some(_) => receipt.instances.push(name(h, after)),
                None => receipt.missing.push(name(h, None)),
            }
        }
        receipt
    }
}

/// A revalidation made for a receipt, while its receipt fills in (`Core::start_receipt`).
pub struct PendingReceipt {
    pub events: Vec<u64>,
    pub made_at: i64,
    pub queued: bool,
    live: Vec<Heartbeat>,
    watch: Option<Watched>,
    /// The acknowledgements read so far: event → instance → when it applied it (ms).
    acks: parking_lot::Mutex<std::collections::HashMap<u64, std::collections::HashMap<String, i64>>>,
}

/// The purge a pending receipt follows, taken off the purger when the receipt goes.
struct Watched {
    watch: Arc<crate::cdn::watch::PurgeWatch>,
    purger: Arc<Purger>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.purger.unwatch(&self.watch);
    }
}

impl PendingReceipt {
    /// The CDN purge, once every planned path went out (or failed) or at `until`; None when this
    /// instance purges no CDN.
    pub async fn cdn_until(&self, until: std::time::Instant) -> Option<crate::cdn::watch::CdnReceipt> {
        let w = self.watch.as_ref()?;
        w.watch.wait_until(tokio::time::Instant::from_std(until)).await;
        Some(w.watch.receipt())
    }
}

/// How often a receipt reads the acknowledgements while it waits.
const RECEIPT_POLL_MS: u64 = 50;

/// The heartbeat task: a first beat soon after the start (once Next's build ID is adopted), then
/// one every `heartbeatMs`, until the core is dropped. A failed write is logged once a minute
/// at most; the next interval tries again.
pub(super) async fn run(core: Weak<Core>) {
    let Some(interval) = core.upgrade().map(|c| c.cfg.heartbeat_ms) else { return };
    let mut wait = Duration::from_millis(interval.min(1_000));
    let mut last_warned = 0;
    let mut last_read: Option<u64> = None;
    for beat in 0u64.. {
        tokio::time::sleep(wait).await;
        wait = Duration::from_millis(interval);
        let Some(c) = core.upgrade() else { return };
        if c.left.load(Ordering::Relaxed) {
            return;
        }
        let mut result = c.beat().await;
        // The first beat after the first scrape reads the fleet, then every FLEET_READ_EVERY.
        let due = last_read.is_none_or(|at| beat - at >= FLEET_READ_EVERY);
        if result.is_ok() && due && c.fleet_view.scraped.load(Ordering::Relaxed) {
            last_read = Some(beat);
            result = c.read_fleet_view().await;
        }
        if let Err(e) = result {
            let now = c.now();
            if now - last_warned >= 60_000 {
                last_warned = now;
                crate::log::warn("heartbeat not written", &e.to_string());
            }
        }
    }
}
