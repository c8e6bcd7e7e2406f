//! The stored entry and Next's staleness rules.
//!
//! An [`Entry`] is what one Next cache key holds: the value (one of Next's kinds, or `None` for a
//! cached `notFound`), the time it was written (`last_modified`, ms since the epoch), the
//! `cacheControl` that `set` received, and every tag that can invalidate it (from `ctx.tags` and
//! `headers['x-next-cache-tags']`).
//!
//! Object-valued fields Next treats as opaque JSON (`headers`, `pageData`, redirect `props`, fetch
//! `data.headers`) are carried as JSON text produced by the JS face; binary fields are bytes, never
//! base64 or UTF-8.
//!
//! [`evaluate`] is the one home of the tag rules. A tag's [`TagState`] keeps three moments:
//! `hard` (latest immediate expiry: `revalidateTag(t)`, `revalidatePath`, `updateTag`,
//! `{expire: 0}`), `stale` (latest `revalidateTag(t, {expire: N})`) and `soft_expire` (that
//! revalidation's `stale + N`). They are the two fields of the tag manifest of Next's built-in
//! cache (`tags-manifest.external.js`, 16.4.6), kept so that concurrent writers merge: the tag's
//! expiry is set by its *latest* revalidation, hard (`hard`) or profiled (`soft_expire`), as
//! Next's built-in overwrites `expired` on each call. An entry written before the expiry is gone
//! (`get` → `null`) once the expiry has passed — also one regenerated during a profile's
//! stale-while-revalidate window, as in Next's built-in; an entry written before the stale mark is
//! returned with `lastModified` moved back so Next serves it STALE and regenerates it in the
//! background — never `0` (Next reads it as "now") and never so far back that Next's own
//! `expire` check turns the stale hit into a blocking render. Two consequences of following Next
//! here that the differential suite pins (docs/semantics.md, "Consistency"): a later `'max'` revalidation
//! replaces an earlier hard expiry (a page nobody re-rendered since is served STALE again), and a
//! `{ expire: N }` revalidation expires, N seconds on, the renders made within those N seconds.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `cacheControl.revalidate`: seconds, or `false` (never by time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Revalidate {
    Seconds(f64),
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CacheControl {
    pub revalidate: Revalidate,
    /// Seconds; absent in many `set` calls (Next 15.5 never sends it for app pages).
    pub expire: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    AppPage {
        html: String,
        rsc_data: Option<Bytes>,
        postponed: Option<String>,
        headers_json: Option<String>,
        status: Option<f64>,
        /// `segmentData` in insertion order; `None` when Next passed `undefined`.
        segments: Option<Vec<(String, Bytes)>>,
    },
    AppRoute {
        body: Bytes,
        status: f64,
        headers_json: String,
    },
    Pages {
        html: String,
        page_data_json: String,
        headers_json: Option<String>,
        status: Option<f64>,
    },
    Redirect {
        props_json: String,
    },
    Fetch {
        /// `data.headers`
        headers_json: String,
        /// `data.body` (base64 for `fetch`, JSON text for `unstable_cache`)
        body: String,
        status: f64,
        url: String,
        revalidate: f64,
        /// The optional `tags` field of a FETCH value.
        tags: Option<Vec<String>>,
    },
    Image {
        buffer: Bytes,
        etag: String,
        upstream_etag: String,
        extension: String,
        revalidate: f64,
    },
    /// A `'use cache'` result (`cacheHandlers`): the bytes its stream delivered, the entry's
    /// `timestamp` (ms, a float) and `stale` (s, for the client). Its `revalidate` and `expire`
    /// are the entry's `cache_control`; its explicit tags are the entry's `tags`.
    UseCache {
        bytes: Bytes,
        timestamp: f64,
        stale: f64,
    },
}

impl Value {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::AppPage { .. } => "APP_PAGE",
            Value::AppRoute { .. } => "APP_ROUTE",
            Value::Pages { .. } => "PAGES",
            Value::Redirect { .. } => "REDIRECT",
            Value::Fetch { .. } => "FETCH",
            Value::Image { .. } => "IMAGE",
            Value::UseCache { .. } => "USE_CACHE",
        }
    }

    /// Bytes this value holds in memory (strings + buffers), used for the L1 byte budget.
    pub fn weight(&self) -> usize {
        let o = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len());
        match self {
            Value::AppPage { html, rsc_data, postponed, headers_json, segments, .. } => {
                let segs = segments.as_ref().map_or(0, |v| {
                    v.iter()
                        .map(|(k, b)| {
                            // A segment sharing rscData's allocation costs nothing extra.
                            let shared = rsc_data.as_ref().is_some_and(|r| r.as_ptr() == b.as_ptr());
                            k.len() + if shared { 0 } else { b.len() } + 16
                        })
                        .sum()
                });
                html.len() + rsc_data.as_ref().map_or(0, |b| b.len()) + o(postponed) + o(headers_json) + segs
            }
            Value::AppRoute { body, headers_json, .. } => body.len() + headers_json.len(),
            Value::Pages { html, page_data_json, headers_json, .. } => {
                html.len() + page_data_json.len() + o(headers_json)
            }
            Value::Redirect { props_json } => props_json.len(),
            Value::Fetch { headers_json, body, url, tags, .. } => {
                headers_json.len()
                    + body.len()
                    + url.len()
                    + tags.as_ref().map_or(0, |t| t.iter().map(|s| s.len() + 8).sum())
            }
            Value::Image { buffer, etag, upstream_etag, extension, .. } => {
                buffer.len() + etag.len() + upstream_etag.len() + extension.len()
            }
            Value::UseCache { bytes, .. } => bytes.len() + 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The Next cache key, kept to detect a foreign object under a hashed S3 key.
    pub key: String,
    pub last_modified: i64,
    pub cache_control: Option<CacheControl>,
    pub tags: Vec<String>,
    /// `None`: a cached notFound (`set(key, null)`).
    pub value: Option<Value>,
    /// Which write made this copy (random per `set`/`seed`; 0 = unknown, objects written before
    /// it existed). A feed `Key` event evicts every copy that is not of the event's write, so all
    /// instances end up with the object S3 holds, whatever order renders finish in.
    pub write_id: u64,
    /// When the render that made this copy started (ms since the epoch; 0: `last_modified`).
    /// Revalidations are judged against it, the time window against `last_modified` (when it was
    /// stored, as Next's built-in counts it): a revalidation made during the render is never lost.
    pub rendered_at: i64,
}

impl Entry {
    /// When the render that made this copy started: what revalidations are compared with.
    pub fn render_start(&self) -> i64 {
        if self.rendered_at > 0 {
            self.rendered_at.min(self.last_modified)
        } else {
            self.last_modified
        }
    }

    /// Whether `other` holds the same response (value, tags, cache control), whenever written.
    pub fn same_content(&self, other: &Entry) -> bool {
        self.key == other.key
            && self.cache_control == other.cache_control
            && self.tags == other.tags
            && self.value == other.value
    }

    pub fn weight(&self) -> usize {
        128 + self.key.len()
            + self.tags.iter().map(|t| t.len() + 24).sum::<usize>()
            + self.value.as_ref().map_or(0, |v| v.weight())
    }

    /// Seconds after which Next considers this entry stale by time, if known.
    pub fn revalidate_seconds(&self, ctx_revalidate: Option<f64>) -> Option<f64> {
        if let Some(Value::Fetch { revalidate, .. }) = &self.value {
            // Next: `ctx.revalidate || value.revalidate`
            return Some(ctx_revalidate.filter(|r| *r != 0.0).unwrap_or(*revalidate));
        }
        match self.cache_control.map(|c| c.revalidate) {
            Some(Revalidate::Seconds(s)) => Some(s),
            Some(Revalidate::Never) => None,
            None => match &self.value {
                Some(Value::Image { revalidate, .. }) => Some(*revalidate),
                _ => ctx_revalidate,
            },
        }
    }
}

/// Revalidation state of one tag (ms since the epoch; 0 = never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct TagState {
    /// Latest immediate expiry. Entries written before it are gone.
    pub hard: i64,
    /// Latest `{expire: N}` revalidation. Entries written before it are stale.
    pub stale: i64,
    /// That revalidation's expiry, `stale + N` (0 = none): the tag's expiry while `stale` is
    /// later than `hard` (see [`TagState::expires_at`]).
    pub soft_expire: i64,
}

impl TagState {
    /// Applies one revalidation at `now`: `expire_s` is `None` or `Some(0)` for an immediate
    /// expiry, `Some(N)` for "stale now, expired in N seconds". Merging is order-insensitive
    /// enough that replays and concurrent writers never make an entry look fresher than it is.
    pub fn apply(&mut self, now: i64, expire_s: Option<f64>) {
        match expire_s {
            Some(n) if n > 0.0 => {
                let at = now.saturating_add((n * 1000.0).min(i64::MAX as f64 / 4.0) as i64);
                // The latest profiled revalidation sets the expiry (a replay of an older one, or
                // one landing late from another writer, does not).
                match now.cmp(&self.stale) {
                    std::cmp::Ordering::Greater => (self.stale, self.soft_expire) = (now, at),
                    std::cmp::Ordering::Equal => self.soft_expire = nonzero_min(self.soft_expire, at),
                    std::cmp::Ordering::Less => {}
                }
            }
            _ => self.hard = self.hard.max(now),
        }
    }

    /// When entries written before it expire: set by the latest revalidation, a hard one (at once)
    /// or a profiled one (`soft_expire`), as Next's built-in overwrites a tag's `expired`. 0: never.
    pub fn expires_at(&self) -> i64 {
        if self.stale > self.hard && self.soft_expire != 0 {
            self.soft_expire
        } else {
            self.hard
        }
    }

    /// Whether an entry written at `last_modified` is expired by this tag at `now`: written before
    /// the expiry, and the expiry passed (Next's built-in `areTagsExpired`).
    pub fn expires(&self, last_modified: i64, now: i64) -> bool {
        let at = self.expires_at();
        at > last_modified && at <= now
    }

    /// The least upper bound of two states (used when a remote read meets local knowledge).
    pub fn join(&self, other: &TagState) -> TagState {
        let (stale, soft_expire) = match self.stale.cmp(&other.stale) {
            std::cmp::Ordering::Greater => (self.stale, self.soft_expire),
            std::cmp::Ordering::Less => (other.stale, other.soft_expire),
            std::cmp::Ordering::Equal => (self.stale, nonzero_min(self.soft_expire, other.soft_expire)),
        };
        TagState { hard: self.hard.max(other.hard), stale, soft_expire }
    }
}

fn nonzero_min(a: i64, b: i64) -> i64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve as stored.
    Fresh,
    /// Serve with this `lastModified` so Next reports STALE and regenerates in the background.
    Stale { last_modified: i64 },
    /// Return `null`: Next renders in the foreground.
    Expired,
}

/// Decides what `get` returns for `entry` given the states of all its tags (stored tags plus
/// `ctx.tags` / `ctx.softTags`). `ctx_revalidate` is FETCH get's `ctx.revalidate`.
pub fn evaluate<'a>(
    entry: &Entry,
    tag_states: impl IntoIterator<Item = &'a TagState>,
    ctx_revalidate: Option<f64>,
    now: i64,
) -> Verdict {
    let lm = entry.last_modified;
    let born = entry.render_start();
    let mut stale = false;
    for st in tag_states {
        if st.expires(born, now) {
            return Verdict::Expired;
        }
        if st.stale > born && st.stale <= now {
            stale = true;
        }
    }
    if !stale {
        return Verdict::Fresh;
    }
    if let Some(Value::UseCache { .. }) = &entry.value {
        // Next serves a `'use cache'` entry whose `revalidate` is -1 once more and regenerates it;
        // the handler reports that (`tagStale`) for any moved lastModified. No window applies.
        return Verdict::Stale { last_modified: lm - 1 };
    }
    // Move lastModified back just past the revalidate window.
    let Some(rev) = entry.revalidate_seconds(ctx_revalidate) else {
        // `revalidate: false`: Next never turns such an entry stale by time, so a stale tag
        // can only be honoured by a foreground render.
        return Verdict::Expired;
    };
    let target = now - (rev * 1000.0).ceil() as i64 - 1;
    let moved = lm.min(target);
    if let Some(expire) = entry.cache_control.and_then(|c| c.expire) {
        // Next: `lm + expire*1000 < now` → blocking. Stay inside the expire window.
        if (moved as f64) + expire * 1000.0 < now as f64 {
            return Verdict::Expired;
        }
    }
    if moved <= 0 {
        return Verdict::Expired;
    }
    Verdict::Stale { last_modified: moved }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(lm: i64, rev: Revalidate, expire: Option<f64>) -> Entry {
        Entry {
            key: "/x".into(),
            last_modified: lm,
            cache_control: Some(CacheControl { revalidate: rev, expire }),
            tags: vec!["t".into()],
            write_id: 0,
            rendered_at: 0,
            value: Some(Value::Pages {
                html: "h".into(),
                page_data_json: "{}".into(),
                headers_json: None,
                status: None,
            }),
        }
    }

    #[test]
    fn untouched_tags_are_fresh() {
        let e = page(1_000, Revalidate::Seconds(60.0), Some(3600.0));
        assert_eq!(evaluate(&e, [&TagState::default()], None, 5_000), Verdict::Fresh);
    }

    #[test]
    fn immediate_expiry_after_write_expires() {
        let e = page(1_000, Revalidate::Seconds(60.0), None);
        let mut t = TagState::default();
        t.apply(2_000, None);
        assert_eq!(evaluate(&e, [&t], None, 3_000), Verdict::Expired);
        t.apply(2_500, Some(0.0));
        assert_eq!(t.hard, 2_500);
    }

    #[test]
    fn writes_after_revalidation_are_fresh() {
        let mut t = TagState::default();
        t.apply(2_000, None);
        t.apply(2_100, Some(60.0));
        let e = page(2_200, Revalidate::Seconds(60.0), None);
        assert_eq!(evaluate(&e, [&t], None, 3_000), Verdict::Fresh);
        // Same millisecond as the revalidation: the write wins.
        let e = page(2_100, Revalidate::Seconds(60.0), None);
        assert_eq!(evaluate(&e, [&t], None, 3_000), Verdict::Fresh);
    }

    #[test]
    fn stale_moves_last_modified_back_within_expire() {
        let now = 1_000_000;
        let e = page(900_000, Revalidate::Seconds(10.0), Some(31536000.0));
        let mut t = TagState::default();
        t.apply(950_000, Some(31536000.0));
        match evaluate(&e, [&t], None, now) {
            Verdict::Stale { last_modified } => {
                assert!(last_modified > 0);
                assert!(last_modified + 10_000 < now, "Next must see it stale");
                assert!(last_modified as f64 + 31536000.0 * 1000.0 >= now as f64, "never past expire");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn stale_never_backdates_past_expire() {
        // revalidate 10, expire 10: no lastModified is stale but not expired → foreground render.
        let e = page(900_000, Revalidate::Seconds(10.0), Some(10.0));
        let mut t = TagState::default();
        t.apply(950_000, Some(3600.0));
        assert_eq!(evaluate(&e, [&t], None, 951_000), Verdict::Expired);
    }

    #[test]
    fn stale_with_revalidate_false_is_expired() {
        let e = page(900_000, Revalidate::Never, None);
        let mut t = TagState::default();
        t.apply(950_000, Some(3600.0));
        assert_eq!(evaluate(&e, [&t], None, 951_000), Verdict::Expired);
    }

    #[test]
    fn already_old_entry_keeps_its_last_modified() {
        let e = page(100, Revalidate::Seconds(1.0), None);
        let mut t = TagState::default();
        t.apply(950_000, Some(3600.0));
        assert_eq!(evaluate(&e, [&t], None, 951_000), Verdict::Stale { last_modified: 100 });
    }

    #[test]
    fn soft_expiry_passes_into_hard() {
        let b = 1_700_000_000_000; // a realistic epoch, so lastModified can move back
        let e = page(b + 1_000, Revalidate::Seconds(10.0), None);
        let mut t = TagState::default();
        t.apply(b + 2_000, Some(5.0)); // stale at +2s, expired at +7s
        assert!(matches!(evaluate(&e, [&t], None, b + 3_000), Verdict::Stale { .. }));
        assert_eq!(evaluate(&e, [&t], None, b + 7_000), Verdict::Expired);
        // An entry regenerated within the window expires with it too (Next's built-in: the
        // differential suite's "{ expire: 2 }" scenario); one written after the expiry does not.
        let e2 = page(b + 2_500, Revalidate::Seconds(10.0), None);
        assert_eq!(evaluate(&e2, [&t], None, b + 6_000), Verdict::Fresh);
        assert_eq!(evaluate(&e2, [&t], None, b + 8_000), Verdict::Expired);
        let e3 = page(b + 7_500, Revalidate::Seconds(10.0), None);
        assert_eq!(evaluate(&e3, [&t], None, b + 8_000), Verdict::Fresh);
        // A later profiled revalidation sets the expiry anew: both are stale, neither expired.
        t.apply(b + 9_000, Some(3600.0));
        assert!(matches!(evaluate(&e, [&t], None, b + 9_500), Verdict::Stale { .. }));
        assert!(matches!(evaluate(&e2, [&t], None, b + 9_500), Verdict::Stale { .. }));
    }

    #[test]
    fn a_later_profiled_revalidation_replaces_a_hard_expiry_as_in_next() {
        // Next's built-in overwrites the tag's `expired`: a page a hard revalidation had expired,
        // and nobody re-rendered, is served STALE after a later 'max' (the differential suite's
        // "revalidateTag(t), then revalidateTag(t, 'max')" scenario).
        let b = 1_700_000_000_000;
        let e = page(b + 1_000, Revalidate::Seconds(10.0), None);
        let mut t = TagState::default();
        t.apply(b + 2_000, None);
        assert_eq!(evaluate(&e, [&t], None, b + 2_500), Verdict::Expired);
        t.apply(b + 3_000, Some(31536000.0));
        assert!(matches!(evaluate(&e, [&t], None, b + 4_000), Verdict::Stale { .. }));
        // And a hard revalidation after it expires everything written before it again.
        t.apply(b + 5_000, None);
        assert_eq!(evaluate(&e, [&t], None, b + 5_500), Verdict::Expired);
        // Merged from two writers in either order, the same.
        let (mut x, mut y) = (TagState::default(), TagState::default());
        x.apply(b + 2_000, None);
        y.apply(b + 3_000, Some(31536000.0));
        assert_eq!(x.join(&y).expires_at(), y.join(&x).expires_at());
        assert_eq!(x.join(&y).expires_at(), b + 3_000 + 31536000 * 1000);
    }

    #[test]
    fn use_cache_entries_are_stale_by_tag_whatever_their_windows() {
        let e = Entry {
            key: "[\"a\"]".into(),
            last_modified: 900_000,
            // `expire` at Next's default 0xfffffffe s, revalidate longer than expire: no backdating limit applies.
            cache_control: Some(CacheControl { revalidate: Revalidate::Seconds(4_294_967_294.0), expire: Some(10.0) }),
            tags: vec!["t".into()],
            write_id: 0,
            rendered_at: 0,
            value: Some(Value::UseCache { bytes: Bytes::from_static(b"x"), timestamp: 900_000.5, stale: 30.0 }),
        };
        let mut t = TagState::default();
        t.apply(950_000, Some(3600.0));
        assert_eq!(evaluate(&e, [&t], None, 951_000), Verdict::Stale { last_modified: 899_999 });
        t.apply(960_000, None);
        assert_eq!(evaluate(&e, [&t], None, 961_000), Verdict::Expired);
    }

    #[test]
    fn join_is_commutative_and_keeps_maxima() {
        let mut a = TagState::default();
        a.apply(2_000, None);
        let mut b = TagState::default();
        b.apply(3_000, Some(60.0));
        assert_eq!(a.join(&b), b.join(&a));
        let j = a.join(&b);
        assert_eq!((j.hard, j.stale, j.soft_expire), (2_000, 3_000, 63_000));
    }

    #[test]
    fn fetch_uses_ctx_revalidate_first() {
        let e = Entry {
            key: "k".into(),
            last_modified: 1_000,
            cache_control: None,
            tags: vec![],
            write_id: 0,
            rendered_at: 0,
            value: Some(Value::Fetch {
                headers_json: "{}".into(),
                body: "b".into(),
                status: 200.0,
                url: "u".into(),
                revalidate: 60.0,
                tags: None,
            }),
        };
        assert_eq!(e.revalidate_seconds(Some(5.0)), Some(5.0));
        assert_eq!(e.revalidate_seconds(None), Some(60.0));
    }
}
