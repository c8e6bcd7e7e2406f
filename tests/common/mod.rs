//! Scenarios shared by `core.rs` (memory backends) and `backends.rs` (protocol servers).
#![allow(dead_code)]

use bytes::Bytes;
use fleetcache::clock::MockClock;
use fleetcache::core::{Core, GetRequest, Lookup, SetParts, SyncLookup};
use fleetcache::entry::{CacheControl, Revalidate, Value};
use fleetcache::keys::Class;

pub const T0: i64 = 1_795_000_000_000;

/// Not served: not from memory, and not after reading the store either (an expired copy in
/// memory sends `get_sync` to the store, which may hold a newer render).
pub async fn miss_now(core: &Core, r: &GetRequest) -> bool {
    !matches!(core.get_sync(r), SyncLookup::Done(Lookup::Hit { .. })) && matches!(core.get(r).await, Lookup::Miss)
}

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
    a.set(
        k("/p"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
    clock.advance(10);
    match b.get(&req(&k("/p"))).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("v1"))),
        Lookup::Miss => panic!("B must load A's entry"),
    }
    assert!(matches!(b.get_sync(&req(&k("/p"))), SyncLookup::Done(Lookup::Hit { .. })), "B serves from memory");

    // revalidateTag on B expires it for a process that loads it fresh
    clock.advance(10);
    b.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    assert!(miss_now(b, &req(&k("/p"))).await);
    a.clear_memory();
    assert!(matches!(a.get(&req(&k("/p"))).await, Lookup::Miss), "A honours B's revalidation after reload");

    // rewrite after the revalidation: fresh again
    clock.advance(10);
    a.set(
        k("/p"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v2")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
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
    a.set(k("/nf"), SetParts { class: Class::Route, value: None, cache_control: cc(60.0), tags: vec![] })
        .await
        .unwrap();
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
    a.set(
        page_key,
        SetParts { class: Class::Route, value: Some(page_value("x")), cache_control: cc(60.0), tags: vec![t2.clone()] },
    )
    .await
    .unwrap();
    a.set(
        route_key,
        SetParts { class: Class::Route, value: Some(value), cache_control: cc(60.0), tags: vec![t2.clone()] },
    )
    .await
    .unwrap();
    let fetch = Value::Fetch {
        headers_json: "{}".into(),
        body: "e30=".into(),
        status: 200.0,
        url: "http://x".into(),
        revalidate: 60.0,
        tags: None,
    };
    a.set(
        "f".repeat(64),
        SetParts { class: Class::Fetch, value: Some(fetch), cache_control: None, tags: vec![t2.clone()] },
    )
    .await
    .unwrap();
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
    a.set(
        k("/f"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v1")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
    clock.advance(5);
    assert!(matches!(b.get(&req(&k("/f"))).await, Lookup::Hit { .. }));
    assert!(sync_hit(b, &k("/f")).is_some());
    clock.advance(5);
    a.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    assert!(sync_hit(b, &k("/f")).is_some(), "B has not polled yet");
    b.poll_feed_once().await;
    assert!(miss_now(b, &req(&k("/f"))).await, "B applied A's revalidation");

    // A rewrites the key: B drops its copy and loads the new one.
    clock.advance(5);
    a.set(
        k("/f"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v2")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
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
    assert!(miss_now(b, &req(&k("/f"))).await);
    clock.advance(5);
    b.set(
        k("/f"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("v3")),
            cache_control: cc(60.0),
            tags: vec![tag.clone()],
        },
    )
    .await
    .unwrap();
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
    a.set(
        k("/race"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("old data")),
            cache_control: cc(60.0),
            tags: vec![race.clone()],
        },
    )
    .await
    .unwrap();
    a.poll_feed_once().await;
    b.poll_feed_once().await;
    assert!(matches!(a.get(&req(&k("/race"))).await, Lookup::Miss), "must not look fresh on A");
    b.clear_memory();
    b.poll_feed_once().await;
    assert!(matches!(b.get(&req(&k("/race"))).await, Lookup::Miss), "must not look fresh on B");

    // One regeneration per key: a time-stale entry is reported stale to exactly one instance.
    a.set(
        k("/ttl"),
        SetParts { class: Class::Route, value: Some(page_value("t")), cache_control: cc(1.0), tags: vec![] },
    )
    .await
    .unwrap();
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
    let _ = winner.get(&req(&k("/ttl"))).await;
    winner
        .set(
            k("/ttl"),
            SetParts { class: Class::Route, value: Some(page_value("t2")), cache_control: cc(1.0), tags: vec![] },
        )
        .await
        .unwrap();
    loser.poll_feed_once().await;
    match loser.get(&req(&k("/ttl"))).await {
        Lookup::Hit { entry, last_modified, .. } => {
            assert_eq!(entry.value, Some(page_value("t2")));
            assert!(last_modified + 1_000 >= clock_now(clock));
        }
        Lookup::Miss => panic!(),
    }

    // And for an entry stale by a revalidation (`revalidateTag(t, 'max')`): one instance is told
    // it is stale (its Next regenerates), the other serves it as fresh until the new copy arrives.
    let max_tag = format!("{ns}-max");
    a.set(
        k("/max"),
        SetParts {
            class: Class::Route,
            value: Some(page_value("m1")),
            cache_control: cc(60.0),
            tags: vec![max_tag.clone()],
        },
    )
    .await
    .unwrap();
    clock.advance(10);
    assert!(matches!(b.get(&req(&k("/max"))).await, Lookup::Hit { .. }));
    clock.advance(10);
    a.revalidate_tags(std::slice::from_ref(&max_tag), Some(3600.0)).await.unwrap();
    b.poll_feed_once().await;
    let told_stale = |l: Lookup| match l {
        Lookup::Hit { last_modified, entry, .. } => {
            assert_eq!(entry.value, Some(page_value("m1")));
            last_modified + 60_000 < clock_now(clock)
        }
        Lookup::Miss => panic!("a tag-stale entry must be served"),
    };
    let max_req = req(&k("/max"));
    let (ra, rb) = futures::join!(a.get(&max_req), b.get(&max_req));
    let (sa, sb) = (told_stale(ra), told_stale(rb));
    assert!(sa ^ sb, "exactly one instance regenerates after a 'max' revalidation (a: {sa}, b: {sb})");
    let (winner, loser) = if sa { (a, b) } else { (b, a) };
    for _ in 0..3 {
        assert!(!told_stale(loser.get(&max_req).await), "the other keeps serving it without regenerating");
        assert!(told_stale(winner.get(&max_req).await), "the winner's Next may ask again while it renders");
    }
    clock.advance(100);
    winner
        .set(
            k("/max"),
            SetParts {
                class: Class::Route,
                value: Some(page_value("m2")),
                cache_control: cc(60.0),
                tags: vec![max_tag.clone()],
            },
        )
        .await
        .unwrap();
    loser.poll_feed_once().await;
    for core in [a, b] {
        match core.get(&max_req).await {
            Lookup::Hit { entry, last_modified, .. } => {
                assert_eq!(entry.value, Some(page_value("m2")));
                assert_eq!(last_modified, entry.last_modified, "fresh");
            }
            Lookup::Miss => panic!(),
        }
    }
}

pub fn clock_now(c: &MockClock) -> i64 {
    use fleetcache::clock::Clock;
    c.now_ms()
}

/// Deploy tools on two instances running two different builds of one app on shared stores:
/// seeding (conditional, keeps the build's own time), namespacing, shared tags, build registry,
/// pruning.
pub async fn deploy_scenarios(a: &Core, b: &Core, clock: &MockClock, ns: &str) {
    let (x1, x2) = (format!("{ns}-build-1"), format!("{ns}-build-2"));
    assert_eq!(a.adopt_build_id(&x1), x1);
    assert_eq!(b.adopt_build_id(&x2), x2);
    assert!(a.register_build().await.unwrap(), "first registration writes the marker");
    assert!(!a.register_build().await.unwrap(), "a second one does not");
    clock.advance(1_000);
    assert!(b.register_build().await.unwrap());

    let key = format!("/route-cache/APP_PAGE/abc/$/{ns}/seeded");
    let tag = format!("{ns}-seed-tag");
    let built_at = clock_now(clock) - 5_000;
    async fn seed_page(core: &Core, key: &str, tag: &str, html: &str, at: i64) -> bool {
        core.seed(
            key.into(),
            SetParts {
                class: Class::Route,
                value: Some(page_value(html)),
                cache_control: cc(60.0),
                tags: vec![tag.into()],
            },
            at,
        )
        .await
        .unwrap()
    }
    assert!(seed_page(a, &key, &tag, "build 1", built_at).await, "the first seed writes");
    assert!(!seed_page(a, &key, &tag, "build 1, again", built_at).await, "a second seed writes nothing");
    match a.get(&req(&key)).await {
        Lookup::Hit { entry, last_modified, .. } => {
            assert_eq!(entry.value, Some(page_value("build 1")));
            assert_eq!(last_modified, built_at, "a seeded entry keeps the build's time");
        }
        Lookup::Miss => panic!("a seeded entry is a hit"),
    }
    // The other build does not see it, and seeds its own.
    assert!(matches!(b.get(&req(&key)).await, Lookup::Miss), "build 2 never serves build 1's page");
    assert!(seed_page(b, &key, &tag, "build 2", built_at).await);
    match b.get(&req(&key)).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("build 2"))),
        Lookup::Miss => panic!("build 2's own seed is a hit"),
    }
    a.clear_memory();
    match a.get(&req(&key)).await {
        Lookup::Hit { entry, .. } => assert_eq!(entry.value, Some(page_value("build 1"))),
        Lookup::Miss => panic!("build 1 still serves its own page"),
    }

    // fetch entries are shared by both builds (the default)
    let fkey = format!("{ns}fetchkey");
    let fetch = Value::Fetch {
        headers_json: "{}".into(),
        body: "shared".into(),
        status: 200.0,
        url: "https://example.com".into(),
        revalidate: 60.0,
        tags: None,
    };
    a.set(fkey.clone(), SetParts { class: Class::Fetch, value: Some(fetch), cache_control: None, tags: vec![] })
        .await
        .unwrap();
    // A `'use cache'` result lives under its build, like pages (its key names the build too).
    let ukey = format!("[\"{ns}-fn\",[],[\"{x1}\"]]");
    let result =
        Value::UseCache { bytes: Bytes::from_static(b"0:1\n"), timestamp: clock_now(clock) as f64, stale: 30.0 };
    let ucc = Some(CacheControl { revalidate: Revalidate::Seconds(60.0), expire: Some(600.0) });
    a.set(ukey.clone(), SetParts { class: Class::UseCache, value: Some(result), cache_control: ucc, tags: vec![] })
        .await
        .unwrap();
    let ureq = GetRequest { key: ukey.clone(), kind: Some("USE_CACHE".into()), ..Default::default() };
    assert!(matches!(a.get(&ureq).await, Lookup::Hit { .. }));
    let freq = GetRequest { key: fkey, kind: Some("FETCH".into()), revalidate: Some(60.0), ..Default::default() };
    assert!(matches!(b.get(&freq).await, Lookup::Hit { .. }), "fetch entries are shared across builds");

    // A revalidation on one build reaches the other's entries.
    clock.advance(10);
    a.revalidate_tags(std::slice::from_ref(&tag), None).await.unwrap();
    b.clear_memory();
    assert!(matches!(b.get(&req(&key)).await, Lookup::Miss), "tags apply to every build");

    // The registry, oldest first; pruning build 1 leaves build 2's entries alone.
    async fn ids(core: &Core) -> Vec<String> {
        core.list_builds().await.unwrap().into_iter().map(|b| b.build_id).collect()
    }
    assert_eq!(ids(a).await, vec![x1.clone(), x2.clone()]);
    // A rollback: build 1 starts again, so it is the one to keep.
    clock.advance(1_000);
    assert!(!a.register_build().await.unwrap(), "registered before: the first time stays");
    assert_eq!(ids(a).await, vec![x2.clone(), x1.clone()]);
    clock.advance(1_000);
    b.register_build().await.unwrap();
    assert_eq!(ids(a).await, vec![x1.clone(), x2.clone()]);
    let old = a.build_object_keys(&x1).await.unwrap();
    assert_eq!(old, vec![a.object_key(Class::Route, &key), a.object_key(Class::UseCache, &ukey)]);
    let kept = b.build_object_keys(&x2).await.unwrap();
    assert_eq!(kept.len(), 1);
    a.delete_objects(&old).await.unwrap();
    a.delete_objects(&a.build_marker_keys(&x1)).await.unwrap();
    assert!(a.build_object_keys(&x1).await.unwrap().is_empty());
    assert_eq!(b.build_object_keys(&x2).await.unwrap(), kept);
    assert_eq!(ids(a).await, vec![x2]);
}
