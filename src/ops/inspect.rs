//! `fleetcache inspect <path|key>`: what the store holds for a URL path or a cache key, decoded
//! (objects are msgpack + zstd, so `aws s3 cp` shows nothing readable).
//!
//! A path (`/isr`) matches the page and route entries of the build in force whose key stands for
//! it (`/route-cache/<KIND>/<hash>/$/isr` on current Next, the bare path on older ones): found by
//! listing the build's route folder, as the key's hash part is not derivable from the path. Any
//! other argument is a cache key, looked up in every class (route, fetch, `'use cache'`, image).

use crate::core::Core;
use crate::entry::{Revalidate, TagState};
use crate::error::Result;
use crate::keys::{self, Class};

/// A tag of an inspected entry and its state (ms since the epoch; absent = never).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct InspectedTag {
    pub tag: String,
    /// When entries written before it expire (its latest revalidation's expiry; may be ahead).
    pub expired_at: Option<i64>,
    /// Its latest profiled revalidation: entries written before it are stale.
    pub stale_at: Option<i64>,
    /// That profiled revalidation's expiry.
    pub soft_expire_at: Option<i64>,
}

impl InspectedTag {
    fn of(tag: String, st: &TagState) -> InspectedTag {
        let at = |ms: i64| (ms > 0).then_some(ms);
        InspectedTag {
            tag,
            expired_at: at(st.expires_at()),
            stale_at: at(st.stale),
            soft_expire_at: at(st.soft_expire),
        }
    }
}

/// A stored entry, decoded (`fleetcache inspect`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object, js_name = "InspectedEntry"))]
pub struct Inspected {
    pub object_key: String,
    pub key: String,
    /// `APP_PAGE`, `APP_ROUTE`, `PAGES`, `REDIRECT`, `FETCH`, `IMAGE`, `USE_CACHE` or `NOT_FOUND`.
    pub kind: String,
    pub build_id: String,
    pub stored_bytes: i64,
    /// In-memory weight of the decoded entry (what it costs the memory tier).
    pub decoded_bytes: i64,
    pub last_modified: i64,
    pub age_ms: i64,
    /// Seconds; absent with `revalidateNever` or without cache control.
    pub revalidate: Option<f64>,
    pub revalidate_never: bool,
    pub expire: Option<f64>,
    pub tags: Vec<InspectedTag>,
    /// Which write made it (hex).
    pub write_id: String,
    /// Whether a tag revalidated after this entry was written makes it stale or expired.
    pub tag_verdict: String,
}

impl Core {
    pub async fn inspect(&self, what: &str) -> Result<Vec<Inspected>> {
        let b = self.backends().await;
        let build = self.build_id();
        let mut candidates: Vec<(String, String)> = Vec::new();
        if what.starts_with('/') {
            let folder = keys::class_prefix(&self.cfg.prefix, &build, Class::Route, true);
            let tail = format!("%24{}", keys::encode_component(what));
            let exact = self.object_key(Class::Route, what);
            for k in b.blobs.list(&folder).await? {
                if k.ends_with(&tail) || k == exact {
                    candidates.push((k, build.clone()));
                }
            }
        }
        if candidates.is_empty() {
            for class in [Class::Route, Class::Fetch, Class::UseCache, Class::Image] {
                let k = self.object_key(class, what);
                if !candidates.iter().any(|(c, _)| *c == k) {
                    candidates.push((k, build.clone()));
                }
            }
        }
        let now = self.now();
        let mut out = Vec::new();
        for (object_key, build_id) in candidates {
            let Some(bytes) = b.blobs.get(&object_key).await? else { continue };
            let entry = self.decode(&bytes)?;
            let tags = if entry.tags.is_empty() { Vec::new() } else { b.tags.tag_states(&entry.tags).await? };
            let lm = entry.last_modified;
            let tag_verdict = if tags.iter().any(|(_, s)| s.expires(lm, now)) {
                "expired by a tag revalidation"
            } else if tags.iter().any(|(_, s)| s.stale > lm) {
                "stale by a tag revalidation"
            } else {
                "no tag revalidated since it was written"
            };
            let (revalidate, revalidate_never, expire) = match entry.cache_control {
                Some(cc) => match cc.revalidate {
                    Revalidate::Seconds(s) => (Some(s), false, cc.expire),
                    Revalidate::Never => (None, true, cc.expire),
                },
                None => (None, false, None),
            };
            out.push(Inspected {
                object_key,
                key: entry.key.clone(),
                kind: entry.value.as_ref().map_or("NOT_FOUND", |v| v.kind_name()).into(),
                build_id,
                stored_bytes: bytes.len() as i64,
                decoded_bytes: entry.weight() as i64,
                last_modified: lm,
                age_ms: now - lm,
                revalidate,
                revalidate_never,
                expire,
                tags: tags.into_iter().map(|(t, st)| InspectedTag::of(t, &st)).collect(),
                write_id: format!("{:016x}", entry.write_id),
                tag_verdict: tag_verdict.into(),
            });
        }
        Ok(out)
    }
}
