//! Scenarios shared by `core.rs` (memory backends) and `backends.rs` (protocol servers).
#![allow(dead_code)]

use bytes::Bytes;
use fleetcache::clock::MockClock;
use fleetcache::entry::{CacheControl, Revalidate, Value};
use fleetcache::handler::{Core, GetRequest, Lookup, SyncLookup};
use fleetcache::keys::Class;

pub const T0: i64 = 1_795_000_000_000;

pub fn page_value(html: &str) -> Value {
    Value::AppPage {
        html: html.into(),
        rsc_data: Some(Bytes::from_static(b"rsc")),
        postponed: None,
        headers_json: None,
        status: None,
        segments: None,
    }
}

pub fn cc(rev: f64) -> Option<CacheControl> {
    Some(CacheControl { revalidate: Revalidate::Seconds(rev), expire: Some(31536000.0) })
}

pub fn req(key: &str) -> GetRequest {
    GetRequest { key: key.into(), kind: Some("APP_PAGE".into()), ..Default::default() }
}

/// Runs the shared scenarios against two cores (two "instances") sharing stores.
pub async fn scenarios(a: &Core, b: &Core, clock: &MockClock, ns: &str) {
    let k = |s: &str| format!("/{ns}{s}");
    let tag = format!("{ns}-posts");
    a.poll_feed_once().await;
    b.poll_feed_once().await;

    // set on A, get on B from the backend, then from B's memory
    a.set(k("/p"), Class::Route, Some(page_value("v1")), cc(60.0), vec![tag.clone()]).await.unwrap();
    clock.advance(10);
    match b.get(&req(&k("/p"))).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("v1"))),
        Lookup::Miss => panic!("B must load A's entry"),
    }
    assert!(matches!(b.get_sync(&req(&k("/p"))), SyncLookup::Done(Lookup::Hit { .. })), "B serves from memory");

    // revalidateTag on B expires it for a process that loads it fresh
    clock.advance(10);
    b.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    assert!(matches!(b.get_sync(&req(&k("/p"))), SyncLookup::Done(Lookup::Miss)));
    a.clear_memory();
    assert!(matches!(a.get(&req(&k("/p"))).await, Lookup::Miss), "A honours B's revalidation after reload");

    // rewrite after the revalidation: fresh again
    clock.advance(10);
    a.set(k("/p"), Class::Route, Some(page_value("v2")), cc(60.0), vec![tag.clone()]).await.unwrap();
    clock.advance(10);
    b.clear_memory();
    assert!(matches!(b.get(&req(&k("/p"))).await, Lookup::Hit { .. }));

    // stale-while-revalidate via {expire}
    clock.advance(10);
    a.revalidate_tags(std::slice::from_ref(&tag), Some(3600.0)).await.unwrap();
    b.clear_memory();
    match b.get(&req(&k("/p"))).await {
        Lookup::Hit { entry, last_modified, .. } => {
            assert!(last_modified < entry.last_modified);
            assert!(last_modified + 60_000 < clock_now(clock), "Next must see it past revalidate");
            assert!(last_modified > 0);
        }
        Lookup::Miss => panic!("stale tag must serve the entry"),
    }

    // notFound round trip
    a.set(k("/nf"), Class::Route, None, cc(60.0), vec![]).await.unwrap();
    b.clear_memory();
    match b.get(&req(&k("/nf"))).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, None),
        Lookup::Miss => panic!("notFound must be a hit with a null value"),
    }

    // pathsForTags: app page + route handler with the tag; fetch keys have no path
    let t2 = format!("{ns}-t2");
    let page_key = format!("/route-cache/APP_PAGE/abc/$/{ns}/page");
    let route_key = format!("/route-cache/APP_ROUTE/def/$/api/{ns}");
    let value = Value::AppRoute { body: Bytes::from_static(b"{}"), status: 200.0, headers_json: "{}".into() };
    a.set(page_key, Class::Route, Some(page_value("x")), cc(60.0), vec![t2.clone()]).await.unwrap();
    a.set(route_key, Class::Route, Some(value), cc(60.0), vec![t2.clone()]).await.unwrap();
    let fetch = Value::Fetch {
        headers_json: "{}".into(),
        body: "e30=".into(),
        status: 200.0,
        url: "http://x".into(),
        revalidate: 60.0,
        tags: None,
    };
    a.set("f".repeat(64), Class::Fetch, Some(fetch), None, vec![t2.clone()]).await.unwrap();
    let paths = b.paths_for_tags(&[t2]).await.unwrap();
    assert_eq!(paths, vec![format!("/api/{ns}"), format!("/{ns}/page")]);
}

/// The change feed between two instances, with a mock clock (no sleeping).
pub async fn feed_scenarios(a: &Core, b: &Core, clock: &MockClock, ns: &str) {
    let k = |s: &str| format!("/{ns}{s}");
    let tag = format!("{ns}-feed");
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    let sync_hit = |c: &Core, key: &str| match c.get_sync(&req(key)) {
        SyncLookup::Done(Lookup::Hit { entry, .. }) => Some(entry),
        _ => None,
    };

    // B holds A's entry in memory; A revalidates; B learns it from the feed alone.
    a.set(k("/f"), Class::Route, Some(page_value("v1")), cc(60.0), vec![tag.clone()]).await.unwrap();
    clock.advance(5);
    assert!(matches!(b.get(&req(&k("/f"))).await, Lookup::Hit { .. }));
    assert!(sync_hit(b, &k("/f")).is_some());
    clock.advance(5);
    a.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    assert!(sync_hit(b, &k("/f")).is_some(), "B has not polled yet");
    b.poll_feed_once().await;
    assert!(matches!(b.get_sync(&req(&k("/f"))), SyncLookup::Done(Lookup::Miss)), "B applied A's revalidation");

    // A rewrites the key: B drops its copy and loads the new one.
    clock.advance(5);
    a.set(k("/f"), Class::Route, Some(page_value("v2")), cc(60.0), vec![tag.clone()]).await.unwrap();
    clock.advance(5);
    b.poll_feed_once().await;
    match b.get(&req(&k("/f"))).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("v2"))),
        Lookup::Miss => panic!("B must load the rewritten entry"),
    }

    // {expire} revalidation reaches B's memory copy as stale.
    clock.advance(5);
    a.revalidate_tags(std::slice::from_ref(&tag), Some(3600.0)).await.unwrap();
    b.poll_feed_once().await;
    match b.get(&req(&k("/f"))).await {
        Lookup::Hit { entry, last_modified, .. } => assert!(last_modified < entry.last_modified),
        Lookup::Miss => panic!("stale, not expired"),
    }

    // A render that starts after a revalidation (its get saw the entry expired in memory) is
    // fresh everywhere, including on the instance that rendered it.
    assert!(matches!(b.get_sync(&req(&k("/f"))), SyncLookup::Done(Lookup::Hit { .. })));
    clock.advance(5);
    a.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    b.poll_feed_once().await;
    clock.advance(5);
    assert!(matches!(b.get_sync(&req(&k("/f"))), SyncLookup::Done(Lookup::Miss)));
    clock.advance(5);
    b.set(k("/f"), Class::Route, Some(page_value("v3")), cc(60.0), vec![tag.clone()]).await.unwrap();
    assert!(matches!(b.get(&req(&k("/f"))).await, Lookup::Hit { .. }), "fresh on the renderer");
    a.poll_feed_once().await;
    match a.get(&req(&k("/f"))).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("v3"))),
        Lookup::Miss => panic!("the revalidating instance takes the other's fresh render"),
    }

    // The render race: a render that started before a revalidation lands after it.
    let race = format!("{ns}-race");
    assert!(matches!(a.get(&req(&k("/race"))).await, Lookup::Miss)); // render starts
    clock.advance(10);
    b.revalidate_tags(std::slice::from_ref(&race), None).await.unwrap(); // during the render
    clock.advance(10);
    a.set(k("/race"), Class::Route, Some(page_value("old data")), cc(60.0), vec![race.clone()]).await.unwrap();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    assert!(matches!(a.get(&req(&k("/race"))).await, Lookup::Miss), "must not look fresh on A");
    b.clear_memory();
    b.poll_feed_once().await;
    assert!(matches!(b.get(&req(&k("/race"))).await, Lookup::Miss), "must not look fresh on B");

    // One regeneration per key: a time-stale entry is reported stale to exactly one instance.
    a.set(k("/ttl"), Class::Route, Some(page_value("t")), cc(1.0), vec![]).await.unwrap();
    clock.advance(10);
    assert!(matches!(b.get(&req(&k("/ttl"))).await, Lookup::Hit { .. }));
    clock.advance(2_000);
    let stale_for = |l: Lookup| match l {
        Lookup::Hit { last_modified, .. } => last_modified + 1_000 < clock_now(clock),
        Lookup::Miss => panic!("time-stale entry must be served"),
    };
    let ttl_req = req(&k("/ttl"));
    let (ra, rb) = futures::join!(a.get(&ttl_req), b.get(&ttl_req));
    let (sa, sb) = (stale_for(ra), stale_for(rb));
    assert!(sa ^ sb, "exactly one instance regenerates (a: {sa}, b: {sb})");
    // The loser keeps serving it as fresh from memory; after the lease expires it takes over.
    let (winner, loser) = if sa { (a, b) } else { (b, a) };
    match loser.get_sync(&req(&k("/ttl"))) {
        SyncLookup::Done(l) => assert!(!stale_for(l)),
        SyncLookup::NeedsBackend => panic!("loser serves from memory"),
    }
    clock.advance(a.cfg.lease_ms as i64 + 1);
    assert!(stale_for(loser.get(&req(&k("/ttl"))).await), "the lease expired: the loser regenerates");
    // The winner's set arrives through the feed and ends it for everyone.
    winner.set(k("/ttl"), Class::Route, Some(page_value("t2")), cc(1.0), vec![]).await.unwrap();
    loser.poll_feed_once().await;
    match loser.get(&req(&k("/ttl"))).await {
        Lookup::Hit { entry, last_modified, .. } => {
            assert_eq!(entry.value, Some(page_value("t2")));
            assert!(last_modified + 1_000 >= clock_now(clock));
        }
        Lookup::Miss => panic!(),
    }
}

pub fn clock_now(c: &MockClock) -> i64 {
    use fleetcache::clock::Clock;
    c.now_ms()
}
