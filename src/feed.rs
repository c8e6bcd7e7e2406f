//! The change feed poller: keeps this process's memory honest about what other instances did.
//!
//! Every `revalidateTag` and every `set` appends an event to an ordered log in the tag store
//! (numbers from an atomic counter, not wall clocks). Each process runs one task that reads the
//! counter once per `feedIntervalMs` — a cost independent of request traffic — and only when it
//! moved reads the new events and applies them: tag states are joined into the local tag clock
//! (for tags this process knows), and in-memory copies older than a rewritten key are evicted, so
//! the next `get` loads the new object from S3. ("Older" is by `lastModified`, to the millisecond:
//! two writes of one key stamped with the same millisecond on two machines are not told apart.)
//!
//! ## Late joiners, gaps and outages — the choice made here: drop memory
//! - A process starts at the counter's current head and drops whatever it loaded before its
//!   first successful read of the counter; until then nothing is served from memory (every get
//!   reads S3 and the tag states). Anything older than the head is already in the tag store and
//!   S3, which every load reads strongly consistently, so a late joiner honours every earlier
//!   revalidation.
//! - A process more than 1,000 events behind, or that finds a hole in the sequence that is not
//!   filled within 2 s (a writer died between taking its number and writing the row, or rows
//!   expired), drops its memory and jumps to the head.
//! - A process that cannot read the feed for longer than `feedStaleAfterMs` drops its memory and
//!   serves nothing from memory until it reads the feed again; meanwhile every `get` goes to S3
//!   and reads the tag states from DynamoDB. If DynamoDB cannot be read either, the object just
//!   read from S3 is served without its tag check (fail open: a page, not a 500), and a `get`
//!   whose S3 read fails is a miss.
//!
//! Dropping is chosen over revalidating each hit because it needs no extra state and its cost
//! (one reload per hot key) is paid once, only in these rare cases.
//!
//! ## The render race
//! A `set` is stamped with the time of the latest `get` of its key in this process (the moment
//! its render could have started; at most 60 s back), not with the time it lands. A revalidation
//! that happens during the render is therefore later than the entry, and the entry comes back
//! expired (or stale) instead of fresh. This compares wall clocks of different machines, as Next
//! itself does: keep them NTP-synchronised.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use crate::error::Error;
use crate::handler::{bump, Core};
use crate::tags::{FeedEvent, FeedRecord};

/// Further behind than this, a process drops its memory instead of replaying.
pub const MAX_CATCHUP: u64 = 1_000;
/// How long a hole in the sequence may stay open before the process stops waiting for it.
pub const GAP_GRACE_MS: i64 = 2_000;

/// Polls until the core is dropped, at a fixed rate (one poll per `feedIntervalMs`, however long
/// each poll takes), so the read rate never exceeds 1000 / `feedIntervalMs` per second.
pub async fn run(core: Weak<Core>) {
    let period = match core.upgrade() {
        Some(c) if c.cfg.feed_interval_ms > 0 => Duration::from_millis(c.cfg.feed_interval_ms),
        _ => return,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(core) = core.upgrade() else { return };
        let limit = Duration::from_millis(core.cfg.feed_stale_after_ms.max(1_000));
        if tokio::time::timeout(limit, core.poll_feed_once()).await.is_err() {
            core.feed_failed(&Error::new(crate::error::ErrorKind::Timeout, "feed poll timed out"));
        }
    }
}

impl Core {
    /// One round of the poller: read the head, apply what is new.
    pub async fn poll_feed_once(&self) {
        if self.cfg.feed_interval_ms == 0 {
            return;
        }
        bump(&self.stats.feed_polls);
        let b = self.backends().await;
        let head = match b.tags.feed_head().await {
            Ok(h) => h,
            Err(e) => return self.feed_failed(&e),
        };
        let now = self.now();
        let f = &self.feed;
        if !f.started.load(Ordering::Acquire) {
            self.clear_memory();
            f.cursor.store(head, Ordering::Release);
            f.started.store(true, Ordering::Release);
            return self.feed_ok(now);
        }
        let cursor = f.cursor.load(Ordering::Acquire);
        if head < cursor {
            return self.reset_feed(head, "the feed counter went backwards (table recreated?)");
        }
        if head > cursor + MAX_CATCHUP {
            return self.reset_feed(head, "more than 1000 events behind");
        }
        if head > cursor {
            let events = match b.tags.read_feed(cursor + 1, head).await {
                Ok(e) => e,
                Err(e) => return self.feed_failed(&e),
            };
            let mut next = cursor + 1;
            for (seq, rec) in events {
                if seq < next {
                    continue;
                }
                if seq != next {
                    break;
                }
                self.apply(rec);
                next += 1;
            }
            f.cursor.store(next - 1, Ordering::Release);
            if next - 1 < head {
                let since = f.gap_since.load(Ordering::Acquire);
                if since == 0 {
                    f.gap_since.store(now, Ordering::Release);
                } else if now - since > GAP_GRACE_MS {
                    return self.reset_feed(head, "a feed event never arrived");
                }
            } else {
                f.gap_since.store(0, Ordering::Release);
            }
        }
        self.feed_ok(now);
    }

    fn apply(&self, rec: FeedRecord) {
        if rec.origin == self.instance_id {
            return;
        }
        bump(&self.stats.feed_events);
        match rec.event {
            FeedEvent::Tags { states } => {
                for (tag, st) in states {
                    if self.tag_clock().get(&tag).is_some() {
                        self.tag_clock().merge(&tag, st);
                    }
                }
            }
            FeedEvent::Key { key, last_modified } => {
                if let Some(e) = self.l1().get(&key) {
                    if e.last_modified < last_modified && self.l1().remove(&key) {
                        bump(&self.stats.feed_evictions);
                    }
                }
                self.forget_lease(&key);
            }
        }
    }

    fn feed_ok(&self, now: i64) {
        self.feed.last_ok.store(now, Ordering::Release);
        self.feed.trusting.store(true, Ordering::Release);
    }

    pub(crate) fn feed_failed(&self, e: &Error) {
        bump(&self.stats.feed_errors);
        let now = self.now();
        let last_ok = self.feed.last_ok.load(Ordering::Acquire);
        if self.feed.trusting.load(Ordering::Acquire) && now - last_ok > self.cfg.feed_stale_after_ms as i64 {
            self.feed.trusting.store(false, Ordering::Release);
            self.clear_memory();
            bump(&self.stats.feed_resets);
            self.log("feed unreadable, memory dropped until it is back", &e.to_string());
        } else {
            self.log("feed poll failed", &e.to_string());
        }
    }

    fn reset_feed(&self, head: u64, why: &str) {
        self.clear_memory();
        self.feed.cursor.store(head, Ordering::Release);
        self.feed.gap_since.store(0, Ordering::Release);
        bump(&self.stats.feed_resets);
        self.log("feed reset, memory dropped", why);
        self.feed_ok(self.now());
    }
}
