//! The core: `get` / `set` / `revalidateTag` without napi, and the one home of the fail-open
//! policy:
//! - `get` never fails. A backend error, a corrupt object or a passed deadline is a counted,
//!   logged miss — or, when this process still holds a copy in memory, that copy.
//! - `set` keeps the new value in memory first (this instance serves it even if S3 is down), then
//!   writes S3, then the tag index; failures are returned as values for the JS face to log.
//! - `revalidateTag` applies to the local tag clock at once, then to the `TagStore`; a failure
//!   there is returned, because the rest of the fleet has not heard of it.
//!
//! Here: [`Core`] and its construction. Its work, one file each: `read.rs` (the read path),
//! `leases.rs` (regeneration leases), `write.rs` (the write path), `delivery.rs` (revalidations,
//! the outbox, flushing), `local.rs` (this process's memory and the feed that keeps it honest),
//! `purging.rs` (what CDN purges ask of the core), `observe.rs` (stats and metrics). The build
//! registry and seeding are in `ops/deploy.rs`, store construction in `backend/mod.rs`, and the change
//! feed's poller in `feed.rs`.

mod deadline;
mod delivery;
mod fleet;
mod leases;
mod local;
mod observe;
mod purging;
mod read;
mod spooling;
mod write;

pub use fleet::PendingReceipt;
pub use write::SetParts;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;

use crate::backend::blob::BlobStore;
use crate::backend::tags::{self, FeedEvent, FeedRecord, IndexRow, TagStore};
use crate::backend::Backends;
use crate::cdn::purger::{self, PurgeHost, Purger, Target};
use crate::cdn::{self, PageKind};
use crate::clock::{Clock, SystemClock};
use crate::codec;
use crate::config::Config;
use crate::entry::{evaluate, CacheControl, Entry, TagState, Value, Verdict};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{self, Feed, FeedHost};
use crate::keys::{self, Class};
use crate::metrics::{self, Kind, Sample};
use crate::outbox::{self, Claim, Outbox, Work};
use crate::stats::{self, bump, Reading, Stats};
use crate::tag_clock::TagClock;

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
    /// What this process holds in memory (the in-memory tier, tag states, leases, writes not yet
    /// in S3), kept honest by the feed.
    pub(crate) mem: feed::Memory,
    pub(crate) backends: tokio::sync::OnceCell<Backends>,
    /// (tag, key) index rows this process wrote, with when; rewritten after half the TTL.
    indexed: DashMap<(String, String), i64>,
    pub stats: Arc<Stats>,
    /// Unique per process and core: tells our own feed events from others'.
    pub instance_id: String,
    pub feed: Feed,
    /// Revalidations and feed events on their way to DynamoDB, and uploads of failed `set`s on
    /// their way to S3 (retried until they land).
    outbox: Arc<Outbox>,
    /// Every revalidation made here, kept apart from the tag clock: dropping memory (a feed
    /// reset) never makes this instance forget what it revalidated itself, landed or not.
    pinned: TagClock,
    /// When each key was last asked for: a `set` that follows is stamped with the time its
    /// render could have started, so a revalidation during the render is not overtaken.
    render_starts: DashMap<String, i64>,
    /// Namespace of page/route entries: the configured build ID, or the one Next's first
    /// handler construction reveals (`adopt_build_id`).
    build_id: parking_lot::RwLock<String>,
    build_id_adopted: AtomicBool,
    /// How long the next `get` waits for the backends (shortened while one hangs).
    get_deadline: deadline::GetDeadline,
    /// CDN invalidations (`cdn.*`): set when CloudFront is configured or a hook is given.
    purger: std::sync::OnceLock<Arc<Purger>>,
    /// When this core was made (ms), and Next's version as the JS face found it: the heartbeat's.
    started_at: i64,
    next_version: parking_lot::RwLock<Option<String>>,
    /// This instance has left the fleet (`leave`, on SIGTERM): it beats no more.
    left: AtomicBool,
    /// The live instances per build as this instance last read them, for `/metrics`.
    fleet_view: fleet::FleetView,
}

/// Of `revalidateTimeoutMs`, what is kept for the answer to reach the caller's promise.
const SETTLE_MARGIN_MS: u64 = 100;

/// How long a breaker probe may take.
const PROBE_TIMEOUT_MS: u64 = 2_000;

/// Units the retry task claims per round.
const RETRY_BATCH: usize = 16;

/// Revalidation units and feed events in flight at once, per caller and for the retry task: a
/// 10,000-tag revalidation (200 units) goes out 4 at a time instead of as one burst of ~10,000
/// DynamoDB reads that would starve the feed's own reads.
const UNIT_CONCURRENCY: usize = 4;

/// A factor in [0.5, 1.5) for retry jitter, from the clock's low bits (no RNG dependency).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    0.5 + (nanos % 1_000) as f64 / 1_000.0
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
        let outbox = Arc::new(Outbox::new(outbox::DEFAULT_CAPACITY).with_upload_limit(cfg.memory_bytes / 4));
        let stats = Arc::new(Stats::default());
        let core = Core {
            mem: feed::Memory::new(cfg.memory_bytes, stats.clone(), clock.clone()),
            cfg,
            clock,
            backends: tokio::sync::OnceCell::new(),
            indexed: DashMap::new(),
            stats,
            instance_id,
            feed,
            outbox,
            pinned: TagClock::default(),
            render_starts: DashMap::new(),
            build_id: parking_lot::RwLock::new(String::new()),
            build_id_adopted: AtomicBool::new(false),
            get_deadline: Default::default(),
            purger: std::sync::OnceLock::new(),
            started_at: 0,
            next_version: Default::default(),
            left: AtomicBool::new(false),
            fleet_view: Default::default(),
        };
        let core = Core { started_at: core.now(), ..core };
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

    /// The stores, opened on first use.
    pub(crate) async fn backends(&self) -> &Backends {
        self.backends.get_or_init(|| crate::backend::open(&self.cfg, &self.instance_id)).await
    }

    /// Creates the bucket and table when missing (local servers, tests, the demo).
    pub async fn ensure_resources(&self) -> Result<()> {
        crate::backend::ensure_resources(&self.cfg).await
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

    /// Units waiting in the outbox.
    pub fn outbox_depth(&self) -> usize {
        self.outbox.depth()
    }

    /// May memory be served now? (The feed answers: it is read, or there is none.)
    pub fn feed_trusted(&self) -> bool {
        self.feed.trusted()
    }

    /// (reads, writes) sent to the tag store so far.
    pub fn tag_store_requests(&self) -> (u64, u64) {
        self.backends.get().map_or((0, 0), |b| b.tags.request_counts())
    }

    /// A call refused for bad input (a wrong type from JS): counted, and logged with `what`.
    pub fn note_invalid(&self, what: &str, msg: &str) {
        bump(&self.stats.invalid_inputs);
        self.log(what, msg);
    }
}
