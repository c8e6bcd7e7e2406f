//! The N-API boundary only: converts between JS values and the core's types; no cache logic.
//!
//! Shapes crossing the boundary are flat on purpose (see `index.js`, which builds Next's values):
//! every binary field of a hit travels in one `buf` (one `napi_create_buffer_copy`, sliced in JS),
//! object-valued fields travel as JSON text, and absent fields are simply not set.

use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::config::{Config, Options};
use crate::entry::{CacheControl, Entry, Revalidate, Value};
use crate::error::Error as CoreError;
use crate::handler::{Core, GetRequest, Lookup, SyncLookup};
use crate::keys::{self, Class};

fn js_err(e: CoreError) -> napi::Error {
    napi::Error::new(Status::GenericFailure, e.to_string())
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

/// A hit on its way to JS.
struct HitOut {
    entry: Arc<Entry>,
    last_modified: i64,
    gen: u64,
    /// JS already holds the decoded html of this generation: leave it out.
    html_cached: bool,
}

impl HitOut {
    fn build<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let e = &self.entry;
        let mut o = Object::new(env)?;
        o.set("lastModified", self.last_modified as f64)?;
        if self.gen != 0 {
            o.set("gen", self.gen as f64)?;
        }
        let html_of = |html: &'_ str| if self.html_cached { 0 } else { html.len() };
        if let Some(cc) = e.cache_control {
            match cc.revalidate {
                Revalidate::Seconds(s) => o.set("revalidate", s)?,
                Revalidate::Never => o.set("revalidate", false)?,
            }
            if let Some(x) = cc.expire {
                o.set("expire", x)?;
            }
        }
        let Some(v) = &e.value else {
            return Ok(o);
        };
        o.set("kind", v.kind_name())?;
        match v {
            Value::AppPage { html, rsc_data, postponed, headers_json, status, segments } => {
                if let Some(p) = postponed {
                    o.set("postponed", p.as_str())?;
                }
                if let Some(h) = headers_json {
                    o.set("headers", h.as_str())?;
                }
                if let Some(s) = status {
                    o.set("status", *s)?;
                }
                // One buffer: html (decoded in JS), rscData, then every segment not identical to it.
                let html_len = html_of(html);
                let mut parts: Vec<&[u8]> = vec![&html.as_bytes()[..html_len]];
                let rsc_start = html_len;
                let mut end = rsc_start;
                o.set("htmlLen", html_len as f64)?;
                if let Some(r) = rsc_data {
                    parts.push(r);
                    end += r.len();
                    o.set("rscLen", r.len() as f64)?;
                }
                if let Some(segs) = segments {
                    let mut names = Vec::with_capacity(segs.len());
                    let mut bounds = Vec::with_capacity(segs.len() * 2);
                    for (name, data) in segs {
                        names.push(name.as_str());
                        if rsc_data.as_ref().is_some_and(|r| r.as_ptr() == data.as_ptr() && r.len() == data.len()) {
                            bounds.push(rsc_start as f64);
                            bounds.push((rsc_start + data.len()) as f64);
                        } else {
                            bounds.push(end as f64);
                            parts.push(data);
                            end += data.len();
                            bounds.push(end as f64);
                        }
                    }
                    o.set("segNames", names)?;
                    o.set("segBounds", bounds)?;
                }
                o.set("buf", concat_buffer(env, &parts)?)?;
            }
            Value::AppRoute { body, status, headers_json } => {
                o.set("buf", &BufferSlice::copy_from(env, body)?)?;
                o.set("status", *status)?;
                o.set("headers", headers_json.as_str())?;
            }
            Value::Pages { html, page_data_json, headers_json, status } => {
                let html_len = html_of(html);
                o.set("htmlLen", html_len as f64)?;
                o.set("buf", concat_buffer(env, &[&html.as_bytes()[..html_len]])?)?;
                o.set("pageData", page_data_json.as_str())?;
                if let Some(h) = headers_json {
                    o.set("headers", h.as_str())?;
                }
                if let Some(s) = status {
                    o.set("status", *s)?;
                }
            }
            Value::Redirect { props_json } => o.set("props", props_json.as_str())?,
            Value::Fetch { headers_json, body, status, url, revalidate, tags } => {
                o.set("headers", headers_json.as_str())?;
                o.set("body", body.as_str())?;
                o.set("status", *status)?;
                o.set("url", url.as_str())?;
                o.set("fetchRevalidate", *revalidate)?;
                if let Some(t) = tags {
                    o.set("tags", t.clone())?;
                }
            }
            Value::Image { buffer, etag, upstream_etag, extension, revalidate } => {
                o.set("buf", &BufferSlice::copy_from(env, buffer)?)?;
                o.set("etag", etag.as_str())?;
                o.set("upstreamEtag", upstream_etag.as_str())?;
                o.set("extension", extension.as_str())?;
                o.set("fetchRevalidate", *revalidate)?;
            }
        }
        Ok(o)
    }
}

/// `get`'s async answer: an object for a hit, `null` for a miss.
pub struct GetOut(Lookup);

impl ToNapiValue for GetOut {
    unsafe fn to_napi_value(raw: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(raw);
        match val.0 {
            Lookup::Hit { entry, last_modified, gen } => {
                let obj = HitOut { entry, last_modified, gen, html_cached: false }.build(&env)?;
                Ok(obj.raw())
            }
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

impl From<crate::error::Result<()>> for OpResult {
    fn from(r: crate::error::Result<()>) -> Self {
        match r {
            Ok(()) => OpResult { ok: true, code: None, message: None },
            Err(e) => OpResult { ok: false, code: Some(e.kind.code().into()), message: Some(e.context) },
        }
    }
}

fn invalid_input(msg: String) -> OpResult {
    OpResult { ok: false, code: Some("FLEETCACHE_INVALID_INPUT".into()), message: Some(msg) }
}

type SetParts = (Class, Option<Value>, Option<CacheControl>, Vec<String>);

/// A `SetInput` → what the core stores; `Err` is the message of an invalid input.
fn parts_of(mut input: SetInput) -> std::result::Result<SetParts, String> {
    let value = to_value(&mut input).map_err(|e| e.reason.clone())?;
    let class = Class::from_kind(input.class_kind.as_deref().or(input.kind.as_deref()));
    let cache_control = if input.has_cache_control.unwrap_or(false) {
        let revalidate = if input.revalidate_never.unwrap_or(false) {
            Revalidate::Never
        } else {
            Revalidate::Seconds(input.revalidate_seconds.unwrap_or(0.0))
        };
        Some(CacheControl { revalidate, expire: input.expire })
    } else {
        None
    };
    Ok((class, value, cache_control, std::mem::take(&mut input.tags)))
}

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
    pub detail: String,
    /// How to fix it (absent when `ok`).
    pub fix: Option<String>,
}

/// A value to store, flattened by `index.js` from Next's `IncrementalCacheValue`.
#[napi(object)]
pub struct SetInput {
    /// The value's kind (`APP_PAGE`, …); absent for `set(key, null)`.
    pub kind: Option<String>,
    /// Namespace class: `ctx.kind`, or `FETCH` for fetch sets.
    pub class_kind: Option<String>,
    pub html: Option<String>,
    pub rsc_data: Option<Buffer>,
    pub postponed: Option<String>,
    /// JSON of `headers` (APP_PAGE, APP_ROUTE, PAGES) or FETCH `data.headers`.
    pub headers: Option<String>,
    pub status: Option<f64>,
    pub seg_names: Option<Vec<String>>,
    pub seg_data: Option<Vec<Buffer>>,
    /// APP_ROUTE body / IMAGE buffer.
    pub buf: Option<Buffer>,
    pub page_data: Option<String>,
    pub props: Option<String>,
    /// FETCH `data.body`.
    pub body: Option<String>,
    pub url: Option<String>,
    /// FETCH / IMAGE `revalidate`.
    pub fetch_revalidate: Option<f64>,
    /// FETCH value `tags`.
    pub fetch_tags: Option<Vec<String>>,
    pub etag: Option<String>,
    pub upstream_etag: Option<String>,
    pub extension: Option<String>,
    /// `cacheControl` from ctx: present when `has_cache_control`.
    pub has_cache_control: Option<bool>,
    pub revalidate_seconds: Option<f64>,
    pub revalidate_never: Option<bool>,
    pub expire: Option<f64>,
    /// Tags from ctx.tags and x-next-cache-tags.
    pub tags: Vec<String>,
}

fn bytes_of(b: &Option<Buffer>) -> Option<Bytes> {
    b.as_ref().map(|b| Bytes::copy_from_slice(b))
}

fn req_str(v: Option<String>, kind: &str, field: &str) -> Result<String> {
    v.ok_or_else(|| {
        napi::Error::new(Status::InvalidArg, format!("FLEETCACHE_INVALID_INPUT: {kind} value has no {field}"))
    })
}

fn to_value(i: &mut SetInput) -> Result<Option<Value>> {
    let Some(kind) = i.kind.clone() else {
        return Ok(None);
    };
    let k = kind.as_str();
    Ok(Some(match k {
        "APP_PAGE" => {
            let rsc_data = bytes_of(&i.rsc_data);
            let segments = match (i.seg_names.take(), i.seg_data.as_ref()) {
                (Some(names), Some(data)) if names.len() == data.len() => Some(
                    names
                        .into_iter()
                        .zip(data.iter())
                        .map(|(n, d)| {
                            // Share rscData's allocation when the bytes are the same (`/_full`).
                            let b = match &rsc_data {
                                Some(r) if r.as_ref() == d.as_ref() => r.clone(),
                                _ => Bytes::copy_from_slice(d),
                            };
                            (n, b)
                        })
                        .collect(),
                ),
                (None, _) => None,
                _ => {
                    return Err(napi::Error::new(
                        Status::InvalidArg,
                        "FLEETCACHE_INVALID_INPUT: segmentData names and buffers differ",
                    ))
                }
            };
            Value::AppPage {
                html: req_str(i.html.take(), k, "html")?,
                rsc_data,
                postponed: i.postponed.take(),
                headers_json: i.headers.take(),
                status: i.status,
                segments,
            }
        }
        "APP_ROUTE" => Value::AppRoute {
            body: bytes_of(&i.buf).unwrap_or_default(),
            status: i.status.unwrap_or(200.0),
            headers_json: i.headers.take().unwrap_or_else(|| "{}".into()),
        },
        "PAGES" => Value::Pages {
            html: req_str(i.html.take(), k, "html")?,
            page_data_json: i.page_data.take().unwrap_or_else(|| "null".into()),
            headers_json: i.headers.take(),
            status: i.status,
        },
        "REDIRECT" => Value::Redirect { props_json: i.props.take().unwrap_or_else(|| "null".into()) },
        "FETCH" => Value::Fetch {
            headers_json: i.headers.take().unwrap_or_else(|| "{}".into()),
            body: req_str(i.body.take(), k, "data.body")?,
            status: i.status.unwrap_or(200.0),
            url: i.url.take().unwrap_or_default(),
            revalidate: i.fetch_revalidate.unwrap_or(31536000.0),
            tags: i.fetch_tags.take(),
        },
        "IMAGE" => Value::Image {
            buffer: bytes_of(&i.buf).ok_or_else(|| {
                napi::Error::new(Status::InvalidArg, "FLEETCACHE_INVALID_INPUT: IMAGE value has no buffer")
            })?,
            etag: i.etag.take().unwrap_or_default(),
            upstream_etag: i.upstream_etag.take().unwrap_or_default(),
            extension: i.extension.take().unwrap_or_default(),
            revalidate: i.fetch_revalidate.unwrap_or(0.0),
        },
        other => {
            return Err(napi::Error::new(
                Status::InvalidArg,
                format!("FLEETCACHE_INVALID_INPUT: unknown value kind {other:?}"),
            ))
        }
    }))
}

/// Counters since the core was created.
#[napi(object)]
pub struct NativeStats {
    pub memory_hits: f64,
    pub backend_hits: f64,
    pub misses: f64,
    pub stale: f64,
    pub expired: f64,
    pub get_errors: f64,
    pub get_timeouts: f64,
    pub corrupt: f64,
    pub served_from_memory_on_error: f64,
    pub sets: f64,
    pub set_errors: f64,
    pub too_large: f64,
    pub index_errors: f64,
    pub revalidations: f64,
    pub revalidate_errors: f64,
    pub memory_bytes: f64,
    pub memory_entries: f64,
    pub memory_budget: f64,
    pub evictions: f64,
    pub known_tags: f64,
    pub feed_polls: f64,
    pub feed_events: f64,
    pub feed_evictions: f64,
    pub feed_errors: f64,
    pub feed_resets: f64,
    /// Whether memory is being served (the feed is being read).
    pub feed_trusted: bool,
    pub leases_won: f64,
    pub leases_lost: f64,
    /// Requests sent to DynamoDB by this core (reads, writes).
    pub dynamodb_reads: f64,
    pub dynamodb_writes: f64,
}

fn get_request(
    key: String,
    kind: Option<String>,
    tags: Option<Vec<String>>,
    soft_tags: Option<Vec<String>>,
    revalidate: Option<f64>,
) -> GetRequest {
    GetRequest { key, kind, tags: tags.unwrap_or_default(), soft_tags: soft_tags.unwrap_or_default(), revalidate }
}

/// One native cache core. `index.js` keeps one per distinct configuration per process.
#[napi]
pub struct NativeCache {
    core: Arc<Core>,
}

#[napi]
impl NativeCache {
    /// Validates options (env vars as fallback); throws `FLEETCACHE_CONFIG: …` naming the option.
    #[napi(constructor, catch_unwind)]
    pub fn new(options: Option<Options>) -> Result<Self> {
        let cfg = Config::from_options(options.unwrap_or_default(), &|k| std::env::var(k).ok()).map_err(js_err)?;
        let core = Arc::new(Core::new(cfg));
        core.start_feed(|poller| {
            napi::bindgen_prelude::spawn(poller);
        });
        Ok(NativeCache { core })
    }

    /// The hit path: `undefined` = ask `getAsync`; `null` = miss; object = hit. `htmlGen` is
    /// the generation whose html JS already holds decoded: a hit of that generation omits it.
    #[napi(catch_unwind, ts_return_type = "NativeHit | null | undefined")]
    #[allow(clippy::too_many_arguments)]
    pub fn get_sync<'e>(
        &self,
        env: &'e Env,
        key: String,
        kind: Option<String>,
        tags: Option<Vec<String>>,
        soft_tags: Option<Vec<String>>,
        revalidate: Option<f64>,
        html_gen: Option<f64>,
    ) -> Result<Either3<Object<'e>, Null, Undefined>> {
        let req = get_request(key, kind, tags, soft_tags, revalidate);
        Ok(match self.core.get_sync(&req) {
            SyncLookup::Done(Lookup::Hit { entry, last_modified, gen }) => {
                let html_cached = gen != 0 && html_gen == Some(gen as f64);
                Either3::A(HitOut { entry, last_modified, gen, html_cached }.build(env)?)
            }
            SyncLookup::Done(Lookup::Miss) => Either3::B(Null),
            SyncLookup::NeedsBackend => Either3::C(()),
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
        match parts_of(input) {
            Ok((class, value, cache_control, tags)) => {
                env.spawn_future(
                    async move { Ok(OpResult::from(core.set(key, class, value, cache_control, tags).await)) },
                )
            }
            Err(msg) => env.spawn_future(async move { Ok(invalid_input(msg)) }),
        }
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
        match parts_of(input) {
            Ok((class, value, cache_control, tags)) => env.spawn_future(async move {
                Ok(match core.seed(key, class, value, cache_control, tags, last_modified as i64).await {
                    Ok(written) => SeedResult { ok: true, written, code: None, message: None },
                    Err(e) => SeedResult {
                        ok: false,
                        written: false,
                        code: Some(e.kind.code().into()),
                        message: Some(e.context),
                    },
                })
            }),
            Err(msg) => env.spawn_future(async move {
                let r = invalid_input(msg);
                Ok(SeedResult { ok: false, written: false, code: r.code, message: r.message })
            }),
        }
    }

    /// Registers the build in force (`<prefix>/builds/<id>`); resolves to whether this call created it.
    #[napi(catch_unwind, ts_return_type = "Promise<boolean>")]
    pub fn register_build<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, bool>> {
        let core = self.core.clone();
        env.spawn_future(async move { core.register_build().await.map_err(js_err) })
    }

    /// Registered builds, oldest first.
    #[napi(catch_unwind, ts_return_type = "Promise<BuildEntry[]>")]
    pub fn list_builds<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<BuildEntry>>> {
        let core = self.core.clone();
        env.spawn_future(async move {
            let builds = core.list_builds().await.map_err(js_err)?;
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
        env.spawn_future(async move { core.build_object_keys(&build_id).await.map_err(js_err) })
    }

    /// Deletes objects by key (batches of 1,000).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn delete_objects<'e>(&self, env: &'e Env, keys: Vec<String>) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        env.spawn_future(async move { core.delete_objects(&keys).await.map_err(js_err) })
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
        env.spawn_future(async move { core.claim_seeding(ms as i64).await.map_err(js_err) })
    }

    /// Records that the build in force has been seeded.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn mark_seeded<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        env.spawn_future(async move { core.mark_seeded().await.map_err(js_err) })
    }

    /// Checks credentials, bucket, table and every permission the cache needs; never rejects.
    #[napi(catch_unwind, ts_return_type = "Promise<DoctorCheck[]>")]
    pub fn doctor<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<DoctorCheck>>> {
        let cfg = self.core.cfg.clone();
        env.spawn_future(async move {
            Ok(crate::doctor::run(&cfg)
                .await
                .into_iter()
                .map(|c| DoctorCheck { name: c.name, ok: c.ok, detail: c.detail, fix: c.fix })
                .collect())
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
        env.spawn_future(async move { core.paths_for_tags(&tags).await.map_err(js_err) })
    }

    /// Creates the bucket and table if missing (local development and tests).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn ensure_resources<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let core = self.core.clone();
        env.spawn_future(async move { core.ensure_resources().await.map_err(js_err) })
    }

    /// Drops this process's in-memory tier and tag clock.
    #[napi]
    pub fn clear_memory(&self) {
        self.core.clear_memory()
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
        self.core.object_key(Class::from_kind(kind.as_deref()), &key)
    }

    /// Bytes of the stored object for `key`, encoded from this process's in-memory copy
    /// (benchmarks); null when the key is not in memory.
    #[napi]
    pub fn encoded_len(&self, key: String) -> Option<f64> {
        self.core.encoded_len(&key).map(|n| n as f64)
    }

    #[napi]
    pub fn stats(&self) -> NativeStats {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.core.stats;
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
        let (reads, writes) = self.core.tag_store_requests();
        NativeStats {
            memory_hits: c(&s.memory_hits),
            backend_hits: c(&s.backend_hits),
            misses: c(&s.misses),
            stale: c(&s.stale),
            expired: c(&s.expired),
            get_errors: c(&s.get_errors),
            get_timeouts: c(&s.get_timeouts),
            corrupt: c(&s.corrupt),
            served_from_memory_on_error: c(&s.served_from_memory_on_error),
            sets: c(&s.sets),
            set_errors: c(&s.set_errors),
            too_large: c(&s.too_large),
            index_errors: c(&s.index_errors),
            revalidations: c(&s.revalidations),
            revalidate_errors: c(&s.revalidate_errors),
            memory_bytes: self.core.memory_bytes() as f64,
            memory_entries: self.core.memory_entries() as f64,
            memory_budget: self.core.cfg.memory_bytes as f64,
            evictions: self.core.evictions() as f64,
            known_tags: self.core.known_tags() as f64,
            feed_polls: c(&s.feed_polls),
            feed_events: c(&s.feed_events),
            feed_evictions: c(&s.feed_evictions),
            feed_errors: c(&s.feed_errors),
            feed_resets: c(&s.feed_resets),
            feed_trusted: self.core.feed_trusted(),
            leases_won: c(&s.leases_won),
            leases_lost: c(&s.leases_lost),
            dynamodb_reads: reads as f64,
            dynamodb_writes: writes as f64,
        }
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
