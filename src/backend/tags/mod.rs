//! `TagStore`: the fleet-wide tag state and the tag → path index. DynamoDB in production,
//! memory for fast tests; both must pass [`conformance`].

pub mod dynamodb;
pub mod memory;

use async_trait::async_trait;

use crate::entry::TagState;
use crate::error::Result;

/// Tags one revalidation unit (state + event) holds: DynamoDB transactions take 100 items, and
/// an event of this many tags stays well under the 400 KB item limit for tags of ≤ 2,048 bytes.
pub const MAX_TAGS_PER_UNIT: usize = 50;

/// Feed events are stored in pages of this many sequence numbers (one DynamoDB partition key each).
pub const FEED_PAGE: u64 = 1_000;

/// The last sequence number of the feed page holding `seq`.
pub fn feed_page_end(seq: u64) -> u64 {
    seq / FEED_PAGE * FEED_PAGE + FEED_PAGE - 1
}

/// Cache keys longer than this travel in feed events as [`HASHED_KEY`] + their SHA-256, so that a
/// `set` of any key has an event that fits in a DynamoDB item (a 10 MB key would not).
pub const MAX_EVENT_KEY: usize = 1_024;
pub const HASHED_KEY: &str = "#sha256:";

/// The key a `set`'s feed event carries for `key` (see [`MAX_EVENT_KEY`]).
pub fn event_key(key: &str) -> String {
    if key.len() <= MAX_EVENT_KEY && !key.starts_with(HASHED_KEY) {
        key.to_string()
    } else {
        format!("{HASHED_KEY}{}", crate::keys::sha256_hex(key))
    }
}

/// The hash an event key stands for, when it is one (see [`event_key`]).
pub fn hashed_event_key(key: &str) -> Option<&str> {
    key.strip_prefix(HASHED_KEY)
}

/// Bytes of tag names one unit holds (a feed event must stay under DynamoDB's 400 KB item limit).
pub const MAX_TAG_BYTES_PER_UNIT: usize = 100_000;

/// Splits `tags` into revalidation units of at most [`MAX_TAGS_PER_UNIT`] tags and
/// [`MAX_TAG_BYTES_PER_UNIT`] bytes of names (a single longer tag is a unit of its own); a tag
/// named twice is revalidated once (one transaction cannot write an item twice).
pub fn units_of(tags: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        if !seen.insert(t.as_str()) {
            continue;
        }
        let full = out.last().is_none_or(|u| u.len() >= MAX_TAGS_PER_UNIT || bytes + t.len() > MAX_TAG_BYTES_PER_UNIT);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += t.len();
        out.last_mut().expect("pushed above").push(t.clone());
    }
    out
}

pub use crate::keys::IndexRow;

/// One entry of the change feed: what another instance must apply to its memory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FeedEvent {
    /// Tags were revalidated; the states after it (joined into every tag clock).
    Tags { states: Vec<(String, TagState)> },
    /// A cache key was rewritten (`set`): copies of any other write are stale (by `write_id`;
    /// events from before it existed carry 0 and compare `last_modified`).
    Key {
        key: String,
        last_modified: i64,
        #[serde(default)]
        write_id: u64,
    },
}

/// A feed event with its position and the instance that wrote it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeedRecord {
    pub origin: String,
    pub event: FeedEvent,
    /// When the change was made (ms; stamped by the store from the write's `now`): readers
    /// measure the feed's lag from it.
    #[serde(default)]
    pub at: i64,
    /// The namespace (`prefix`) of the app that wrote it: apps sharing one table skip each
    /// other's events (the DynamoDB store stamps and checks it).
    #[serde(default)]
    pub ns: String,
    /// A receipt waits for it (`Core::revalidate_with_receipt`): each instance that applies it
    /// says so at once (an ack in the group `fleet::ack_group(seq)`). Not in the encoded body:
    /// a reader of the version before receipts takes the body as an array of exactly the four
    /// fields above and would drop the whole event (a lost revalidation mid-deploy); the
    /// DynamoDB store keeps the flag in an attribute of its own beside the body.
    #[serde(skip)]
    pub ack: bool,
}

impl FeedRecord {
    pub fn new(origin: impl Into<String>, event: FeedEvent) -> FeedRecord {
        FeedRecord { origin: origin.into(), event, at: 0, ns: String::new(), ack: false }
    }
}

/// One revalidation unit as [`TagStore::revalidate_at`] writes it: `tags` revalidated at `now`
/// (with `expire_s` for a profiled one) and, when `event` is given, its feed event at that
/// sequence number from that origin.
#[derive(Debug, Clone, Copy)]
pub struct Unit<'a> {
    pub event: Option<(u64, &'a str)>,
    /// The event asks the instances that apply it to acknowledge it (a receipt waits).
    pub ack: bool,
    pub tags: &'a [String],
    pub now: i64,
    pub expire_s: Option<f64>,
}

/// Outcome of a regeneration lease attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub won: bool,
    /// When the current holder's lease ends (ms).
    pub until: i64,
}

#[async_trait]
pub trait TagStore: Send + Sync + 'static {
    /// Takes the next feed sequence number (1, 2, …) from the store's atomic counter. Order comes
    /// from the store, never from wall clocks. The event is then written at that number by
    /// [`TagStore::announce_at`] or [`TagStore::revalidate_at`]; until it is, readers see a hole.
    async fn reserve_seq(&self) -> Result<u64>;
    /// Writes `record` at `seq` unless a row is there already (a retry of a write whose answer
    /// was lost): idempotent.
    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()>;
    /// Records a revalidation of `tags` at `now` (see [`TagState::apply`]) and, when `event` is
    /// given, its feed event — `Tags { states }` from `origin` at that sequence number — as one
    /// unit: both land or neither. Idempotent per sequence number: when the event is there
    /// already, the unit landed before and its states are read back. Concurrent revalidations of
    /// one tag never lose each other. At most [`MAX_TAGS_PER_UNIT`] tags.
    async fn revalidate_at(&self, unit: Unit<'_>) -> Result<Vec<(String, TagState)>>;
    /// Appends to the feed and returns the event's sequence number (`reserve_seq` +
    /// `announce_at`).
    async fn append(&self, record: &FeedRecord, now: i64) -> Result<u64> {
        let seq = self.reserve_seq().await?;
        self.announce_at(seq, record, now).await?;
        Ok(seq)
    }
    /// The events at these sequence numbers that exist (remembered holes, read again).
    async fn read_events(&self, seqs: &[u64]) -> Result<Vec<(u64, FeedRecord)>> {
        let mut out = Vec::new();
        for s in seqs {
            out.extend(self.read_feed(*s, *s).await?);
        }
        Ok(out)
    }
    /// The sequence number of the newest event (0 = none). One cheap read.
    async fn feed_head(&self) -> Result<u64>;
    /// The poll: the events from `from` to the end of its page of [`FEED_PAGE`] numbers, read
    /// from this reader's copy of the feed (DynamoDB keeps `feedCopies` copies so that no item
    /// is read by more than its share of the fleet). One request, without reading the head.
    async fn read_feed_page(&self, from: u64) -> Result<Vec<(u64, FeedRecord)>> {
        self.read_feed(from, feed_page_end(from)).await
    }
    /// Events `from..=to` that exist (a missing number is a writer that failed between taking
    /// its number and writing the row, or a row past its TTL).
    async fn read_feed(&self, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>>;
    /// Takes the regeneration lease of `key` until `until` if nobody holds an unexpired one. Its
    /// holder asking again (after dropping its memory) is told it holds it, until the end it got
    /// first (never extended).
    async fn try_lease(&self, key: &str, owner: &str, now: i64, until: i64) -> Result<Lease>;
    /// Ends `owner`'s lease of `key` (its regeneration is stored): the next revalidation's
    /// regeneration may be any instance's at once, not only after this lease would have run
    /// out. A lease another owner holds is left alone.
    async fn release_lease(&self, _key: &str, _owner: &str) -> Result<()> {
        Ok(())
    }
    /// Requests sent so far: (reads, writes). Memory stores send none.
    fn request_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// The state of each tag; tags never revalidated come back as `TagState::default()`.
    /// Strongly consistent: a revalidation that returned before this call started is seen.
    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>>;
    /// Records a revalidation without a feed event and returns the resulting states.
    async fn revalidate(&self, tags: &[String], now: i64, expire_s: Option<f64>) -> Result<Vec<(String, TagState)>> {
        let mut out = Vec::with_capacity(tags.len());
        for chunk in tags.chunks(MAX_TAGS_PER_UNIT) {
            out.extend(self.revalidate_at(Unit { ack: false, event: None, tags: chunk, now, expire_s }).await?);
        }
        Ok(out)
    }
    /// Upserts index rows; they expire (TTL) at `expires_at_s` (epoch seconds).
    async fn put_index(&self, rows: &[IndexRow], expires_at_s: i64) -> Result<()>;
    /// Every index row of these tags.
    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>>;
    /// Adds `n` to this app's counter `name` (created at 0; `n = 0` reads it) and returns the
    /// new total; the counter expires (TTL) at `expires_at_s`. The CDN purger's monthly count of
    /// invalidation paths, shared by the fleet.
    async fn add_to_counter(&self, name: &str, n: u64, expires_at_s: i64) -> Result<u64>;
    /// Writes (or replaces) member `id` of this app's group `group` with `body`, until
    /// `expires_at_s` (epoch seconds; TTL): the instances' heartbeats (`fleet::LIVE`) and the
    /// acknowledgements of a feed event a receipt waits for.
    async fn put_member(&self, group: &str, id: &str, body: &str, expires_at_s: i64) -> Result<()>;
    /// The members of `group` not expired at `now_s`: `(id, body)`, by id.
    async fn members(&self, group: &str, now_s: i64) -> Result<Vec<(String, String)>>;
}

/// The behaviour every `TagStore` must have. Run by `cargo test` against memory, and against a
/// DynamoDB protocol server by `tests/backends.rs` (feature `conformance`); never in the shipped addon.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance {
    use super::*;
    use std::sync::Arc;

    pub async fn run(store: Arc<dyn TagStore>, ns: &str) {
        let t = |s: &str| format!("{ns}-{s}");
        let states = store.tag_states(&[t("never")]).await.unwrap();
        assert_eq!(states, vec![(t("never"), TagState::default())]);

        // Counters: created at 0, added to atomically, read with 0.
        let far = 4_000_000_000;
        assert_eq!(store.add_to_counter(&t("paths"), 0, far).await.unwrap(), 0);
        assert_eq!(store.add_to_counter(&t("paths"), 7, far).await.unwrap(), 7);
        let name = t("paths");
        let adds = (0..10).map(|_| store.add_to_counter(&name, 3, far));
        let totals = futures::future::join_all(adds).await;
        assert_eq!(totals.iter().filter_map(|r| r.as_ref().ok()).max(), Some(&37), "no add lost");

        // Groups: a member is replaced by its next write, and gone once expired.
        let live = t("live");
        store.put_member(&live, "b", "one", far).await.unwrap();
        store.put_member(&live, "a", "two", far).await.unwrap();
        store.put_member(&live, "b", "three", far).await.unwrap();
        store.put_member(&live, "gone", "x", 1_000).await.unwrap();
        store.put_member(&t("other"), "c", "y", far).await.unwrap();
        let got = store.members(&live, 2_000).await.unwrap();
        assert_eq!(got, vec![("a".to_string(), "two".to_string()), ("b".to_string(), "three".to_string())]);
        assert_eq!(store.members(&t("none"), 2_000).await.unwrap(), vec![]);
        assert_eq!(store.add_to_counter(&t("paths"), 0, far).await.unwrap(), 37);
        assert_eq!(store.add_to_counter(&t("other"), 0, far).await.unwrap(), 0);

        // Leases: one holder; the holder asking again still holds it (not extended); taken over
        // once it has run out.
        let lease = t("lease");
        assert_eq!(store.try_lease(&lease, "x", 1_000, 5_000).await.unwrap(), Lease { won: true, until: 5_000 });
        assert_eq!(store.try_lease(&lease, "y", 2_000, 6_000).await.unwrap(), Lease { won: false, until: 5_000 });
        assert_eq!(store.try_lease(&lease, "x", 3_000, 7_000).await.unwrap(), Lease { won: true, until: 5_000 });
        assert_eq!(store.try_lease(&lease, "y", 5_001, 9_000).await.unwrap(), Lease { won: true, until: 9_000 });
        // Released by another owner: still held; by its holder: anyone may take it at once.
        store.release_lease(&lease, "x").await.unwrap();
        assert_eq!(store.try_lease(&lease, "z", 6_000, 10_000).await.unwrap(), Lease { won: false, until: 9_000 });
        store.release_lease(&lease, "y").await.unwrap();
        assert_eq!(store.try_lease(&lease, "z", 6_000, 10_000).await.unwrap(), Lease { won: true, until: 10_000 });
        store.release_lease(&t("never leased"), "z").await.unwrap();

        let after = store.revalidate(&[t("a"), t("b")], 1_000, None).await.unwrap();
        assert_eq!(after.len(), 2);
        assert!(after.iter().all(|(_, s)| s.hard == 1_000));
        store.revalidate(&[t("a")], 2_000, Some(60.0)).await.unwrap();
        let mut got = store.tag_states(&[t("a"), t("b"), t("never")]).await.unwrap();
        got.sort();
        assert_eq!(got[0], (t("a"), TagState { hard: 1_000, stale: 2_000, soft_expire: 62_000 }));
        assert_eq!(got[1], (t("b"), TagState { hard: 1_000, stale: 0, soft_expire: 0 }));
        assert_eq!(got[2].1, TagState::default());

        // Concurrent writers of one tag: none is lost.
        let mut tasks = Vec::new();
        for i in 0..12i64 {
            let s = store.clone();
            let tag = t("hot");
            tasks.push(tokio::spawn(async move { s.revalidate(&[tag], 10_000 + i, None).await.unwrap() }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.tag_states(&[t("hot")]).await.unwrap()[0].1.hard, 10_011);

        // A full unit, some of its tags with a state already: all read at once, every state moved,
        // and again (the versions read are the ones the conditional writes check).
        let many: Vec<String> = (0..MAX_TAGS_PER_UNIT).map(|i| t(&format!("many-{i}"))).collect();
        store
            .revalidate_at(Unit { ack: false, event: None, tags: &many[..10], now: 30_000, expire_s: None })
            .await
            .unwrap();
        for at in [31_000, 32_000] {
            let all = store
                .revalidate_at(Unit { ack: false, event: None, tags: &many, now: at, expire_s: None })
                .await
                .unwrap();
            assert_eq!(all.len(), MAX_TAGS_PER_UNIT);
            assert!(all.iter().zip(&many).all(|((tag, st), want)| tag == want && st.hard == at), "{all:?}");
        }

        // A revalidation and its feed event land together, once per sequence number.
        let seq = store.reserve_seq().await.unwrap();
        let first = store
            .revalidate_at(Unit {
                ack: true,
                event: Some((seq, "o1")),
                tags: &[t("unit")],
                now: 20_000,
                expire_s: None,
            })
            .await
            .unwrap();
        assert_eq!(first[0].1.hard, 20_000);
        let again = store
            .revalidate_at(Unit {
                ack: false,
                event: Some((seq, "o1")),
                tags: &[t("unit")],
                now: 20_500,
                expire_s: None,
            })
            .await
            .unwrap();
        assert_eq!(again[0].1.hard, 20_000, "a retry of a landed unit changes nothing");
        let events = store.read_feed(seq, seq).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.origin, "o1");
        assert_eq!(events[0].1.event, FeedEvent::Tags { states: first.clone() });
        assert!(events[0].1.ack, "a receipt's event reads back asking for acknowledgements");
        assert!(store.read_events(&[seq]).await.unwrap()[0].1.ack);
        // A reserved number with nothing written is a hole until it is written.
        let hole = store.reserve_seq().await.unwrap();
        assert_eq!(hole, seq + 1);
        assert!(store.read_feed(hole, hole).await.unwrap().is_empty());
        let key_event = FeedRecord::new("o2", FeedEvent::Key { key: "/k".into(), last_modified: 1, write_id: 3 });
        store.announce_at(hole, &key_event, 20_000).await.unwrap();
        store.announce_at(hole, &key_event, 20_000).await.unwrap();
        let read = store.read_feed(hole, hole).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].1.origin.as_str(), &read[0].1.event), ("o2", &key_event.event));
        assert_eq!(read[0].1.at, 20_000, "stamped with the write's time");
        assert!(!read[0].1.ack);
        assert_eq!(store.read_events(&[hole, seq, hole + 1_000_000]).await.unwrap().len(), 2, "the ones that exist");
        assert!(store.feed_head().await.unwrap() >= hole);

        // More tags than one batch read holds.
        let many: Vec<String> = (0..130).map(|i| t(&format!("m{i}"))).collect();
        assert_eq!(store.tag_states(&many).await.unwrap().len(), 130);

        // Index: more rows than one batch write holds, upserts, and per-tag queries.
        let rows: Vec<IndexRow> = (0..40)
            .map(|i| IndexRow {
                tag: t(if i % 2 == 0 { "even" } else { "odd" }),
                key: format!("/route-cache/APP_PAGE/h/$/p/{i}"),
                path: Some(format!("/p/{i}")),
            })
            .collect();
        store.put_index(&rows, 4_000_000_000).await.unwrap();
        store.put_index(&rows[..3], 4_000_000_000).await.unwrap();
        let mut even = store.index_rows(&[t("even")]).await.unwrap();
        even.sort();
        assert_eq!(even.len(), 20);
        assert!(even.iter().all(|r| r.tag == t("even") && r.path.is_some()));
        let both = store.index_rows(&[t("even"), t("odd"), t("none")]).await.unwrap();
        assert_eq!(both.len(), 40);
        let fetch_row = IndexRow { tag: t("f"), key: "a".repeat(64), path: None };
        store.put_index(std::slice::from_ref(&fetch_row), 4_000_000_000).await.unwrap();
        assert_eq!(store.index_rows(&[t("f")]).await.unwrap(), vec![fetch_row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_hold_each_tag_once_within_their_bounds() {
        let tags: Vec<String> = (0..120).map(|i| format!("t{}", i % 110)).collect();
        let units = units_of(&tags);
        assert_eq!(units.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 50, 10], "110 distinct tags");
        let long = "x".repeat(MAX_TAG_BYTES_PER_UNIT);
        assert_eq!(
            units_of(&["a".into(), long.clone(), "b".into()]),
            vec![vec!["a".to_string()], vec![long], vec!["b".to_string()]]
        );
    }

    /// A fleet mid-deploy: an instance of the version before receipts reads an event that asks
    /// for acknowledgements exactly as before (the flag is not in the body), and the new one reads
    /// the old events.
    #[test]
    fn events_with_and_without_the_ack_field_read_on_both_versions() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Before {
            origin: String,
            event: FeedEvent,
            #[serde(default)]
            at: i64,
            #[serde(default)]
            ns: String,
        }
        let new =
            FeedRecord { at: 5, ns: "p".into(), ack: true, ..FeedRecord::new("o", FeedEvent::Tags { states: vec![] }) };
        let body = rmp_serde::to_vec(&new).unwrap();
        let old: Before = rmp_serde::from_slice(&body).unwrap();
        assert_eq!(old, Before { origin: "o".into(), event: new.event.clone(), at: 5, ns: "p".into() });
        assert_eq!(body, rmp_serde::to_vec(&old).unwrap(), "the same bytes as before receipts");
        let back: FeedRecord = rmp_serde::from_slice(&rmp_serde::to_vec(&old).unwrap()).unwrap();
        assert_eq!(back, FeedRecord { ack: false, ..new });
    }
}
