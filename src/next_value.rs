//! Next's values on their way in and out of the core, without N-API: what the boundary
//! (`node/`) only has to copy field by field.
//!
//! In: [`SetInput`] is Next's `IncrementalCacheValue` as `index.js` flattens it (buffers
//! borrowed from JS); [`SetInput::into_parts`] checks it and fills the defaults Next leaves out
//! (status 200, `headers` `{}`, pageData `null`, FETCH revalidate one year), giving what
//! `Core::set` stores.
//!
//! Out: [`HitLayout::of`] lays a hit out flat: scalar fields by name, and every binary field in
//! one buffer (`buf`: html, rscData, then each segment not identical to rscData), so JS receives
//! one `Buffer` and slices it. A hit of a generation whose Next value JS still holds does not
//! come through here at all (`get` answers it with its `lastModified`).

use bytes::Bytes;

use crate::config::duration_s;
use crate::entry::{CacheControl, Entry, Revalidate, Value};
use crate::error::{Error, Result};
use crate::keys::Class;

/// Seconds Next gives a FETCH entry with no `revalidate` (a year, as Next's own default).
pub const FETCH_REVALIDATE_DEFAULT: f64 = 31_536_000.0;

/// Bytes from JS: a `Buffer` through N-API (read in place, copied once into the entry), a
/// `Vec<u8>` in the napi-free build.
#[cfg(feature = "node")]
pub type Bin = napi::bindgen_prelude::Buffer;
#[cfg(not(feature = "node"))]
pub type Bin = Vec<u8>;

/// A value to store, flattened by `index.js` from Next's `set(key, data, ctx)`: the one list of
/// its fields, which the boundary (`node/`) receives as is.
#[derive(Default)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct SetInput {
    /// The value's kind (`APP_PAGE`, …); `None` for `set(key, null)`.
    pub kind: Option<String>,
    /// Namespace class: `ctx.kind`, or `FETCH` for fetch sets.
    pub class_kind: Option<String>,
    pub html: Option<String>,
    #[cfg_attr(feature = "node", napi(ts_type = "Buffer"))]
    pub rsc_data: Option<Bin>,
    pub postponed: Option<String>,
    /// JSON of `headers` (APP_PAGE, APP_ROUTE, PAGES) or FETCH `data.headers`.
    pub headers: Option<String>,
    pub status: Option<f64>,
    pub seg_names: Option<Vec<String>>,
    #[cfg_attr(feature = "node", napi(ts_type = "Array<Buffer>"))]
    pub seg_data: Option<Vec<Bin>>,
    /// APP_ROUTE body / IMAGE buffer.
    #[cfg_attr(feature = "node", napi(ts_type = "Buffer"))]
    pub buf: Option<Bin>,
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
    /// USE_CACHE `timestamp` (ms) and `stale` (s).
    pub timestamp: Option<f64>,
    pub stale: Option<f64>,
    /// Tags from ctx.tags, ctx.softTags, value tags and x-next-cache-tags (USE_CACHE: the
    /// entry's explicit tags).
    pub tags: Vec<String>,
}

pub use crate::core::SetParts;

fn required(v: Option<String>, kind: &str, field: &str) -> Result<String> {
    v.ok_or_else(|| Error::invalid(format!("{kind} value has no {field}")))
}

impl SetInput {
    /// Checks the fields and fills Next's defaults; an `InvalidInput` error names what is wrong.
    pub fn into_parts(mut self) -> Result<SetParts> {
        let value = self.value()?;
        let class = Class::from_kind(self.class_kind.as_deref().or(self.kind.as_deref()));
        let cache_control = if self.has_cache_control == Some(true) {
            Some(CacheControl {
                revalidate: if self.revalidate_never == Some(true) {
                    Revalidate::Never
                } else {
                    Revalidate::Seconds(duration_s(self.revalidate_seconds.unwrap_or(0.0), "cacheControl.revalidate")?)
                },
                expire: self.expire.map(|e| duration_s(e, "cacheControl.expire")).transpose()?,
            })
        } else {
            None
        };
        Ok(SetParts { class, value, cache_control, tags: std::mem::take(&mut self.tags) })
    }

    fn value(&mut self) -> Result<Option<Value>> {
        let Some(kind) = self.kind.clone() else {
            return Ok(None);
        };
        let k = kind.as_str();
        let bytes = |b: Option<&[u8]>| b.map(Bytes::copy_from_slice);
        Ok(Some(match k {
            "APP_PAGE" => {
                let rsc_data = bytes(self.rsc_data.as_deref());
                let segments = match (self.seg_names.take(), self.seg_data.take()) {
                    (Some(names), Some(data)) if names.len() == data.len() => Some(
                        names
                            .into_iter()
                            .zip(data)
                            .map(|(n, d)| {
                                // Share rscData's allocation when the bytes are the same (`/_full`).
                                let b = match &rsc_data {
                                    Some(r) if r.as_ref() == &d[..] => r.clone(),
                                    _ => Bytes::copy_from_slice(&d),
                                };
                                (n, b)
                            })
                            .collect(),
                    ),
                    (None, _) => None,
                    _ => return Err(Error::invalid("segmentData names and buffers differ")),
                };
                Value::AppPage {
                    html: required(self.html.take(), k, "html")?,
                    rsc_data,
                    postponed: self.postponed.take(),
                    headers_json: self.headers.take(),
                    status: self.status,
                    segments,
                }
            }
            "APP_ROUTE" => Value::AppRoute {
                body: bytes(self.buf.as_deref()).unwrap_or_default(),
                status: self.status.unwrap_or(200.0),
                headers_json: self.headers.take().unwrap_or_else(|| "{}".into()),
            },
            "PAGES" => Value::Pages {
                html: required(self.html.take(), k, "html")?,
                page_data_json: self.page_data.take().unwrap_or_else(|| "null".into()),
                headers_json: self.headers.take(),
                status: self.status,
            },
            "REDIRECT" => Value::Redirect { props_json: self.props.take().unwrap_or_else(|| "null".into()) },
            "FETCH" => Value::Fetch {
                headers_json: self.headers.take().unwrap_or_else(|| "{}".into()),
                body: required(self.body.take(), k, "data.body")?,
                status: self.status.unwrap_or(200.0),
                url: self.url.take().unwrap_or_default(),
                revalidate: duration_s(self.fetch_revalidate.unwrap_or(FETCH_REVALIDATE_DEFAULT), "FETCH revalidate")?,
                tags: self.fetch_tags.take(),
            },
            "IMAGE" => Value::Image {
                buffer: bytes(self.buf.as_deref()).ok_or_else(|| Error::invalid("IMAGE value has no buffer"))?,
                etag: self.etag.take().unwrap_or_default(),
                upstream_etag: self.upstream_etag.take().unwrap_or_default(),
                extension: self.extension.take().unwrap_or_default(),
                revalidate: duration_s(self.fetch_revalidate.unwrap_or(0.0), "IMAGE revalidate")?,
            },
            "USE_CACHE" => {
                let num = |v: Option<f64>, field: &str| {
                    v.filter(|x| x.is_finite() && *x >= 0.0)
                        .ok_or_else(|| Error::invalid(format!("'use cache' entry has no valid {field}")))
                };
                Value::UseCache {
                    bytes: bytes(self.buf.as_deref()).unwrap_or_default(),
                    timestamp: num(self.timestamp, "timestamp")?,
                    stale: num(self.stale, "stale")?,
                }
            }
            other => return Err(Error::invalid(format!("unknown value kind {other:?}"))),
        }))
    }
}

/// One scalar field of a hit.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Num(f64),
    Bool(bool),
    Str(&'a str),
    Strs(Vec<&'a str>),
    Nums(Vec<f64>),
}

/// A hit laid out for JS: named fields, and the parts of `buf` (concatenated in this order).
#[derive(Debug, Default, PartialEq)]
pub struct HitLayout<'a> {
    pub fields: Vec<(&'static str, Field<'a>)>,
    /// The parts of the one binary field `buf`; `None` when the value has no bytes (REDIRECT,
    /// FETCH, `notFound`).
    pub buf: Option<Vec<&'a [u8]>>,
}

impl<'a> HitLayout<'a> {
    pub fn of(entry: &'a Entry, last_modified: i64, gen: u64) -> HitLayout<'a> {
        let mut l = HitLayout { fields: Vec::with_capacity(12), buf: None };
        let f = &mut l.fields;
        f.push(("lastModified", Field::Num(last_modified as f64)));
        if gen != 0 {
            f.push(("gen", Field::Num(gen as f64)));
        }
        if let Some(cc) = entry.cache_control {
            f.push((
                "revalidate",
                match cc.revalidate {
                    Revalidate::Seconds(s) => Field::Num(s),
                    Revalidate::Never => Field::Bool(false),
                },
            ));
            if let Some(x) = cc.expire {
                f.push(("expire", Field::Num(x)));
            }
        }
        let Some(v) = &entry.value else {
            return l;
        };
        f.push(("kind", Field::Str(v.kind_name())));
        match v {
            Value::AppPage { html, rsc_data, postponed, headers_json, status, segments } => {
                if let Some(p) = postponed {
                    f.push(("postponed", Field::Str(p)));
                }
                if let Some(h) = headers_json {
                    f.push(("headers", Field::Str(h)));
                }
                if let Some(s) = status {
                    f.push(("status", Field::Num(*s)));
                }
                let html = html.as_bytes();
                let mut parts = vec![html];
                let rsc_start = html.len();
                let mut end = rsc_start;
                f.push(("htmlLen", Field::Num(html.len() as f64)));
                if let Some(r) = rsc_data {
                    parts.push(r);
                    end += r.len();
                    f.push(("rscLen", Field::Num(r.len() as f64)));
                }
                if let Some(segs) = segments {
                    let mut names = Vec::with_capacity(segs.len());
                    let mut bounds = Vec::with_capacity(segs.len() * 2);
                    for (name, data) in segs {
                        names.push(name.as_str());
                        if rsc_data.as_ref().is_some_and(|r| r.as_ptr() == data.as_ptr() && r.len() == data.len()) {
                            bounds.extend([rsc_start as f64, (rsc_start + data.len()) as f64]);
                        } else {
                            bounds.push(end as f64);
                            parts.push(data);
                            end += data.len();
                            bounds.push(end as f64);
                        }
                    }
                    f.push(("segNames", Field::Strs(names)));
                    f.push(("segBounds", Field::Nums(bounds)));
                }
                l.buf = Some(parts);
            }
            Value::AppRoute { body, status, headers_json } => {
                f.push(("status", Field::Num(*status)));
                f.push(("headers", Field::Str(headers_json)));
                l.buf = Some(vec![body]);
            }
            Value::Pages { html, page_data_json, headers_json, status } => {
                let html = html.as_bytes();
                f.push(("htmlLen", Field::Num(html.len() as f64)));
                f.push(("pageData", Field::Str(page_data_json)));
                if let Some(h) = headers_json {
                    f.push(("headers", Field::Str(h)));
                }
                if let Some(s) = status {
                    f.push(("status", Field::Num(*s)));
                }
                l.buf = Some(vec![html]);
            }
            Value::Redirect { props_json } => f.push(("props", Field::Str(props_json))),
            Value::Fetch { headers_json, body, status, url, revalidate, tags } => {
                f.push(("headers", Field::Str(headers_json)));
                f.push(("body", Field::Str(body)));
                f.push(("status", Field::Num(*status)));
                f.push(("url", Field::Str(url)));
                f.push(("fetchRevalidate", Field::Num(*revalidate)));
                if let Some(t) = tags {
                    f.push(("tags", Field::Strs(t.iter().map(String::as_str).collect())));
                }
            }
            Value::Image { buffer, etag, upstream_etag, extension, revalidate } => {
                f.push(("etag", Field::Str(etag)));
                f.push(("upstreamEtag", Field::Str(upstream_etag)));
                f.push(("extension", Field::Str(extension)));
                f.push(("fetchRevalidate", Field::Num(*revalidate)));
                l.buf = Some(vec![buffer]);
            }
            Value::UseCache { bytes, timestamp, stale } => {
                f.push(("timestamp", Field::Num(*timestamp)));
                f.push(("stale", Field::Num(*stale)));
                f.push(("tags", Field::Strs(entry.tags.iter().map(String::as_str).collect())));
                // A tag of the entry (or a soft tag) was revalidated with a profile: Next must
                // serve it once more with `revalidate: -1` and regenerate (entry.rs, `evaluate`).
                f.push(("tagStale", Field::Bool(last_modified < entry.last_modified)));
                l.buf = Some(vec![bytes]);
            }
        }
        l
    }

    /// The field named `name` (tests).
    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// `buf` as JS receives it (tests).
    pub fn buf_bytes(&self) -> Option<Vec<u8>> {
        self.buf.as_ref().map(|p| p.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value with `cacheControl` `{ revalidate, expire }`.
    fn with_cc(revalidate: f64, expire: Option<f64>) -> SetInput {
        SetInput { has_cache_control: Some(true), revalidate_seconds: Some(revalidate), expire, ..Default::default() }
    }

    fn entry(value: Option<Value>, cache_control: Option<CacheControl>) -> Entry {
        Entry { key: "/k".into(), value, last_modified: 1, cache_control, tags: vec![], write_id: 0, rendered_at: 0 }
    }

    #[test]
    fn defaults_next_leaves_out_are_filled() {
        let p = SetInput { kind: Some("APP_ROUTE".into()), buf: Some(bin(b"x")), ..Default::default() }
            .into_parts()
            .unwrap();
        assert_eq!(
            p.value,
            Some(Value::AppRoute { body: Bytes::from_static(b"x"), status: 200.0, headers_json: "{}".into() })
        );
        let p =
            SetInput { kind: Some("FETCH".into()), body: Some("b".into()), ..Default::default() }.into_parts().unwrap();
        assert_eq!(p.class, Class::Fetch);
        match p.value.unwrap() {
            Value::Fetch { revalidate, status, headers_json, .. } => {
                assert_eq!((revalidate, status, headers_json.as_str()), (FETCH_REVALIDATE_DEFAULT, 200.0, "{}"))
            }
            v => panic!("{v:?}"),
        }
        let p = SetInput { kind: Some("PAGES".into()), html: Some("<p>".into()), ..Default::default() }
            .into_parts()
            .unwrap();
        assert!(matches!(p.value, Some(Value::Pages { ref page_data_json, .. }) if page_data_json == "null"));
        let p = SetInput { kind: Some("REDIRECT".into()), ..Default::default() }.into_parts().unwrap();
        assert_eq!(p.value, Some(Value::Redirect { props_json: "null".into() }));
    }

    #[test]
    fn durations_that_are_not_durations_are_refused_and_forever_clamps() {
        let cc = |revalidate: f64, expire: Option<f64>| {
            with_cc(revalidate, expire).into_parts().map(|p| p.cache_control.unwrap())
        };
        for bad in [f64::NAN, -5.0, -0.5] {
            let e = cc(bad, None).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidInput);
            assert!(e.context.contains("cacheControl.revalidate"), "{e}");
        }
        assert!(cc(60.0, Some(f64::NAN)).unwrap_err().context.contains("cacheControl.expire"));
        // A FETCH value's own `revalidate` (issue 26: NaN was stored as is).
        let fetch = |revalidate: f64| {
            SetInput {
                kind: Some("FETCH".into()),
                body: Some("b".into()),
                fetch_revalidate: Some(revalidate),
                ..Default::default()
            }
            .into_parts()
        };
        for bad in [f64::NAN, -1.0] {
            let e = fetch(bad).unwrap_err();
            assert!(e.context.contains("FETCH revalidate"), "{e}");
        }
        assert!(fetch(0.0).is_ok());
        assert!(cc(60.0, Some(-1.0)).is_err());
        for forever in [f64::INFINITY, 1e300] {
            let c = cc(forever, Some(forever)).unwrap();
            assert_eq!(c.revalidate, Revalidate::Seconds(crate::config::MAX_DURATION_S));
            assert_eq!(c.expire, Some(crate::config::MAX_DURATION_S));
        }
        assert_eq!(cc(0.0, None).unwrap().revalidate, Revalidate::Seconds(0.0));
    }

    #[test]
    fn cache_control_and_class() {
        let p = SetInput { class_kind: Some("APP_PAGE".into()), tags: vec!["t".into()], ..with_cc(60.0, Some(300.0)) }
            .into_parts()
            .unwrap();
        assert_eq!(p.value, None, "set(key, null) is a cached notFound");
        assert_eq!(p.class, Class::Route);
        assert_eq!(p.cache_control, Some(CacheControl { revalidate: Revalidate::Seconds(60.0), expire: Some(300.0) }));
        assert_eq!(p.tags, vec!["t".to_string()]);
        let p = SetInput { has_cache_control: Some(true), revalidate_never: Some(true), ..Default::default() }
            .into_parts()
            .unwrap();
        assert_eq!(p.cache_control, Some(CacheControl { revalidate: Revalidate::Never, expire: None }));
        let p = SetInput::default().into_parts().unwrap();
        assert_eq!(p.cache_control, None);
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            (SetInput { kind: Some("APP_PAGE".into()), ..Default::default() }, "APP_PAGE value has no html"),
            (SetInput { kind: Some("FETCH".into()), ..Default::default() }, "FETCH value has no data.body"),
            (SetInput { kind: Some("IMAGE".into()), ..Default::default() }, "IMAGE value has no buffer"),
            (SetInput { kind: Some("NOPE".into()), ..Default::default() }, "unknown value kind \"NOPE\""),
            (
                SetInput {
                    kind: Some("APP_PAGE".into()),
                    html: Some("h".into()),
                    seg_names: Some(vec!["a".into()]),
                    seg_data: Some(vec![]),
                    ..Default::default()
                },
                "segmentData names and buffers differ",
            ),
        ];
        for (f, want) in cases {
            let e = f.into_parts().unwrap_err();
            assert_eq!(e.kind.code(), "FLEETCACHE_INVALID_INPUT");
            assert_eq!(e.context, want);
        }
    }

    fn bin(b: &[u8]) -> Bin {
        b.to_vec().into()
    }

    fn app_page() -> Entry {
        let rsc = b"RSC".to_vec();
        let p = SetInput {
            kind: Some("APP_PAGE".into()),
            html: Some("<html>".into()),
            rsc_data: Some(bin(&rsc)),
            status: Some(200.0),
            seg_names: Some(vec!["/_full".into(), "/_index".into()]),
            seg_data: Some(vec![bin(&rsc), bin(b"IDX")]),
            ..with_cc(30.0, None)
        }
        .into_parts()
        .unwrap();
        entry(p.value, p.cache_control)
    }

    #[test]
    fn app_page_hits_share_one_buffer_and_rsc_data_is_not_repeated() {
        let e = app_page();
        let l = HitLayout::of(&e, 1234, 7);
        assert_eq!(l.buf_bytes().unwrap(), b"<html>RSCIDX");
        assert_eq!(l.field("htmlLen"), Some(&Field::Num(6.0)));
        assert_eq!(l.field("rscLen"), Some(&Field::Num(3.0)));
        assert_eq!(l.field("segNames"), Some(&Field::Strs(vec!["/_full", "/_index"])));
        // /_full is rscData's bytes: its bounds point at rscData, not at a second copy
        assert_eq!(l.field("segBounds"), Some(&Field::Nums(vec![6.0, 9.0, 9.0, 12.0])));
        assert_eq!(l.field("lastModified"), Some(&Field::Num(1234.0)));
        assert_eq!(l.field("gen"), Some(&Field::Num(7.0)));
        assert_eq!(l.field("revalidate"), Some(&Field::Num(30.0)));
        assert_eq!(l.field("kind"), Some(&Field::Str("APP_PAGE")));
    }

    #[test]
    fn other_kinds_lay_out_their_fields() {
        let never = Some(CacheControl { revalidate: Revalidate::Never, expire: Some(60.0) });
        let e = entry(None, never);
        let l = HitLayout::of(&e, 5, 0);
        assert_eq!(
            l.fields,
            vec![("lastModified", Field::Num(5.0)), ("revalidate", Field::Bool(false)), ("expire", Field::Num(60.0))]
        );
        assert_eq!(l.buf, None);
        let e = entry(
            Some(Value::Fetch {
                headers_json: "{}".into(),
                body: "b".into(),
                status: 200.0,
                url: "u".into(),
                revalidate: 9.0,
                tags: Some(vec!["t".into()]),
            }),
            None,
        );
        let l = HitLayout::of(&e, 5, 0);
        assert_eq!(l.field("tags"), Some(&Field::Strs(vec!["t"])));
        assert_eq!(l.field("fetchRevalidate"), Some(&Field::Num(9.0)));
        assert_eq!(l.buf, None);
        let e = entry(
            Some(Value::Image {
                buffer: Bytes::from_static(b"png"),
                etag: "e".into(),
                upstream_etag: "u".into(),
                extension: "png".into(),
                revalidate: 1.0,
            }),
            None,
        );
        assert_eq!(HitLayout::of(&e, 5, 0).buf_bytes().unwrap(), b"png");
        let e = entry(
            Some(Value::Pages { html: "<p>".into(), page_data_json: "{}".into(), headers_json: None, status: None }),
            None,
        );
        let l = HitLayout::of(&e, 5, 3);
        assert_eq!(l.buf_bytes().unwrap(), b"<p>");
        assert_eq!(l.field("htmlLen"), Some(&Field::Num(3.0)));
        assert_eq!(l.field("pageData"), Some(&Field::Str("{}")));
    }

    #[test]
    fn use_cache_entries_in_and_out() {
        let p = SetInput {
            kind: Some("USE_CACHE".into()),
            buf: Some(bin(b"0:\"$@1\"")),
            timestamp: Some(1_795_365_992_382.147),
            stale: Some(300.0),
            tags: vec!["posts".into()],
            ..with_cc(900.0, Some(4_294_967_294.0))
        }
        .into_parts()
        .unwrap();
        assert_eq!(p.class, Class::UseCache);
        assert_eq!(p.cache_control.unwrap().expire, Some(4_294_967_294.0), "kept as given: never used as a TTL");
        let e = Entry {
            key: "[\"id\"]".into(),
            value: p.value,
            last_modified: 1_795_365_992_382,
            cache_control: p.cache_control,
            tags: p.tags,
            write_id: 0,
            rendered_at: 0,
        };
        let l = HitLayout::of(&e, e.last_modified, 0);
        assert_eq!(l.field("timestamp"), Some(&Field::Num(1_795_365_992_382.147)));
        assert_eq!(l.field("stale"), Some(&Field::Num(300.0)));
        assert_eq!(l.field("revalidate"), Some(&Field::Num(900.0)));
        assert_eq!(l.field("tags"), Some(&Field::Strs(vec!["posts"])));
        assert_eq!(l.field("tagStale"), Some(&Field::Bool(false)));
        assert_eq!(l.buf_bytes().unwrap(), b"0:\"$@1\"");
        assert_eq!(HitLayout::of(&e, e.last_modified - 1, 0).field("tagStale"), Some(&Field::Bool(true)));
        let missing = SetInput { kind: Some("USE_CACHE".into()), timestamp: Some(1.0), ..Default::default() };
        assert!(missing.into_parts().unwrap_err().context.contains("stale"));
    }
}
