//! The build registry and seeding: what `fleetcache seed`, `prune` and run-time seeding ask of a
//! core. Build markers live in S3 (`<prefix>/builds/<id>`, `<prefix>/build-activity/<id>`,
//! `<prefix>/seeded/<id>`); the seeding claim is a lease in the tag store. Apart from the request
//! path (`core/`), which never calls into this module.

use bytes::Bytes;

use crate::codec;
use crate::core::{Core, SetParts};
use crate::error::Result;
use crate::keys;

/// A build registered in the store (`<prefix>/builds/<id>`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "node", napi_derive::napi(object, js_name = "BuildEntry"))]
pub struct BuildInfo {
    pub build_id: String,
    /// When it was first registered, ms since the epoch.
    pub created_at: i64,
    /// When an instance of it last started or seeded it (at least `created_at`).
    #[serde(default)]
    pub last_active_at: i64,
}

impl Core {
    /// Writes a build-output entry (`fleetcache seed`): stored only when no object exists under
    /// its key (S3 conditional write), with the build's own `last_modified`, never in memory and
    /// never announced (no instance can hold an older copy of a key nobody wrote yet). Returns
    /// whether this call wrote it.
    pub async fn seed(&self, key: String, parts: SetParts, last_modified: i64) -> Result<bool> {
        let SetParts { class, value, cache_control, tags } = parts;
        let entry = self.storable_entry(key, last_modified, cache_control, tags, value)?;
        let bytes = codec::encode(&entry, self.cfg.compression_level)?;
        let b = self.backends().await;
        let written = b.blobs.put(&self.object_key(class, &entry.key), Bytes::from(bytes), true).await?;
        if written {
            self.write_index(&entry, class).await?;
        }
        Ok(written)
    }

    /// Records that the build in force exists (the first registration's time stays) and is
    /// running now. `prune` keeps the builds that ran last, so a rolled-back build is kept.
    /// Returns whether this call created the registration.
    pub async fn register_build(&self) -> Result<bool> {
        let build_id = self.build_id();
        let now = self.now();
        let b = self.backends().await;
        let body = serde_json::json!({ "buildId": build_id, "createdAt": now }).to_string();
        let created =
            b.blobs.put(&keys::build_marker_key(&self.cfg.prefix, &build_id), Bytes::from(body), true).await?;
        let activity = serde_json::json!({ "buildId": build_id, "createdAt": now, "lastActiveAt": now }).to_string();
        b.blobs.put(&keys::activity_key(&self.cfg.prefix, &build_id), Bytes::from(activity), false).await?;
        Ok(created)
    }

    /// Whether this build's output was seeded already (`mark_seeded`).
    pub async fn is_seeded(&self) -> Result<bool> {
        let b = self.backends().await;
        Ok(b.blobs.get(&keys::seeded_marker_key(&self.cfg.prefix, &self.build_id())).await?.is_some())
    }

    /// Claims the seeding of this build for `ms` (one instance of the fleet wins; the claim
    /// lapses if it dies). False when it is seeded already or another instance holds the claim.
    pub async fn claim_seeding(&self, ms: i64) -> Result<bool> {
        if self.is_seeded().await? {
            return Ok(false);
        }
        let now = self.now();
        let name = format!("seed#{}", keys::build_marker_key(&self.cfg.prefix, &self.build_id()));
        let b = self.backends().await;
        Ok(b.tags.try_lease(&name, &self.instance_id, now, now + ms).await?.won)
    }

    /// Records that this build's output is in the store.
    pub async fn mark_seeded(&self) -> Result<()> {
        let body = serde_json::json!({ "buildId": self.build_id(), "seededAt": self.now() }).to_string();
        let b = self.backends().await;
        b.blobs.put(&keys::seeded_marker_key(&self.cfg.prefix, &self.build_id()), Bytes::from(body), false).await?;
        Ok(())
    }

    /// Every registered build, least recently active first.
    pub async fn list_builds(&self) -> Result<Vec<BuildInfo>> {
        let b = self.backends().await;
        let mut out = Vec::new();
        for k in b.blobs.list(&keys::builds_prefix(&self.cfg.prefix)).await? {
            let Some(body) = b.blobs.get(&k).await? else { continue };
            let mut info = match serde_json::from_slice::<BuildInfo>(&body) {
                Ok(info) => info,
                Err(e) => {
                    self.log("unreadable build marker skipped", &format!("{k}: {e}"));
                    continue;
                }
            };
            let activity = b.blobs.get(&keys::activity_key(&self.cfg.prefix, &info.build_id)).await?;
            let last =
                activity.and_then(|a| serde_json::from_slice::<BuildInfo>(&a).ok()).map_or(0, |a| a.last_active_at);
            info.last_active_at = last.max(info.created_at);
            out.push(info);
        }
        out.sort_by(|a, b| {
            (a.last_active_at, a.created_at, &a.build_id).cmp(&(b.last_active_at, b.created_at, &b.build_id))
        });
        Ok(out)
    }

    /// Object keys of the entries that belong to `build_id` alone (pages, routes, per-build fetches).
    pub async fn build_object_keys(&self, build_id: &str) -> Result<Vec<String>> {
        let b = self.backends().await;
        let mut out = Vec::new();
        for folder in keys::build_folders(&self.cfg.prefix, build_id) {
            out.extend(b.blobs.list(&folder).await?);
        }
        Ok(out)
    }

    /// Deletes objects (batches of 1,000): a build's entries from [`Core::build_object_keys`], then its marker.
    pub async fn delete_objects(&self, keys: &[String]) -> Result<()> {
        self.backends().await.blobs.delete(keys).await
    }

    /// The markers of a build, the registration last.
    pub fn build_marker_keys(&self, build_id: &str) -> Vec<String> {
        vec![
            keys::seeded_marker_key(&self.cfg.prefix, build_id),
            keys::activity_key(&self.cfg.prefix, build_id),
            keys::build_marker_key(&self.cfg.prefix, build_id),
        ]
    }
}
