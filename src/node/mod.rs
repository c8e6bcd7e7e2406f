//! The N-API boundary of the handler Next loads: JS values in and out of the core's types, and
//! one-line delegates; no cache logic and no Next-value logic (that is `next_value.rs`, under
//! `cargo test`). Here: `NativeCache`, the handler's core, and its request-path methods; in
//! `shapes.rs` the values that cross (a hit, a value to store, a write's outcome); `options.rs`
//! reads the options object; `purge_hook.rs` hands CDN purges to a JS hook; `functions.rs` holds
//! the free functions (logging, key helpers); `ops.rs` the deploy and operations methods.
//!
//! Shapes crossing the boundary are flat on purpose (see `index.js`, which builds Next's values):
//! every binary field of a hit travels in one `buf` (one `napi_create_buffer`, sliced in JS),
//! object-valued fields travel as JSON text, and absent fields are simply not set. Errors cross as
//! JS errors carrying the core's stable `code` (`FLEETCACHE_*`) and its message; `index.js` wraps
//! them in `FleetCacheError` without reading the text.

mod functions;
mod ops;
mod options;
mod purge_hook;
mod shapes;

pub use options::*;
pub use shapes::*;

use purge_hook::PurgeWaiters;

use std::future::Future;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::config::{Config, OptionValue, Options};
use crate::core::{Core, GetRequest, Lookup, SyncLookup};
use crate::entry::Entry;
use crate::error::{Error as CoreError, Result as CoreResult};
use crate::keys::{self, Class};
use crate::next_value::{Field, HitLayout, SetInput};
use crate::stats::Reading;

/// A JS `Error` with the core error's `code` and message, as a `napi::Error` that rethrows (or
/// rejects with) exactly that object.
pub(crate) fn coded(env: &Env, e: CoreError) -> napi::Error {
    let js = napi::JsError::from(napi::Error::new(e.kind.code(), e.context)).into_unknown(*env);
    napi::Error::from(js)
}

/// A promise of the core's `fut`: resolves with its value, or rejects with a [`coded`] error.
pub(crate) fn settle<'e, T, F>(env: &'e Env, fut: F) -> Result<PromiseRaw<'e, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = CoreResult<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, r| r.map_err(|e| coded(env, e)))
}

/// One native cache core. `index.js` keeps one per distinct configuration per process.
#[napi]
pub struct NativeCache {
    pub(crate) core: Arc<Core>,
    /// CDN purge batches sent to the JS hook, waiting for `purgeSettled`.
    purge_waiters: PurgeWaiters,
}

#[napi]
impl NativeCache {
    /// Validates options (env vars as fallback); throws a `FLEETCACHE_CONFIG` error naming the
    /// option (and the nearest known name for an unknown one).
    #[napi(constructor, catch_unwind, ts_args_type = "options?: Options")]
    pub fn new(env: &Env, options: Option<Unknown>) -> Result<Self> {
        let cfg = option_entries(options)
            .and_then(Options::from_entries)
            .and_then(|o| Config::from_options(o, &|k| std::env::var(k).ok()))
            .map_err(|e| coded(env, e))?;
        let core = Arc::new(Core::new(cfg));
        core.start_feed(|poller| {
            napi::bindgen_prelude::spawn(poller);
        });
        Ok(NativeCache { core, purge_waiters: Default::default() })
    }

    /// A get, answered at once when memory and the local tag clock decide it (the hit path):
    /// `null` = miss; an object = hit; a number = a hit of generation `knownGen`, the in-memory
    /// copy whose Next value JS already holds (index.js, `ValueCache`), answered with its
    /// `lastModified` alone, so a repeated hit crosses the boundary as one double instead of an
    /// object, its strings and a copy of its bytes. Otherwise a promise of the miss path (S3, tag
    /// states), bounded by `getTimeoutMs`, that resolves to a hit or `null` and never rejects.
    #[napi(catch_unwind, ts_return_type = "NativeHit | number | null | Promise<NativeHit | null>")]
    #[allow(clippy::too_many_arguments)]
    pub fn get<'e>(
        &self,
        env: &'e Env,
        key: String,
        kind: Option<String>,
        tags: Option<Vec<String>>,
        soft_tags: Option<Vec<String>>,
        revalidate: Option<f64>,
        known_gen: Option<f64>,
    ) -> Result<Either4<Object<'e>, f64, Null, PromiseRaw<'e, GetOut>>> {
        let req = get_request(key, kind, tags, soft_tags, revalidate);
        Ok(match self.core.get_sync(&req) {
            SyncLookup::Done(Lookup::Hit { last_modified, gen, .. }) if gen != 0 && known_gen == Some(gen as f64) => {
                Either4::B(last_modified as f64)
            }
            SyncLookup::Done(Lookup::Hit { entry, last_modified, gen }) => {
                Either4::A(hit_object(env, &entry, last_modified, gen)?)
            }
            SyncLookup::Done(Lookup::Miss) => Either4::C(Null),
            SyncLookup::NeedsBackend => {
                let core = self.core.clone();
                Either4::D(env.spawn_future(async move { Ok(GetOut(core.get(&req).await)) })?)
            }
        })
    }

    /// Stores a value; resolves to an `OpResult`, never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<OpResult>")]
    pub fn set<'e>(&self, env: &'e Env, key: String, input: SetInput) -> Result<PromiseRaw<'e, OpResult>> {
        let core = self.core.clone();
        let parts = input.into_parts();
        env.spawn_future(async move {
            Ok(OpResult::from(match parts {
                Ok(p) => core.set(keys::scoped_key(p.class, key), p).await,
                Err(e) => {
                    if e.kind == crate::error::ErrorKind::InvalidInput {
                        core.note_invalid("set refused", &format!("{key}: {}", e.context));
                    }
                    Err(e)
                }
            }))
        })
    }

    /// Records a revalidation (`expire` seconds: undefined/0 = now, N = stale now, expired in N s).
    #[napi(catch_unwind, ts_return_type = "Promise<OpResult>")]
    pub fn revalidate_tags<'e>(
        &self,
        env: &'e Env,
        tags: Vec<String>,
        expire: Option<f64>,
    ) -> Result<PromiseRaw<'e, OpResult>> {
        let core = self.core.clone();
        env.spawn_future(async move { Ok(OpResult::from(core.revalidate_tags(&tags, expire).await)) })
    }

    /// URL paths of entries carrying any of these tags.
    #[napi(catch_unwind, ts_return_type = "Promise<string[]>")]
    pub fn paths_for_tags<'e>(&self, env: &'e Env, tags: Vec<String>) -> Result<PromiseRaw<'e, Vec<String>>> {
        let core = self.core.clone();
        settle(env, async move { core.paths_for_tags(&tags).await })
    }

    /// Delivers what the outbox holds (revalidations and feed events not landed yet), for at most
    /// `ms`, blocking the calling thread (the SIGTERM hook: nothing async runs after it). Returns
    /// how many units are left.
    #[napi(catch_unwind)]
    pub fn flush_blocking(&self, ms: f64) -> u32 {
        let core = self.core.clone();
        napi::bindgen_prelude::block_on(async move { core.flush(ms.max(0.0) as u64).await }) as u32
    }

    /// Leaves the fleet (the SIGTERM hook): an expired heartbeat replaces this instance's, so
    /// status and receipts stop counting it at once. Waits at most `ms`; true when written.
    #[napi(catch_unwind)]
    pub fn leave_blocking(&self, ms: f64) -> bool {
        let core = self.core.clone();
        let wait = std::time::Duration::from_millis(ms.max(0.0) as u64);
        napi::bindgen_prelude::block_on(
            async move { matches!(tokio::time::timeout(wait, core.leave()).await, Ok(Ok(()))) },
        )
    }

    /// Writes what the outbox still holds to `spoolDir` (the SIGTERM hook, after
    /// `flushBlocking`); returns how many units were written (what could not be is logged).
    #[napi(catch_unwind)]
    pub fn spool_outbox(&self) -> u32 {
        self.core.spool_outbox() as u32
    }

    /// Drops this process's in-memory tier and tag clock.
    #[napi]
    pub fn clear_memory(&self) {
        self.core.clear_memory()
    }

    /// `"aws"` or `"memory"`: the store in use (`memory` during `next build` unless `writeDuringBuild`).
    #[napi(getter)]
    pub fn backend(&self) -> &'static str {
        match self.core.cfg.backend {
            crate::config::Backend::Aws => "aws",
            crate::config::Backend::Memory => "memory",
        }
    }

    /// The key prefix (and namespace in the table) this core uses.
    #[napi(getter)]
    pub fn prefix(&self) -> String {
        self.core.cfg.prefix.clone()
    }

    /// The build ID page/route entries are namespaced under.
    #[napi(getter)]
    pub fn build_id(&self) -> String {
        self.core.build_id()
    }

    /// Adopts Next's build ID (first call wins; ignored when `buildId` is configured).
    #[napi]
    pub fn adopt_build_id(&self, id: String) -> String {
        self.core.adopt_build_id(&id)
    }

    /// The S3 object key a Next cache key maps to.
    #[napi]
    pub fn object_key(&self, key: String, kind: Option<String>) -> String {
        let class = Class::from_kind(kind.as_deref());
        self.core.object_key(class, &keys::scoped_key(class, key))
    }

    /// Bytes of the stored object for `key`, encoded from this process's in-memory copy
    /// (benchmarks); null when the key is not in memory.
    #[napi]
    pub fn encoded_len(&self, key: String) -> Option<f64> {
        self.core.encoded_len(&key).map(|n| n as f64)
    }

    /// A call refused for bad input in JS: counted (`invalidInputs`) and logged.
    #[napi]
    pub fn note_invalid(&self, what: String, message: String) {
        self.core.note_invalid(&what, &message)
    }

    /// Counters and gauges since the core was created (`Stats` in `index.d.ts`).
    #[napi(ts_return_type = "Record<string, number | boolean>")]
    pub fn stats<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let mut o = Object::new(env)?;
        for (name, r) in self.core.stats_snapshot() {
            match r {
                Reading::Count(n) => o.set(&name, n)?,
                Reading::Flag(b) => o.set(&name, b)?,
            }
        }
        Ok(o)
    }
}
