//! This instance in the fleet: its heartbeat (see `crate::fleet`), and the fleet as the
//! heartbeats tell it.

use std::sync::Weak;

use super::*;
use crate::fleet::{self, Breakers, FleetStatus, Heartbeat};

impl Core {
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

    /// Writes this instance's heartbeat: one write, living `fleet::LIFETIMES` intervals.
    pub async fn beat(&self) -> Result<()> {
        let hb = self.heartbeat();
        let body = serde_json::to_string(&hb).map_err(|e| Error::invalid(format!("heartbeat: {e}")))?;
        let expires_at_s = hb.at / 1000 + fleet::LIFETIMES * (self.cfg.heartbeat_ms as i64 / 1000).max(1) + 1;
        self.backends().await.tags.put_member(fleet::LIVE, &hb.id, &body, expires_at_s).await
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

/// The heartbeat task: a first beat soon after the start (once Next's build ID is adopted), then
/// one every `heartbeatMs`, until the core is dropped. A failed write is logged once a minute
/// at most; the next interval tries again.
pub(super) async fn run(core: Weak<Core>) {
    let Some(interval) = core.upgrade().map(|c| c.cfg.heartbeat_ms) else { return };
    let mut wait = Duration::from_millis(interval.min(1_000));
    let mut last_warned = 0;
    loop {
        tokio::time::sleep(wait).await;
        wait = Duration::from_millis(interval);
        let Some(c) = core.upgrade() else { return };
        if let Err(e) = c.beat().await {
            let now = c.now();
            if now - last_warned >= 60_000 {
                last_warned = now;
                crate::log::warn("heartbeat not written", &e.to_string());
            }
        }
    }
}
