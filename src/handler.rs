//! napi-free orchestration of `get` / `set` / `revalidateTag`, and the one home of the fail-open
//! policy:
//! - `get` never fails. A backend error, a corrupt object or a passed deadline is a counted,
//!   logged miss — or, when this process still holds a copy in memory, that copy.
//! - `set` keeps the new value in memory first (this instance serves it even if S3 is down), then
//!   writes S3, then the tag index; failures are returned as values for the JS face to log.
//! - `revalidateTag` applies to the local tag clock at once, then to the `TagStore`; a failure
//!   there is returned, because the rest of the fleet has not heard of it.
//!
//! The build registry and seeding are in `deploy.rs`, store construction in `stores.rs`, and the
//! change feed's poller in `feed.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;

use crate::cdn::{self, PageKind};
use crate::clock::{Clock, SystemClock};
use crate::codec;
use crate::config::Config;
use crate::entry::{evaluate, CacheControl, Entry, TagState, Value, Verdict};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{self, Feed, FeedHost};
use crate::keys::{self, Class};
use crate::l1::L1;
use crate::metrics::{self, Kind, Sample};
use crate::outbox::{self, Claim, Outbox, Work};
use crate::purge::{self, Purger, Target};
use crate::stats::{self, bump, Reading, Stats};
use crate::store::BlobStore;
use crate::stores::Backends;
use crate::tag_clock::TagClock;
use crate::tags::{self, FeedEvent, FeedRecord, IndexRow, TagStore};

/// What `get` was asked.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    pub key: String,
    /// `ctx.kind` (`APP_PAGE`, `FETCH`, …), used for the storage namespace.
    pub kind: Option<String>,
    /// FETCH `ctx.tags`.
    pub tags: Vec<String>,
    /// FETCH `ctx.softTags`.
    pub soft_tags: Vec<String>,
    /// FETCH `ctx.revalidate`.
    pub revalidate: Option<f64>,
}

/// What `get` answers.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Return this entry, with `last_modified` as given (moved back when a tag is stale).
    /// `gen` names the in-memory copy (0 = none): the same `gen` always means the same bytes.
    Hit { entry: Arc<Entry>, last_modified: i64, gen: u64 },
    /// Return `null`.
    Miss,
}

/// The synchronous answer: either final, or "ask again asynchronously".
#[derive(Debug, Clone)]
pub enum SyncLookup {
    Done(Lookup),
    NeedsBackend,
}

pub struct Core {
    pub cfg: Config,
    clock: Arc<dyn Clock>,
    l1: L1,
    tag_clock: TagClock,
    pub(crate) backends: tokio::sync::OnceCell<Backends>,
    /// (tag, key) index rows this process wrote, with when; rewritten after half the TTL.
    indexed: DashMap<(String, String), i64>,
    pub stats: Stats,
    /// Unique per process and core: tells our own feed events from others'.
    pub instance_id: String,
    pub feed: Feed,
    /// Revalidations and feed events on their way to DynamoDB, and uploads of failed `set`s on
    /// their way to S3 (retried until they land).
    outbox: Outbox,
    /// Memory drops so far (see `feed::Memory::epoch`).
    epoch: AtomicU64,
    /// Key events applied so far, and the count at which each key was last rewritten.
    feed_marks: AtomicU64,
    key_marks: DashMap<String, u64>,
    /// Every revalidation made here, kept apart from the tag clock: dropping memory (a feed
    /// reset) never makes this instance forget what it revalidated itself, landed or not.
    pinned: TagClock,
    /// When each key was last asked for: a `set` that follows is stamped with the time its
    /// render could have started, so a revalidation during the render is not overtaken.
    render_starts: DashMap<String, i64>,
    /// Regeneration leases known here: key → (until, held by this instance).
    leases: DashMap<String, (i64, bool)>,
    /// This instance's writes not yet known to be in S3 (written now, or queued in the outbox):
    /// key → their write. See `feed::Memory::unlanded`.
    unlanded: DashMap<String, feed::Unlanded>,
    /// Namespace of page/route entries: the configured build ID, or the one Next's first
    /// handler construction reveals (`adopt_build_id`).
    build_id: parking_lot::RwLock<String>,
    build_id_adopted: AtomicBool,
    /// The change feed's lag, as this instance applies others' events.
    pub feed_lag: crate::metrics::SharedHistogram,
    /// CDN invalidations (`cdn.*`): set when CloudFront is configured or a hook is given.
    purger: std::sync::OnceLock<Arc<Purger>>,
}

/// Of `revalidateTimeoutMs`, what is kept for the answer to reach the caller's promise.
const SETTLE_MARGIN_MS: u64 = 100;

/// How long a breaker probe may take.
const PROBE_TIMEOUT_MS: u64 = 2_000;

/// Units the retry task attempts at once.
const RETRY_BATCH: usize = 16;

/// How one attempt at an outbox unit ended.
enum Attempt {
    Landed,
    Queued(Error),
    GaveUp(Error),
}

/// A factor in [0.5, 1.5) for retry jitter, from the clock's low bits (no RNG dependency).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    0.5 + (nanos % 1_000) as f64 / 1_000.0
}

/// The retry task: attempts due outbox units until the core is dropped.
async fn retry_outbox(core: std::sync::Weak<Core>) {
    loop {
        tokio::time::sleep(Duration::from_millis(outbox::FIRST_BACKOFF_MS as u64 / 2)).await;
        let Some(c) = core.upgrade() else { return };
        if c.outbox.depth() > 0 {
            c.retry_outbox_once().await;
        }
        c.probe_breakers().await;
    }
}

/// A `set` more than this long after the last `get` of its key is stamped with its own time.
const RENDER_WINDOW_MS: i64 = 60_000;
const MAX_TRACKED_KEYS: usize = 100_000;

fn new_instance_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    keys::sha256_hex(&format!("{}-{}-{}", std::process::id(), nanos, N.fetch_add(1, Ordering::Relaxed)))[..16]
        .to_string()
}

const MAX_INDEXED_MEMO: usize = 100_000;

impl Core {
    pub fn new(cfg: Config) -> Core {
        if cfg.build_phase_local {
            crate::log::notice_once(
                "build phase",
                "next build: entries stay in this process, nothing is written to the shared store (fill it in the deploy step with `fleetcache seed`)",
            );
        }
        Core::with_clock(cfg, Arc::new(SystemClock))
    }

    pub fn with_clock(cfg: Config, clock: Arc<dyn Clock>) -> Core {
        let instance_id = new_instance_id();
        let feed = Feed::new(cfg.feed_interval_ms, cfg.feed_stale_after_ms, instance_id.clone());
        // Queued uploads of failed `set`s hold at most a quarter of the memory budget.
        let outbox = Outbox::new(outbox::DEFAULT_CAPACITY).with_upload_limit(cfg.memory_bytes / 4);
        let core = Core {
            l1: L1::new(cfg.memory_bytes),
            cfg,
            clock,
            tag_clock: TagClock::default(),
            backends: tokio::sync::OnceCell::new(),
            indexed: DashMap::new(),
            stats: Stats::default(),
            instance_id,
            feed,
            outbox,
            epoch: AtomicU64::new(0),
            feed_marks: AtomicU64::new(0),
            key_marks: DashMap::new(),
            pinned: TagClock::default(),
            render_starts: DashMap::new(),
            leases: DashMap::new(),
            unlanded: DashMap::new(),
            build_id: parking_lot::RwLock::new(String::new()),
            build_id_adopted: AtomicBool::new(false),
            feed_lag: Default::default(),
            purger: std::sync::OnceLock::new(),
        };
        *core.build_id.write() = core.cfg.build_id.clone();
        core
    }

    /// Uses these stores instead of the configured ones (tests).
    pub fn with_backends(
        cfg: Config,
        clock: Arc<dyn Clock>,
        blobs: Arc<dyn BlobStore>,
        tags: Arc<dyn TagStore>,
    ) -> Core {
        let core = Core::with_clock(cfg, clock);
        let _ = core.backends.set(Backends { blobs, tags, breakers: None });
        core
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn object_key(&self, class: Class, key: &str) -> String {
        keys::object_key_with(&self.cfg.prefix, &self.build_id.read(), class, key, self.cfg.share_fetch_across_builds)
    }

    /// Takes Next's build ID (from `.next/BUILD_ID`) unless one was configured or adopted
    /// already; returns the build ID in force.
    pub fn adopt_build_id(&self, id: &str) -> String {
        if let Err(e) = crate::config::check_build_id(id) {
            self.log("BUILD_ID not adopted", &format!("Next's build ID {e}; keeping {:?}", self.build_id()));
            return self.build_id();
        }
        if !self.cfg.build_id_explicit && !self.build_id_adopted.swap(true, Ordering::AcqRel) {
            *self.build_id.write() = id.to_string();
        }
        self.build_id()
    }

    pub fn build_id(&self) -> String {
        self.build_id.read().clone()
    }

    /// A fresh nonzero id for one write, unique across the fleet in practice (64 random-looking
    /// bits from this core's id, a counter and the time).
    fn new_write_id(&self) -> u64 {
        static N: AtomicU64 = AtomicU64::new(0);
        let h = keys::sha256_hex(&format!("{}-{}-{}", self.instance_id, N.fetch_add(1, Ordering::Relaxed), self.now()));
        u64::from_str_radix(&h[..16], 16).unwrap_or(1).max(1)
    }

    pub(crate) fn log(&self, what: &str, msg: &str) {
        crate::log::warn(what, msg);
    }

    /// `known` (a tag's state as this process knows it) joined with what this instance revalidated
    /// itself (`pinned`), which no memory drop forgets.
    fn with_own(&self, tag: &str, known: Option<TagState>) -> Option<TagState> {
        let own = if self.pinned.is_empty() { None } else { self.pinned.get(tag) };
        match (known, own) {
            (Some(k), Some(o)) => Some(k.join(&o)),
            (k, o) => k.or(o),
        }
    }

    fn all_tags<'a>(entry: &'a Entry, req: &'a GetRequest) -> impl Iterator<Item = &'a String> {
        entry.tags.iter().chain(req.tags.iter()).chain(req.soft_tags.iter())
    }

    /// Judges `entry` with the tag states in the clock; `None` if some tag is unknown and
    /// `unknown_as_fresh` is false, or if a regeneration lease must be asked for first.
    fn judge(&self, entry: &Arc<Entry>, gen: u64, req: &GetRequest, unknown_as_fresh: bool) -> Option<Lookup> {
        let mut states: Vec<TagState> = Vec::new();
        for t in Self::all_tags(entry, req) {
            match self.tag_clock.get(t) {
                Some(s) => states.push(self.with_own(t, Some(s)).unwrap_or(s)),
                None if unknown_as_fresh => states.extend(self.with_own(t, None)),
                None => return None,
            }
        }
        let now = self.now();
        let verdict = evaluate(entry, states.iter(), req.revalidate, now);
        Some(match verdict {
            Verdict::Fresh => {
                if self.needs_lease(entry, req, now) {
                    match self.live_lease(&entry.key, now)? {
                        true => Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen },
                        // Another instance is regenerating: serve as fresh meanwhile.
                        false => Lookup::Hit { entry: entry.clone(), last_modified: now, gen },
                    }
                } else {
                    Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen }
                }
            }
            Verdict::Stale { last_modified } => {
                // Stale by a revalidation (`revalidateTag(t, 'max')`): one regeneration per key
                // too. The lease holder is told it is stale (its Next regenerates); the others
                // serve it as fresh until the holder's `set` arrives or the lease runs out.
                if self.leases_apply(entry) && !self.live_lease(&entry.key, now)? {
                    return Some(Lookup::Hit { entry: entry.clone(), last_modified: now, gen });
                }
                bump(&self.stats.stale);
                Lookup::Hit { entry: entry.clone(), last_modified, gen }
            }
            Verdict::Expired => {
                bump(&self.stats.expired);
                Lookup::Miss
            }
        })
    }

    /// The lease of `key` known here and not run out: whether this instance holds it (`None`:
    /// none known, it must be asked for).
    fn live_lease(&self, key: &str, now: i64) -> Option<bool> {
        self.leases.get(key).map(|l| *l).filter(|(until, _)| *until >= now).map(|(_, mine)| mine)
    }

    /// Takes the lease of `key` here for a second without asking the store (fail open: when it
    /// cannot be asked, regenerating twice is better than never).
    fn lease_locally(&self, key: &str, now: i64) {
        self.leases.insert(key.to_string(), (now + 1_000, true));
    }

    /// Whether regenerations of `entry` take the one-regenerator lease at all.
    ///
    /// Not `fetch` / `unstable_cache` entries (FETCH): they are read inside another render, and
    /// a page regenerating with a fetch it was told is fresh bakes the old data into a page that
    /// is then fresh for its whole window (issue 24: after `revalidateTag(t, 'max')`, an instance
    /// whose page regeneration met a fetch lease held elsewhere served the old data for good).
    /// Next's own cache refetches a stale fetch inside a regeneration; so does every instance
    /// here. The page's lease still allows one regeneration per page.
    /// Not `'use cache'` results either: Next judges them by time itself, and regenerates them in
    /// the background.
    fn leases_apply(&self, entry: &Entry) -> bool {
        self.cfg.lease_ms != 0
            && !matches!(entry.value, Some(Value::Image { .. } | Value::UseCache { .. } | Value::Fetch { .. }))
    }

    /// Stale by time (Next will regenerate it) and subject to the one-regenerator lease.
    fn needs_lease(&self, entry: &Entry, req: &GetRequest, now: i64) -> bool {
        if !self.leases_apply(entry) {
            return false;
        }
        let Some(rev) = entry.revalidate_seconds(req.revalidate) else {
            return false;
        };
        let lm = entry.last_modified as f64;
        if let Some(expire) = entry.cache_control.and_then(|c| c.expire) {
            if lm + expire * 1000.0 < now as f64 {
                return false; // Next renders this in the foreground anyway
            }
        }
        lm + rev * 1000.0 < now as f64
    }

    /// Asks the tag store for the regeneration lease of `entry`, then judges again.
    async fn judge_with_lease(&self, b: &Backends, entry: &Arc<Entry>, gen: u64, req: &GetRequest) -> Lookup {
        if let Some(l) = self.judge(entry, gen, req, true) {
            return l;
        }
        let now = self.now();
        let until = now + self.cfg.lease_ms as i64;
        // Named by the object key: instances of two builds running side by side regenerate their
        // own build's copy and never wait on each other.
        let name = self.object_key(Class::from_kind(req.kind.as_deref()), &entry.key);
        match b.tags.try_lease(&name, &self.instance_id, now, until).await {
            Ok(lease) => {
                bump(if lease.won { &self.stats.leases_won } else { &self.stats.leases_lost });
                self.leases.insert(entry.key.clone(), (lease.until, lease.won));
            }
            Err(e) => {
                self.log("regeneration lease unavailable", &e.to_string());
                self.lease_locally(&entry.key, now);
            }
        }
        self.judge(entry, gen, req, true).unwrap_or(Lookup::Hit {
            entry: entry.clone(),
            last_modified: entry.last_modified,
            gen,
        })
    }

    fn note_render_start(&self, key: &str) {
        let now = self.now();
        if let Some(mut t) = self.render_starts.get_mut(key) {
            *t = now;
            return;
        }
        if self.render_starts.len() >= MAX_TRACKED_KEYS {
            self.render_starts.clear();
        }
        self.render_starts.insert(key.to_string(), now);
    }

    /// The hit path: memory and the local tag clock only, no network, no await.
    pub fn get_sync(&self, req: &GetRequest) -> SyncLookup {
        self.note_render_start(&req.key);
        if !self.feed.trusted() {
            return SyncLookup::NeedsBackend;
        }
        let Some((entry, gen)) = self.l1.get_with_gen(&req.key) else {
            return SyncLookup::NeedsBackend;
        };
        match self.judge(&entry, gen, req, false) {
            Some(Lookup::Miss) => {
                // Expired by a revalidation. Another instance may have stored a render made after
                // it already: this copy goes, and the async path reads what S3 holds, so that
                // render is served here instead of being made again (computed once per fleet
                // when the instances are not asked at the same moment).
                self.l1.remove_if(&req.key, |e| std::ptr::eq(e, &*entry));
                SyncLookup::NeedsBackend
            }
            Some(l) => {
                bump(&self.stats.memory_hits);
                crate::log::debug("get", || format!("{}: memory hit", req.key));
                SyncLookup::Done(l)
            }
            None => SyncLookup::NeedsBackend,
        }
    }

    /// The miss path, bounded by `getTimeoutMs`. Never fails.
    pub async fn get(&self, req: &GetRequest) -> Lookup {
        self.note_render_start(&req.key);
        let deadline = Duration::from_millis(self.cfg.get_timeout_ms);
        match tokio::time::timeout(deadline, self.load(req)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                if e.kind == ErrorKind::Corrupt {
                    bump(&self.stats.corrupt);
                } else {
                    bump(&self.stats.get_errors);
                }
                self.log("get failed, serving a miss", &format!("{}: {e}", req.key));
                self.fallback(req)
            }
            Err(_) => {
                bump(&self.stats.get_timeouts);
                self.log("get timed out, serving a miss", &format!("{} after {} ms", req.key, self.cfg.get_timeout_ms));
                self.fallback(req)
            }
        }
    }

    /// When the backend failed: the copy in memory (judged by what the clock knows), else a miss.
    /// A `'use cache'` result is never served this way: Next recomputes one it is not given
    /// (inside the render, no page is lost), and a result a revalidation elsewhere expired would
    /// otherwise be served while the tag states cannot be read.
    fn fallback(&self, req: &GetRequest) -> Lookup {
        let entry = self.l1.get_with_gen(&req.key).filter(|(e, _)| !matches!(e.value, Some(Value::UseCache { .. })));
        if let Some((entry, gen)) = entry {
            // A lease that cannot be asked for is taken, as when the lease read fails.
            let judged = self.judge(&entry, gen, req, true).or_else(|| {
                self.lease_locally(&entry.key, self.now());
                self.judge(&entry, gen, req, true)
            });
            if let Some(l @ Lookup::Hit { .. }) = judged {
                bump(&self.stats.served_from_memory_on_error);
                return l;
            }
        }
        bump(&self.stats.misses);
        Lookup::Miss
    }

    async fn load(&self, req: &GetRequest) -> Result<Lookup> {
        let b = self.backends().await;
        // What the feed did while we read: a drop (epoch) or a rewrite of this key (its mark)
        // means what we read may predate an event already applied, so it is used for this
        // answer only and not kept.
        let epoch = self.epoch.load(Ordering::Acquire);
        let mark = self.feed_marks.load(Ordering::Acquire);
        let unchanged = |core: &Core| {
            core.epoch.load(Ordering::Acquire) == epoch && core.key_marks.get(&req.key).is_none_or(|m| *m <= mark)
        };
        let (entry, from_backend) = match self.l1.get(&req.key) {
            Some(e) => (e, false),
            None => {
                let class = Class::from_kind(req.kind.as_deref());
                let Some((bytes, stamp)) = b.blobs.get_stamped(&self.object_key(class, &req.key), codec::MAGIC).await?
                else {
                    bump(&self.stats.misses);
                    crate::log::debug("get", || format!("{}: miss (not in the store; Next renders)", req.key));
                    return Ok(Lookup::Miss);
                };
                let mut entry = self.decode(&bytes)?;
                // A later render of the same bytes moved its freshness (no body was rewritten).
                codec::apply_stamp(&mut entry, stamp.as_deref());
                if entry.key != req.key {
                    return Err(Error::corrupt(format!("object holds key {:?}", entry.key)));
                }
                let entry = Arc::new(entry);
                // Kept even if the tag states cannot be read: the fail-open copy.
                if unchanged(self) {
                    self.l1.insert_if_newer(entry.clone());
                }
                (entry, true)
            }
        };
        let unknown: Vec<String> = {
            let set: HashSet<&String> =
                Self::all_tags(&entry, req).filter(|t| self.tag_clock.get(t).is_none()).collect();
            set.into_iter().cloned().collect()
        };
        if !unknown.is_empty() {
            let states = b.tags.tag_states(&unknown).await?;
            if self.epoch.load(Ordering::Acquire) == epoch {
                for (tag, st) in states {
                    self.tag_clock.merge(&tag, st);
                }
            } else {
                // Judge with what was read (and what this instance revalidated itself), without
                // keeping it.
                let states: Vec<TagState> = Self::all_tags(&entry, req)
                    .filter_map(|t| {
                        let read =
                            states.iter().find(|(n, _)| n == t).map(|(_, s)| *s).or_else(|| self.tag_clock.get(t));
                        self.with_own(t, read)
                    })
                    .collect();
                let verdict = evaluate(&entry, states.iter(), req.revalidate, self.now());
                return Ok(match verdict {
                    Verdict::Fresh => Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen: 0 },
                    Verdict::Stale { last_modified } => Lookup::Hit { entry: entry.clone(), last_modified, gen: 0 },
                    Verdict::Expired => {
                        bump(&self.stats.misses);
                        Lookup::Miss
                    }
                });
            }
        }
        let l = self.judge_with_lease(b, &entry, 0, req).await;
        match &l {
            Lookup::Hit { .. } if from_backend => bump(&self.stats.backend_hits),
            Lookup::Hit { .. } => bump(&self.stats.memory_hits),
            // Expired (by a revalidation or its expire time): Next renders it.
            Lookup::Miss => bump(&self.stats.misses),
        }
        crate::log::debug("get", || {
            let what = match (&l, from_backend) {
                (Lookup::Hit { last_modified, .. }, _) if *last_modified != entry.last_modified => {
                    "stale hit (Next regenerates)"
                }
                (Lookup::Hit { .. }, true) => "S3 hit",
                (Lookup::Hit { .. }, false) => "memory hit",
                (Lookup::Miss, _) => "miss (expired or revalidated; Next renders)",
            };
            format!("{}: {what}", req.key)
        });
        Ok(l)
    }

    /// The entry `set` and `seed` store (tags sorted, deduplicated), or a `TooLarge` error past
    /// `maxEntryBytes`.
    pub(crate) fn storable_entry(
        &self,
        key: String,
        last_modified: i64,
        cache_control: Option<CacheControl>,
        mut tags: Vec<String>,
        value: Option<Value>,
    ) -> Result<Entry> {
        tags.sort();
        tags.dedup();
        let entry = Entry { key, last_modified, cache_control, tags, value, write_id: self.new_write_id() };
        let weight = entry.weight();
        if weight > self.cfg.max_entry_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "{}: entry of {weight} bytes exceeds maxEntryBytes ({}); not stored",
                    entry.key, self.cfg.max_entry_bytes
                ),
            ));
        }
        Ok(entry)
    }

    /// Stores `value` (None = notFound) under `key`.
    pub async fn set(
        &self,
        key: String,
        class: Class,
        value: Option<Value>,
        cache_control: Option<CacheControl>,
        tags: Vec<String>,
    ) -> Result<()> {
        bump(&self.stats.sets);
        let now = self.now();
        let render_start = self.render_starts.remove(&key);
        let last_modified = match (&value, render_start) {
            // Next stamps a `'use cache'` result with when its function started: the render start.
            (Some(Value::UseCache { timestamp, .. }), _) if *timestamp >= 1.0 => (*timestamp as i64).min(now),
            (_, Some((_, t))) if now - t <= RENDER_WINDOW_MS && t <= now => t,
            _ => now,
        };
        // A regeneration lease this instance holds ends with this set (released in the store
        // below, once the render is stored).
        let held_lease = self.leases.remove(&key).is_some_and(|(_, (until, mine))| mine && until >= now);
        let prior = self.l1.get(&key);
        let mut entry = match self.storable_entry(key, last_modified, cache_control, tags, value) {
            Ok(entry) => entry,
            Err(e) => {
                bump(&self.stats.too_large);
                self.log("set refused", &e.context);
                return Err(e);
            }
        };
        // The same bytes as the stored copy (this instance's, which S3 holds: no upload of it
        // waits): no body is written and nothing is purged; only the freshness moves.
        let same = prior.as_ref().is_some_and(|p| p.same_content(&entry));
        let identical = same && prior.as_ref().is_some_and(|p| p.write_id != 0 && !self.outbox.has_upload(&entry.key));
        if let (true, Some(p)) = (identical, &prior) {
            entry.write_id = p.write_id;
        }
        let entry = Arc::new(entry);
        if let (Some(purger), Some(prior), false) = (self.purger.get(), &prior, same) {
            if self.purge_for_set(prior, class, now) {
                if let Some(path) = keys::path_of_key(&entry.key) {
                    let kind = PageKind::of(&entry.key, entry.value.as_ref(), PageKind::Route);
                    let builds = if kind == PageKind::Pages { purger.builds(self).await } else { vec![] };
                    purger.add(cdn::page_paths(&path, kind, &builds, self.cfg.cdn.rsc));
                }
            }
        }
        self.begin_write(&entry);
        self.l1.insert(entry.clone());
        let b = self.backends().await;
        let deadline = Duration::from_millis(self.cfg.set_timeout_ms);
        let object_key = self.object_key(class, &entry.key);
        if identical {
            let stamp = codec::stamp(entry.last_modified, entry.write_id);
            if let Ok(Ok(true)) = tokio::time::timeout(deadline, b.blobs.stamp(&object_key, &stamp)).await {
                bump(&self.stats.identical_sets);
                crate::log::debug("set", || {
                    format!("{}: same bytes as stored; freshness moved, no body written", entry.key)
                });
                return self.stored(&entry, class, held_lease, &object_key).await;
            }
            // Gone meanwhile, or the stamp failed: written in full below.
        }
        let body = match codec::encode(&entry, self.cfg.compression_level) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                self.end_write(&entry, false);
                return Err(e);
            }
        };
        let put = b.blobs.put(&object_key, body.clone(), false);
        let written = match tokio::time::timeout(deadline, put).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => {
                bump(&self.stats.set_timeouts);
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("S3 write past setTimeoutMs ({} ms)", self.cfg.set_timeout_ms),
                ))
            }
        };
        if let Err(e) = written {
            bump(&self.stats.set_errors);
            return self.queue_upload(class, entry, body, e);
        }
        self.stored(&entry, class, held_lease, &object_key).await
    }

    /// What follows a render landing in S3 (written, or its freshness stamped): the tag index,
    /// the feed event that tells the fleet, and the end of this instance's lease of it.
    async fn stored(&self, entry: &Arc<Entry>, class: Class, held_lease: bool, object_key: &str) -> Result<()> {
        self.end_write(entry, true);
        let announce = self.announce(Self::key_event(entry));
        futures::join!(self.index(entry, class), announce, self.release_lease(held_lease, object_key)).1
    }

    /// Notes a write of this instance as not yet in S3 (see `feed::Memory::unlanded`).
    fn begin_write(&self, entry: &Entry) {
        if entry.write_id == 0 {
            return;
        }
        if self.unlanded.len() >= MAX_TRACKED_KEYS {
            self.unlanded.clear(); // forgotten writes are only evicted as before
        }
        self.unlanded.insert(entry.key.clone(), feed::Unlanded { write_id: entry.write_id, crossed: false });
    }

    /// A write of this instance is in S3 (`landed`), or will never be. When an event of another
    /// of this instance's writes of the key was applied meanwhile, which of the two S3 kept is
    /// unknown: the copy goes from memory, and the next read takes what S3 holds.
    fn end_write(&self, entry: &Entry, landed: bool) {
        let ended = self.unlanded.remove_if(&entry.key, |_, u| u.write_id == entry.write_id);
        if let (true, Some((_, u))) = (landed, ended) {
            if u.crossed {
                self.l1.remove_if(&entry.key, |e| e.write_id == entry.write_id);
            }
        }
    }

    /// Ends this instance's regeneration lease of `object_key` in the store when `held`: another
    /// revalidation soon after may then be regenerated by whichever instance serves first (as
    /// Next's own cache would at once), instead of the others serving the old copy as fresh until
    /// the lease runs out. Best effort: a lease not ended runs out by itself.
    async fn release_lease(&self, held: bool, object_key: &str) {
        if !held {
            return;
        }
        let b = self.backends().await;
        if let Err(e) = b.tags.release_lease(object_key, &self.instance_id).await {
            crate::log::debug("set", || format!("{object_key}: lease not released ({e}); it runs out by itself"));
        }
    }

    /// An object read from the store, decoded within what `maxEntryBytes` allows.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Entry> {
        codec::decode(bytes, codec::max_stored_bytes(self.cfg.max_entry_bytes))
    }

    /// Writes `entry`'s tag index rows; a failure is counted and logged, never the caller's.
    async fn index(&self, entry: &Entry, class: Class) {
        if let Err(e) = self.write_index(entry, class).await {
            bump(&self.stats.index_errors);
            self.log("tag index write failed", &format!("{}: {e}", entry.key));
        }
    }

    /// A `set` whose S3 write failed (`why`): the value stays in memory and its upload is queued
    /// in the outbox (resolving the caller), unless a retry cannot help or the queued uploads
    /// already hold a quarter of `memoryBytes` (then it is logged, counted, and `set` rejects).
    fn queue_upload(&self, class: Class, entry: Arc<Entry>, body: Bytes, why: Error) -> Result<()> {
        if !outbox::retryable(&why) {
            // S3 refused the request itself (access, bucket): a retry would not land either.
            self.log("set failed (kept in this instance's memory only)", &format!("{}: {why}", entry.key));
            self.end_write(&entry, false);
            return Err(why);
        }
        let key = entry.key.clone();
        match self.outbox.push(Work::Upload { class, entry: entry.clone(), body }) {
            Ok(claim) => {
                // Queued as is: the retry task uploads it once the backoff allows.
                claim.failed(&why, self.now(), jitter());
                bump(&self.stats.uploads_queued);
                self.log("set's S3 write failed; kept in memory, upload queued", &format!("{key}: {why}"));
                Ok(())
            }
            Err(refused) => {
                bump(&self.stats.uploads_dropped);
                self.end_write(&entry, false);
                let context = format!("{why}; upload not queued (memoryBytes / 4 bounds queued uploads): {refused}");
                self.log("set failed (kept in this instance's memory only)", &context);
                Err(Error { kind: why.kind, retryable: why.retryable, context })
            }
        }
    }

    /// Uploads a queued `set` — unless S3 now holds a render of the key that started no earlier
    /// than this one (another instance's, or a later `set` here): then the unit is done, and this
    /// instance's copy of it evicted, so it serves what S3 holds. The write is conditional on the
    /// version compared (`If-Match` / `If-None-Match`), so a render landing in between is never
    /// overwritten: the unit is compared again on its next attempt.
    async fn upload_queued(&self, class: Class, entry: &Arc<Entry>, body: Bytes) -> Result<()> {
        let b = self.backends().await;
        let object_key = self.object_key(class, &entry.key);
        let expected = match b.blobs.get_versioned(&object_key).await? {
            None => None,
            Some((bytes, version, stamp)) => match self.decode(&bytes).map(|mut held| {
                codec::apply_stamp(&mut held, stamp.as_deref());
                held
            }) {
                // An attempt abandoned by its deadline landed after all.
                Ok(held) if held.write_id == entry.write_id => return self.uploaded(class, entry).await,
                Ok(held) if held.last_modified >= entry.last_modified => {
                    bump(&self.stats.uploads_superseded);
                    self.end_write(entry, false);
                    self.l1.remove_if(&entry.key, |e| e.write_id == entry.write_id);
                    return Ok(());
                }
                // Older, or nothing this version can read: replaced, as a `set` would.
                _ => Some(version),
            },
        };
        if b.blobs.put_if(&object_key, body, expected.as_deref()).await? {
            self.uploaded(class, entry).await
        } else {
            Err(Error {
                kind: ErrorKind::Conflict,
                retryable: true,
                context: format!("{}: the object changed while a queued set was uploaded", entry.key),
            })
        }
    }

    /// A queued upload is in S3: its feed event is queued (it lands with the retry task's next
    /// round) and its tag index rows written.
    async fn uploaded(&self, class: Class, entry: &Arc<Entry>) -> Result<()> {
        bump(&self.stats.uploads_landed);
        self.end_write(entry, true);
        // Dropped unattempted, the claim leaves the event to the retry task (due at once).
        let _ = self.queue_announce(Self::key_event(entry));
        self.index(entry, class).await;
        Ok(())
    }

    pub(crate) async fn write_index(&self, entry: &Entry, class: Class) -> Result<()> {
        if entry.tags.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let refresh_ms = self.cfg.index_ttl_seconds * 1000 / 2;
        let path = if class == Class::Route { keys::path_of_key(&entry.key) } else { None };
        let rows: Vec<IndexRow> = entry
            .tags
            .iter()
            .filter(|t| self.indexed.get(&((*t).clone(), entry.key.clone())).is_none_or(|at| now - *at > refresh_ms))
            .map(|t| IndexRow { tag: t.clone(), key: entry.key.clone(), path: path.clone() })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let b = self.backends().await;
        b.tags.put_index(&rows, now / 1000 + self.cfg.index_ttl_seconds).await?;
        if self.indexed.len() > MAX_INDEXED_MEMO {
            self.indexed.clear();
        }
        for r in rows {
            self.indexed.insert((r.tag, r.key), now);
        }
        Ok(())
    }

    /// `revalidateTag(tags, durations)`: `expire_s` None or 0 expires now, N > 0 marks stale now
    /// and expires in N seconds.
    ///
    /// Honoured here at once, for good (see `pinned`); recorded in DynamoDB with its feed event
    /// as one unit per [`tags::MAX_TAGS_PER_UNIT`] tags, through the outbox. Waits at most
    /// `revalidateTimeoutMs` for the units to land: past it, or after a failed first attempt, the
    /// units stay queued and are retried until they land, and this resolves `Ok` (the revalidation
    /// is not lost, and Next would only log a rejection). `Err` only when it could not be queued
    /// (the outbox is full) or the store refused it outright (a retry cannot help).
    pub async fn revalidate_tags(&self, tags: &[String], expire_s: Option<f64>) -> Result<()> {
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
            self.tag_clock.apply(t, now, expire_s);
            self.pinned.apply(t, now, expire_s);
        }
        // The CDN's copies of the tags' pages: purged by this instance alone (looked up in the
        // tag index by the purger's task, off this call's path).
        if let Some(p) = self.purger.get() {
            p.add_tags(tags);
        }
        let mut claims = Vec::new();
        for unit in tags::units_of(tags) {
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

    /// Attempts `claims` once each, waiting at most `revalidateTimeoutMs`; what does not land is
    /// left to the retry task.
    async fn settle(&self, claims: Vec<Claim<'_>>, what: &str) -> Result<()> {
        // The caller's promise must settle within revalidateTimeoutMs: stop waiting a little
        // before, leaving time for the answer to reach JS.
        let deadline = Duration::from_millis(self.cfg.revalidate_timeout_ms.saturating_sub(SETTLE_MARGIN_MS).max(1));
        let attempts = futures::future::join_all(claims.into_iter().map(|c| self.attempt(c)));
        let queued = match tokio::time::timeout(deadline, attempts).await {
            Ok(results) => {
                let mut queued = None;
                for r in results {
                    match r {
                        Attempt::Landed => {}
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
    async fn attempt(&self, mut claim: Claim<'_>) -> Attempt {
        match self.deliver(&mut claim).await {
            Ok(()) => {
                claim.landed();
                Attempt::Landed
            }
            Err(e) => {
                if claim.failed(&e, self.now(), jitter()) {
                    bump(&self.stats.outbox_give_ups);
                    self.log("revalidation or feed event given up (a retry cannot fix it)", &e.to_string());
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
    async fn deliver(&self, claim: &mut Claim<'_>) -> Result<()> {
        let b = self.backends().await;
        match claim.unit.work.clone() {
            Work::Revalidate { tags, at, expire_s } => {
                let seq = self.feed_seq(b, claim).await?;
                let event = seq.map(|s| (s, self.instance_id.as_str()));
                for (t, st) in b.tags.revalidate_at(event, &tags, at, expire_s).await? {
                    self.tag_clock.merge(&t, st);
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
    async fn feed_seq(&self, b: &Backends, claim: &mut Claim<'_>) -> Result<Option<u64>> {
        if self.cfg.feed_interval_ms == 0 {
            return Ok(None);
        }
        if let Some(s) = claim.reusable_seq(self.now()) {
            return Ok(Some(s));
        }
        let s = b.tags.reserve_seq().await?;
        claim.reserved(s, self.now());
        Ok(Some(s))
    }

    /// The feed event of a write of `entry`.
    fn key_event(entry: &Entry) -> FeedEvent {
        FeedEvent::Key { key: entry.key.clone(), last_modified: entry.last_modified, write_id: entry.write_id }
    }

    /// Queues a `set`'s feed event in the outbox (`None` when the feed is off); overflow is
    /// counted and logged.
    fn queue_announce(&self, event: FeedEvent) -> Result<Option<Claim<'_>>> {
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
    async fn announce(&self, event: FeedEvent) -> Result<()> {
        match self.queue_announce(event)? {
            Some(c) => self.settle(vec![c], "feed event").await,
            None => Ok(()),
        }
    }

    /// One round of the retry task: attempts every unit that is due (tests drive it by hand).
    pub async fn retry_outbox_once(&self) {
        let due = self.outbox.claim_ready(self.now(), RETRY_BATCH);
        let results = futures::future::join_all(due.into_iter().map(|c| self.attempt(c))).await;
        if results.iter().any(|r| matches!(r, Attempt::Landed)) {
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
                if !results.iter().any(|r| matches!(r, Attempt::Landed)) {
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
    async fn probe_breakers(&self) {
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

    /// Units waiting in the outbox.
    pub fn outbox_depth(&self) -> usize {
        self.outbox.depth()
    }

    /// May memory be served now? (The feed answers: it is read, or there is none.)
    pub fn feed_trusted(&self) -> bool {
        self.feed.trusted()
    }

    /// Starts this core's change-feed poller (when the feed is on) with `spawn`, the executor of
    /// the host (napi's runtime in Node, tokio in tests). The task ends when the core is dropped.
    pub fn start_feed(self: &Arc<Self>, mut spawn: impl FnMut(futures::future::BoxFuture<'static, ()>)) {
        if self.feed.enabled() {
            spawn(Box::pin(feed::run(Arc::downgrade(self))));
        }
        spawn(Box::pin(retry_outbox(Arc::downgrade(self))));
        if let Some(id) = &self.cfg.cdn.distribution_id {
            let target = Target::CloudFront { distribution_id: id.clone(), endpoint: self.cfg.cdn.endpoint.clone() };
            // Cannot fail: nothing set a target before the core started.
            let _ = self.start_purger(target, spawn);
        }
    }

    /// Starts sending CDN invalidations to `target` (CloudFront from the options, or a hook);
    /// refused when a target is set already.
    pub fn start_purger(
        self: &Arc<Self>,
        target: Target,
        mut spawn: impl FnMut(futures::future::BoxFuture<'static, ()>),
    ) -> Result<()> {
        let purger = Arc::new(Purger::new(&self.cfg.cdn, target, self.clock.clone()));
        if self.purger.set(purger.clone()).is_err() {
            let on = self.purger.get().map_or("", |p| p.target_name());
            return Err(Error::config(format!(
                "a CDN purge target ({on}) is set already: `cdn.purge` and `cdn.cloudfront` exclude each other"
            )));
        }
        spawn(Box::pin(purge::run(Arc::downgrade(self), purger)));
        Ok(())
    }

    /// Adds `n` to the app's counter `name` in the tag store (kept two months).
    pub async fn add_to_counter(&self, name: &str, n: u64) -> Result<u64> {
        let expires = self.now() / 1000 + 62 * 86_400;
        self.backends().await.tags.add_to_counter(name, n, expires).await
    }

    /// The URL paths a CDN holds for the pages of `tags` (the tag index), and for pages the tags
    /// name themselves (`_N_T_/blog/a`, from `revalidatePath`), with their variants.
    pub async fn cdn_paths_for_tags(&self, tags: &[String], purger: &Purger) -> Result<Vec<String>> {
        let pages_router =
            |rows: &[IndexRow]| rows.iter().any(|r| PageKind::of(&r.key, None, PageKind::App) == PageKind::Pages);
        let rows = self.backends().await.tags.index_rows(tags).await?;
        let builds = if pages_router(&rows) { purger.builds(self).await } else { vec![] };
        Ok(self.cdn_paths_of(tags, rows, builds))
    }

    /// [`Core::cdn_paths_for_tags`] with the builds whose `/_next/data/` paths are named given.
    pub async fn cdn_paths_for_tags_with(&self, tags: &[String], builds: Vec<String>) -> Result<Vec<String>> {
        let rows = self.backends().await.tags.index_rows(tags).await?;
        Ok(self.cdn_paths_of(tags, rows, builds))
    }

    fn cdn_paths_of(&self, tags: &[String], rows: Vec<IndexRow>, builds: Vec<String>) -> Vec<String> {
        let rsc = self.cfg.cdn.rsc;
        let mut pages: Vec<(String, PageKind)> = rows
            .into_iter()
            .filter_map(|r| {
                let kind = PageKind::of(&r.key, None, PageKind::App);
                r.path.map(|p| (p, kind))
            })
            .collect();
        pages.extend(tags.iter().filter_map(|t| cdn::path_of_implicit_tag(t)).map(|p| (p, PageKind::App)));
        let mut out: Vec<String> = pages.iter().flat_map(|(p, k)| cdn::page_paths(p, *k, &builds, rsc)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a `set` that rewrote `prior` with other bytes purges it at the CDN: a page or
    /// route rewritten while its stored copy had not reached its revalidate time (an on-demand rewrite:
    /// pages router `res.revalidate`, or a regeneration after `revalidateTag(tag, profile)`
    /// marked it stale). Time-based regenerations are left to the CDN's `s-maxage` (Next sets it
    /// from the same `revalidate`), and a copy a revalidation expired was purged by the
    /// instance that revalidated.
    fn purge_for_set(&self, prior: &Entry, class: Class, now: i64) -> bool {
        if class != Class::Route {
            return false;
        }
        let time_stale = match prior.cache_control.map(|c| c.revalidate) {
            Some(crate::entry::Revalidate::Seconds(s)) => (now - prior.last_modified) as f64 >= s * 1000.0,
            _ => false,
        };
        if time_stale {
            return false;
        }
        let states: Vec<TagState> = prior.tags.iter().filter_map(|t| self.tag_clock.get(t)).collect();
        evaluate(prior, states.iter(), None, now) != Verdict::Expired
    }

    /// One round of the feed poller (tests drive it by hand).
    pub async fn poll_feed_once(&self) {
        let b = self.backends().await;
        if self.feed.poll_once(b.tags.as_ref(), &self.memory()).await {
            self.indexed.clear();
        }
    }

    /// The memory the feed keeps honest.
    fn memory(&self) -> feed::Memory<'_> {
        feed::Memory {
            l1: &self.l1,
            tag_clock: &self.tag_clock,
            leases: &self.leases,
            unlanded: &self.unlanded,
            stats: &self.stats,
            clock: self.clock.as_ref(),
            epoch: &self.epoch,
            marks: (&self.feed_marks, &self.key_marks),
            feed_lag: &self.feed_lag,
        }
    }

    /// (reads, writes) sent to the tag store so far.
    pub fn tag_store_requests(&self) -> (u64, u64) {
        self.backends.get().map_or((0, 0), |b| b.tags.request_counts())
    }

    /// The URL paths of entries carrying any of `tags` (for CDN invalidation), sorted, unique.
    pub async fn paths_for_tags(&self, tags: &[String]) -> Result<Vec<String>> {
        let rows = self.backends().await.tags.index_rows(tags).await?;
        let mut paths: Vec<String> = rows.into_iter().filter_map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// Forgets everything this process holds in memory (not the shared store).
    pub fn clear_memory(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.l1.clear();
        self.tag_clock.clear();
        self.indexed.clear();
        self.leases.clear();
    }

    /// Size of the stored object for `key` as encoded from the in-memory copy (benchmarks).
    pub fn encoded_len(&self, key: &str) -> Option<usize> {
        let e = self.l1.get(key)?;
        codec::encode(&e, self.cfg.compression_level).ok().map(|b| b.len())
    }

    pub fn memory_entries(&self) -> usize {
        self.l1.len()
    }

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
    fn cdn_readings(&self) -> (cdn::PlannerStats, usize, u64, u64) {
        match self.purger.get() {
            Some(p) => {
                let (st, pending) = p.stats();
                (st, pending, p.counters.failed_batches.load(Ordering::Relaxed), p.used_this_month())
            }
            None => Default::default(),
        }
    }

    fn cdn_samples(&self, out: &mut Vec<Sample>) {
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

    /// A call refused for bad input (a wrong type from JS): counted, and logged with `what`.
    pub fn note_invalid(&self, what: &str, msg: &str) {
        bump(&self.stats.invalid_inputs);
        self.log(what, msg);
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
        if self.feed.failed(&e, &self.memory()) {
            self.indexed.clear();
        }
    }
}
