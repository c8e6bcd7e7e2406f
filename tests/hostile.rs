//! Hostile bytes, by property: the decoder never panics on arbitrary input or on mutations of
//! valid objects (a foreign or corrupt object is an error, which `get` turns into a counted miss),
//! and key derivation never leaves `<prefix>/` nor maps two Next keys to one object.
//!
//! 100,000 cases per decoder property and 10,000 per key property in `cargo test`; set
//! `FLEETCACHE_PROPTEST_CASES` (every property) for a longer run.

use bytes::Bytes;
use fleetcache::codec;
use fleetcache::entry::{CacheControl, Entry, Revalidate, Value};
use fleetcache::keys::{self, Class};
use proptest::prelude::*;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("FLEETCACHE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

const MAX_DECODED: usize = 1 << 20;

fn valid_object(html: &str, tags: Vec<String>) -> Vec<u8> {
    let entry = Entry {
        key: "/route-cache/APP_PAGE/abc/$/isr".into(),
        last_modified: 1_795_000_000_000,
        cache_control: Some(CacheControl { revalidate: Revalidate::Seconds(60.0), expire: Some(600.0) }),
        tags,
        value: Some(Value::AppPage {
            html: html.into(),
            rsc_data: Some(Bytes::from_static(b"0:rsc")),
            postponed: None,
            headers_json: Some("{\"x\":\"y\"}".into()),
            status: Some(200.0),
            segments: None,
        }),
        write_id: 7,
        rendered_at: 0,
    };
    codec::encode(&entry, 3).expect("encodes")
}

proptest! {
    #![proptest_config(cases(100_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode(&bytes, MAX_DECODED);
        // With the magic in front, the bytes reach the version check and zstd.
        let mut framed = codec::MAGIC.to_vec();
        framed.push(codec::FORMAT_VERSION);
        framed.extend_from_slice(&bytes);
        let _ = codec::decode(&framed, MAX_DECODED);
    }

    #[test]
    fn mutated_valid_objects_never_panic(
        html in "[a-z<>/ ]{0,64}",
        tags in proptest::collection::vec("[a-z_/]{1,12}", 0..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut obj = valid_object(&html, tags);
        for (at, byte) in flips {
            let i = at.index(obj.len());
            obj[i] ^= byte;
        }
        if truncate {
            obj.truncate(cut.index(obj.len() + 1));
        }
        if let Ok(e) = codec::decode(&obj, MAX_DECODED) {
            // Whatever survives decodes to an entry within the decode budget.
            prop_assert!(e.weight() <= MAX_DECODED + 4096);
        }
    }
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![Just(Class::Route), Just(Class::Fetch), Just(Class::Image), Just(Class::UseCache)]
}

/// Keys as Next makes them and as an attacker might: any Unicode, path-ish, long.
fn next_key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "/[a-zA-Z0-9%._~/$-]{0,80}",
        "/route-cache/APP_PAGE/[0-9a-f]{8}/\\$/[^\\x00]{0,40}",
        ".{600,900}",
    ]
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn object_keys_stay_under_the_prefix_and_are_valid(
        prefix in "[a-z0-9_-]{1,12}(/[a-z0-9._-]{1,12}){0,2}".prop_filter("no dot segments", |p| !p.split('/').any(|s| s == "." || s == "..")),
        build in "[A-Za-z0-9._+-]{1,40}",
        class in class(),
        key in next_key(),
        share in any::<bool>(),
    ) {
        let o = keys::object_key_with(&prefix, &build, class, &key, share);
        let under = format!("{prefix}/");
        prop_assert!(o.starts_with(&under), "{} outside {}", o, prefix);
        prop_assert!(o.len() <= keys::MAX_OBJECT_KEY);
        prop_assert!(o.is_ascii());
        prop_assert!(!o[under.len()..].split('/').any(|s| s == "." || s == ".."), "{}", o);
    }

    #[test]
    fn two_next_keys_never_share_an_object(
        a in next_key(),
        b in next_key(),
        class in class(),
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(keys::object_key("fc", "b1", class, &a), keys::object_key("fc", "b1", class, &b));
    }

    #[test]
    fn a_key_and_its_near_neighbours_never_share_an_object(
        key in "/[a-zA-Z0-9%._~/$ -]{1,60}",
        at in any::<prop::sample::Index>(),
        with in any::<char>(),
    ) {
        let mut chars: Vec<char> = key.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != with);
        chars[i] = with;
        let other: String = chars.into_iter().collect();
        prop_assert_ne!(keys::object_key("fc", "b1", Class::Route, &key), keys::object_key("fc", "b1", Class::Route, &other));
    }
}
