//! The N-API boundary of the deploy and operations tools (`tools/`): seeding, the build
//! registry, prune's deletions, `doctor`, and creating local resources. One-line delegates to
//! `ops/deploy.rs`, `ops/doctor.rs` and `backend/mod.rs`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::cdn::purger::PurgeReport;
use std::sync::Arc;

use crate::cdn::watch::CdnReceipt;
use crate::core::{Core, PendingReceipt};
use crate::fleet::{FleetStatus, Receipt};
use crate::ops::deploy::BuildInfo;
use crate::ops::doctor::Check;
use crate::ops::inspect::Inspected;

use super::{settle, MetricSample, NativeCache, SetInput};

/// The outcome of a seed write.
#[napi(object)]
pub struct SeedResult {
    pub ok: bool,
    /// This call wrote the object (false: it was there already, or `ok` is false).
    pub written: bool,
    pub code: Option<String>,
    pub message: Option<String>,
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
        settle(
            env,
            async move { crate::cdn::purger::purge_now(core.as_ref(), &core.cfg.cdn, &tags, &paths, dry_run).await },
        )
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
    pub fn list_builds<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<BuildInfo>>> {
        let core = self.core.clone();
        settle(env, async move { core.list_builds().await })
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
    pub fn doctor<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<Check>>> {
        let cfg = self.core.cfg.clone();
        env.spawn_future(async move { Ok(crate::ops::doctor::run(&cfg).await) })
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
    pub fn inspect<'e>(&self, env: &'e Env, what: String) -> Result<PromiseRaw<'e, Vec<Inspected>>> {
        let core = self.core.clone();
        settle(env, async move { core.inspect(&what).await })
    }

    /// The live fleet (`fleetcache status`): every instance's latest heartbeat, and the feed head.
    #[napi(catch_unwind, ts_return_type = "Promise<FleetStatus>")]
    pub fn fleet_status<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, FleetStatus>> {
        let core = self.core.clone();
        settle(env, async move { core.fleet_status().await })
    }

    /// Writes this instance's heartbeat now (the heartbeat task does every `heartbeatMs`).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn beat<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.beat().await })
    }

    /// A revalidation whose receipt the caller fills in (`read`, then `cdn`): resolves once the
    /// revalidation is made here and has landed in DynamoDB (or `timeoutMs` passed: `queued`).
    /// Rejects like `revalidateTags` resolves `ok: false`: bad input, a full outbox, a
    /// revalidation that can never be valid.
    #[napi(catch_unwind, ts_return_type = "Promise<ReceiptInProgress>")]
    pub fn start_receipt<'e>(
        &self,
        env: &'e Env,
        tags: Vec<String>,
        expire: Option<f64>,
        timeout_ms: f64,
    ) -> Result<PromiseRaw<'e, ReceiptInProgress>> {
        let core = self.core.clone();
        let timeout = if timeout_ms.is_finite() { timeout_ms.clamp(0.0, 3_600_000.0) as u64 } else { 10_000 };
        settle(env, async move {
            let pending = core.start_receipt(&tags, expire, timeout).await?;
            Ok(ReceiptInProgress { core, pending: Arc::new(pending) })
        })
    }

    /// Next's version, for the heartbeat.
    #[napi(catch_unwind)]
    pub fn set_next_version(&self, version: Option<String>) {
        self.core.set_next_version(version)
    }
}

/// A revalidation's receipt as it fills in (`NativeCache.startReceipt`).
#[napi]
pub struct ReceiptInProgress {
    core: Arc<Core>,
    pending: Arc<PendingReceipt>,
}

#[napi]
impl ReceiptInProgress {
    /// The receipt as it stands (one read of the acknowledgements per feed event).
    #[napi(catch_unwind, ts_return_type = "Promise<Receipt>")]
    pub fn read<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Receipt>> {
        let (core, pending) = (self.core.clone(), self.pending.clone());
        settle(env, async move { Ok(core.read_receipt(&pending).await) })
    }

    /// The CDN purge once every planned path went out (or failed), waiting at most `ms`;
    /// undefined when this instance purges no CDN.
    #[napi(catch_unwind, ts_return_type = "Promise<CdnReceipt | undefined>")]
    pub fn cdn<'e>(&self, env: &'e Env, ms: f64) -> Result<PromiseRaw<'e, Option<CdnReceipt>>> {
        let pending = self.pending.clone();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms.clamp(0.0, 3_600_000.0) as u64);
        settle(env, async move { Ok(pending.cdn_until(until).await) })
    }
}
