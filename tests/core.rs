//! The handler's behaviour through `Core`, with memory backends and a mock clock; the same
//! scenarios run against S3 + DynamoDB protocol servers in `backends.rs`.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use fleetcache::backend::blob::memory::MemoryBlobStore;
use fleetcache::backend::blob::BlobStore;
use fleetcache::backend::tags::memory::MemoryTagStore;
use fleetcache::backend::tags::{TagStore, Unit};
use fleetcache::clock::MockClock;
use fleetcache::config::Config;
use fleetcache::core::{Core, GetRequest, Lookup, SetParts, SyncLookup};
use fleetcache::entry::Value;
use fleetcache::entry::{CacheControl, Revalidate};
use fleetcache::keys::{pages_router_paths, Class};

fn core_with(clock: Arc<MockClock>, blobs: Arc<MemoryBlobStore>, tags: Arc<MemoryTagStore>) -> Core {
    Core::with_backends(Config::memory(), clock, blobs, tags)
}

/// Two instances on one pair of memory stores, with a shared mock clock.
fn two_memory_cores() -> (Core, Core, Arc<MockClock>) {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(MemoryTagStore::default());
    let a = core_with(clock.clone(), blobs.clone(), tags.clone());
    let b = core_with(clock.clone(), blobs, tags);
    (a, b, clock)
}

#[tokio::test]
async fn scenarios_on_memory_backends() {
    let (a, b, clock) = two_memory_cores();
    scenarios(&a, &b, &clock, "mem").await;
}

#[tokio::test]
async fn feed_on_memory_backends() {
    let (a, b, clock) = two_memory_cores();
    feed_scenarios(&a, &b, &clock, "mem").await;
}

#[tokio::test]
async fn deploy_on_memory_backends() {
    let (a, b, clock) = two_memory_cores();
    deploy_scenarios(&a, &b, &clock, "mem").await;
}

#[test]
fn pages_router_key_paths() {
    assert_eq!(
        pages_router_paths("/route-cache/PAGES/491f1e83/$/ssg", "BUILD1"),
        vec!["/ssg".to_string(), "/_next/data/BUILD1/ssg.json".to_string()]
    );
}

#[tokio::test]
async fn corrupt_object_is_a_counted_miss() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let core = core_with(clock, blobs.clone(), Arc::new(MemoryTagStore::default()));
    let okey = core.object_key(Class::Route, "/bad");
    blobs.put(&okey, Bytes::from_static(b"{\"not\":\"ours\"}"), false).await.unwrap();
    assert!(matches!(core.get(&req("/bad")).await, Lookup::Miss));
    assert_eq!(core.stats.corrupt.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn oversized_entry_is_refused_and_old_copy_kept() {
    let clock = Arc::new(MockClock::new(T0));
    let mut cfg = Config::memory();
    cfg.max_entry_bytes = 10_000;
    let core =
        Core::with_backends(cfg, clock, Arc::new(MemoryBlobStore::default()), Arc::new(MemoryTagStore::default()));
    core.set(
        "/big".into(),
        SetParts { class: Class::Route, value: Some(page_value("small")), cache_control: cc(60.0), tags: vec![] },
    )
    .await
    .unwrap();
    let err = core
        .set(
            "/big".into(),
            SetParts {
                class: Class::Route,
                value: Some(page_value(&"x".repeat(20_000))),
                cache_control: cc(60.0),
                tags: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind.code(), "FLEETCACHE_TOO_LARGE");
    match core.get(&req("/big")).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("small"))),
        Lookup::Miss => panic!(),
    }
}

#[tokio::test]
async fn stale_by_tag_never_returns_zero_or_past_expire() {
    let clock = Arc::new(MockClock::new(T0));
    let core = core_with(clock.clone(), Default::default(), Default::default());
    let cc = Some(CacheControl { revalidate: Revalidate::Seconds(30.0), expire: Some(120.0) });
    core.set(
        "/s".into(),
        SetParts { class: Class::Route, value: Some(page_value("x")), cache_control: cc, tags: vec!["t".into()] },
    )
    .await
    .unwrap();
    clock.advance(1_000);
    core.revalidate_tags(&["t".into()], Some(600.0)).await.unwrap();
    clock.advance(1_000);
    match core.get(&req("/s")).await {
        Lookup::Hit { last_modified, .. } => {
            let now = T0 + 2_000;
            assert!(last_modified > 0 && last_modified + 30_000 < now && last_modified + 120_000 >= now);
        }
        Lookup::Miss => panic!(),
    }
}

/// A tag store that can be switched to fail, for outage tests.
struct FlakyTags {
    inner: MemoryTagStore,
    down: std::sync::atomic::AtomicBool,
    /// A black hole: calls never answer.
    hang: std::sync::atomic::AtomicBool,
}

impl FlakyTags {
    fn new() -> FlakyTags {
        FlakyTags { inner: MemoryTagStore::default(), down: false.into(), hang: false.into() }
    }
    async fn check(&self) -> fleetcache::error::Result<()> {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(fleetcache::error::Error::backend("down", true))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl fleetcache::backend::tags::TagStore for FlakyTags {
    async fn add_to_counter(&self, name: &str, n: u64, expires_at_s: i64) -> fleetcache::error::Result<u64> {
        self.check().await?;
        self.inner.add_to_counter(name, n, expires_at_s).await
    }
    async fn put_member(&self, group: &str, id: &str, body: &str, exp: i64) -> fleetcache::error::Result<()> {
        self.check().await?;
        self.inner.put_member(group, id, body, exp).await
    }
    async fn members(&self, group: &str, now_s: i64) -> fleetcache::error::Result<Vec<(String, String)>> {
        self.check().await?;
        self.inner.members(group, now_s).await
    }
    async fn reserve_seq(&self) -> fleetcache::error::Result<u64> {
        self.check().await?;
        self.inner.reserve_seq().await
    }
    async fn announce_at(
        &self,
        seq: u64,
        r: &fleetcache::backend::tags::FeedRecord,
        now: i64,
    ) -> fleetcache::error::Result<()> {
        self.check().await?;
        self.inner.announce_at(seq, r, now).await
    }
    async fn revalidate_at(
        &self,
        unit: Unit<'_>,
    ) -> fleetcache::error::Result<Vec<(String, fleetcache::entry::TagState)>> {
        self.check().await?;
        self.inner.revalidate_at(unit).await
    }
    async fn feed_head(&self) -> fleetcache::error::Result<u64> {
        self.check().await?;
        self.inner.feed_head().await
    }
    async fn read_feed(
        &self,
        from: u64,
        to: u64,
    ) -> fleetcache::error::Result<Vec<(u64, fleetcache::backend::tags::FeedRecord)>> {
        self.check().await?;
        self.inner.read_feed(from, to).await
    }
    async fn try_lease(
        &self,
        k: &str,
        o: &str,
        now: i64,
        until: i64,
    ) -> fleetcache::error::Result<fleetcache::backend::tags::Lease> {
        self.check().await?;
        self.inner.try_lease(k, o, now, until).await
    }
    async fn tag_states(&self, t: &[String]) -> fleetcache::error::Result<Vec<(String, fleetcache::entry::TagState)>> {
        self.check().await?;
        self.inner.tag_states(t).await
    }
    async fn put_index(&self, r: &[fleetcache::backend::tags::IndexRow], x: i64) -> fleetcache::error::Result<()> {
        self.check().await?;
        self.inner.put_index(r, x).await
    }
    async fn index_rows(&self, t: &[String]) -> fleetcache::error::Result<Vec<fleetcache::backend::tags::IndexRow>> {
        self.check().await?;
        self.inner.index_rows(t).await
    }
}

#[tokio::test]
async fn unreadable_feed_drops_memory_until_it_is_back() {
    use fleetcache::core::SyncLookup;
    let clock = Arc::new(MockClock::new(T0));
    let tags = Arc::new(FlakyTags::new());
    let core = Core::with_backends(Config::memory(), clock.clone(), Arc::new(MemoryBlobStore::default()), tags.clone());
    assert!(
        matches!(core.get_sync(&req("/o")), SyncLookup::NeedsBackend),
        "nothing served from memory before the feed is read"
    );
    core.poll_feed_once().await;
    core.set(
        "/o".into(),
        SetParts { class: Class::Route, value: Some(page_value("x")), cache_control: cc(60.0), tags: vec!["t".into()] },
    )
    .await
    .unwrap();
    assert!(matches!(core.get(&req("/o")).await, Lookup::Hit { .. }));
    assert!(matches!(core.get_sync(&req("/o")), SyncLookup::Done(Lookup::Hit { .. })));

    tags.down.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(1_000);
    core.poll_feed_once().await; // within feedStaleAfterMs: keep serving
    assert!(matches!(core.get_sync(&req("/o")), SyncLookup::Done(Lookup::Hit { .. })));
    clock.advance(core.cfg.feed_stale_after_ms as i64);
    core.poll_feed_once().await;
    assert!(!core.feed_trusted());
    assert_eq!(core.memory_entries(), 0, "memory dropped");
    assert!(matches!(core.get_sync(&req("/o")), SyncLookup::NeedsBackend));
    // DynamoDB down, S3 up: the object is served (fail open), never a rejected get.
    assert!(matches!(core.get(&req("/o")).await, Lookup::Hit { .. }));
    assert!(matches!(core.get_sync(&req("/o")), SyncLookup::NeedsBackend), "still not served from memory");

    tags.down.store(false, std::sync::atomic::Ordering::SeqCst);
    core.poll_feed_once().await;
    assert!(core.feed_trusted());
    assert!(matches!(core.get(&req("/o")).await, Lookup::Hit { .. }));
    assert!(matches!(core.get_sync(&req("/o")), SyncLookup::Done(Lookup::Hit { .. })));
}

#[tokio::test]
async fn build_id_is_adopted_once_unless_configured() {
    let core = Core::with_backends(
        Config::memory(),
        Arc::new(MockClock::new(T0)),
        Arc::new(MemoryBlobStore::default()),
        Arc::new(MemoryTagStore::default()),
    );
    let before = core.object_key(Class::Route, "/x");
    assert_eq!(core.adopt_build_id("B1"), "B1");
    assert_eq!(core.adopt_build_id("B2"), "B1", "first adoption wins");
    assert_ne!(core.object_key(Class::Route, "/x"), before);
    assert_eq!(core.object_key(Class::Fetch, "k"), core.object_key(Class::Fetch, "k"));
    let mut cfg = Config::memory();
    cfg.build_id = "CONF".into();
    cfg.build_id_explicit = true;
    let core = Core::with_backends(
        cfg,
        Arc::new(MockClock::new(T0)),
        Arc::new(MemoryBlobStore::default()),
        Arc::new(MemoryTagStore::default()),
    );
    assert_eq!(core.adopt_build_id("B1"), "CONF");
}

#[tokio::test]
async fn a_revalidation_made_during_a_tag_store_outage_is_honoured_at_once_and_everywhere_after() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(FlakyTags::new());
    let a = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    let b = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    a.set(
        "/o".into(),
        SetParts { class: Class::Route, value: Some(page_value("x")), cache_control: cc(60.0), tags: vec!["t".into()] },
    )
    .await
    .unwrap();
    assert!(matches!(b.get(&req("/o")).await, Lookup::Hit { .. }));

    tags.down.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(1_000);
    a.revalidate_tags(&["t".into()], None).await.expect("queued, not rejected");
    assert_eq!(a.outbox_depth(), 1);
    assert!(miss_now(&a, &req("/o")).await);
    // The feed stays unreadable past feedStaleAfterMs: memory and the tag clock are dropped...
    clock.advance(a.cfg.feed_stale_after_ms as i64 + 1);
    a.poll_feed_once().await;
    assert!(!a.feed_trusted());
    // ...and the S3 object, read with DynamoDB down (fail open), is still judged by what this
    // instance revalidated itself.
    assert!(matches!(a.get(&req("/o")).await, Lookup::Miss), "its own revalidation is never forgotten");

    tags.down.store(false, std::sync::atomic::Ordering::SeqCst);
    clock.advance(10_000);
    a.retry_outbox_once().await;
    assert_eq!(a.outbox_depth(), 0, "landed after healing");
    b.poll_feed_once().await;
    assert!(miss_now(&b, &req("/o")).await, "the other instance honours it");
    let late = Core::with_backends(Config::memory(), clock.clone(), blobs, tags);
    assert!(matches!(late.get(&req("/o")).await, Lookup::Miss), "and so does a late joiner");
}

/// Issue 24's contract corner: while the tag states cannot be read (feed stale, DynamoDB down),
/// a `'use cache'` result is answered so that Next recomputes it (a revalidation made elsewhere may
/// have expired it); a page is still served from memory (no page is lost to an outage).
#[tokio::test]
async fn a_use_cache_result_is_recomputed_not_served_from_memory_while_tag_states_cannot_be_read() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(FlakyTags::new());
    let a = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    a.poll_feed_once().await;
    let ukey = "[\"u\"]".to_string();
    let ureq = GetRequest { key: ukey.clone(), kind: Some("USE_CACHE".into()), ..Default::default() };
    let result =
        Value::UseCache { bytes: Bytes::from_static(b"0:1\n"), timestamp: clock_now(&clock) as f64, stale: 30.0 };
    let ucc = Some(CacheControl { revalidate: Revalidate::Seconds(60.0), expire: Some(600.0) });
    a.set(ukey, SetParts { class: Class::UseCache, value: Some(result), cache_control: ucc, tags: vec!["ut".into()] })
        .await
        .unwrap();
    a.set(
        "/p".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("x")),
            cache_control: cc(60.0),
            tags: vec!["ut".into()],
        },
    )
    .await
    .unwrap();
    assert!(matches!(a.get(&ureq).await, Lookup::Hit { .. }));

    tags.down.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(a.cfg.feed_stale_after_ms as i64 + 1);
    a.poll_feed_once().await;
    assert!(!a.feed_trusted());
    assert!(matches!(a.get(&ureq).await, Lookup::Miss), "Next recomputes the result");
    assert!(matches!(a.get(&req("/p")).await, Lookup::Hit { .. }), "the page is served from memory");
}

#[tokio::test]
async fn a_unit_that_failed_after_taking_its_feed_number_is_retried_at_that_number() {
    let store = Arc::new(MemoryTagStore::default());
    let clock = Arc::new(MockClock::new(T0));
    let a = core_with(clock.clone(), Arc::new(MemoryBlobStore::default()), store.clone());
    let b = core_with(clock.clone(), Arc::new(MemoryBlobStore::default()), store.clone());
    b.poll_feed_once().await;
    // A unit whose feed number was taken by an attempt that then died.
    use fleetcache::backend::tags::TagStore;
    let seq = store.reserve_seq().await.unwrap();
    a.revalidate_tags(&["u".into()], None).await.unwrap();
    let head = store.feed_head().await.unwrap();
    assert_eq!(head, seq + 1);
    // The reader waits for the hole, and the event after it is applied once the hole fills.
    store
        .revalidate_at(Unit { ack: false, event: Some((seq, "dead")), tags: &["v".into()], now: T0, expire_s: None })
        .await
        .unwrap();
    b.poll_feed_once().await;
    let events = store.read_feed(1, head).await.unwrap();
    assert_eq!(events.len(), 2, "one event per number, the retried one included");
}

#[tokio::test]
async fn an_event_that_lands_after_a_reader_gave_up_on_its_hole_is_still_applied() {
    use fleetcache::backend::tags::TagStore;
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let store = Arc::new(MemoryTagStore::default());
    let a = core_with(clock.clone(), blobs.clone(), store.clone());
    let b = core_with(clock.clone(), blobs, store.clone());
    b.poll_feed_once().await;
    a.set(
        "/h".into(),
        SetParts { class: Class::Route, value: Some(page_value("x")), cache_control: cc(60.0), tags: vec!["h".into()] },
    )
    .await
    .unwrap();
    assert!(matches!(b.get(&req("/h")).await, Lookup::Hit { .. }));
    b.poll_feed_once().await;
    // A writer takes a number and its write fails (it waits in that writer's outbox).
    let seq = store.reserve_seq().await.unwrap();
    // A hole with nothing after it is seen by the head read (every HEAD_CHECK_MS).
    clock.advance(fleetcache::feed::HEAD_CHECK_MS);
    b.poll_feed_once().await; // sees the hole
    clock.advance(fleetcache::feed::GAP_GRACE_MS + 1);
    b.poll_feed_once().await; // gives up on it: memory dropped, hole remembered
    assert_eq!(b.feed.holes(), 1);
    assert!(matches!(b.get(&req("/h")).await, Lookup::Hit { .. }), "reloaded, tag states read afresh");
    // The retry lands at the same number a minute later.
    clock.advance(50_000);
    store
        .revalidate_at(Unit {
            ack: false,
            event: Some((seq, "writer")),
            tags: &["h".into()],
            now: T0 + 52_000,
            expire_s: None,
        })
        .await
        .unwrap();
    b.poll_feed_once().await;
    assert_eq!(b.feed.holes(), 0);
    assert!(miss_now(&b, &req("/h")).await, "the late event is applied");
}

#[tokio::test]
async fn overlapping_renders_converge_on_the_object_s3_holds() {
    // Two instances render one key; the render that started first finishes last, so S3 holds
    // the older-stamped render. Every instance, and a fresh one, must serve what S3 holds.
    for (first, second) in [(0, 1), (1, 0)] {
        let (a, b, clock) = two_memory_cores();
        a.poll_feed_once().await;
        b.poll_feed_once().await;
        let cores = [&a, &b];
        let key = format!("/race-{first}");
        assert!(matches!(cores[first].get(&req(&key)).await, Lookup::Miss)); // its render starts
        clock.advance(10);
        assert!(matches!(cores[second].get(&req(&key)).await, Lookup::Miss)); // the other's starts later
        clock.advance(10);
        cores[second]
            .set(
                key.clone(),
                SetParts {
                    class: Class::Route,
                    value: Some(page_value("newer-start")),
                    cache_control: cc(60.0),
                    tags: vec![],
                },
            )
            .await
            .unwrap();
        clock.advance(10);
        cores[first]
            .set(
                key.clone(),
                SetParts {
                    class: Class::Route,
                    value: Some(page_value("older-start")),
                    cache_control: cc(60.0),
                    tags: vec![],
                },
            )
            .await
            .unwrap();
        a.poll_feed_once().await;
        b.poll_feed_once().await;
        let served = |l: Lookup| match l {
            Lookup::Hit { entry, .. } => match &entry.value {
                Some(fleetcache::entry::Value::AppPage { html, .. }) => html.clone(),
                v => panic!("{v:?}"),
            },
            Lookup::Miss => "miss".into(),
        };
        assert_eq!(served(a.get(&req(&key)).await), "older-start", "A serves what S3 holds");
        assert_eq!(served(b.get(&req(&key)).await), "older-start", "B serves what S3 holds");
    }
}

#[tokio::test]
async fn a_black_holed_feed_opens_the_breaker_before_memory_stops_being_served() {
    use fleetcache::backend::breaker::{Breaker, GuardedTags, THRESHOLD};
    use std::sync::atomic::Ordering::SeqCst;
    let clock = Arc::new(MockClock::new(T0));
    let flaky = Arc::new(FlakyTags::new());
    let breaker = Arc::new(Breaker::new("DynamoDB"));
    let tags = Arc::new(GuardedTags { inner: flaky.clone(), breaker: breaker.clone() });
    let mut cfg = Config::memory();
    cfg.feed_stale_after_ms = 1_000; // each head read is then abandoned after 1000 / THRESHOLD ms
    let core = Core::with_backends(cfg, clock.clone(), Arc::new(MemoryBlobStore::default()), tags);
    core.poll_feed_once().await;
    assert!(core.feed_trusted());

    flaky.hang.store(true, SeqCst);
    for _ in 0..THRESHOLD {
        // Each round ends by its own deadline (the mock clock stands still: memory stays trusted).
        tokio::time::timeout(std::time::Duration::from_secs(5), core.poll_feed_once())
            .await
            .expect("a poll of a black-holed feed ends by its deadline");
    }
    assert!(core.feed_trusted(), "within feedStaleAfterMs");
    // So the requests that follow the memory drop fail fast instead of waiting on the black hole.
    assert!(breaker.is_open(), "a breaker's worth of abandoned head reads fits in feedStaleAfterMs");
}

/// A blob store that can be switched to fail, for S3 outage tests.
#[derive(Default)]
struct FlakyBlobs {
    inner: MemoryBlobStore,
    down: std::sync::atomic::AtomicBool,
}

impl FlakyBlobs {
    fn check(&self) -> fleetcache::error::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(fleetcache::error::Error::backend("S3 down", true))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for FlakyBlobs {
    async fn get(&self, key: &str) -> fleetcache::error::Result<Option<Bytes>> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> fleetcache::error::Result<bool> {
        self.check()?;
        self.inner.put(key, body, if_absent).await
    }
    async fn get_versioned(&self, key: &str) -> fleetcache::error::Result<Option<(Bytes, String, Option<String>)>> {
        self.check()?;
        self.inner.get_versioned(key).await
    }
    async fn get_stamped(&self, key: &str, magic: &[u8]) -> fleetcache::error::Result<Option<(Bytes, Option<String>)>> {
        self.check()?;
        self.inner.get_stamped(key, magic).await
    }
    async fn stamp(&self, key: &str, stamp: &str) -> fleetcache::error::Result<bool> {
        self.check()?;
        self.inner.stamp(key, stamp).await
    }
    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> fleetcache::error::Result<bool> {
        self.check()?;
        self.inner.put_if(key, body, expected).await
    }
    async fn delete(&self, keys: &[String]) -> fleetcache::error::Result<()> {
        self.check()?;
        self.inner.delete(keys).await
    }
    async fn list(&self, prefix: &str) -> fleetcache::error::Result<Vec<String>> {
        self.check()?;
        self.inner.list(prefix).await
    }
}

fn html_of(l: Lookup) -> String {
    match l {
        Lookup::Hit { entry, .. } => match &entry.value {
            Some(fleetcache::entry::Value::AppPage { html, .. }) => html.clone(),
            v => panic!("{v:?}"),
        },
        Lookup::Miss => "miss".into(),
    }
}

/// Two instances whose S3 can be taken down (`blobs.down`), with a shared mock clock, feeds read.
async fn two_cores_on_flaky_s3() -> (Core, Core, Arc<MockClock>, Arc<FlakyBlobs>, Arc<MemoryTagStore>) {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(FlakyBlobs::default());
    let tags = Arc::new(MemoryTagStore::default());
    let a = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    let b = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    (a, b, clock, blobs, tags)
}

#[tokio::test]
async fn a_set_whose_s3_write_failed_is_uploaded_later_unless_a_newer_render_landed_meanwhile() {
    use std::sync::atomic::Ordering::SeqCst;
    let (a, b, clock, blobs, tags) = two_cores_on_flaky_s3().await;
    let count =
        |c: &Core, name: &str| c.stats_snapshot().into_iter().find(|(n, _)| n == name).map(|(_, r)| r).expect(name);
    use fleetcache::stats::Reading::Count;

    // S3 down: the set resolves, A keeps serving its value, the upload waits in the outbox.
    blobs.down.store(true, SeqCst);
    a.set(
        "/up".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("queued")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .expect("queued");
    a.set(
        "/old".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("A's older render")),
            cache_control: cc(60.0),
            tags: vec![],
        },
    )
    .await
    .expect("queued");
    assert_eq!(count(&a, "uploadsQueued"), Count(2.0));
    assert_eq!(a.outbox_depth(), 2);
    assert_eq!(html_of(a.get(&req("/up")).await), "queued", "kept in memory");

    // Healed; meanwhile B stores a render of /old that started later than A's.
    blobs.down.store(false, SeqCst);
    clock.advance(10);
    b.set(
        "/old".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("B's newer render")),
            cache_control: cc(60.0),
            tags: vec![],
        },
    )
    .await
    .unwrap();
    clock.advance(10_000);
    a.retry_outbox_once().await; // the uploads
    a.retry_outbox_once().await; // the feed event of the one that landed
    assert_eq!(a.outbox_depth(), 0);
    assert_eq!(count(&a, "uploadsLanded"), Count(1.0));
    assert_eq!(count(&a, "uploadsSuperseded"), Count(1.0));
    assert_eq!(count(&a, "queuedUploadBytes"), Count(0.0));

    b.poll_feed_once().await;
    a.poll_feed_once().await;
    assert_eq!(html_of(b.get(&req("/up")).await), "queued", "the late upload reached the store");
    let fresh = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    assert_eq!(html_of(fresh.get(&req("/up")).await), "queued");
    // The newer render was not overwritten, and A dropped its own older copy for it.
    assert_eq!(html_of(fresh.get(&req("/old")).await), "B's newer render");
    assert_eq!(html_of(a.get(&req("/old")).await), "B's newer render");
}

/// The faults suite's "S3 black-holed" case, which CI caught: the feed event of a set that
/// landed, applied after a later set of the same key failed to reach S3, evicted the later set's
/// copy, so the maker served S3's older page (or a miss while S3 was down) until the upload landed.
#[tokio::test]
async fn a_queued_set_is_not_evicted_by_the_event_of_the_makers_earlier_write() {
    use std::sync::atomic::Ordering::SeqCst;
    let (a, b, clock, blobs, _) = two_cores_on_flaky_s3().await;
    a.set(
        "/k".into(),
        SetParts { class: Class::Route, value: Some(page_value("before")), cache_control: cc(60.0), tags: vec![] },
    )
    .await
    .unwrap();
    clock.advance(10);
    blobs.down.store(true, SeqCst);
    a.set(
        "/k".into(),
        SetParts { class: Class::Route, value: Some(page_value("during")), cache_control: cc(60.0), tags: vec![] },
    )
    .await
    .expect("queued");
    a.poll_feed_once().await; // applies the event of "before", A's own
    assert_eq!(html_of(a.get(&req("/k")).await), "during", "kept in the maker's memory");
    blobs.down.store(false, SeqCst);
    clock.advance(10_000);
    a.retry_outbox_once().await; // the upload
    a.retry_outbox_once().await; // its feed event
    b.poll_feed_once().await;
    a.poll_feed_once().await;
    assert_eq!(html_of(a.get(&req("/k")).await), "during");
    assert_eq!(html_of(b.get(&req("/k")).await), "during");
}

#[tokio::test]
async fn a_copy_a_revalidation_expired_gives_way_to_a_render_another_instance_stored_after_it() {
    use fleetcache::core::SyncLookup;
    let (a, b, clock) = two_memory_cores();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    a.set(
        "/n".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .unwrap();
    assert!(matches!(b.get(&req("/n")).await, Lookup::Hit { .. }));
    clock.advance(10);
    b.revalidate_tags(&["t".into()], None).await.unwrap();
    // A (which saw the revalidation) renders the page again and stores it; B has not polled.
    clock.advance(10);
    a.poll_feed_once().await;
    a.set(
        "/n".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v2")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .unwrap();
    assert!(matches!(b.get_sync(&req("/n")), SyncLookup::NeedsBackend), "B's copy is expired: ask the store");
    assert_eq!(html_of(b.get(&req("/n")).await), "v2", "B serves A's render instead of rendering again");
}

/// Counts the writes a store receives: full bodies and freshness stamps.
#[derive(Default)]
struct CountingBlobs {
    inner: MemoryBlobStore,
    bodies: std::sync::atomic::AtomicU64,
    stamps: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl BlobStore for CountingBlobs {
    async fn get(&self, key: &str) -> fleetcache::error::Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn get_stamped(&self, key: &str, magic: &[u8]) -> fleetcache::error::Result<Option<(Bytes, Option<String>)>> {
        self.inner.get_stamped(key, magic).await
    }
    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> fleetcache::error::Result<bool> {
        self.bodies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.put(key, body, if_absent).await
    }
    async fn stamp(&self, key: &str, stamp: &str) -> fleetcache::error::Result<bool> {
        self.stamps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.stamp(key, stamp).await
    }
    async fn get_versioned(&self, key: &str) -> fleetcache::error::Result<Option<(Bytes, String, Option<String>)>> {
        self.inner.get_versioned(key).await
    }
    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> fleetcache::error::Result<bool> {
        self.bodies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.put_if(key, body, expected).await
    }
    async fn delete(&self, keys: &[String]) -> fleetcache::error::Result<()> {
        self.inner.delete(keys).await
    }
    async fn list(&self, prefix: &str) -> fleetcache::error::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
}

fn hit_last_modified(l: Lookup) -> Option<i64> {
    match l {
        Lookup::Hit { last_modified, .. } => Some(last_modified),
        Lookup::Miss => None,
    }
}

#[tokio::test]
async fn a_render_with_the_stored_bytes_writes_no_body_and_moves_freshness_everywhere() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(CountingBlobs::default());
    let tags = Arc::new(MemoryTagStore::default());
    let a = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    let b = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    let bodies = || blobs.bodies.load(std::sync::atomic::Ordering::Relaxed);
    a.set(
        "/same".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("same")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(bodies(), 1);
    assert_eq!(hit_last_modified(b.get(&req("/same")).await), Some(T0), "B holds the first render");

    // Past its revalidate time A regenerates it: the same bytes.
    clock.advance(61_000);
    assert!(matches!(a.get(&req("/same")).await, Lookup::Hit { .. }), "stale, A regenerates");
    a.set(
        "/same".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("same")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(bodies(), 1, "no new S3 body");
    assert_eq!(blobs.stamps.load(std::sync::atomic::Ordering::Relaxed), 1, "only the freshness stamp");
    assert_eq!(a.stats.identical_sets.load(std::sync::atomic::Ordering::Relaxed), 1);
    let renewed = T0 + 61_000;
    assert_eq!(hit_last_modified(a.get(&req("/same")).await), Some(renewed));

    // B learns of it through the feed and reads the renewed freshness from S3; so does a new
    // instance.
    b.poll_feed_once().await;
    assert_eq!(hit_last_modified(b.get(&req("/same")).await), Some(renewed), "B: fresh, not stale");
    let c = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    assert_eq!(hit_last_modified(c.get(&req("/same")).await), Some(renewed), "a new instance too");

    // Other bytes are written in full.
    clock.advance(61_000);
    a.set(
        "/same".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("changed")),
            cache_control: cc(60.0),
            tags: vec!["t".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(bodies(), 2);
    c.poll_feed_once().await;
    assert_eq!(html_of(c.get(&req("/same")).await), "changed");
}

/// Next's built-in counts a page's time window from when the render was stored; a revalidation
/// made while the render ran must still expire it (the render race, see `feed.rs`). Before, the
/// render start stamped both, so a slow render turned stale early (seen as STALE where Next
/// served HIT in the differential suite under load).
#[tokio::test]
async fn the_time_window_counts_from_the_store_and_revalidations_from_the_render_start() {
    let (a, b, clock) = two_memory_cores();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    assert!(matches!(a.get(&req("/slow")).await, Lookup::Miss)); // a 2 s render starts
    clock.advance(2_000);
    a.set(
        "/slow".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(3.0),
            tags: vec!["slow".into()],
        },
    )
    .await
    .unwrap();
    let stored = clock_now(&clock);
    clock.advance(2_000);
    // 4 s after the render started, 2 s after it was stored: fresh with `revalidate: 3`, as on Next.
    b.poll_feed_once().await;
    assert_eq!(hit_last_modified(a.get(&req("/slow")).await), Some(stored), "A: the store time");
    assert_eq!(hit_last_modified(b.get(&req("/slow")).await), Some(stored), "B: the store time");

    // The same bytes rendered again, with a revalidation of its tag made during that render: the
    // freshness stamp carries the render start, so it is not fresh on A, on B, or on a new one.
    let _ = a.get(&req("/slow")).await; // the render starts
    clock.advance(10);
    b.revalidate_tags(&["slow".to_string()], None).await.unwrap();
    clock.advance(10);
    a.set(
        "/slow".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(3.0),
            tags: vec!["slow".into()],
        },
    )
    .await
    .unwrap();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    assert!(miss_now(&a, &req("/slow")).await, "must not look fresh on A");
    b.clear_memory();
    assert!(miss_now(&b, &req("/slow")).await, "must not look fresh on B");
}

/// Issue 26: a `set` of a key too long for a feed event (10 MB) still tells the fleet: its event
/// carries the key's hash, and an instance holding the old copy finds it by that hash.
#[tokio::test]
async fn a_set_of_a_key_too_long_for_an_event_still_reaches_the_other_instance() {
    let (a, b, clock) = two_memory_cores();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    for long in ["/k".repeat(500_000), format!("{}/x", fleetcache::backend::tags::HASHED_KEY)] {
        a.set(
            long.clone(),
            SetParts { class: Class::Route, value: Some(page_value("v1")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        b.poll_feed_once().await;
        assert_eq!(html_of(b.get(&req(&long)).await), "v1", "B holds v1 in memory");
        clock.advance(10);
        a.set(
            long.clone(),
            SetParts { class: Class::Route, value: Some(page_value("v2")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        b.poll_feed_once().await;
        assert_eq!(html_of(b.get(&req(&long)).await), "v2", "B dropped v1 on the hashed event");
    }
    assert!(fleetcache::backend::tags::event_key(&"/k".repeat(500_000)).len() < 100);
    assert_eq!(fleetcache::backend::tags::event_key("/short"), "/short");
}

mod cdn_purges {
    use super::*;
    use fleetcache::cdn::purger::{HookFn, Target};
    use fleetcache::cdn::Batch;
    use parking_lot::Mutex;

    /// A core with a hook target recording what it is sent (no window: batches go at once).
    fn purging_core(
        clock: Arc<MockClock>,
        blobs: Arc<MemoryBlobStore>,
        tags: Arc<MemoryTagStore>,
    ) -> (Arc<Core>, Arc<Mutex<Vec<Batch>>>) {
        purging_core_with(clock, blobs, tags, None)
    }

    fn purging_core_with(
        clock: Arc<MockClock>,
        blobs: Arc<MemoryBlobStore>,
        tags: Arc<MemoryTagStore>,
        ceiling_paths: Option<u64>,
    ) -> (Arc<Core>, Arc<Mutex<Vec<Batch>>>) {
        let mut cfg = Config::memory();
        cfg.cdn.planner.window_ms = 0;
        cfg.cdn.planner.ceiling_paths = ceiling_paths;
        let core = Arc::new(Core::with_backends(cfg, clock, blobs, tags));
        let sent: Arc<Mutex<Vec<Batch>>> = Arc::default();
        let s = sent.clone();
        let hook: HookFn = Arc::new(move |b: Batch| {
            s.lock().push(b);
            Box::pin(async { Ok(()) })
        });
        // No task: each test runs the purger's rounds itself (`sent_paths`).
        core.start_purger(Target::Hook(hook), |_| {}).unwrap();
        (core, sent)
    }

    /// The paths `core` sent so far, after one round of its purger.
    async fn sent_paths(core: &Core, sent: &Mutex<Vec<Batch>>) -> Vec<Vec<String>> {
        core.purge_round_once().await;
        sent.lock().iter().map(|b| b.paths.clone()).collect()
    }

    fn pages_value(html: &str) -> fleetcache::entry::Value {
        fleetcache::entry::Value::Pages {
            html: html.into(),
            page_data_json: "{}".into(),
            headers_json: None,
            status: Some(200.0),
        }
    }

    #[tokio::test]
    async fn the_instance_that_revalidates_purges_the_pages_and_their_variants_and_no_other_does() {
        let clock = Arc::new(MockClock::new(T0));
        let blobs = Arc::new(MemoryBlobStore::default());
        let tags = Arc::new(MemoryTagStore::default());
        let (a, sent_a) = purging_core(clock.clone(), blobs.clone(), tags.clone());
        let (b, sent_b) = purging_core(clock.clone(), blobs.clone(), tags.clone());
        a.poll_feed_once().await;
        b.poll_feed_once().await;
        for p in ["/blog/a", "/blog/b"] {
            b.set(
                p.into(),
                SetParts {
                    class: Class::Route,
                    value: Some(page_value(p)),
                    cache_control: cc(3600.0),
                    tags: vec!["posts".into()],
                },
            )
            .await
            .unwrap();
        }
        a.revalidate_tags(&["posts".to_string()], None).await.unwrap();
        assert_eq!(
            sent_paths(&a, &sent_a).await,
            vec![vec!["/blog/a", "/blog/a?_rsc=*", "/blog/b", "/blog/b?_rsc=*"]],
            "one batch: the tag's pages and their RSC variants"
        );
        b.poll_feed_once().await;
        assert!(sent_paths(&b, &sent_b).await.is_empty(), "the other instance learns of it and sends nothing");

        // revalidatePath: the page the implicit tag names, indexed or not.
        a.revalidate_tags(&["_N_T_/about".to_string()], Some(0.0)).await.unwrap();
        assert_eq!(sent_paths(&a, &sent_a).await[1], vec!["/about", "/about?_rsc=*"]);
    }

    /// Issue 27: a receipt carries the CDN purge of its revalidation: the paths planned, and
    /// the invalidation that sent them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_names_the_cdn_purge_of_its_revalidation() {
        let clock = Arc::new(MockClock::new(T0));
        let (a, sent) =
            purging_core(clock.clone(), Arc::new(MemoryBlobStore::default()), Arc::new(MemoryTagStore::default()));
        a.poll_feed_once().await;
        a.set(
            "/blog/a".into(),
            SetParts {
                class: Class::Route,
                value: Some(page_value("/blog/a")),
                cache_control: cc(3600.0),
                tags: vec!["posts".into()],
            },
        )
        .await
        .unwrap();
        a.purge_round_once().await;
        sent.lock().clear();
        // The purger's task, as start_purger would run it.
        let purging = a.clone();
        let rounds = tokio::spawn(async move {
            loop {
                purging.purge_round_once().await;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
        let r = a.revalidate_with_receipt(&["posts".into()], None, 3_000).await.unwrap();
        rounds.abort();
        let cdn = r.cdn.expect("a purging instance reports its purge");
        assert_eq!(cdn.planned, vec!["/blog/a", "/blog/a?_rsc=*"]);
        assert!(cdn.sent, "{cdn:?}");
        assert_eq!(cdn.invalidation_ids, vec![String::new()], "a hook's batch has no CloudFront id");
        assert_eq!(cdn.error, None);
        assert_eq!(sent.lock().len(), 1);
    }

    #[tokio::test]
    async fn an_on_demand_rewrite_purges_and_a_time_based_or_identical_one_does_not() {
        let clock = Arc::new(MockClock::new(T0));
        let blobs = Arc::new(MemoryBlobStore::default());
        let tags = Arc::new(MemoryTagStore::default());
        let (a, sent) = purging_core(clock.clone(), blobs, tags);
        a.poll_feed_once().await;
        let key = "/route-cache/PAGES/1f/$/docs";
        a.set(
            key.into(),
            SetParts { class: Class::Route, value: Some(pages_value("v1")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        // A pages-router `res.revalidate` 10 s later: other bytes, well before revalidate time.
        clock.advance(10_000);
        a.set(
            key.into(),
            SetParts { class: Class::Route, value: Some(pages_value("v2")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        assert_eq!(sent_paths(&a, &sent).await, vec![vec!["/_next/data/default/docs.json", "/docs"]]);
        // The same bytes again: nothing to purge.
        clock.advance(10_000);
        a.set(
            key.into(),
            SetParts { class: Class::Route, value: Some(pages_value("v2")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        // Regenerated past its revalidate time: the CDN's s-maxage expires it on the same clock.
        clock.advance(700_000);
        a.set(
            key.into(),
            SetParts { class: Class::Route, value: Some(pages_value("v3")), cache_control: cc(600.0), tags: vec![] },
        )
        .await
        .unwrap();
        assert_eq!(sent_paths(&a, &sent).await.len(), 1, "neither sent a purge");
        assert_eq!(a.stats.identical_sets.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn past_the_fleets_monthly_ceiling_purges_widen_then_stop_and_the_metrics_say_so() {
        let clock = Arc::new(MockClock::new(T0));
        let blobs = Arc::new(MemoryBlobStore::default());
        let tags = Arc::new(MemoryTagStore::default());
        // Another instance already sent 5 paths this month: the count is the fleet's.
        let (other, _) = purging_core_with(clock.clone(), blobs.clone(), tags.clone(), Some(10));
        let month = fleetcache::cdn::purger::counter_name(T0);
        other.add_to_counter(&month, 5).await.unwrap();
        let (a, sent) = purging_core_with(clock.clone(), blobs, tags, Some(10));
        a.poll_feed_once().await;
        for i in 0..4 {
            let key = format!("/shop/c{i}/item");
            a.set(
                key,
                SetParts {
                    class: Class::Route,
                    value: Some(page_value("x")),
                    cache_control: cc(3600.0),
                    tags: vec!["shop".into()],
                },
            )
            .await
            .unwrap();
        }
        // 4 pages = 8 paths asked for, 5 left this month: widened to fit.
        a.revalidate_tags(&["shop".to_string()], Some(0.0)).await.unwrap();
        let batches = sent_paths(&a, &sent).await;
        assert_eq!(batches, vec![vec!["/shop/*"]], "widened to the folder's wildcard");
        assert_eq!(other.add_to_counter(&month, 0).await.unwrap(), 6, "the fleet's count moved by the batch");
        // At the ceiling: nothing more is sent, and it is counted.
        clock.advance(1_000);
        for round in 0..2 {
            let key = format!("/x{round}");
            a.set(
                key,
                SetParts {
                    class: Class::Route,
                    value: Some(page_value("x")),
                    cache_control: cc(3600.0),
                    tags: vec![format!("t{round}")],
                },
            )
            .await
            .unwrap();
        }
        other.add_to_counter(&month, 4).await.unwrap();
        a.revalidate_tags(&["t0".to_string(), "t1".to_string()], Some(0.0)).await.unwrap();
        a.purge_round_once().await;
        assert_eq!(sent.lock().len(), 1, "nothing sent past the ceiling");
        let value = |name: &str, label: Option<(&str, &str)>| {
            a.metric_samples()
                .into_iter()
                .find(|s| {
                    s.name == name && label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v))
                })
                .map(|s| s.value)
        };
        assert_eq!(value("cdn_widened_batches", None), Some(1.0));
        assert_eq!(value("cdn_paths", Some(("fate", "over_budget"))), Some(4.0));
        assert_eq!(value("cdn_paths", Some(("fate", "sent"))), Some(1.0));
        assert_eq!(value("cdn_month_paths", None), Some(10.0));
    }
}

/// Issue 26: a 10,000-tag revalidation goes out 4 units at a time, each reserving its number
/// before it writes, so for as long as it lasts some number is always reserved and not written
/// yet. That is not a hole while the cursor moves: before, a gap of any numbers that lasted 2 s
/// dropped every instance's memory. A number the cursor is stuck at still does, after 2 s.
#[tokio::test]
async fn numbers_reserved_ahead_of_a_moving_cursor_are_not_a_hole_and_a_stuck_one_is() {
    use fleetcache::backend::tags::{FeedEvent, FeedRecord, TagStore};
    use std::sync::atomic::Ordering::Relaxed;
    let clock = Arc::new(MockClock::new(T0));
    let store = Arc::new(MemoryTagStore::default());
    let b = core_with(clock.clone(), Arc::new(MemoryBlobStore::default()), store.clone());
    b.poll_feed_once().await;
    let rec =
        |n: u64| FeedRecord::new("other", FeedEvent::Tags { states: vec![(format!("t{n}"), Default::default())] });
    // Units in flight finish out of order: at every poll a later number is written and an earlier
    // one not yet, for 10 s; each poll the earlier one of the last poll has landed.
    let mut older = store.reserve_seq().await.unwrap();
    let newer = store.reserve_seq().await.unwrap();
    store.announce_at(newer, &rec(0), T0).await.unwrap();
    for n in 0..40 {
        let (next_older, next_newer) = (store.reserve_seq().await.unwrap(), store.reserve_seq().await.unwrap());
        store.announce_at(older, &rec(2 * n + 1), T0).await.unwrap();
        store.announce_at(next_newer, &rec(2 * n + 2), T0).await.unwrap();
        older = next_older;
        clock.advance(250);
        b.poll_feed_once().await;
    }
    assert_eq!(b.stats.feed_resets.load(Relaxed), 0, "10 s of a moving cursor behind reserved numbers");
    assert_eq!(b.stats.feed_events.load(Relaxed), 2 * 40);
    // `older`'s writer dies: the cursor is stuck at it.
    let _ = older;
    for _ in 0..12 {
        clock.advance(250);
        b.poll_feed_once().await;
    }
    assert_eq!(b.stats.feed_resets.load(Relaxed), 1, "stuck for 3 s at one number: memory dropped");
}

/// Issue 26: what a process told to stop could not deliver goes to the spool, and the next start
/// of the same store on the machine queues it (honouring its revalidations at once) and delivers it.
#[tokio::test]
async fn what_a_stopping_process_could_not_deliver_is_spooled_and_the_next_start_delivers_it() {
    use fleetcache::backend::tags::TagStore;
    use std::sync::atomic::Ordering::SeqCst;
    let dir = std::env::temp_dir().join(format!("fleetcache-spool-core-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::memory();
    cfg.backend = fleetcache::config::Backend::Aws; // the stores below are memory ones all the same
    cfg.prefix = format!("spool-{}", std::process::id());
    cfg.spool_dir = Some(dir.clone());
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(FlakyTags::new());
    let a = Core::with_backends(cfg.clone(), clock.clone(), blobs.clone(), tags.clone());
    tags.down.store(true, SeqCst); // DynamoDB refuses
    a.revalidate_tags(&["s1".to_string(), "s2".to_string()], None).await.unwrap();
    assert_eq!(a.outbox_depth(), 1, "queued");
    assert_eq!(a.spool_outbox(), 1, "SIGTERM: to the spool");
    assert_eq!(a.outbox_depth(), 0);

    let b = Arc::new(Core::with_backends(cfg.clone(), clock.clone(), blobs.clone(), tags.clone()));
    b.start_feed(|_| {}); // replays the spool (its tasks are not needed here)
    assert_eq!(b.outbox_depth(), 1, "the next start queued it");
    clock.advance(10);
    tags.down.store(false, SeqCst);
    b.retry_outbox_once().await;
    assert_eq!(b.outbox_depth(), 0, "delivered");
    let states = tags.inner.tag_states(&["s1".to_string(), "s2".to_string()]).await.unwrap();
    assert!(states.iter().all(|(_, st)| st.hard == T0), "{states:?}");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "the file is gone");

    // With the spool off, nothing is written (a final error line names what is lost).
    cfg.spool_dir = None;
    let c = Core::with_backends(cfg, clock.clone(), blobs, tags.clone());
    tags.down.store(true, SeqCst);
    c.revalidate_tags(&["s3".to_string()], None).await.unwrap();
    assert_eq!(c.spool_outbox(), 0);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_poll_reads_across_a_feed_page_and_finds_a_hole_at_a_pages_end_through_the_head() {
    use fleetcache::backend::tags::{FeedEvent, FeedRecord, TagStore, FEED_PAGE};
    use std::sync::atomic::Ordering::Relaxed;
    let clock = Arc::new(MockClock::new(T0));
    let store = Arc::new(MemoryTagStore::default());
    let b = core_with(clock.clone(), Arc::new(MemoryBlobStore::default()), store.clone());
    for _ in 0..FEED_PAGE - 10 {
        store.reserve_seq().await.unwrap();
    }
    b.poll_feed_once().await; // starts at 990
    let tags =
        |n: u64| FeedRecord::new("other", FeedEvent::Tags { states: vec![(format!("t{n}"), Default::default())] });
    for n in 0..20 {
        store.append(&tags(n), T0).await.unwrap(); // 991..=1010: the page ends at 999
    }
    b.poll_feed_once().await;
    assert_eq!(b.stats.feed_events.load(Relaxed), 20, "one poll, two pages");
    // A hole at 1999, the page's last number, and events after it in the next page.
    while store.append(&tags(0), T0).await.unwrap() < 2 * FEED_PAGE - 2 {} // 1011..=1998
    b.poll_feed_once().await;
    assert_eq!(b.stats.feed_events.load(Relaxed), 1998 - 990);
    store.reserve_seq().await.unwrap(); // 1999: its writer died
    for n in 0..3 {
        store.append(&tags(100 + n), T0).await.unwrap(); // 2000..=2002
    }
    clock.advance(fleetcache::feed::HEAD_CHECK_MS);
    b.poll_feed_once().await; // the head says 2002: the hole is seen
    assert!(b.feed_trusted(), "within the grace period");
    clock.advance(fleetcache::feed::GAP_GRACE_MS + 1);
    b.poll_feed_once().await; // gives up on it: memory dropped, the holes remembered
    assert_eq!(b.stats.feed_resets.load(Relaxed), 1);
    assert!(b.feed.holes() >= 1);
}

/// Two instances on one pair of memory stores with regeneration leases on (15 s, the default),
/// each having read the feed.
async fn two_leasing_cores() -> (Core, Core, Arc<MockClock>) {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(MemoryTagStore::default());
    let mut cfg = Config::memory();
    cfg.lease_ms = 15_000;
    let a = Core::with_backends(cfg.clone(), clock.clone(), blobs.clone(), tags.clone());
    let b = Core::with_backends(cfg, clock.clone(), blobs, tags);
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    (a, b, clock)
}

/// What Next's `get` answers: memory first, else the store.
async fn lookup(c: &Core, r: &GetRequest) -> Lookup {
    match c.get_sync(r) {
        SyncLookup::Done(l) => l,
        SyncLookup::NeedsBackend => c.get(r).await,
    }
}

/// Issue 24: a page rendered at request time from a tagged fetch, then `revalidateTag(t, 'max')`.
/// Whichever instance regenerates the page must find the fetch inside stale too (Next refetches it
/// in the foreground, and the new page has the new data), even when another instance took the
/// fetch's regeneration lease in an earlier regeneration. Before the fix B was told the fetch was
/// fresh (A held its lease), rendered the old data, and the page was fresh with it for good.
#[tokio::test]
async fn max_makes_the_fetch_inside_a_page_regeneration_stale_wherever_its_lease_is() {
    let (a, b, clock) = two_leasing_cores().await;
    let tag = "posts".to_string();
    let fkey = "f".repeat(64);
    let freq = GetRequest {
        key: fkey.clone(),
        kind: Some("FETCH".into()),
        tags: vec![tag.clone()],
        soft_tags: vec![],
        revalidate: Some(60.0),
    };
    let fetch = |body: &str| Value::Fetch {
        headers_json: "{}".into(),
        body: body.into(),
        status: 200.0,
        url: "http://x/posts".into(),
        revalidate: 60.0,
        tags: Some(vec![tag.clone()]),
    };
    let assert_stale = |l: Lookup, what: &str, now: i64| match l {
        Lookup::Hit { last_modified, .. } => assert!(now - last_modified > 60_000, "{what}: must read as stale"),
        Lookup::Miss => panic!("{what}: stale, not a miss"),
    };
    // A renders two pages from the one fetch.
    for p in ["/p1", "/p2"] {
        assert!(matches!(a.get(&req(p)).await, Lookup::Miss));
    }
    assert!(matches!(a.get(&freq).await, Lookup::Miss));
    a.set(
        fkey.clone(),
        SetParts { class: Class::Fetch, value: Some(fetch("v1")), cache_control: None, tags: vec![tag.clone()] },
    )
    .await
    .unwrap();
    for p in ["/p1", "/p2"] {
        a.set(
            p.into(),
            SetParts {
                class: Class::Route,
                value: Some(page_value("v1")),
                cache_control: cc(60.0),
                tags: vec![tag.clone()],
            },
        )
        .await
        .unwrap();
    }
    clock.advance(1_000);
    // 'max'; A regenerates /p1 (its lease and the fetch's are A's now) with the new data.
    a.revalidate_tags(std::slice::from_ref(&tag), Some(31_536_000.0)).await.unwrap();
    b.poll_feed_once().await;
    clock.advance(100);
    let now = clock_now(&clock);
    assert_stale(lookup(&a, &req("/p1")).await, "A: /p1", now);
    assert_stale(lookup(&a, &freq).await, "A: the fetch inside /p1's regeneration", now);
    clock.advance(50);
    a.set(
        fkey.clone(),
        SetParts { class: Class::Fetch, value: Some(fetch("v2")), cache_control: None, tags: vec![tag.clone()] },
    )
    .await
    .unwrap();
    a.set(
        "/p1".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v2")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
    clock.advance(1_000);
    // A second 'max' within A's leases: B regenerates /p2, and the fetch inside is stale for it.
    a.revalidate_tags(std::slice::from_ref(&tag), Some(31_536_000.0)).await.unwrap();
    b.poll_feed_once().await;
    clock.advance(100);
    let now = clock_now(&clock);
    assert_stale(lookup(&b, &req("/p2")).await, "B: /p2", now);
    assert_stale(lookup(&b, &freq).await, "B: the fetch inside /p2's regeneration", now);
}

/// A regeneration's `set` ends its lease: a second `'max'` soon after is regenerated by the first
/// instance asked, as Next's own cache regenerates at once. Before, B served the old page as
/// fresh until A's lease (15 s) ran out, although A had stored its regeneration long before.
#[tokio::test]
async fn a_regeneration_s_set_ends_its_lease_so_the_next_max_is_regenerated_at_once_anywhere() {
    let (a, b, clock) = two_leasing_cores().await;
    let tag = "posts".to_string();
    let stale_at = |l: Lookup, now: i64| matches!(l, Lookup::Hit { last_modified, .. } if now - last_modified > 60_000);
    a.set(
        "/p".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
    clock.advance(1_000);
    a.revalidate_tags(std::slice::from_ref(&tag), Some(31_536_000.0)).await.unwrap();
    clock.advance(100);
    assert!(stale_at(lookup(&a, &req("/p")).await, clock_now(&clock)), "A regenerates /p");
    clock.advance(50);
    a.set(
        "/p".into(),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v2")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
    b.poll_feed_once().await;
    clock.advance(1_000);
    assert!(!stale_at(lookup(&b, &req("/p")).await, clock_now(&clock)), "B: the regenerated page is fresh");
    a.revalidate_tags(std::slice::from_ref(&tag), Some(31_536_000.0)).await.unwrap();
    b.poll_feed_once().await;
    clock.advance(100);
    assert!(stale_at(lookup(&b, &req("/p")).await, clock_now(&clock)), "B regenerates after the second 'max'");
}

/// Issue 27: every instance's heartbeat lists it with its build and how far it read the feed; a
/// heartbeat not renewed for three intervals is gone.
#[tokio::test]
async fn the_fleet_is_the_instances_whose_heartbeats_are_alive() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(MemoryTagStore::default());
    let a = Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone());
    let b = Core::with_backends(Config::memory(), clock.clone(), blobs, tags);
    a.adopt_build_id("build-1");
    b.adopt_build_id("build-2");
    a.set_next_version(Some("16.4.6".into()));
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    a.revalidate_tags(&["t".into()], None).await.unwrap();
    b.poll_feed_once().await;
    a.beat().await.unwrap();
    b.beat().await.unwrap();
    let s = a.fleet_status().await.unwrap();
    assert_eq!(s.head, 1);
    let mut seen: Vec<(String, String, i64, Option<String>)> =
        s.instances.iter().map(|i| (i.id.clone(), i.build_id.clone(), i.applied, i.next.clone())).collect();
    seen.sort();
    let mut want = vec![
        (a.instance_id.clone(), "build-1".to_string(), 0, Some("16.4.6".to_string())),
        (b.instance_id.clone(), "build-2".to_string(), 1, None),
    ];
    want.sort();
    assert_eq!(seen, want);
    assert!(s.instances.iter().all(|i| i.trusted && i.interval_ms == 15_000 && i.pid == std::process::id()));
    // The fleet_instances gauge: per build, as A last read the heartbeats.
    let per_build = |c: &Core| -> Vec<(String, f64)> {
        c.metric_samples()
            .into_iter()
            .filter(|s| s.name == "fleet_instances")
            .map(|s| (s.labels.iter().find(|(k, _)| *k == "build_id").unwrap().1.clone(), s.value))
            .collect()
    };
    assert_eq!(per_build(&a), vec![], "not read yet");
    a.read_fleet_view().await.unwrap();
    assert_eq!(per_build(&a), vec![("build-1".into(), 1.0), ("build-2".into(), 1.0)]);
    // B stops beating: gone after three intervals; A beating on stays.
    clock.advance(30_000);
    a.beat().await.unwrap();
    clock.advance(20_000);
    let ids: Vec<String> = a.fleet_status().await.unwrap().instances.into_iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![a.instance_id.clone()]);
    // A leaves (SIGTERM): gone at once, and no later beat brings it back.
    a.leave().await.unwrap();
    assert!(a.fleet_status().await.unwrap().instances.is_empty(), "gone as it leaves");
    a.beat().await.unwrap();
    assert!(a.fleet_status().await.unwrap().instances.is_empty(), "no beat after leaving");
}

/// Issue 27: how far behind the feed's head an instance may be grows while it applies nothing
/// (the lag histogram only moves when events are applied), and is back near 0 after a poll.
#[tokio::test]
async fn feed_behind_seconds_grows_while_nothing_is_read() {
    let clock = Arc::new(MockClock::new(T0));
    let a = Core::with_backends(
        Config::memory(),
        clock.clone(),
        Arc::new(MemoryBlobStore::default()),
        Arc::new(MemoryTagStore::default()),
    );
    let behind = |c: &Core| c.metric_samples().into_iter().find(|s| s.name == "feed_behind_seconds").map(|s| s.value);
    assert_eq!(behind(&a), Some(0.0), "before the first poll");
    a.poll_feed_once().await;
    clock.advance(12_000);
    assert_eq!(behind(&a), Some(12.0));
    a.poll_feed_once().await;
    assert_eq!(behind(&a), Some(0.0));
}

/// Issue 27: a receipt names every live instance that applied the revalidation (each says so
/// as it applies the event) and the ones that had not when the wait ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_names_the_live_instances_that_applied_a_revalidation_and_those_that_did_not() {
    let clock = Arc::new(MockClock::new(T0));
    let blobs = Arc::new(MemoryBlobStore::default());
    let tags = Arc::new(MemoryTagStore::default());
    let core = || Arc::new(Core::with_backends(Config::memory(), clock.clone(), blobs.clone(), tags.clone()));
    let (a, b, c) = (core(), core(), core());
    for x in [&a, &b, &c] {
        x.poll_feed_once().await;
        x.beat().await.unwrap();
    }
    // B reads the feed as its task would; C has stopped reading it.
    let reader = b.clone();
    let poller = tokio::spawn(async move {
        loop {
            reader.poll_feed_once().await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let r = a.revalidate_with_receipt(&["posts".into()], None, 1_500).await.unwrap();
    poller.abort();
    assert_eq!((r.events.clone(), r.queued), (vec![1], false));
    let mut applied: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    applied.sort();
    let mut want = vec![a.instance_id.clone(), b.instance_id.clone()];
    want.sort();
    assert_eq!(applied, want);
    assert!(r.instances.iter().all(|i| i.applied_after_ms.is_some()));
    assert_eq!(r.missing.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![c.instance_id.clone()]);
    assert_eq!(r.missing[0].applied_after_ms, None);
    assert_eq!(r.cdn, None, "no CDN purge configured");
    // The tag is revalidated everywhere that read the feed; C catches up on its next poll and
    // acknowledges then.
    c.poll_feed_once().await;
    let acks = tags.members(&fleetcache::fleet::ack_group(1), T0 / 1000).await.unwrap();
    assert_eq!(acks.len(), 2, "B and C acknowledged; A made it");
}
