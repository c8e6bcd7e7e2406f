//! The bytes of one stored entry.
//!
//! Layout: `"FLC"` magic, one format-version byte, one compression byte (0 none, 1 zstd), then the
//! payload: msgpack (rmp-serde, positional) of [`WireEntry`]. Anything without the magic, with an
//! unknown version or compression, or that fails to decode, is [`ErrorKind::Corrupt`] and the
//! handler treats it as a miss. Binary fields are msgpack `bin` — never base64 — and the `/_full`
//! segment, which Next fills with the same bytes as `rscData`, is stored once as a back-reference.

use std::io::Read;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entry::{CacheControl, Entry, Value};
use crate::error::{Error, Result};

pub const MAGIC: &[u8; 3] = b"FLC";
pub const FORMAT_VERSION: u8 = 1;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const HEADER_LEN: usize = 5;
/// Payloads smaller than this are stored uncompressed (zstd's frame costs more than it saves).
const MIN_COMPRESS: usize = 256;

#[derive(Serialize, Deserialize)]
struct WireEntry {
    key: String,
    last_modified: i64,
    cache_control: Option<CacheControl>,
    tags: Vec<String>,
    value: Option<WireValue>,
    /// Added after format 1 shipped: absent in older objects (0).
    #[serde(default)]
    write_id: u64,
    /// Added later still: absent in older objects (0: the render started at `last_modified`).
    #[serde(default)]
    rendered_at: i64,
}

/// `Value`, except that an APP_PAGE segment equal to `rscData` is stored as `None`.
#[derive(Serialize, Deserialize)]
enum WireValue {
    AppPage {
        html: String,
        rsc_data: Option<Bytes>,
        postponed: Option<String>,
        headers_json: Option<String>,
        status: Option<f64>,
        segments: Option<Vec<(String, Option<Bytes>)>>,
    },
    Other(Value),
}

fn to_wire(v: &Value) -> WireValue {
    match v {
        Value::AppPage { html, rsc_data, postponed, headers_json, status, segments } => WireValue::AppPage {
            html: html.clone(),
            rsc_data: rsc_data.clone(),
            postponed: postponed.clone(),
            headers_json: headers_json.clone(),
            status: *status,
            segments: segments.as_ref().map(|segs| {
                segs.iter()
                    .map(|(k, b)| {
                        let dup = rsc_data.as_ref().is_some_and(|r| r == b);
                        (k.clone(), if dup { None } else { Some(b.clone()) })
                    })
                    .collect()
            }),
        },
        other => WireValue::Other(other.clone()),
    }
}

fn from_wire(w: WireValue) -> Result<Value> {
    Ok(match w {
        WireValue::AppPage { html, rsc_data, postponed, headers_json, status, segments } => {
            let segments = match segments {
                None => None,
                Some(segs) => Some(
                    segs.into_iter()
                        .map(|(k, b)| match b {
                            Some(b) => Ok((k, b)),
                            None => rsc_data
                                .clone()
                                .map(|r| (k, r))
                                .ok_or_else(|| Error::corrupt("segment refers to missing rscData")),
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
            };
            Value::AppPage { html, rsc_data, postponed, headers_json, status, segments }
        }
        WireValue::Other(v) => v,
    })
}

/// Bytes all decompressions of this process may hold at once: many concurrent reads of large
/// (or hostile) objects cannot add up past it; a read that would is a corrupt-counted miss.
pub const PROCESS_DECODE_BUDGET: usize = 512 * 1024 * 1024;
static DECODING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// This decode's share of [`PROCESS_DECODE_BUDGET`], given back when it ends.
struct DecodeBudget(usize);

impl DecodeBudget {
    fn take(&mut self, n: usize) -> Result<()> {
        use std::sync::atomic::Ordering;
        let before = DECODING.fetch_add(n, Ordering::AcqRel);
        self.0 += n;
        if before + n > PROCESS_DECODE_BUDGET {
            return Err(Error::corrupt(
                "decompression budget of this process exhausted (too many large reads at once)",
            ));
        }
        Ok(())
    }
}

impl Drop for DecodeBudget {
    fn drop(&mut self) {
        DECODING.fetch_sub(self.0, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The largest object an entry of at most `max_entry_bytes` can be stored as: the header, and
/// msgpack's framing on top of an incompressible payload (a generous bound).
pub fn max_stored_bytes(max_entry_bytes: usize) -> usize {
    max_entry_bytes.saturating_add(max_entry_bytes / 8).saturating_add(64 * 1024)
}

/// Encodes `entry`; `level` is the zstd level (1–22).
/// The metadata an object gets when a later render of the same bytes moves its freshness
/// (`BlobStore::stamp`): that render's `lastModified`, the write the body is of, and when that
/// render started (`lastModified:writeId[:renderedAt]`; older stamps have two parts).
pub fn stamp(last_modified: i64, write_id: u64, rendered_at: i64) -> String {
    format!("{last_modified}:{write_id:016x}:{rendered_at}")
}

/// Moves `entry`'s `lastModified` to what its object's stamp says: only when the stamp names the
/// write `entry` is (a stamp copied onto another write's body, in a race, is ignored), and only
/// forward.
pub fn apply_stamp(entry: &mut Entry, stamp: Option<&str>) {
    let parsed = stamp.and_then(|s| {
        let mut parts = s.split(':');
        let lm = parts.next()?.parse::<i64>().ok()?;
        let wid = u64::from_str_radix(parts.next()?, 16).ok()?;
        let rendered_at = match parts.next() {
            Some(r) => r.parse::<i64>().ok()?,
            None => 0,
        };
        Some((lm, wid, rendered_at))
    });
    if let Some((lm, wid, rendered_at)) = parsed {
        if wid == entry.write_id && entry.write_id != 0 && lm > entry.last_modified {
            entry.last_modified = lm;
            entry.rendered_at = rendered_at;
        }
    }
}

pub fn encode(entry: &Entry, level: i32) -> Result<Vec<u8>> {
    let wire = WireEntry {
        key: entry.key.clone(),
        last_modified: entry.last_modified,
        cache_control: entry.cache_control,
        tags: entry.tags.clone(),
        value: entry.value.as_ref().map(to_wire),
        write_id: entry.write_id,
        rendered_at: entry.rendered_at,
    };
    let payload = rmp_serde::to_vec(&wire).map_err(|e| Error::invalid(format!("encode: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() / 3 + 16);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    if payload.len() < MIN_COMPRESS {
        out.push(COMPRESSION_NONE);
        out.extend_from_slice(&payload);
    } else {
        out.push(COMPRESSION_ZSTD);
        let compressed = zstd::bulk::compress(&payload, level).map_err(|e| Error::invalid(format!("zstd: {e}")))?;
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

/// Decodes bytes written by [`encode`]. `max_decoded` bounds the decompressed size, so a
/// hostile or corrupt object cannot balloon memory.
pub fn decode(bytes: &[u8], max_decoded: usize) -> Result<Entry> {
    if bytes.len() < HEADER_LEN || &bytes[..3] != MAGIC {
        return Err(Error::corrupt("not a fleetcache object (bad magic)"));
    }
    if bytes[3] != FORMAT_VERSION {
        return Err(Error::corrupt(format!("unknown format version {}", bytes[3])));
    }
    let body = &bytes[HEADER_LEN..];
    let payload: std::borrow::Cow<[u8]> = match bytes[4] {
        COMPRESSION_NONE => body.into(),
        COMPRESSION_ZSTD => {
            let mut out = Vec::new();
            let mut dec = zstd::stream::read::Decoder::new(body).map_err(|e| Error::corrupt(format!("zstd: {e}")))?;
            let mut budget = DecodeBudget(0);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = dec.read(&mut chunk).map_err(|e| Error::corrupt(format!("zstd: {e}")))?;
                if n == 0 {
                    break;
                }
                if out.len() + n > max_decoded {
                    return Err(Error::corrupt("decompressed entry exceeds the size limit"));
                }
                budget.take(n)?;
                out.extend_from_slice(&chunk[..n]);
            }
            out.into()
        }
        c => return Err(Error::corrupt(format!("unknown compression {c}"))),
    };
    let wire: WireEntry = rmp_serde::from_slice(&payload).map_err(|e| Error::corrupt(format!("msgpack: {e}")))?;
    Ok(Entry {
        key: wire.key,
        last_modified: wire.last_modified,
        cache_control: wire.cache_control,
        tags: wire.tags,
        value: wire.value.map(from_wire).transpose()?,
        write_id: wire.write_id,
        rendered_at: wire.rendered_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::entry::Revalidate;

    pub fn sample_entries() -> Vec<Entry> {
        let rsc = Bytes::from(vec![7u8; 3000]);
        let cc = Some(CacheControl { revalidate: Revalidate::Seconds(5.0), expire: Some(31536000.0) });
        let mk = |key: &str, value: Option<Value>, cache_control| Entry {
            key: key.into(),
            last_modified: 1_795_365_807_740,
            write_id: 9,
            rendered_at: 0,
            cache_control,
            tags: vec!["_N_T_/isr".into(), "posts".into()],
            value,
        };
        vec![
            mk(
                "/route-cache/APP_PAGE/c38585ba/$/isr",
                Some(Value::AppPage {
                    html: "<html>é ✓ ".repeat(500),
                    rsc_data: Some(rsc.clone()),
                    postponed: None,
                    headers_json: Some(r#"{"x-nextjs-stale-time":"300"}"#.into()),
                    status: None,
                    segments: Some(vec![
                        ("/_tree".into(), Bytes::from_static(b"tree")),
                        ("/_full".into(), rsc.clone()),
                        ("/isr/__PAGE__".into(), Bytes::from(vec![1u8; 2791])),
                    ]),
                }),
                cc,
            ),
            mk(
                "/ppr",
                Some(Value::AppPage {
                    html: "shell".into(),
                    rsc_data: None,
                    postponed: Some("{\"p\":1}".into()),
                    headers_json: None,
                    status: Some(404.0),
                    segments: None,
                }),
                Some(CacheControl { revalidate: Revalidate::Never, expire: None }),
            ),
            mk(
                "/api/cached",
                Some(Value::AppRoute {
                    body: Bytes::from_static(&[0, 159, 146, 150]),
                    status: 200.0,
                    headers_json: "{\"content-type\":\"application/json\"}".into(),
                }),
                cc,
            ),
            mk(
                "/ssg",
                Some(Value::Pages {
                    html: "<p>ssg</p>".into(),
                    page_data_json: "{\"pageProps\":{},\"__N_SSG\":true}".into(),
                    headers_json: None,
                    status: None,
                }),
                cc,
            ),
            mk("/redir/x", Some(Value::Redirect { props_json: "{\"pageProps\":{}}".into() }), cc),
            mk("/nf", None, cc),
            mk(
                &"a".repeat(64),
                Some(Value::Fetch {
                    headers_json: "{}".into(),
                    body: "eyJhIjoxfQ==".into(),
                    status: 200.0,
                    url: "https://example.com/x".into(),
                    revalidate: 60.0,
                    tags: Some(vec!["posts".into()]),
                }),
                None,
            ),
            mk(
                "hfPrrD-XZnRUIVfVAOEhLAFgqGgvuG8MpUd5gEXPWxI",
                Some(Value::Image {
                    buffer: Bytes::from(vec![0xffu8, 0, 1, 2, 0x80]),
                    etag: "e".into(),
                    upstream_etag: "u".into(),
                    extension: "webp".into(),
                    revalidate: 14400.0,
                }),
                Some(CacheControl { revalidate: Revalidate::Seconds(14400.0), expire: None }),
            ),
            mk(
                "[\"c06c75be3fa6d56b2d40adaee425d8c479a74d59a1\",[\"a\"],[\"build\"]]",
                Some(Value::UseCache {
                    bytes: Bytes::from_static(b"0:\"$@1\"\n1:{\"label\":\"a\"}\n"),
                    timestamp: 1_795_365_807_740.847_4,
                    stale: 30.0,
                }),
                Some(CacheControl { revalidate: Revalidate::Seconds(900.0), expire: Some(4_294_967_294.0) }),
            ),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for e in sample_entries() {
            let bytes = encode(&e, 3).unwrap();
            assert_eq!(&bytes[..3], MAGIC);
            assert_eq!(decode(&bytes, 1 << 30).unwrap(), e, "kind {:?}", e.value.as_ref().map(|v| v.kind_name()));
        }
    }

    #[test]
    fn the_render_start_round_trips_and_older_objects_and_stamps_read_as_zero() {
        let mut e = sample_entries().remove(0);
        e.rendered_at = e.last_modified - 1_500;
        assert_eq!(decode(&encode(&e, 3).unwrap(), 1 << 30).unwrap(), e);
        // An object written before the field: positional msgpack without the last element.
        let older = (&e.key, e.last_modified, e.cache_control, &e.tags, e.value.as_ref().map(to_wire), e.write_id);
        let bytes = [&MAGIC[..], &[FORMAT_VERSION, COMPRESSION_NONE][..], &rmp_serde::to_vec(&older).unwrap()].concat();
        let read = decode(&bytes, 1 << 30).unwrap();
        assert_eq!((read.rendered_at, read.render_start()), (0, e.last_modified));
        // Stamps: the new form moves both; the older two-part form moves lastModified only.
        let mut s = read.clone();
        apply_stamp(&mut s, Some(&stamp(e.last_modified + 10, e.write_id, e.last_modified + 4)));
        assert_eq!((s.last_modified, s.render_start()), (e.last_modified + 10, e.last_modified + 4));
        let mut s = read.clone();
        apply_stamp(&mut s, Some(&format!("{}:{:016x}", e.last_modified + 10, e.write_id)));
        assert_eq!((s.last_modified, s.render_start()), (e.last_modified + 10, e.last_modified + 10));
        let mut s = read;
        apply_stamp(&mut s, Some(&stamp(e.last_modified + 10, e.write_id + 1, 0)));
        assert_eq!(s.last_modified, e.last_modified, "another write's stamp is ignored");
    }

    #[test]
    fn full_segment_is_stored_once() {
        let e = &sample_entries()[0];
        let with = encode(e, 3).unwrap();
        let mut without = e.clone();
        if let Some(Value::AppPage { segments: Some(s), .. }) = &mut without.value {
            s.retain(|(k, _)| k != "/_full");
        }
        let without = encode(&without, 3).unwrap();
        assert!(with.len() < without.len() + 32, "{} vs {}", with.len(), without.len());
        // and decoding restores the segment with rscData's bytes
        let d = decode(&with, 1 << 30).unwrap();
        if let Some(Value::AppPage { segments: Some(s), rsc_data: Some(r), .. }) = d.value {
            assert_eq!(&s[1].1, &r);
        } else {
            panic!()
        }
    }

    #[test]
    fn corrupt_and_foreign_bytes_are_errors() {
        let good = encode(&sample_entries()[0], 3).unwrap();
        for bad in [
            b"".to_vec(),
            b"{\"json\":true}".to_vec(),
            [&good[..4], &[9u8][..], &good[5..]].concat(),
            [&good[..3], &[2u8][..], &good[4..]].concat(),
            good[..good.len() / 2].to_vec(),
        ] {
            let err = decode(&bad, 1 << 30).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Corrupt);
        }
        assert!(decode(&good, 100).is_err(), "decompression bound enforced");
    }
}
