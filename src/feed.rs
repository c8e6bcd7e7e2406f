//! The change feed poller: keeps this process's memory honest about what other instances did.
//!
//! [`Feed`] owns where this process stands in the feed (cursor, gaps, whether it is being read)
//! and answers the one question the request path asks: may memory be served now
//! ([`Feed::trusted`])? It reads through the [`TagStore`] and applies events to the memory it is
//! given ([`Memory`]: the in-memory tier, the tag clock, the regeneration leases). It knows
//! nothing of the handler: the core implements [`FeedHost`] and starts [`run`].
//!
//! Every `revalidateTag` and every `set` appends an event to an ordered log in the tag store
//! (numbers from an atomic counter, not wall clocks). Each process runs one task that, once per
//! `feedIntervalMs` — a cost independent of request traffic — reads the events after its cursor
//! from its copy of the feed (one request; see `feedCopies`) and applies them: tag states are
//! joined into the local tag clock, and in-memory copies of a rewritten key that are not of that
//! write (by the write's id) are evicted, so the next `get` loads the object S3 holds. Every
//! [`HEAD_CHECK_MS`] it also reads the counter, which tells how far the feed goes.
//!
//! ## Why the poll reads events, not the counter (a departure from DESIGN.md)
//! DESIGN.md has each poll read the counter and read events only when it moved. At a fleet's
//! scale that makes two items hot: the counter, read by every instance 4 times a second (one
//! item serves at most 3,000 read units a second: about 750 instances), and the current event
//! page, queried by every instance whenever the counter moved. Reading the events directly costs
//! the same one read unit when there are none, saves a round trip when there are, and lets the
//! events be written to `feedCopies` items, each read by its share of the fleet; the counter is
//! read every 2 s only (`docs/scaling.md` has the numbers and the simulation that checks them).
//!
//! ## Late joiners, gaps and outages — the choice made here: drop memory
//! - A process starts at the counter's current head and drops whatever it loaded before its
//!   first successful read of the counter; until then nothing is served from memory (every get
//!   reads S3 and the tag states). Anything older than the head is already in the tag store and
//!   S3, which every load reads strongly consistently, so a late joiner honours every earlier
//!   revalidation.
//! - A process more than 1,000 events behind, or that finds a hole in the sequence that is not
//!   filled within 2 s (a writer died between taking its number and writing the row, its write
//!   failed and waits in its outbox, or rows expired), drops its memory and jumps to the head. It
//!   keeps reading the holes it gave up on for [`HOLE_MEMORY_MS`] (2 min) and applies an event
//!   that arrives late: a writer retrying after an outage writes at the number it took for
//!   `outbox::SEQ_REUSE_MS` (1 min), then takes a new one. A revalidation's tag state and its
//!   event land together (one transaction), so a state change is never visible without its event.
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
//! A `set` carries two times: when it landed (`last_modified`, what Next counts the time window
//! from, as its built-in does) and the time of the latest `get` of its key in this process
//! (`rendered_at`: the moment its render could have started; at most 60 s back). Revalidations
//! are compared with the second: one that happens during the render is later than it, and the
//! entry comes back expired (or stale) instead of fresh. (The render start used to stamp
//! both, so a slow render turned stale up to its own duration early.) This compares wall clocks
//! of different machines, as Next itself does: keep them NTP-synchronised.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use crate::backend::tags::{feed_page_end, FeedEvent, FeedRecord, TagStore};
use crate::clock::Clock;
use crate::error::Error;
use crate::l1::L1;
use crate::stats::{bump, Stats};
use crate::tag_clock::TagClock;

/// Further behind than this, a process drops its memory instead of replaying.
pub const MAX_CATCHUP: u64 = 1_000;
/// How long a hole in the sequence may stay open before the process stops waiting for it.
pub const GAP_GRACE_MS: i64 = 2_000;
/// After giving up on a hole, a process still checks it this long and applies the event if it
/// arrives (a writer retrying after an outage writes at the number it reserved, for
/// `outbox::SEQ_REUSE_MS`, which is shorter).
pub const HOLE_MEMORY_MS: i64 = 120_000;
/// Holes remembered at most (older ones are forgotten first).
const MAX_HOLES: usize = 1_000;
/// Keys whose last rewrite is remembered (see `Memory::marks`); past it the map starts afresh.
const MAX_KEY_MARKS: usize = 100_000;
/// Remembered holes read again per poll (one batched read).
const HOLES_PER_POLL: usize = 100;
/// How often a poll also reads the head item (the counter): the events themselves come from this
/// process's copy of the current page, which is the poll. The head tells how far the feed goes:
/// a hole at the very end of a page, or a process more than [`MAX_CATCHUP`] behind, is seen by
/// this read. Every 2 s keeps the fleet's reads of that one item at half an instance's polls /
/// 8 (2,000 instances: 1,000 reads a second, a third of one item's limit).
pub const HEAD_CHECK_MS: i64 = 2_000;
/// The longest a poll waits for one of its reads (bounded further so that a breaker's worth of
/// abandoned reads fits inside `feedStaleAfterMs`: when a black-holed DynamoDB makes the feed
/// stale, the breaker is already open and no request waits on a read that cannot answer).
const HEAD_TIMEOUT_MS: u64 = 1_000;

/// This process's memory, as the feed keeps it honest, and where the feed reports: one struct
/// the core owns (`Core::mem`) and the feed reads.
pub struct Memory {
    pub l1: L1,
    pub tag_clock: TagClock,
    /// Regeneration leases known here: key → (until, held by this instance).
    pub leases: DashMap<String, (i64, bool)>,
    /// This instance's writes not yet known to be in S3, by key. An event of an earlier write of
    /// its own does not evict such a copy: S3 cannot hold this write yet, and its own event
    /// follows when it lands (during an S3 outage, a set queued in the outbox would otherwise be
    /// evicted by the event of the write before it and the instance would serve a miss, or the
    /// older page). The crossing is noted instead, and the copy goes when this write lands, since
    /// this write and the other may then have landed in either order.
    pub unlanded: DashMap<String, Unlanded>,
    pub stats: Arc<Stats>,
    pub clock: Arc<dyn Clock>,
    /// Bumped on every drop: a load that read S3 or the tag states before a drop must not put
    /// what it read back afterwards (the events it would have needed were skipped).
    pub epoch: AtomicU64,
    /// Key events applied (a counter), and the count at which each key was last rewritten: a load
    /// that read a key's object before its rewrite was applied does not keep what it read.
    pub marks: (AtomicU64, DashMap<String, u64>),
    /// From a change being made elsewhere to its event being applied here.
    pub feed_lag: crate::metrics::SharedHistogram,
    /// Events applied that a receipt waits for, not acknowledged yet (the core writes the acks
    /// after the poll that applied them).
    pub acks: parking_lot::Mutex<Vec<u64>>,
}

impl Memory {
    /// Empty memory with a budget of `memory_bytes` for the in-memory tier.
    pub fn new(memory_bytes: usize, stats: Arc<Stats>, clock: Arc<dyn Clock>) -> Memory {
        Memory {
            l1: L1::new(memory_bytes),
            tag_clock: TagClock::default(),
            leases: DashMap::new(),
            unlanded: DashMap::new(),
            stats,
            clock,
            epoch: AtomicU64::new(0),
            marks: (AtomicU64::new(0), DashMap::new()),
            feed_lag: Default::default(),
            acks: Default::default(),
        }
    }
}

/// A write of this instance not yet known to be in S3 (see [`Memory::unlanded`]).
#[derive(Debug, Clone, Copy)]
pub struct Unlanded {
    pub write_id: u64,
    /// An event of another of this instance's writes of the key was applied meanwhile.
    pub crossed: bool,
}

impl Memory {
    fn drop_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.l1.clear();
        self.tag_clock.clear();
        self.leases.clear();
    }
    fn log(&self, what: &str, msg: &str) {
        crate::log::warn(what, msg);
    }
}

/// Where this process stands in the change feed.
pub struct Feed {
    interval_ms: u64,
    stale_after_ms: u64,
    /// This core's id: its own events are not applied again.
    origin: String,
    /// Newest event applied; valid once `started`.
    cursor: AtomicU64,
    started: AtomicBool,
    /// Memory is served only while this holds (the feed is being read, or there is none).
    trusting: AtomicBool,
    last_ok: AtomicI64,
    /// When a hole in the sequence was first seen (0 = none).
    gap_since: AtomicI64,
    /// Holes given up on, with when: read again each poll for [`HOLE_MEMORY_MS`].
    holes: parking_lot::Mutex<Vec<(u64, i64)>>,
    /// The head as last read, and when (see [`HEAD_CHECK_MS`]).
    head: AtomicU64,
    head_read_at: AtomicI64,
}

/// The owner of a feed as the poller task sees it (the core).
pub trait FeedHost: Send + Sync + 'static {
    fn feed(&self) -> &Feed;
    /// One round: read the head through the host's tag store, apply what is new.
    fn poll_feed_once(&self) -> impl Future<Output = ()> + Send;
    /// A round took longer than the feed's staleness limit.
    fn feed_timed_out(&self);
}

/// Polls until the host is dropped, at a fixed rate (one poll per `feedIntervalMs`, however long
/// each poll takes), so the read rate never exceeds 1000 / `feedIntervalMs` per second.
pub async fn run<H: FeedHost>(host: Weak<H>) {
    let (period, limit) = match host.upgrade() {
        Some(h) if h.feed().enabled() => {
            let f = h.feed();
            (Duration::from_millis(f.interval_ms), Duration::from_millis(f.stale_after_ms.max(1_000)))
        }
        _ => return,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(h) = host.upgrade() else { return };
        if tokio::time::timeout(limit, h.poll_feed_once()).await.is_err() {
            h.feed_timed_out();
        }
    }
}

impl Feed {
    /// A feed polled every `interval_ms` (0: no feed, memory trusted from the start).
    pub fn new(interval_ms: u64, stale_after_ms: u64, origin: String) -> Feed {
        Feed {
            interval_ms,
            stale_after_ms,
            origin,
            cursor: AtomicU64::new(0),
            started: AtomicBool::new(false),
            trusting: AtomicBool::new(interval_ms == 0),
            last_ok: AtomicI64::new(0),
            gap_since: AtomicI64::new(0),
            holes: parking_lot::Mutex::new(Vec::new()),
            head: AtomicU64::new(0),
            head_read_at: AtomicI64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.interval_ms > 0
    }

    /// May memory be served now?
    /// The newest event applied (0 before the first poll).
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    pub fn trusted(&self) -> bool {
        self.trusting.load(Ordering::Acquire)
    }

    /// How far behind the feed's head this instance may be (ms): the time since it last held
    /// every event the feed had (its last poll that read to the head, or, while it waits for an
    /// event not written yet, since it began to wait). 0 without a feed or before the first poll.
    /// Unlike the per-event lag histogram, it grows while nothing is applied.
    pub fn behind_ms(&self, now: i64) -> i64 {
        if !self.enabled() || !self.started.load(Ordering::Acquire) {
            return 0;
        }
        let gap = self.gap_since.load(Ordering::Acquire);
        let since = if gap > 0 { gap } else { self.last_ok.load(Ordering::Acquire) };
        (now - since).max(0)
    }

    /// One round of the poller: read this process's copy of the feed past the cursor (and the
    /// head every [`HEAD_CHECK_MS`]), apply what is new. Returns whether memory was dropped (a
    /// reset, or the feed unreadable for too long).
    pub async fn poll_once(&self, tags: &dyn TagStore, m: &Memory) -> bool {
        if !self.enabled() {
            return false;
        }
        bump(&m.stats.feed_polls);
        let now = m.clock.now_ms();
        let started = self.started.load(Ordering::Acquire);
        let mut fresh_head = None;
        if !started || now - self.head_read_at.load(Ordering::Acquire) >= HEAD_CHECK_MS {
            let head = match self.bounded("feed head", tags.feed_head()).await {
                Ok(h) => h,
                Err(e) => return self.failed(&e, m),
            };
            self.head.store(head, Ordering::Release);
            self.head_read_at.store(now, Ordering::Release);
            fresh_head = Some(head);
        }
        if !started {
            m.drop_all();
            self.cursor.store(fresh_head.unwrap_or(0), Ordering::Release);
            self.started.store(true, Ordering::Release);
            self.ok(now);
            return true;
        }
        let cursor = self.cursor.load(Ordering::Acquire);
        if let Some(head) = fresh_head {
            if head < cursor {
                return self.reset(head, "the feed counter went backwards (table recreated?)", m);
            }
            if head > cursor + MAX_CATCHUP {
                return self.reset(head, "more than 1000 events behind", m);
            }
        }
        // The poll proper: this copy's page from the cursor on, and the next page when that one
        // is read to its end (a process catching up reads at most MAX_CATCHUP events a poll).
        let mut events = Vec::new();
        let mut from = cursor + 1;
        loop {
            let page = match self.bounded("feed page", tags.read_feed_page(from)).await {
                Ok(e) => e,
                Err(e) => return self.failed(&e, m),
            };
            let page_end = feed_page_end(from);
            // Read on when this page is read to its end (a hole at a page's end is found through
            // the head, like one with nothing after it).
            let full = page.last().is_some_and(|(s, _)| *s == page_end);
            events.extend(page);
            if !full || page_end + 1 > cursor + MAX_CATCHUP {
                break;
            }
            from = page_end + 1;
        }
        let seen = events.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let head = self.head.fetch_max(seen, Ordering::AcqRel).max(seen);
        if head > cursor {
            let mut next = cursor + 1;
            // Events past the first hole: not applied now (the cursor stays before the hole).
            let mut later = std::collections::HashSet::new();
            for (seq, rec) in events {
                if seq < next {
                    continue;
                }
                if seq != next {
                    later.insert(seq);
                    continue;
                }
                self.apply(seq, rec, m);
                next += 1;
            }
            self.cursor.store(next - 1, Ordering::Release);
            if next - 1 < head {
                crate::log::debug("feed", || {
                    format!("event {next} not written yet: {} later event(s) wait for it", later.len())
                });
                // The clock runs while the cursor is stuck at one number: a stream of writes that
                // keeps numbers reserved ahead of the written ones (a wide revalidation, 4 units
                // at a time) moves the cursor on, and is not a hole however long it lasts.
                let since = self.gap_since.load(Ordering::Acquire);
                if since == 0 || next - 1 > cursor {
                    self.gap_since.store(now, Ordering::Release);
                } else if now - since > GAP_GRACE_MS {
                    // Give up on the holes, but keep looking for them: a writer may still fill one.
                    let mut holes = self.holes.lock();
                    holes.extend((next..=head).filter(|s| !later.contains(s)).map(|s| (s, now)));
                    let excess = holes.len().saturating_sub(MAX_HOLES);
                    holes.drain(..excess);
                    drop(holes);
                    return self.reset(head, "a feed event never arrived (if only some instances report this, check that `feedCopies` is the same on all of them)", m);
                }
            } else {
                self.gap_since.store(0, Ordering::Release);
            }
        }
        self.recheck_holes(tags, m, now).await;
        self.ok(now);
        false
    }

    /// A read of the poll, abandoned after [`HEAD_TIMEOUT_MS`] (less when `feedStaleAfterMs` is
    /// short: a breaker's worth of abandoned reads fits inside it).
    async fn bounded<T>(
        &self,
        what: &str,
        read: impl Future<Output = crate::error::Result<T>>,
    ) -> crate::error::Result<T> {
        let limit = HEAD_TIMEOUT_MS.min(self.stale_after_ms / u64::from(crate::backend::breaker::THRESHOLD)).max(100);
        match tokio::time::timeout(Duration::from_millis(limit), read).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(crate::error::ErrorKind::Timeout, format!("{what}: no answer in {limit} ms"))),
        }
    }

    /// Reads remembered holes again and applies the events that have arrived since.
    async fn recheck_holes(&self, tags: &dyn TagStore, m: &Memory, now: i64) {
        let due: Vec<u64> = {
            let mut holes = self.holes.lock();
            holes.retain(|(_, since)| now - since <= HOLE_MEMORY_MS);
            let due = holes.iter().take(HOLES_PER_POLL).map(|(s, _)| *s).collect();
            let n = holes.len().min(HOLES_PER_POLL);
            holes.rotate_left(n); // the next poll reads the next ones
            due
        };
        if due.is_empty() {
            return;
        }
        if let Ok(found) = tags.read_events(&due).await {
            for (s, rec) in found {
                self.apply(s, rec, m);
                self.holes.lock().retain(|(h, _)| *h != s);
            }
        }
    }

    /// Holes this process gave up on and still looks for.
    pub fn holes(&self) -> usize {
        self.holes.lock().len()
    }

    fn apply(&self, seq: u64, rec: FeedRecord, m: &Memory) {
        let own = rec.origin == self.origin;
        if !own && rec.ack {
            m.acks.lock().push(seq);
        }
        if !own {
            bump(&m.stats.feed_events);
            if rec.at > 0 {
                m.feed_lag.observe_ms((m.clock.now_ms() - rec.at) as f64);
            }
            crate::log::debug("feed", || {
                let what = match &rec.event {
                    FeedEvent::Tags { states } => {
                        let first = states.iter().next().map(|(t, st)| format!("{t} {st:?}")).unwrap_or_default();
                        format!(
                            "revalidation of {} tag(s) ({first}{})",
                            states.len(),
                            if states.len() > 1 { ", …" } else { "" }
                        )
                    }
                    FeedEvent::Key { key, .. } => format!("set of {key}"),
                };
                format!("applied a {what} from {}, {} ms after it was made", rec.origin, m.clock.now_ms() - rec.at)
            });
        }
        match rec.event {
            // Our own revalidations are in the tag clock already.
            FeedEvent::Tags { .. } if own => {}
            // Every tag, known here or not: a load that read a tag's state just before this event
            // landed merges that older state later, and the join keeps this one.
            FeedEvent::Tags { states } => {
                for (tag, st) in states {
                    m.tag_clock.merge(&tag, st);
                }
            }
            FeedEvent::Key { key, last_modified, write_id } => {
                // A key too long for an event came hashed: the copy held here is found by it.
                let key = match crate::backend::tags::hashed_event_key(&key) {
                    Some(hash) => m.l1.find_hashed(hash).unwrap_or(key),
                    None => key,
                };
                let mark = m.marks.0.fetch_add(1, Ordering::AcqRel) + 1;
                if m.marks.1.len() >= MAX_KEY_MARKS {
                    m.marks.1.clear();
                }
                m.marks.1.insert(key.clone(), mark);
                // Any copy but the one this write made goes (ours included: when two of our own
                // writes race, S3 may hold the earlier), so that every instance converges on the
                // object S3 holds, whichever write landed last.
                if let Some(e) = m.l1.get(&key) {
                    // The same write with a later freshness (a render of the same bytes moved
                    // it, see `BlobStore::stamp`) goes too: S3's copy carries the new one.
                    let other = if write_id != 0 && e.write_id != 0 {
                        e.write_id != write_id || e.last_modified < last_modified
                    } else {
                        e.last_modified < last_modified
                    };
                    // Our own earlier write's event, while this copy's write is not in S3 yet.
                    let kept = own
                        && other
                        && m.unlanded.get_mut(&key).is_some_and(|mut u| {
                            let pending = u.write_id == e.write_id && u.write_id != write_id;
                            u.crossed |= pending;
                            pending
                        });
                    if other && !kept && m.l1.remove(&key) {
                        bump(&m.stats.feed_evictions);
                    }
                }
                if !own {
                    m.leases.remove(&key);
                }
            }
        }
    }

    fn ok(&self, now: i64) {
        self.last_ok.store(now, Ordering::Release);
        self.trusting.store(true, Ordering::Release);
    }

    /// A poll failed. Past `feedStaleAfterMs` without a successful read, memory is dropped and not
    /// served until the feed is read again; returns whether that happened now.
    pub fn failed(&self, e: &Error, m: &Memory) -> bool {
        bump(&m.stats.feed_errors);
        let now = m.clock.now_ms();
        let last_ok = self.last_ok.load(Ordering::Acquire);
        if self.trusting.load(Ordering::Acquire) && now - last_ok > self.stale_after_ms as i64 {
            self.trusting.store(false, Ordering::Release);
            m.drop_all();
            bump(&m.stats.feed_resets);
            m.log("feed unreadable, memory dropped until it is back", &e.to_string());
            true
        } else {
            m.log("feed poll failed", &e.to_string());
            false
        }
    }

    fn reset(&self, head: u64, why: &str, m: &Memory) -> bool {
        m.drop_all();
        self.cursor.store(head, Ordering::Release);
        self.gap_since.store(0, Ordering::Release);
        bump(&m.stats.feed_resets);
        m.log("feed reset, memory dropped", why);
        self.ok(m.clock.now_ms());
        true
    }
}
