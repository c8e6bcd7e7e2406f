//! The shapes that cross the boundary: a hit (laid out by `next_value::HitLayout`, written into
//! one V8 buffer), a value to store, a write's outcome, a get's arguments, and the operations'
//! records (metric samples, inspected entries), each with its conversion from the core's type.

use super::*;

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
pub(super) fn hit_object<'e>(env: &'e Env, entry: &Entry, last_modified: i64, gen: u64) -> Result<Object<'e>> {
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

/// A hit as `get` hands it to `index.js` (built field by field by `hit_object`
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

/// `get`'s async answer: an object for a hit, `null` for a miss.
pub struct GetOut(pub(super) Lookup);

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

pub(super) fn get_request(
    key: String,
    kind: Option<String>,
    tags: Option<Vec<String>>,
    soft_tags: Option<Vec<String>>,
    revalidate: Option<f64>,
) -> GetRequest {
    let key = keys::scoped_key(Class::from_kind(kind.as_deref()), key);
    GetRequest { key, kind, tags: tags.unwrap_or_default(), soft_tags: soft_tags.unwrap_or_default(), revalidate }
}
