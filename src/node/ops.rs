//! The N-API boundary of the deploy and operations tools (`tools/`): seeding, the build
//! registry, prune's deletions, `doctor`, and creating local resources. One-line delegates to
//! `ops/deploy.rs`, `ops/doctor.rs` and `backend/mod.rs`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{settle, InspectedEntry, InspectedTag, MetricSample, NativeCache, SetInput};

/// The outcome of a seed write.
#[napi(object)]
pub struct SeedResult {
    pub ok: bool,
    /// This call wrote the object (false: it was there already, or `ok` is false).
    pub written: bool,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// A build registered in the store.
#[napi(object)]
pub struct BuildEntry {
    pub build_id: String,
    /// First registered, ms since the epoch.
    pub created_at: f64,
    /// Last started or seeded, ms since the epoch (what `prune` orders by).
    pub last_active_at: f64,
}

/// One finding of `doctor`.
#[napi(object)]
pub struct DoctorCheck {
    pub name: String,
    pub ok: bool,
    /// Works, but probably not as meant (`ok` is true).
    pub warning: bool,
    pub detail: String,
    /// How to fix it (absent when `ok`).
    pub fix: Option<String>,
}

/// One invalidation of `fleetcache purge`.
#[napi(object)]
pub struct PurgeBatchReport {
    pub paths: Vec<String>,
    pub files: u32,
    pub wildcards: u32,
    pub cost: f64,
    pub widened: bool,
    /// CloudFront's invalidation id once sent ("" when it reported it completed at once).
    pub invalidation_id: Option<String>,
    pub error: Option<String>,
}

/// What `fleetcache purge` planned and sent.
#[napi(object)]
pub struct PurgeReport {
    pub paths: Vec<String>,
    pub batches: Vec<PurgeBatchReport>,
    pub not_sent: f64,
    pub cost: f64,
    pub sent: bool,
}

#[napi]
impl NativeCache {
    /// `fleetcache purge`: plans the CDN invalidations of `tags` and `paths` by the purger's
    /// rules and sends them to CloudFront unless `dryRun`.
    #[napi(catch_unwind, ts_return_type = "Promise<PurgeReport>")]
    pub fn purge_now<'e>(
        &self,
        env: &'e Env,
        tags: Vec<String>,
        paths: Vec<String>,
        dry_run: bool,
    ) -> Result<PromiseRaw<'e, PurgeReport>> {
        let core = self.core.clone();
        settle(env, async move {
            let r = crate::cdn::purger::purge_now(core.as_ref(), &core.cfg.cdn, &tags, &paths, dry_run).await?;
            Ok(PurgeReport {
                paths: r.paths,
                batches: r
                    .batches
                    .into_iter()
                    .map(|b| PurgeBatchReport {
                        files: b.batch.files as u32,
                        wildcards: b.batch.wildcards as u32,
                        cost: b.batch.cost,
                        widened: b.batch.widened,
                        paths: b.batch.paths,
                        invalidation_id: b.invalidation_id,
                        error: b.error,
                    })
                    .collect(),
                not_sent: r.not_sent as f64,
                cost: r.cost,
                sent: r.sent,
            })
        })
    }

    /// Writes a build-output entry unless its object exists (`fleetcache seed`), with the build's
    /// `lastModified`; `written` tells whether this call wrote it. Never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<SeedResult>")]
    pub fn seed<'e>(
        &self,
        env: &'e Env,
        key: String,
        input: SetInput,
        last_modified: f64,
    ) -> Result<PromiseRaw<'e, SeedResult>> {
        let core = self.core.clone();
        let parts = input.into_parts();
        env.spawn_future(async move {
            let r = match parts {
                Ok(p) => core.seed(key, p, last_modified as i64).await,
                Err(e) => Err(e),
            };
            Ok(match r {
                Ok(written) => SeedResult { ok: true, written, code: None, message: None },
                Err(e) => {
                    SeedResult { ok: false, written: false, code: Some(e.kind.code().into()), message: Some(e.context) }
                }
            })
        })
    }

    /// Registers the build in force (`<prefix>/builds/<id>`); resolves to whether this call created it.
    #[napi(catch_unwind, ts_return_type = "Promise<boolean>")]
    pub fn register_build<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, bool>> {
        let core = self.core.clone();
        settle(env, async move { core.register_build().await })
    }

    /// Registered builds, oldest first.
    #[napi(catch_unwind, ts_return_type = "Promise<BuildEntry[]>")]
    pub fn list_builds<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<BuildEntry>>> {
        let core = self.core.clone();
        settle(env, async move {
            let builds = core.list_builds().await?;
            Ok(builds
                .into_iter()
                .map(|b| BuildEntry {
                    build_id: b.build_id,
                    created_at: b.created_at as f64,
                    last_active_at: b.last_active_at as f64,
                })
                .collect())
        })
    }

    /// Object keys of the entries that belong to one build alone.
    #[napi(catch_unwind, ts_return_type = "Promise<string[]>")]
    pub fn build_object_keys<'e>(&self, env: &'e Env, build_id: String) -> Result<PromiseRaw<'e, Vec<String>>> {
        let core = self.core.clone();
        settle(env, async move { core.build_object_keys(&build_id).await })
    }

    /// Deletes objects by key (batches of 1,000).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn delete_objects<'e>(&self, env: &'e Env, keys: Vec<String>) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.delete_objects(&keys).await })
    }

    /// The marker objects of a build (deleted last by `prune`).
    #[napi]
    pub fn build_marker_keys(&self, build_id: String) -> Vec<String> {
        self.core.build_marker_keys(&build_id)
    }

    /// Claims the seeding of the build in force for `ms` across the fleet; false when it is
    /// seeded already or another instance holds the claim.
    #[napi(catch_unwind, ts_return_type = "Promise<boolean>")]
    pub fn claim_seeding<'e>(&self, env: &'e Env, ms: f64) -> Result<PromiseRaw<'e, bool>> {
        let core = self.core.clone();
        settle(env, async move { core.claim_seeding(ms as i64).await })
    }

    /// Records that the build in force has been seeded.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn mark_seeded<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.mark_seeded().await })
    }

    /// Checks credentials, bucket, table and every permission the cache needs; never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<DoctorCheck[]>")]
    pub fn doctor<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<DoctorCheck>>> {
        let cfg = self.core.cfg.clone();
        env.spawn_future(async move {
            Ok(crate::ops::doctor::run(&cfg)
                .await
                .into_iter()
                .map(|c| DoctorCheck { name: c.name, ok: c.ok, warning: c.warning, detail: c.detail, fix: c.fix })
                .collect())
        })
    }

    /// Creates the bucket and table if missing (local development and tests).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn ensure_resources<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.ensure_resources().await })
    }
}

/// The operations' reads: metrics and `fleetcache inspect`.
#[napi]
impl NativeCache {
    /// Every metric `metrics()` exports (rendered as Prometheus text by `index.js`).
    #[napi]
    pub fn metric_samples(&self) -> Vec<MetricSample> {
        self.core
            .metric_samples()
            .into_iter()
            .map(|s| MetricSample {
                name: s.name,
                kind: s.kind.name().to_string(),
                help: s.help.to_string(),
                labels: s.labels.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect(),
                value: s.value,
                bucket_bounds: (s.kind == crate::metrics::Kind::Histogram)
                    .then(|| s.buckets.iter().map(|b| b.0).collect()),
                bucket_counts: (s.kind == crate::metrics::Kind::Histogram)
                    .then(|| s.buckets.iter().map(|b| b.1 as f64).collect()),
                sum: (s.kind == crate::metrics::Kind::Histogram).then_some(s.sum),
            })
            .collect()
    }

    /// What the store holds for a URL path or cache key, decoded (`fleetcache inspect`).
    #[napi(catch_unwind, ts_return_type = "Promise<InspectedEntry[]>")]
    pub fn inspect<'e>(&self, env: &'e Env, what: String) -> Result<PromiseRaw<'e, Vec<InspectedEntry>>> {
        let core = self.core.clone();
        settle(env, async move {
            Ok(core
                .inspect(&what)
                .await?
                .into_iter()
                .map(|i| InspectedEntry {
                    object_key: i.object_key,
                    key: i.key,
                    kind: i.kind.to_string(),
                    build_id: i.build_id,
                    stored_bytes: i.stored_bytes as f64,
                    decoded_bytes: i.decoded_bytes as f64,
                    last_modified: i.last_modified as f64,
                    age_ms: i.age_ms as f64,
                    revalidate: i.revalidate,
                    revalidate_never: i.revalidate_never,
                    expire: i.expire,
                    tags: i
                        .tags
                        .into_iter()
                        .map(|(tag, st)| InspectedTag {
                            tag,
                            expired_at: Some(st.expires_at()).filter(|at| *at > 0).map(|at| at as f64),
                            stale_at: (st.stale > 0).then_some(st.stale as f64),
                            soft_expire_at: (st.soft_expire > 0).then_some(st.soft_expire as f64),
                        })
                        .collect(),
                    write_id: format!("{:016x}", i.write_id),
                    tag_verdict: i.tag_verdict.to_string(),
                })
                .collect())
        })
    }
}
