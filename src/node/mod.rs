//! The N-API boundary of the handler Next loads: JS values in and out of the core's types, and
//! one-line delegates; no cache logic and no Next-value logic (that is `next_value.rs`, under
//! `cargo test`). The deploy and operations methods are in `ops.rs`.
//!
//! Shapes crossing the boundary are flat on purpose (see `index.js`, which builds Next's values):
//! every binary field of a hit travels in one `buf` (one `napi_create_buffer`, sliced in JS),
//! object-valued fields travel as JSON text, and absent fields are simply not set. Errors cross as
//! JS errors carrying the core's stable `code` (`FLEETCACHE_*`) and its message; `index.js` wraps
//! them in `FleetCacheError` without reading the text.

mod ops;

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
use crate::next_value::{Field, HitLayout, SetFields, SetParts};
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

/// The options object as `(name, value)` pairs, its values typed by `typeof` only: the names and
/// types are checked by `Options::from_entries`, against the one option list.
fn option_entries(options: Option<Unknown>) -> CoreResult<Vec<(String, OptionValue)>> {
    let bad = |what: &str| CoreError::config(format!("options must be an object, got {what}"));
    let Some(options) = options else { return Ok(Vec::new()) };
    let internal = |e: napi::Error| CoreError::config(format!("options could not be read: {}", e.reason));
    match options.get_type().map_err(internal)? {
        ValueType::Undefined | ValueType::Null => return Ok(Vec::new()),
        ValueType::Object => {}
        other => return Err(bad(type_name(other))),
    }
    if options.is_array().map_err(internal)? {
        return Err(bad("array"));
    }
    // SAFETY: the value was just checked to be an object.
    let obj: Object = unsafe { options.cast() }.map_err(internal)?;
    let mut out = Vec::new();
    read_entries(&obj, "", &mut out)?;
    Ok(out)
}

/// The entries of an options object; a group (`cdn`, `cdn.cloudfront`) given as an object is
/// read as dotted names.
fn read_entries(obj: &Object, prefix: &str, out: &mut Vec<(String, OptionValue)>) -> CoreResult<()> {
    let internal = |e: napi::Error| CoreError::config(format!("options could not be read: {}", e.reason));
    for key in Object::keys(obj).map_err(internal)? {
        let v: Unknown = obj.get_named_property(&key).map_err(internal)?;
        let name = format!("{prefix}{key}");
        let ty = v.get_type().map_err(internal)?;
        if ty == ValueType::Object
            && crate::config::OPTION_GROUPS.contains(&name.as_str())
            && !v.is_array().map_err(internal)?
        {
            // SAFETY: the value was just checked to be an object.
            let group: Object = unsafe { v.cast() }.map_err(internal)?;
            read_entries(&group, &format!("{name}."), out)?;
            continue;
        }
        let value = match ty {
            ValueType::String => OptionValue::Str(unsafe { v.cast::<String>() }.map_err(internal)?),
            ValueType::Number => OptionValue::Num(unsafe { v.cast::<f64>() }.map_err(internal)?),
            ValueType::Boolean => OptionValue::Bool(unsafe { v.cast::<bool>() }.map_err(internal)?),
            ValueType::Undefined | ValueType::Null => OptionValue::Absent,
            other => OptionValue::Other(type_name(other)),
        };
        out.push((name, value));
    }
    Ok(())
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Function => "function",
        ValueType::BigInt => "bigint",
        _ => "object",
    }
}

/// One V8-owned Buffer holding `parts` back to back, written in place (no intermediate Vec:
/// a large temporary allocation per hit costs more than the copy itself).
fn concat_buffer<'e>(env: &'e Env, parts: &[&[u8]]) -> Result<Unknown<'e>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut raw = std::ptr::null_mut();
    let mut data = std::ptr::null_mut();
    // SAFETY: napi_create_buffer hands back a fresh V8-owned allocation of `len` writable bytes.
    napi::check_status!(unsafe { sys::napi_create_buffer(env.raw(), len, &mut data, &mut raw) })?;
    if len > 0 {
        // SAFETY: `data` points at `len` bytes nothing else references yet.
        let dst = unsafe { std::slice::from_raw_parts_mut(data as *mut u8, len) };
        let mut at = 0;
        for p in parts {
            dst[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }
    // SAFETY: `raw` is a valid value of this env, just created.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), raw) })
}

/// A hit as the JS object `index.js` reads (`NativeHit` in `binding.d.ts`).
fn hit_object<'e>(env: &'e Env, entry: &Entry, last_modified: i64, gen: u64) -> Result<Object<'e>> {
    let layout = HitLayout::of(entry, last_modified, gen);
    let mut o = Object::new(env)?;
    for (name, f) in layout.fields {
        match f {
            Field::Num(n) => o.set(name, n)?,
            Field::Bool(b) => o.set(name, b)?,
            Field::Str(s) => o.set(name, s)?,
            Field::Strs(v) => o.set(name, v)?,
            Field::Nums(v) => o.set(name, v)?,
        }
    }
    if let Some(parts) = layout.buf {
        o.set("buf", concat_buffer(env, &parts)?)?;
    }
    Ok(o)
}

/// A hit as `getSync`/`getAsync` hand it to `index.js` (built field by field by `hit_object`
/// from `next_value::HitLayout`; this struct only declares its type). Absent fields are not set.
#[napi(object, object_from_js = false)]
#[allow(dead_code)]
pub struct NativeHit {
    pub last_modified: f64,
    #[napi(ts_type = "number | false")]
    pub revalidate: Option<f64>,
    pub expire: Option<f64>,
    /// Absent for a cached notFound (`set(key, null)`).
    pub kind: Option<String>,
    /// Every binary field back to back: html, RSC data and segments; or a body/buffer.
    pub buf: Option<Buffer>,
    pub html_len: Option<f64>,
    pub rsc_len: Option<f64>,
    pub seg_names: Option<Vec<String>>,
    /// `[start, end)` of each segment in `buf`, flattened.
    pub seg_bounds: Option<Vec<f64>>,
    pub postponed: Option<String>,
    /// JSON text.
    pub headers: Option<String>,
    pub status: Option<f64>,
    /// JSON text.
    pub page_data: Option<String>,
    /// JSON text.
    pub props: Option<String>,
    pub body: Option<String>,
    pub url: Option<String>,
    pub fetch_revalidate: Option<f64>,
    pub tags: Option<Vec<String>>,
    pub etag: Option<String>,
    pub upstream_etag: Option<String>,
    pub extension: Option<String>,
    /// Generation of the in-memory copy (html decoded by JS is reused while it matches).
    pub gen: Option<f64>,
    pub timestamp: Option<f64>,
    pub stale: Option<f64>,
    /// A `'use cache'` entry one of whose tags was revalidated with a profile.
    pub tag_stale: Option<bool>,
}

/// One exported metric series (`metrics()`).
#[napi(object)]
pub struct MetricSample {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    pub help: String,
    /// Label names and values, alternating.
    pub labels: Vec<String>,
    /// Counter/gauge value; a histogram's count.
    pub value: f64,
    /// Histograms: bucket upper bounds in seconds (the last is Infinity) and cumulative counts.
    pub bucket_bounds: Option<Vec<f64>>,
    pub bucket_counts: Option<Vec<f64>>,
    pub sum: Option<f64>,
}

/// A tag of an inspected entry and its state (ms since the epoch; absent = never).
#[napi(object)]
pub struct InspectedTag {
    pub tag: String,
    /// When entries written before it expire (its latest revalidation's expiry; may be ahead).
    pub expired_at: Option<f64>,
    /// Its latest profiled revalidation: entries written before it are stale.
    pub stale_at: Option<f64>,
    /// That profiled revalidation's expiry.
    pub soft_expire_at: Option<f64>,
}

/// A stored entry, decoded (`fleetcache inspect`).
#[napi(object)]
pub struct InspectedEntry {
    pub object_key: String,
    pub key: String,
    /// `APP_PAGE`, `APP_ROUTE`, `PAGES`, `REDIRECT`, `FETCH`, `IMAGE`, `USE_CACHE` or `NOT_FOUND`.
    pub kind: String,
    pub build_id: String,
    pub stored_bytes: f64,
    pub decoded_bytes: f64,
    pub last_modified: f64,
    pub age_ms: f64,
    /// Seconds; absent with `revalidateNever` or without cache control.
    pub revalidate: Option<f64>,
    pub revalidate_never: bool,
    pub expire: Option<f64>,
    pub tags: Vec<InspectedTag>,
    /// Which write made it (hex).
    pub write_id: String,
    pub tag_verdict: String,
}

/// `get`'s async answer: an object for a hit, `null` for a miss.
pub struct GetOut(Lookup);

impl ToNapiValue for GetOut {
    unsafe fn to_napi_value(raw: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(raw);
        match val.0 {
            Lookup::Hit { entry, last_modified, gen } => Ok(hit_object(&env, &entry, last_modified, gen)?.raw()),
            Lookup::Miss => Null::to_napi_value(raw, Null),
        }
    }
}

/// The outcome of a write: errors are values so `set` never rejects by accident.
#[napi(object)]
pub struct OpResult {
    pub ok: bool,
    /// A stable `FLEETCACHE_*` code when `ok` is false.
    pub code: Option<String>,
    pub message: Option<String>,
}

impl From<CoreResult<()>> for OpResult {
    fn from(r: CoreResult<()>) -> Self {
        match r {
            Ok(()) => OpResult { ok: true, code: None, message: None },
            Err(e) => OpResult { ok: false, code: Some(e.kind.code().into()), message: Some(e.context) },
        }
    }
}

/// A value to store, flattened by `index.js` from Next's `IncrementalCacheValue`; the fields
/// are documented on `next_value::SetFields`.
#[napi(object)]
pub struct SetInput {
    pub kind: Option<String>,
    pub class_kind: Option<String>,
    pub html: Option<String>,
    pub rsc_data: Option<Buffer>,
    pub postponed: Option<String>,
    pub headers: Option<String>,
    pub status: Option<f64>,
    pub seg_names: Option<Vec<String>>,
    pub seg_data: Option<Vec<Buffer>>,
    pub buf: Option<Buffer>,
    pub page_data: Option<String>,
    pub props: Option<String>,
    pub body: Option<String>,
    pub url: Option<String>,
    pub fetch_revalidate: Option<f64>,
    pub fetch_tags: Option<Vec<String>>,
    pub etag: Option<String>,
    pub upstream_etag: Option<String>,
    pub extension: Option<String>,
    pub has_cache_control: Option<bool>,
    pub revalidate_seconds: Option<f64>,
    pub revalidate_never: Option<bool>,
    pub expire: Option<f64>,
    pub timestamp: Option<f64>,
    pub stale: Option<f64>,
    pub tags: Vec<String>,
}

impl SetInput {
    /// What the core stores, or the input's error.
    pub(crate) fn parts(mut self) -> CoreResult<SetParts> {
        let seg_data = self.seg_data.take();
        SetFields {
            kind: self.kind,
            class_kind: self.class_kind,
            html: self.html,
            rsc_data: self.rsc_data.as_deref(),
            postponed: self.postponed,
            headers: self.headers,
            status: self.status,
            seg_names: self.seg_names,
            seg_data: seg_data.as_ref().map(|v| v.iter().map(|b| &b[..]).collect()),
            buf: self.buf.as_deref(),
            page_data: self.page_data,
            props: self.props,
            body: self.body,
            url: self.url,
            fetch_revalidate: self.fetch_revalidate,
            fetch_tags: self.fetch_tags,
            etag: self.etag,
            upstream_etag: self.upstream_etag,
            extension: self.extension,
            has_cache_control: self.has_cache_control.unwrap_or(false),
            revalidate_seconds: self.revalidate_seconds,
            revalidate_never: self.revalidate_never.unwrap_or(false),
            expire: self.expire,
            timestamp: self.timestamp,
            stale: self.stale,
            tags: self.tags,
        }
        .into_parts()
    }
}

fn get_request(
    key: String,
    kind: Option<String>,
    tags: Option<Vec<String>>,
    soft_tags: Option<Vec<String>>,
    revalidate: Option<f64>,
) -> GetRequest {
    let key = keys::scoped_key(Class::from_kind(kind.as_deref()), key);
    GetRequest { key, kind, tags: tags.unwrap_or_default(), soft_tags: soft_tags.unwrap_or_default(), revalidate }
}

/// One native cache core. `index.js` keeps one per distinct configuration per process.
#[napi]
pub struct NativeCache {
    pub(crate) core: Arc<Core>,
    /// CDN purge batches sent to the JS hook, waiting for `purgeSettled`.
    purge_waiters: PurgeWaiters,
}

type PurgeWaiters = Arc<
    parking_lot::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<std::result::Result<(), String>>>>,
>;
/// A planned purge as the JS hook receives it: `(id, paths, files, wildcards, cost, widened)`.
type PurgeArgs = FnArgs<(f64, Vec<String>, f64, f64, f64, bool)>;
type PurgeHookFn = ThreadsafeFunction<PurgeArgs, (), PurgeArgs, Status, false, true>;

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

    /// Sends every planned CDN purge to `hook(id, paths, files, wildcards, cost, widened)` (the
    /// JS face calls the app's `cdn.purge` and answers with `purgeSettled`). Throws
    /// `FLEETCACHE_CONFIG` when CloudFront (or a hook) is set already.
    #[napi(
        catch_unwind,
        ts_args_type = "hook: (id: number, paths: string[], files: number, wildcards: number, cost: number, widened: boolean) => void"
    )]
    pub fn set_purge_hook(&self, env: &Env, hook: PurgeHookFn) -> Result<()> {
        let waiters = self.purge_waiters.clone();
        let hook = Arc::new(hook);
        let f: crate::purge::HookFn = Arc::new(move |b: crate::cdn::Batch| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            waiters.lock().insert(b.id, tx);
            let args: PurgeArgs = (b.id as f64, b.paths, b.files as f64, b.wildcards as f64, b.cost, b.widened).into();
            let status = hook.call(args, ThreadsafeFunctionCallMode::NonBlocking);
            Box::pin(async move {
                if status != Status::Ok {
                    return Err(format!("the hook could not be called ({status:?})"));
                }
                rx.await.unwrap_or_else(|_| Err("the hook's answer was lost".into()))
            })
        });
        self.core
            .start_purger(crate::purge::Target::Hook(f), |fut| {
                napi::bindgen_prelude::spawn(fut);
            })
            .map_err(|e| coded(env, e))
    }

    /// Settles the hook's batch `id`: `error` is its failure (the batch comes back after a
    /// backoff), `null` its success.
    #[napi]
    pub fn purge_settled(&self, id: f64, error: Option<String>) {
        if let Some(tx) = self.purge_waiters.lock().remove(&(id as u64)) {
            let _ = tx.send(error.map_or(Ok(()), Err));
        }
    }

    /// The hit path: `undefined` = ask `getAsync`; `null` = miss; object = hit. `knownGen` is
    /// the generation of the in-memory copy whose Next value JS already holds (index.js,
    /// `ValueCache`): a hit of that generation is answered with its `lastModified` alone, a
    /// number, so a repeated hit crosses the boundary as one double instead of an object, its
    /// strings and a copy of its bytes.
    #[napi(catch_unwind, ts_return_type = "NativeHit | number | null | undefined")]
    #[allow(clippy::too_many_arguments)]
    pub fn get_sync<'e>(
        &self,
        env: &'e Env,
        key: String,
        kind: Option<String>,
        tags: Option<Vec<String>>,
        soft_tags: Option<Vec<String>>,
        revalidate: Option<f64>,
        known_gen: Option<f64>,
    ) -> Result<Either4<Object<'e>, f64, Null, Undefined>> {
        let req = get_request(key, kind, tags, soft_tags, revalidate);
        Ok(match self.core.get_sync(&req) {
            SyncLookup::Done(Lookup::Hit { last_modified, gen, .. }) if gen != 0 && known_gen == Some(gen as f64) => {
                Either4::B(last_modified as f64)
            }
            SyncLookup::Done(Lookup::Hit { entry, last_modified, gen }) => {
                Either4::A(hit_object(env, &entry, last_modified, gen)?)
            }
            SyncLookup::Done(Lookup::Miss) => Either4::C(Null),
            SyncLookup::NeedsBackend => Either4::D(()),
        })
    }

    /// The miss path (S3, tag states), bounded by `getTimeoutMs`; resolves to a hit or `null`, never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<NativeHit | null>")]
    pub fn get_async<'e>(
        &self,
        env: &'e Env,
        key: String,
        kind: Option<String>,
        tags: Option<Vec<String>>,
        soft_tags: Option<Vec<String>>,
        revalidate: Option<f64>,
    ) -> Result<PromiseRaw<'e, GetOut>> {
        let req = get_request(key, kind, tags, soft_tags, revalidate);
        let core = self.core.clone();
        env.spawn_future(async move { Ok(GetOut(core.get(&req).await)) })
    }

    /// Stores a value; resolves to an `OpResult`, never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<OpResult>")]
    pub fn set<'e>(&self, env: &'e Env, key: String, input: SetInput) -> Result<PromiseRaw<'e, OpResult>> {
        let core = self.core.clone();
        let parts = input.parts();
        env.spawn_future(async move {
            Ok(OpResult::from(match parts {
                Ok(p) => core.set(keys::scoped_key(p.class, key), p.class, p.value, p.cache_control, p.tags).await,
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

    /// A call refused for bad input in JS: counted (`invalidInputs`) and logged.
    #[napi]
    pub fn note_invalid(&self, what: String, message: String) {
        self.core.note_invalid(&what, &message)
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

/// The URL path a response-cache key stands for (`/index` → `/`), or null for fetch/image keys.
#[napi]
pub fn path_of_key(key: String) -> Option<String> {
    keys::path_of_key(&key)
}

/// What a CDN must purge when a pages-router key is rewritten: the page and its
/// `/_next/data/<buildId>/<path>.json` variant.
#[napi]
pub fn pages_router_paths(key: String, build_id: String) -> Vec<String> {
    keys::pages_router_paths(&key, &build_id)
}

/// Logs through the process's one logger: `[fleetcache] what: message` on stderr (or the sink),
/// at most once every 10 s per `what`.
#[napi]
pub fn warn(what: String, message: String) {
    crate::log::warn(&what, &message)
}

/// A per-operation line, written only at `FLEETCACHE_LOG=debug`.
#[napi]
pub fn debug(what: String, message: String) {
    crate::log::debug(&what, || message)
}

/// Whether `FLEETCACHE_LOG=debug` is in force (JS skips building debug lines otherwise).
#[napi]
pub fn debug_enabled() -> bool {
    crate::log::enabled(crate::log::Level::Debug)
}

/// The JS function lines go to: `(level, event, message)`.
type LogLine = FnArgs<(String, String, String)>;
type LogSinkFn = ThreadsafeFunction<LogLine, (), LogLine, Status, false, true>;

/// Routes every log line (the core's and `index.js`'s) to `sink(level, event, message)` on the
/// JS thread, instead of stderr/stdout; `null` routes them back. The function does not keep the
/// process alive.
#[napi(
    ts_args_type = "sink: ((level: 'error' | 'warn' | 'info' | 'debug', event: string, message: string) => void) | null"
)]
pub fn set_log_sink(sink: Option<LogSinkFn>) {
    crate::log::set_sink(sink.map(|f| -> crate::log::Sink {
        Box::new(move |level, what, msg| {
            let line: LogLine = (level.name().to_string(), what.to_string(), msg.to_string()).into();
            f.call(line, ThreadsafeFunctionCallMode::NonBlocking);
        })
    }))
}

/// Sets the log level and format for this process (`FLEETCACHE_LOG`, `FLEETCACHE_LOG_FORMAT`
/// otherwise).
#[napi]
pub fn configure_log(level: Option<String>, json: Option<bool>) {
    crate::log::configure(level.as_deref(), json)
}

/// Checks option names and types against the one option list without creating a core; throws
/// the same `FLEETCACHE_CONFIG` error the constructor would.
#[napi(catch_unwind, ts_args_type = "options?: Options")]
pub fn check_options(env: &Env, options: Option<Unknown>) -> Result<()> {
    option_entries(options).and_then(Options::from_entries).map(|_| ()).map_err(|e| coded(env, e))
}
