//! Circuit breakers, one per backend (S3, DynamoDB): after [`THRESHOLD`] consecutive failures
//! (errors a retry could fix, deadlines passed, calls abandoned by their caller's deadline) the
//! breaker opens and every call fails fast for [`OPEN_MS`]; then one call at a time is let through
//! as a probe, and the first success closes it. Probes are background calls only (the feed poller,
//! the outbox, and the retry task's explicit probes): a request never waits on one, so while a
//! backend is down every request fails fast ([`Breaker::call_fast`]). So an outage costs each request a memory lookup,
//! not a connect timeout: `get` falls back to the copy in memory (or a miss), `set` keeps its value
//! in memory, the outbox keeps its units.
//!
//! A deadline that passes while the backend is answering is not counted: a call dropped by its
//! caller's deadline (or ended by a timeout) counts as a failure only if the backend answered
//! nothing — this call or any other through the same breaker — since the call began. Two cases
//! this keeps from opening a breaker, which would also stop the change feed: the SDK retries a
//! throttled request after a backoff, and a caller's deadline (`revalidateTimeoutMs`) drops the
//! call during it; and a burst of calls queues at a slow but answering backend, and the last ones
//! pass their deadlines in the queue. A black hole answers nothing, so its dropped calls count as
//! before. An answer is a response below HTTP 500 (a success, a refusal, a lost condition, a
//! throttle): the end of a call let through, or, inside the SDK's retries, [`Answered`] — an
//! interceptor on the S3 and DynamoDB clients that bumps the counter of the breaker whose call it
//! runs in (a task-local the breaker sets around each call).
//!
//! [`GuardedBlobs`] and [`GuardedTags`] put a breaker in front of a store; the core builds them
//! for the AWS backend (`backend/mod.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::blob::BlobStore;
use crate::backend::tags::{FeedRecord, IndexRow, Lease, TagStore, Unit};
use crate::entry::TagState;
use crate::error::{Error, ErrorKind, Result};

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
    /// Answers from the backend (see the module doc): a deadline counts only without one.
    answers: Arc<AtomicU64>,
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

tokio::task_local! {
    /// Set around each call let through a breaker: that breaker's count of answers.
    static ANSWERS: Arc<AtomicU64>;
}

/// Counts an answer from the backend of the breaker whose call this runs in (if any). Called by
/// [`Answered`] from inside the SDK's request loop, which runs in the caller's task.
pub fn mark_answered() {
    let _ = ANSWERS.try_with(|a| a.fetch_add(1, Ordering::Relaxed));
}

/// The SDK interceptor that tells the breaker a call was answered (any response below HTTP 500:
/// a success, a refusal, a lost condition, a throttle — the backend is there).
#[derive(Debug, Default, Clone, Copy)]
pub struct Answered;

impl aws_smithy_runtime_api::client::interceptors::Intercept for Answered {
    fn name(&self) -> &'static str {
        "fleetcache::backend::breaker::Answered"
    }

    fn read_after_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if context.response().status().as_u16() < 500 {
            mark_answered();
        }
        Ok(())
    }
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
            answers: Arc::new(AtomicU64::new(0)),
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

    /// A call its caller abandons (a deadline dropped it) counts as a failure, unless the backend
    /// answered something meanwhile (see the module doc). Every call let through is timed and
    /// recorded in `metrics` by its outcome.
    async fn run<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>, may_probe: bool) -> Result<T> {
        let permit = self.admit(now_ms(), may_probe)?;
        struct Abandoned<'a> {
            breaker: &'a Breaker,
            permit: Permit,
            done: bool,
            op: &'static str,
            started: std::time::Instant,
            answers_before: u64,
        }
        impl Drop for Abandoned<'_> {
            fn drop(&mut self) {
                if !self.done {
                    self.breaker.deadline_passed(self.permit, self.answers_before);
                    self.breaker.metrics.record(self.op, "abandoned", self.started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        let started = std::time::Instant::now();
        let answers_before = self.answers.load(Ordering::Acquire);
        let mut guard = Abandoned { breaker: self, permit, done: false, op, started, answers_before };
        let r = ANSWERS.scope(self.answers.clone(), call).await;
        guard.done = true;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(_) => self.metrics.record(op, "ok", ms),
            Err(e) => self.metrics.record(op, e.kind.code(), ms),
        }
        crate::log::debug(self.name, || {
            format!("{op} {} in {ms:.1} ms", r.as_ref().map_or_else(|e| e.to_string(), |_| "ok".to_string()))
        });
        match &r {
            Err(e) if e.kind == ErrorKind::Timeout => self.deadline_passed(permit, answers_before),
            Err(e) if counts(e) => self.failure(permit, now_ms()),
            _ => {
                self.answers.fetch_add(1, Ordering::AcqRel);
                self.success(permit)
            }
        }
        r
    }

    /// A call's deadline passed (its caller dropped it, or it timed out): a failure, unless the
    /// backend answered anything since the answer count was `answers_before`.
    fn deadline_passed(&self, permit: Permit, answers_before: u64) {
        if self.answers.load(Ordering::Acquire) != answers_before {
            self.success(permit)
        } else {
            self.failure(permit, now_ms())
        }
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
    async fn put_member(&self, group: &str, id: &str, body: &str, expires_at_s: i64) -> Result<()> {
        self.breaker.call("PutItem(member)", self.inner.put_member(group, id, body, expires_at_s)).await
    }
    async fn members(&self, group: &str, now_s: i64) -> Result<Vec<(String, String)>> {
        self.breaker.call("Query(members)", self.inner.members(group, now_s)).await
    }
    async fn reserve_seq(&self) -> Result<u64> {
        self.breaker.call("UpdateItem(feed head)", self.inner.reserve_seq()).await
    }
    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()> {
        self.breaker.call("PutItem(feed event)", self.inner.announce_at(seq, record, now)).await
    }
    async fn revalidate_at(&self, unit: Unit<'_>) -> Result<Vec<(String, TagState)>> {
        self.breaker.call("TransactWriteItems(revalidation)", self.inner.revalidate_at(unit)).await
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
    async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        self.breaker.call_fast("DeleteItem(lease)", self.inner.release_lease(key, owner)).await
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

    #[tokio::test]
    async fn a_deadline_passed_while_the_backend_answers_does_not_count() {
        // Answered, then waiting (the SDK backing off before retrying a throttle): dropped by the
        // caller's deadline, or ended by a timeout of its own, it is not a failure.
        let b = Breaker::new("DynamoDB");
        for _ in 0..2 * THRESHOLD {
            let answered_then_waits = b.call("t", async {
                mark_answered();
                std::future::pending::<Result<()>>().await
            });
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), answered_then_waits).await;
            let _ = b
                .call("t", async {
                    mark_answered();
                    Err::<(), _>(Error::new(ErrorKind::Timeout, "no answer in time"))
                })
                .await;
        }
        assert!(!b.is_open(), "the backend answered every one of those calls");
        // Calls queued at a slow backend: each dropped while another call is answered.
        for _ in 0..2 * THRESHOLD {
            let queued = b.call("t", std::future::pending::<Result<()>>());
            let other = b.call("t", async { Ok::<(), Error>(()) });
            let (_, _) = tokio::join!(tokio::time::timeout(std::time::Duration::from_millis(1), queued), other);
        }
        assert!(!b.is_open(), "the backend answered other calls meanwhile");
        // Timeouts with nothing answered count.
        for _ in 0..THRESHOLD {
            let _ = b.call("t", async { Err::<(), _>(Error::new(ErrorKind::Timeout, "no answer in time")) }).await;
        }
        assert!(b.is_open());
        // Outside a breaker's call, marking is a no-op.
        mark_answered();
    }

    /// A loopback HTTP server that answers every request with `status` and the body of a
    /// DynamoDB error `code` (or, with `answer` false, reads requests and never answers).
    fn local_server(answer: bool, status: u16, code: &'static str) -> String {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut conn = conn;
                    loop {
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        if !answer {
                            continue;
                        }
                        let body = format!(
                            "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"local {code}\"}}"
                        );
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-errortype: {code}\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body.as_bytes())).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    async fn guarded_dynamodb(endpoint: &str) -> (GuardedTags, Arc<Breaker>) {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        let opts = crate::config::Options {
            bucket: Some("breaker-test".into()),
            table: Some("breaker-test".into()),
            region: Some("us-east-1".into()),
            dynamodb_endpoint: Some(endpoint.into()),
            s3_endpoint: Some(endpoint.into()),
            ..Default::default()
        };
        let cfg = crate::config::Config::from_options(opts, &|_| None).unwrap();
        let (_, store) = crate::backend::aws_stores(&cfg).await;
        let breaker = Arc::new(Breaker::new("DynamoDB"));
        (GuardedTags { inner: Arc::new(store), breaker: breaker.clone() }, breaker)
    }

    /// Revalidations, each dropped by a 300 ms deadline (as `revalidateTimeoutMs` drops them).
    async fn revalidate_with_deadlines(tags: &GuardedTags, n: usize) {
        for i in 0..n {
            let t = vec![format!("tag-{i}")];
            let _ = tokio::time::timeout(std::time::Duration::from_millis(300), tags.revalidate(&t, 1, None)).await;
        }
    }

    #[tokio::test]
    async fn throttled_revalidations_dropped_by_their_deadline_leave_the_breaker_closed() {
        // The SDK retries a throttle after a backoff of up to a second: the 300 ms deadline drops
        // the call during it. The real SDK client and its interceptor, against a loopback server.
        let (tags, breaker) =
            guarded_dynamodb(&local_server(true, 400, "ProvisionedThroughputExceededException")).await;
        revalidate_with_deadlines(&tags, 2 * THRESHOLD as usize).await;
        assert!(!breaker.is_open(), "throttled: the backend answered");
        // An error answer (5xx) is not the backend answering well: those calls count.
        let (tags, breaker) = guarded_dynamodb(&local_server(true, 500, "InternalServerError")).await;
        revalidate_with_deadlines(&tags, 2 * THRESHOLD as usize).await;
        assert!(breaker.is_open(), "5xx answers and deadlines: unwell");
        // And a backend that takes requests and never answers opens it.
        let (tags, breaker) = guarded_dynamodb(&local_server(false, 0, "")).await;
        revalidate_with_deadlines(&tags, THRESHOLD as usize).await;
        assert!(breaker.is_open(), "black-holed: every call dropped unanswered");
    }
}
