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

/// One stored entry, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    pub object_key: String,
    pub key: String,
    pub kind: &'static str,
    pub build_id: String,
    pub stored_bytes: usize,
    /// In-memory weight of the decoded entry (what it costs the memory tier).
    pub decoded_bytes: usize,
    pub last_modified: i64,
    pub age_ms: i64,
    /// `None`: revalidate never (`false`); absent cache control gives `(None, None, false)`.
    pub revalidate: Option<f64>,
    pub revalidate_never: bool,
    pub expire: Option<f64>,
    pub tags: Vec<(String, TagState)>,
    pub write_id: u64,
    /// Whether a tag revalidated after this entry was written makes it stale or expired.
    pub tag_verdict: &'static str,
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
                kind: entry.value.as_ref().map_or("NOT_FOUND", |v| v.kind_name()),
                build_id,
                stored_bytes: bytes.len(),
                decoded_bytes: entry.weight(),
                last_modified: lm,
                age_ms: now - lm,
                revalidate,
                revalidate_never,
                expire,
                tags,
                write_id: entry.write_id,
                tag_verdict,
            });
        }
        Ok(out)
    }
}
