//! Next cache keys → S3 object keys, and cache keys → the URL paths a CDN would purge.
//!
//! Object keys (always valid S3 keys, at most [`MAX_OBJECT_KEY`] bytes, injective):
//! - `<prefix>/routes/<buildId>/k<enc(key)>`: APP_PAGE, APP_ROUTE, PAGES (incl. REDIRECT, notFound).
//!   A new deployment never reads another build's HTML, which references that build's chunks.
//! - `<prefix>/fetch/k<enc(key)>`: `fetch` and `unstable_cache`, shared across builds (default), or
//!   `<prefix>/fetch-builds/<buildId>/k<enc(key)>` with `shareFetchAcrossBuilds: false`.
//! - `<prefix>/builds/<buildId>`: one marker per build (first seen, JSON), and
//!   `<prefix>/build-activity/<buildId>` (last start); `prune` orders builds by the latter.
//! - `<prefix>/image/k<enc(key)>`: the image optimizer's cache.
//! - `<prefix>/use-cache/<buildId>/k<enc(key)>`: `'use cache'` results (`cacheHandlers`); their
//!   keys carry the build ID already, the folder lets `prune` remove a build's results.
//!
//! `enc` percent-encodes every byte outside `[A-Za-z0-9_~/-]` (including `%` and `.`), so it is
//! injective and never produces `.`/`..` path segments. When the result would be too long, the
//! tail is `h<sha256hex(key)>` instead; `k…` and `h…` never collide, and the stored entry carries
//! the original key, which `get` compares, so even a hash collision cannot serve a foreign entry.

use sha2::{Digest, Sha256};

/// A row of the tag index: "this cache key (and URL path, if it has one) carries this tag."
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexRow {
    pub tag: String,
    pub key: String,
    pub path: Option<String>,
}

pub const MAX_OBJECT_KEY: usize = 1024;
/// Encoded keys longer than this are hashed.
const MAX_ENCODED: usize = 640;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Route,
    Fetch,
    Image,
    UseCache,
}

impl Class {
    /// From the kind Next names in `ctx.kind` or `data.kind` (`None` = a `set(key, null)`).
    pub fn from_kind(kind: Option<&str>) -> Class {
        match kind {
            Some("FETCH") => Class::Fetch,
            Some("IMAGE") => Class::Image,
            Some("USE_CACHE") => Class::UseCache,
            _ => Class::Route,
        }
    }
}

/// Marks a key of another class than pages and routes that starts with `/` (see [`scoped_key`]).
pub const SCOPE_MARK: char = '\u{FFFE}';

/// The key an entry of `class` is held under (in memory, in feed events and in S3). Next's page
/// and route keys all start with `/`; a fetch key may too (an `unstable_cache` key, an app's
/// own), and one process's memory holds both: such a key, or one starting with the mark, gets the
/// mark in front, so a page and a fetch entry never read each other.
pub fn scoped_key(class: Class, key: String) -> String {
    if class != Class::Route && (key.starts_with('/') || key.starts_with(SCOPE_MARK)) {
        format!("{SCOPE_MARK}{key}")
    } else {
        key
    }
}

pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'/' | b'-') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    out
}

pub fn sha256_hex(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    out
}

fn enc_build(build_id: &str) -> String {
    encode_component(build_id).replace('/', "%2F")
}

/// The folder under which `class` entries of `build_id` live.
pub fn class_prefix(prefix: &str, build_id: &str, class: Class, share_fetch: bool) -> String {
    match class {
        Class::Route => format!("{prefix}/routes/{}/", enc_build(build_id)),
        Class::Fetch if share_fetch => format!("{prefix}/fetch/"),
        Class::Fetch => format!("{prefix}/fetch-builds/{}/", enc_build(build_id)),
        Class::Image => format!("{prefix}/image/"),
        Class::UseCache => format!("{prefix}/use-cache/{}/", enc_build(build_id)),
    }
}

/// Every folder that holds entries of `build_id` alone (what `prune` deletes).
pub fn build_folders(prefix: &str, build_id: &str) -> [String; 3] {
    [
        class_prefix(prefix, build_id, Class::Route, true),
        class_prefix(prefix, build_id, Class::Fetch, false),
        class_prefix(prefix, build_id, Class::UseCache, true),
    ]
}

/// Where build markers live.
pub fn builds_prefix(prefix: &str) -> String {
    format!("{prefix}/builds/")
}

pub fn build_marker_key(prefix: &str, build_id: &str) -> String {
    format!("{}{}", builds_prefix(prefix), enc_build(build_id))
}

/// Rewritten each time an instance of the build starts (or seeds it): when it last ran.
pub fn activity_key(prefix: &str, build_id: &str) -> String {
    format!("{prefix}/build-activity/{}", enc_build(build_id))
}

/// Written once a build's output has been seeded (the run-time seeding helper checks it).
pub fn seeded_marker_key(prefix: &str, build_id: &str) -> String {
    format!("{prefix}/seeded/{}", enc_build(build_id))
}

pub fn object_key(prefix: &str, build_id: &str, class: Class, key: &str) -> String {
    object_key_with(prefix, build_id, class, key, true)
}

pub fn object_key_with(prefix: &str, build_id: &str, class: Class, key: &str, share_fetch: bool) -> String {
    let base = class_prefix(prefix, build_id, class, share_fetch);
    let enc = encode_component(key);
    if enc.len() <= MAX_ENCODED {
        format!("{base}k{enc}")
    } else {
        format!("{base}h{}", sha256_hex(key))
    }
}

/// The URL path a response-cache key stands for: `/route-cache/<KIND>/<hash>/$<path>` (Next ≥
/// 16.3.8 / 15.5.27) or the bare path of older versions; `/index` is `/`. FETCH and IMAGE keys
/// have no path.
pub fn path_of_key(key: &str) -> Option<String> {
    let path = if let Some(rest) = key.strip_prefix("/route-cache/") {
        let dollar = rest.find("/$")?;
        &rest[dollar + 2..]
    } else if key.starts_with('/') {
        key
    } else {
        return None;
    };
    if path.is_empty() || path == "/index" {
        Some("/".to_string())
    } else {
        Some(path.to_string())
    }
}

/// What a CDN must purge when a pages-router entry is rewritten: the page and its
/// `/_next/data/<buildId>/<path>.json` variant. Pages-router entries carry no tags, so this is
/// derived from the key alone.
pub fn pages_router_paths(key: &str, build_id: &str) -> Vec<String> {
    let Some(path) = path_of_key(key) else {
        return vec![];
    };
    let data = data_route(&path, build_id);
    vec![path, data]
}

/// A pages-router page's data route, `/_next/data/<buildId>/<path>.json` (`/` is `/index`).
pub fn data_route(path: &str, build_id: &str) -> String {
    let name = if path == "/" { "/index" } else { path };
    format!("/_next/data/{build_id}{name}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_of_other_classes_never_meet_page_keys() {
        let page = scoped_key(Class::Route, "/a".into());
        let fetch = scoped_key(Class::Fetch, "/a".into());
        assert_eq!(page, "/a");
        assert_ne!(page, fetch);
        assert_eq!(scoped_key(Class::Fetch, "0f3a".into()), "0f3a", "Next's hashed fetch keys unchanged");
        let marked = format!("{SCOPE_MARK}/a");
        assert_ne!(scoped_key(Class::Fetch, marked.clone()), fetch, "a key starting with the mark is marked too");
    }

    #[test]
    fn object_keys_are_valid_and_injective() {
        let long = "/p/".to_string() + &"é".repeat(2000);
        let keys = [
            "/isr",
            "/index",
            "/route-cache/APP_PAGE/c38585ba/$/isr",
            "/route-cache/APP_PAGE/c38585ba/$/items/[id]",
            "/a%2Fb",
            "/a/b",
            "/a.b",
            "/a%2Eb",
            "/ünïcødé/页面",
            "/../x",
            "",
            long.as_str(),
            &"/q".repeat(400),
        ];
        let mut seen = HashSet::new();
        for k in keys {
            let o = object_key("fc", "build-1", Class::Route, k);
            assert!(o.len() <= MAX_OBJECT_KEY, "{k}");
            assert!(o.is_ascii());
            assert!(!o.split('/').any(|seg| seg == "." || seg == ".."), "{o}");
            assert!(seen.insert(o.clone()), "collision for {k}: {o}");
        }
        assert!(object_key("fc", "b", Class::Route, &long).contains("/h"));
        // namespacing
        assert_ne!(object_key("fc", "b1", Class::Route, "/x"), object_key("fc", "b2", Class::Route, "/x"));
        assert_eq!(object_key("fc", "b1", Class::Fetch, "abc"), object_key("fc", "b2", Class::Fetch, "abc"));
        assert!(object_key("fc", "../b", Class::Route, "/x").starts_with("fc/routes/%2E%2E%2Fb/"));
        // fetch entries per build when not shared, never under another build's folders
        let own = object_key_with("fc", "b1", Class::Fetch, "abc", false);
        assert_ne!(own, object_key_with("fc", "b2", Class::Fetch, "abc", false));
        assert!(build_folders("fc", "b1").iter().any(|f| own.starts_with(f.as_str())));
        assert!(!build_folders("fc", "b1")
            .iter()
            .any(|f| object_key("fc", "b1", Class::Fetch, "abc").starts_with(f.as_str())));
        assert!(!build_folders("fc", "b")
            .iter()
            .any(|f| object_key("fc", "b2", Class::Route, "/x").starts_with(f.as_str())));
    }

    #[test]
    fn paths_of_both_key_styles() {
        assert_eq!(path_of_key("/route-cache/APP_PAGE/c385/$/isr").as_deref(), Some("/isr"));
        assert_eq!(path_of_key("/route-cache/APP_PAGE/c385/$/index").as_deref(), Some("/"));
        assert_eq!(path_of_key("/route-cache/APP_ROUTE/aa/$/api/cached").as_deref(), Some("/api/cached"));
        assert_eq!(path_of_key("/items/2").as_deref(), Some("/items/2"));
        assert_eq!(path_of_key("/index").as_deref(), Some("/"));
        assert_eq!(path_of_key(&"a".repeat(64)), None);
    }

    #[test]
    fn pages_router_key_gives_page_and_data_paths() {
        assert_eq!(
            pages_router_paths("/route-cache/PAGES/491f/$/posts/2", "B1"),
            vec!["/posts/2".to_string(), "/_next/data/B1/posts/2.json".to_string()]
        );
        assert_eq!(pages_router_paths("/index", "B1"), vec!["/", "/_next/data/B1/index.json"]);
    }
}
