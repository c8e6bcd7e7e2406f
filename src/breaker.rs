//! Circuit breakers, one per backend (S3, DynamoDB): after [`THRESHOLD`] consecutive failures
//! (errors a retry could fix, deadlines passed, calls abandoned by their caller's deadline) the
//! breaker opens and every call fails fast for [`OPEN_MS`]; then one call at a time is let through
//! as a probe, and the first success closes it. Probes are background calls only (the feed poller,
//! the outbox, and the retry task's explicit probes): a request never waits on one, so while a
//! backend is down every request fails fast ([`Breaker::call_fast`]). So an outage costs each request a memory lookup,
//! not a connect timeout: `get` falls back to the copy in memory (or a miss), `set` keeps its value
//! in memory, the outbox keeps its units.
//!
//! [`GuardedBlobs`] and [`GuardedTags`] put a breaker in front of a store; the core builds them
//! for the AWS backend (`stores.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::entry::TagState;
use crate::error::{Error, ErrorKind, Result};
use crate::store::BlobStore;
use crate::tags::{FeedRecord, IndexRow, Lease, TagStore};

/// The object an S3 probe reads (absent: a 404 is an answer, which is all a probe needs).
pub const PROBE_KEY: &str = "fleetcache-probe/absent";

/// Consecutive failures that open a breaker.
pub const THRESHOLD: u32 = 5;
/// How long an open breaker fails calls fast before it lets a probe through.
pub const OPEN_MS: i64 = 2_000;

pub struct Breaker {
    name: &'static str,
    failures: AtomicU32,
    /// When the breaker may let a probe through (0: closed).
    open_until: AtomicI64,
    probing: AtomicBool,
    rejected: AtomicU64,
    opened: AtomicU64,
    /// Every request let through: by operation, outcome and latency.
    pub metrics: crate::metrics::BackendMetrics,
}

/// How a call was let through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Permit {
    Closed,
    Probe,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether an error says the backend is unwell (not: the request was wrong, a condition lost, or
/// the backend asked to slow down — it answers, and retries already back off).
fn counts(e: &Error) -> bool {
    e.kind == ErrorKind::Timeout || (e.kind == ErrorKind::Backend && e.retryable)
}

impl Breaker {
    pub fn new(name: &'static str) -> Breaker {
        Breaker {
            name,
            failures: AtomicU32::new(0),
            open_until: AtomicI64::new(0),
            probing: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            metrics: Default::default(),
        }
    }

    /// Lets a call through at `now`, or refuses it fast while open; `may_probe`: a background call
    /// that may be the one probe once the open window has passed.
    pub fn admit(&self, now: i64, may_probe: bool) -> Result<Permit> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(Permit::Closed);
        }
        if may_probe && now >= until && !self.probing.swap(true, Ordering::AcqRel) {
            return Ok(Permit::Probe);
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Err(Error::backend(format!("{} unavailable (circuit open after repeated failures)", self.name), true))
    }

    pub fn success(&self, _p: Permit) {
        self.failures.store(0, Ordering::Release);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            crate::log::warn(&format!("{} circuit closed", self.name), "the backend answers again");
        }
        self.probing.store(false, Ordering::Release);
    }

    pub fn failure(&self, p: Permit, now: i64) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if p == Permit::Probe || (n >= THRESHOLD && self.open_until.load(Ordering::Acquire) == 0) {
            self.open_until.store(now + OPEN_MS, Ordering::Release);
            self.opened.fetch_add(1, Ordering::Relaxed);
            crate::log::warn(
                &format!("{} circuit open", self.name),
                &format!("{n} consecutive failures: calls fail fast, one probe every {OPEN_MS} ms"),
            );
        }
        if p == Permit::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Open, its window passed, and no probe in flight: a background caller should probe now.
    pub fn probe_due(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && now_ms() >= until && !self.probing.load(Ordering::Acquire)
    }

    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// Calls refused while open.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Times it opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Runs a background `call` (operation `op`) through the breaker (it may be the probe).
    pub async fn call<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.run(op, call, true).await
    }

    /// Runs a request-path `call`: never a probe, so it fails fast for as long as the breaker is open.
    pub async fn call_fast<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.run(op, call, false).await
    }

    /// A call its caller abandons (a deadline dropped it) counts as a failure. Every call let
    /// through is timed and recorded in `metrics` by its outcome.
    async fn run<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>, may_probe: bool) -> Result<T> {
        let permit = self.admit(now_ms(), may_probe)?;
        struct Abandoned<'a>(&'a Breaker, Permit, bool, &'static str, std::time::Instant);
        impl Drop for Abandoned<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.failure(self.1, now_ms());
                    self.0.metrics.record(self.3, "abandoned", self.4.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        let started = std::time::Instant::now();
        let mut guard = Abandoned(self, permit, false, op, started);
        let r = call.await;
        guard.2 = true;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(_) => self.metrics.record(op, "ok", ms),
            Err(e) => self.metrics.record(op, e.kind.code(), ms),
        }
        crate::log::debug(self.name, || {
            format!("{op} {} in {ms:.1} ms", r.as_ref().map_or_else(|e| e.to_string(), |_| "ok".to_string()))
        });
        match &r {
            Err(e) if counts(e) => self.failure(permit, now_ms()),
            _ => self.success(permit),
        }
        r
    }
}

/// A blob store behind a breaker.
pub struct GuardedBlobs {
    pub inner: Arc<dyn BlobStore>,
    pub breaker: Arc<Breaker>,
}

#[async_trait]
impl BlobStore for GuardedBlobs {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.breaker.call_fast("GetObject", self.inner.get(key)).await
    }
    async fn get_prefixed(&self, key: &str, magic: &[u8]) -> Result<Option<Bytes>> {
        self.breaker.call_fast("GetObject", self.inner.get_prefixed(key, magic)).await
    }
    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        self.breaker.call_fast("PutObject", self.inner.put(key, body, if_absent)).await
    }
    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, String, Option<String>)>> {
        self.breaker.call("GetObject", self.inner.get_versioned(key)).await
    }
    async fn get_stamped(&self, key: &str, magic: &[u8]) -> Result<Option<(Bytes, Option<String>)>> {
        self.breaker.call_fast("GetObject", self.inner.get_stamped(key, magic)).await
    }
    async fn stamp(&self, key: &str, stamp: &str) -> Result<bool> {
        self.breaker.call_fast("CopyObject(stamp)", self.inner.stamp(key, stamp)).await
    }
    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> Result<bool> {
        self.breaker.call("PutObject", self.inner.put_if(key, body, expected)).await
    }
    async fn probe(&self) -> Result<()> {
        self.breaker.call("GetObject(probe)", self.inner.get(PROBE_KEY)).await.map(|_| ())
    }
    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.breaker.call("DeleteObjects", self.inner.delete(keys)).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.breaker.call("ListObjectsV2", self.inner.list(prefix)).await
    }
}

/// A tag store behind a breaker.
pub struct GuardedTags {
    pub inner: Arc<dyn TagStore>,
    pub breaker: Arc<Breaker>,
}

#[async_trait]
impl TagStore for GuardedTags {
    async fn add_to_counter(&self, name: &str, n: u64, expires_at_s: i64) -> Result<u64> {
        self.breaker.call("UpdateItem(counter)", self.inner.add_to_counter(name, n, expires_at_s)).await
    }
    async fn reserve_seq(&self) -> Result<u64> {
        self.breaker.call("UpdateItem(feed head)", self.inner.reserve_seq()).await
    }
    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()> {
        self.breaker.call("PutItem(feed event)", self.inner.announce_at(seq, record, now)).await
    }
    async fn revalidate_at(
        &self,
        event: Option<(u64, &str)>,
        tags: &[String],
        now: i64,
        expire_s: Option<f64>,
    ) -> Result<Vec<(String, TagState)>> {
        self.breaker
            .call("TransactWriteItems(revalidation)", self.inner.revalidate_at(event, tags, now, expire_s))
            .await
    }
    async fn read_events(&self, seqs: &[u64]) -> Result<Vec<(u64, FeedRecord)>> {
        self.breaker.call("BatchGetItem(feed events)", self.inner.read_events(seqs)).await
    }
    async fn feed_head(&self) -> Result<u64> {
        self.breaker.call("GetItem(feed head)", self.inner.feed_head()).await
    }
    async fn read_feed(&self, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>> {
        self.breaker.call("Query(feed)", self.inner.read_feed(from, to)).await
    }
    async fn read_feed_page(&self, from: u64) -> Result<Vec<(u64, FeedRecord)>> {
        self.breaker.call("Query(feed)", self.inner.read_feed_page(from)).await
    }
    async fn try_lease(&self, key: &str, owner: &str, now: i64, until: i64) -> Result<Lease> {
        self.breaker.call_fast("PutItem(lease)", self.inner.try_lease(key, owner, now, until)).await
    }
    fn request_counts(&self) -> (u64, u64) {
        self.inner.request_counts()
    }
    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>> {
        self.breaker.call_fast("BatchGetItem(tag states)", self.inner.tag_states(tags)).await
    }
    async fn put_index(&self, rows: &[IndexRow], expires_at_s: i64) -> Result<()> {
        self.breaker.call_fast("BatchWriteItem(index)", self.inner.put_index(rows, expires_at_s)).await
    }
    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>> {
        self.breaker.call("Query(index)", self.inner.index_rows(tags)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_lets_one_probe_through_and_closes_on_success() {
        let b = Breaker::new("S3");
        for _ in 0..THRESHOLD - 1 {
            b.failure(b.admit(0, false).unwrap(), 0);
        }
        assert!(!b.is_open());
        b.failure(b.admit(0, false).unwrap(), 0);
        assert!(b.is_open());
        assert!(b.admit(OPEN_MS - 1, true).is_err(), "fails fast while open");
        assert_eq!(b.rejected(), 1);
        assert!(b.admit(OPEN_MS, false).is_err(), "a request never probes");
        let probe = b.admit(OPEN_MS, true).unwrap();
        assert_eq!(probe, Permit::Probe);
        assert!(b.admit(OPEN_MS, true).is_err(), "one probe at a time");
        b.failure(probe, OPEN_MS);
        assert!(b.admit(OPEN_MS + 1, true).is_err(), "a failed probe reopens it");
        let probe = b.admit(2 * OPEN_MS, true).unwrap();
        b.success(probe);
        assert!(!b.is_open());
        assert_eq!(b.admit(2 * OPEN_MS, false).unwrap(), Permit::Closed);
        assert_eq!(b.opened(), 2);
    }

    #[tokio::test]
    async fn an_abandoned_call_counts_as_a_failure_and_a_refused_request_does_not() {
        let b = Breaker::new("DynamoDB");
        for _ in 0..THRESHOLD {
            let hung = b.call("t", std::future::pending::<Result<()>>());
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), hung).await;
        }
        assert!(b.is_open());
        let b = Breaker::new("DynamoDB");
        for _ in 0..THRESHOLD {
            let _ = b.call("t", async { Err::<(), _>(Error::invalid("bad request")) }).await;
            let _ = b.call("t", async { Err::<(), _>(Error::new(ErrorKind::Throttled, "slow down")) }).await;
        }
        assert!(!b.is_open(), "refused and throttled requests: the backend answers");
    }
}
