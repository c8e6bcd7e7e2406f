//! The conformance suites and the handler scenarios against real S3 and DynamoDB protocol
//! servers, at `FLEETCACHE_TEST_ENDPOINT` (`npm test` starts moto and sets it;
//! `node scripts/with-local-aws.mjs cargo test` does the same for one command). Without it each test
//! fails, so that a run without the server never reports a pass; `FLEETCACHE_SKIP_BACKEND_TESTS=1`
//! skips them instead, saying so.

mod common;

use std::sync::Arc;

use fleetcache::backend::blob::s3::S3BlobStore;
use fleetcache::backend::tags::dynamodb::DynamoTagStore;
use fleetcache::backend::tags::Unit;
use fleetcache::clock::MockClock;
use fleetcache::config::{Config, Options};
use fleetcache::core::Core;

fn endpoint() -> Option<String> {
    let ep = std::env::var("FLEETCACHE_TEST_ENDPOINT").ok().filter(|s| !s.is_empty());
    if ep.is_none() && std::env::var("FLEETCACHE_SKIP_BACKEND_TESTS").as_deref() != Ok("1") {
        panic!(
            "FLEETCACHE_TEST_ENDPOINT is not set: these tests need local S3 + DynamoDB servers \
             (`node scripts/with-local-aws.mjs cargo test`, or `npm test`); FLEETCACHE_SKIP_BACKEND_TESTS=1 skips them"
        );
    }
    ep
}

fn unique(name: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("fc-{name}-{}-{}", std::process::id(), n % 1_000_000_000)
}

async fn setup(ep: &str) -> (Config, S3BlobStore, DynamoTagStore) {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let opts = Options {
        bucket: Some(unique("b")),
        table: Some(unique("t")),
        region: Some("us-east-1".into()),
        s3_endpoint: Some(ep.into()),
        dynamodb_endpoint: Some(ep.into()),
        ..Default::default()
    };
    let cfg = Config::from_options(opts, &|_| None).unwrap();
    Core::new(cfg.clone()).ensure_resources().await.unwrap();
    let (s3, ddb) = fleetcache::backend::aws_stores(&cfg).await;
    (cfg, s3, ddb)
}

/// Two instances on one bucket and table, with a shared mock clock.
async fn two_cores(ep: &str) -> (Core, Core, Arc<MockClock>) {
    let (cfg, s3, ddb) = setup(ep).await;
    let clock = Arc::new(MockClock::new(common::T0));
    let (s3, ddb) = (Arc::new(s3), Arc::new(ddb));
    let a = Core::with_backends(cfg.clone(), clock.clone(), s3.clone(), ddb.clone());
    let b = Core::with_backends(cfg, clock.clone(), s3, ddb);
    (a, b, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_conformance() {
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (_, s3, _) = setup(&ep).await;
    fleetcache::backend::blob::conformance::run(&s3, "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_tag_store_conformance() {
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (_, _, ddb) = setup(&ep).await;
    fleetcache::backend::tags::conformance::run(Arc::new(ddb), "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_scenarios_on_s3_and_dynamodb() {
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (a, b, clock) = two_cores(&ep).await;
    common::scenarios(&a, &b, &clock, "aws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_scenarios_on_s3_and_dynamodb() {
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (a, b, clock) = two_cores(&ep).await;
    common::feed_scenarios(&a, &b, &clock, "aws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_scenarios_on_s3_and_dynamodb() {
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (a, b, clock) = two_cores(&ep).await;
    common::deploy_scenarios(&a, &b, &clock, "aws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_reads_are_bounded_before_the_body_is_read() {
    use fleetcache::backend::blob::BlobStore;
    use fleetcache::error::ErrorKind;
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (cfg, s3, _) = setup(&ep).await;
    // The handler's store refuses what cannot be an entry of maxEntryBytes, by Content-Length.
    let bounded = fleetcache::backend::aws_stores(&Config { max_entry_bytes: 1 << 20, ..cfg }).await.0;
    let big = bytes::Bytes::from(vec![b'x'; 12 << 20]);
    s3.put("foreign/big", big, false).await.unwrap();
    let e = bounded.get("foreign/big").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    // A small object that is not ours is refused at its first bytes.
    s3.put("foreign/small", bytes::Bytes::from_static(b"<html>not ours</html>"), false).await.unwrap();
    assert!(bounded.get("foreign/small").await.unwrap().is_some(), "a plain read takes any bytes");
    let e = bounded.get_prefixed("foreign/small", fleetcache::codec::MAGIC).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
}

/// Two apps on one table under different prefixes: neither sees the other's tag states, index
/// rows, leases or feed events; a tag longer than DynamoDB's key limit is stored by its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_share_one_table_without_touching_each_other() {
    use fleetcache::backend::tags::{FeedEvent, FeedRecord, IndexRow, TagStore};
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (cfg, _, a) = setup(&ep).await;
    let other = Config { prefix: "other-app".into(), ..cfg };
    let b = fleetcache::backend::aws_stores(&other).await.1;
    let long = "x".repeat(3_000);
    a.revalidate(&["shared".into(), long.clone()], 5_000, None).await.unwrap();
    let seen_by_b = b.tag_states(&["shared".into(), long.clone()]).await.unwrap();
    assert!(seen_by_b.iter().all(|(_, s)| s.hard == 0), "{seen_by_b:?}");
    let seen_by_a = a.tag_states(&["shared".into(), long.clone()]).await.unwrap();
    assert!(seen_by_a.iter().all(|(_, s)| s.hard == 5_000), "the long tag too: {seen_by_a:?}");

    let row = |tag: &str| IndexRow { tag: tag.into(), key: "/p".into(), path: Some("/p".into()) };
    a.put_index(&[row("shared"), row(&long)], 4_000_000_000).await.unwrap();
    assert_eq!(a.index_rows(&["shared".into(), long.clone()]).await.unwrap().len(), 2);
    assert!(b.index_rows(&["shared".into()]).await.unwrap().is_empty());

    assert!(a.try_lease("/p", "a", 1, 100_000).await.unwrap().won);
    assert!(b.try_lease("/p", "b", 1, 100_000).await.unwrap().won, "leases are per app");

    let seq = a
        .append(&FeedRecord::new("a", FeedEvent::Key { key: "/p".into(), last_modified: 1, write_id: 1 }), 9)
        .await
        .unwrap();
    let mine = a.read_feed(seq, seq).await.unwrap();
    assert!(matches!(mine[0].1.event, FeedEvent::Key { .. }));
    let theirs = b.read_feed(seq, seq).await.unwrap();
    assert_eq!(theirs.len(), 1, "the position is kept (no hole)");
    assert_eq!(theirs[0].1.event, FeedEvent::Tags { states: vec![] }, "but nothing to apply");
}

/// `feedCopies`: every event (a `set`'s and a revalidation's, and a revalidation retried at its
/// number) is in every copy, and each reader polls its own copy with one page read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feed_copy_holds_every_event() {
    use fleetcache::backend::tags::dynamodb::reader_copy;
    use fleetcache::backend::tags::{FeedEvent, FeedRecord, TagStore};
    let Some(ep) = endpoint() else {
        return eprintln!("skipped: FLEETCACHE_SKIP_BACKEND_TESTS=1");
    };
    let (cfg, _, _) = setup(&ep).await;
    // Readers on each of the three copies (ids picked by the same hash the stores use).
    let mut readers = Vec::new();
    for c in 0..3 {
        let id = (0..).map(|i| format!("reader-{i}")).find(|id| reader_copy(id, 3) == c).unwrap();
        readers.push(fleetcache::backend::aws_stores(&cfg).await.1.with_feed_copies(3, &id));
    }
    let writer = fleetcache::backend::aws_stores(&cfg).await.1.with_feed_copies(3, "writer");
    let key = FeedRecord::new("writer", FeedEvent::Key { key: "/p".into(), last_modified: 5, write_id: 7 });
    let s1 = writer.append(&key, 10).await.unwrap();
    let s2 = writer.reserve_seq().await.unwrap();
    writer
        .revalidate_at(Unit { ack: false, event: Some((s2, "writer")), tags: &["t".into()], now: 20, expire_s: None })
        .await
        .unwrap();
    // A retry of the same unit (its answer lost): no second event, the copies are there.
    writer
        .revalidate_at(Unit { ack: false, event: Some((s2, "writer")), tags: &["t".into()], now: 20, expire_s: None })
        .await
        .unwrap();
    for (c, r) in readers.iter().enumerate() {
        let got = r.read_feed_page(s1).await.unwrap();
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![s1, s2], "copy {c}");
        assert_eq!(got[0].1.event, key.event, "copy {c}");
        assert!(matches!(&got[1].1.event, FeedEvent::Tags { states } if states[0].1.hard == 20), "copy {c}");
    }
}
