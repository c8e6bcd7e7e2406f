//! The feed at fleet scale (issue 14, item 5): 2,000 pollers and 10,000 revalidations a minute
//! against a model of DynamoDB that bills every request the DynamoDB store sends (see the cost
//! list in `src/tags/dynamodb.rs`) to the partition key it reaches, in read and write units,
//! second by second. DynamoDB serves one partition key at most 3,000 read units and 1,000 write
//! units a second; past that it throttles, and a throttled poll is a poll that failed.
//!
//! The pollers are the real [`Feed`] (one per simulated instance, each with its own memory), the
//! writers call the store as the core does (`reserve_seq` + `revalidate_at` for a revalidation,
//! `append` for the `set` of the page it regenerates), and the data is a [`MemoryTagStore`]: the
//! model adds only what DynamoDB would bill. Time is simulated (one shared clock), so the figures
//! do not depend on the machine. Run with `--nocapture` for the table `docs/scaling.md` quotes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fleetcache::backend::tags::dynamodb::{event_body, event_item_bytes, feed_pk, reader_copy, FEED_HEAD_PK};
use fleetcache::backend::tags::memory::MemoryTagStore;
use fleetcache::backend::tags::{feed_page_end, FeedEvent, FeedRecord, IndexRow, Lease, TagStore, Unit};
use fleetcache::clock::MockClock;
use fleetcache::entry::TagState;
use fleetcache::error::Result;
use fleetcache::feed::{Feed, Memory};
use fleetcache::stats::Stats;
use parking_lot::Mutex;

const READ_LIMIT: f64 = 3_000.0;
const WRITE_LIMIT: f64 = 1_000.0;
const NS: &str = "app";

/// Read and write units billed per (second, partition key).
#[derive(Default)]
struct Meter {
    units: Mutex<HashMap<(i64, String), (f64, f64)>>,
    requests: AtomicU64,
}

impl Meter {
    fn read(&self, sec: i64, pk: &str, units: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.units.lock().entry((sec, pk.to_string())).or_default().0 += units;
    }
    fn write(&self, sec: i64, pk: &str, units: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.units.lock().entry((sec, pk.to_string())).or_default().1 += units;
    }
}

/// What the fleet shares: the data, the bill, the clock, the number of feed copies.
struct Shared {
    inner: MemoryTagStore,
    meter: Meter,
    now: AtomicI64,
    copies: u32,
}

/// One instance's view of the store: bills as `DynamoTagStore` with `feedCopies` = `copies`,
/// polling copy `copy`.
struct SimStore {
    shared: Arc<Shared>,
    copy: u32,
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}
fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

impl SimStore {
    fn sec(&self) -> i64 {
        self.shared.now.load(Ordering::Relaxed) / 1000
    }
    fn event_bytes(&self, rec: &FeedRecord, now: i64, copy: u32) -> usize {
        event_item_bytes(event_body(rec, now, NS).expect("encodes").len(), copy)
    }
    /// Copies 1.. of an event: one `BatchWriteItem` of plain puts.
    fn bill_copies(&self, seq: u64, bytes: usize) {
        for c in 1..self.shared.copies {
            self.shared.meter.write(self.sec(), &feed_pk(seq, c), write_units(bytes));
        }
    }
}

fn state_pk(tag: &str) -> String {
    format!("T#{NS}#{tag}")
}

#[async_trait]
impl TagStore for SimStore {
    async fn reserve_seq(&self) -> Result<u64> {
        self.shared.meter.write(self.sec(), FEED_HEAD_PK, 1.0);
        self.shared.inner.reserve_seq().await
    }
    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()> {
        let bytes = self.event_bytes(record, now, 0);
        self.shared.meter.write(self.sec(), &feed_pk(seq, 0), write_units(bytes));
        self.bill_copies(seq, bytes);
        self.shared.inner.announce_at(seq, record, now).await
    }
    async fn revalidate_at(&self, unit: Unit<'_>) -> Result<Vec<(String, TagState)>> {
        let Unit { event, tags, now, .. } = unit;
        let sec = self.sec();
        for t in tags {
            self.shared.meter.read(sec, &state_pk(t), 1.0); // strongly consistent GetItem
        }
        let states = self.shared.inner.revalidate_at(unit).await?;
        // One transaction: every item costs twice its write units.
        for t in tags {
            self.shared.meter.write(sec, &state_pk(t), 2.0);
        }
        if let Some((seq, origin)) = event {
            let rec = FeedRecord::new(origin, FeedEvent::Tags { states: states.clone() });
            let bytes = self.event_bytes(&rec, now, 0);
            self.shared.meter.write(sec, &feed_pk(seq, 0), 2.0 * write_units(bytes));
            self.bill_copies(seq, bytes);
        }
        Ok(states)
    }
    async fn feed_head(&self) -> Result<u64> {
        self.shared.meter.read(self.sec(), FEED_HEAD_PK, 1.0);
        self.shared.inner.feed_head().await
    }
    async fn read_feed(&self, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>> {
        let out = self.shared.inner.read_feed(from, to).await?;
        let bytes: usize = out.iter().map(|(_, r)| self.event_bytes(r, r.at, 0)).sum();
        self.shared.meter.read(self.sec(), &feed_pk(from, 0), read_units(bytes));
        Ok(out)
    }
    async fn read_feed_page(&self, from: u64) -> Result<Vec<(u64, FeedRecord)>> {
        let out = self.shared.inner.read_feed(from, feed_page_end(from)).await?;
        let bytes: usize = out.iter().map(|(_, r)| self.event_bytes(r, r.at, self.copy)).sum();
        self.shared.meter.read(self.sec(), &feed_pk(from, self.copy), read_units(bytes));
        Ok(out)
    }
    async fn try_lease(&self, key: &str, owner: &str, now: i64, until: i64) -> Result<Lease> {
        self.shared.inner.try_lease(key, owner, now, until).await
    }
    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>> {
        for t in tags {
            self.shared.meter.read(self.sec(), &state_pk(t), 1.0);
        }
        self.shared.inner.tag_states(tags).await
    }
    async fn put_index(&self, rows: &[IndexRow], expires_at_s: i64) -> Result<()> {
        self.shared.inner.put_index(rows, expires_at_s).await
    }
    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>> {
        self.shared.inner.index_rows(tags).await
    }
    async fn add_to_counter(&self, name: &str, n: u64, expires_at_s: i64) -> Result<u64> {
        self.shared.inner.add_to_counter(name, n, expires_at_s).await
    }
    async fn put_member(&self, group: &str, id: &str, body: &str, expires_at_s: i64) -> Result<()> {
        self.shared.inner.put_member(group, id, body, expires_at_s).await
    }
    async fn members(&self, group: &str, now_s: i64) -> Result<Vec<(String, String)>> {
        self.shared.inner.members(group, now_s).await
    }
}

/// One simulated instance: its feed, its memory, its view of the store.
struct Instance {
    origin: String,
    feed: Feed,
    store: SimStore,
    mem: Memory,
    /// Events this instance wrote (its own are not counted in `feed_events`).
    wrote: u64,
}

struct Outcome {
    events: u64,
    /// Highest read / write units any one partition key took in any one second, and which.
    peak_read: (f64, String),
    peak_write: (f64, String),
    /// Whole-table units per second (mean over the run).
    reads_per_s: f64,
    writes_per_s: f64,
    /// Pollers that missed an event or dropped their memory.
    incomplete: usize,
    resets: u64,
}

/// `pollers` instances polling every 250 ms (spread evenly over the interval), `per_minute`
/// revalidations of one tag each from random instances, each followed by the `set` of the page it
/// regenerates, for `seconds`, then 2 s more of polling.
async fn simulate(pollers: usize, copies: u32, per_minute: u64, seconds: i64) -> Outcome {
    const INTERVAL: i64 = 250;
    let t0 = 1_800_000_000_000i64;
    let clock = Arc::new(MockClock::new(t0));
    let shared =
        Arc::new(Shared { inner: MemoryTagStore::default(), meter: Meter::default(), now: AtomicI64::new(t0), copies });
    let mut fleet: Vec<Instance> = (0..pollers)
        .map(|i| {
            let origin = fleetcache::keys::sha256_hex(&format!("instance {i}"))[..16].to_string();
            let copy = reader_copy(&origin, copies);
            Instance {
                feed: Feed::new(INTERVAL as u64, 5_000, origin.clone()),
                store: SimStore { shared: shared.clone(), copy },
                origin,
                mem: Memory::new(1 << 20, Arc::new(Stats::default()), clock.clone()),
                wrote: 0,
            }
        })
        .collect();
    // Everyone has started (read the head) before the load begins.
    for inst in &fleet {
        inst.feed.poll_once(&inst.store, &inst.mem).await;
    }
    let gap_ms = 60_000.0 / per_minute as f64;
    let mut next_write = 0.0f64;
    let mut writes = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let end = seconds * 1000;
    for t in 0..end + 2_000 {
        let now = t0 + t;
        clock.set(now);
        shared.now.store(now, Ordering::Relaxed);
        while t < end && next_write <= t as f64 {
            next_write += gap_ms;
            writes += 1;
            let w = (random() % pollers as u64) as usize;
            let tag = format!("tag-{}", random() % 200);
            let inst = &mut fleet[w];
            let seq = inst.store.reserve_seq().await.unwrap();
            inst.store
                .revalidate_at(Unit {
                    event: Some((seq, &inst.origin)),
                    tags: std::slice::from_ref(&tag),
                    ack: false,
                    now,
                    expire_s: None,
                })
                .await
                .unwrap();
            let set = FeedEvent::Key { key: format!("/p/{tag}"), last_modified: now, write_id: random() | 1 };
            inst.store.append(&FeedRecord::new(inst.origin.as_str(), set), now).await.unwrap();
            inst.wrote += 2;
        }
        for (i, inst) in fleet.iter().enumerate() {
            // Instance i polls at offset i * INTERVAL / pollers within each interval.
            if (t + INTERVAL - (i as i64 * INTERVAL / pollers as i64)) % INTERVAL == 0 {
                inst.feed.poll_once(&inst.store, &inst.mem).await;
            }
        }
    }
    let events = writes * 2;
    let incomplete = fleet
        .iter()
        .filter(|i| i.mem.stats.feed_events.load(Ordering::Relaxed) + i.wrote != events || !i.feed.trusted())
        .count();
    let resets = fleet.iter().map(|i| i.mem.stats.feed_resets.load(Ordering::Relaxed)).sum();
    let units = shared.meter.units.lock();
    let mut peak_read = (0.0, String::new());
    let mut peak_write = (0.0, String::new());
    let (mut reads, mut writes_u) = (0.0, 0.0);
    // Table-wide means over the seconds under load, after the first (every instance starts then).
    let (first, last) = (t0 / 1000 + 1, t0 / 1000 + seconds);
    for ((sec, pk), (r, w)) in units.iter() {
        if (first..last).contains(sec) {
            reads += r;
            writes_u += w;
        }
        if *r > peak_read.0 {
            peak_read = (*r, pk.clone());
        }
        if *w > peak_write.0 {
            peak_write = (*w, pk.clone());
        }
    }
    let secs = (seconds - 1) as f64;
    Outcome {
        events,
        peak_read,
        peak_write,
        reads_per_s: reads / secs,
        writes_per_s: writes_u / secs,
        incomplete,
        resets,
    }
}

/// Dollars a month (30 days) for these mean rates: on demand ($0.125 per million read request
/// units, $0.625 per million write request units) and provisioned at the mean ($0.00013 per
/// RCU-hour, $0.00065 per WCU-hour; us-east-1 prices, before any free tier).
fn dollars(reads_per_s: f64, writes_per_s: f64) -> (f64, f64) {
    let month_s = 30.0 * 24.0 * 3600.0;
    let on_demand = (reads_per_s * 0.125 + writes_per_s * 0.625) * month_s / 1e6;
    let provisioned = (reads_per_s * 0.00013 + writes_per_s * 0.00065) * 730.0;
    (on_demand, provisioned)
}

fn report(label: &str, o: &Outcome) {
    let (od, prov) = dollars(o.reads_per_s, o.writes_per_s);
    println!(
        "{label}: {} events; busiest partition key in any second: {:.0} read units ({}), {:.0} write units ({}); \
         table: {:.0} read units/s, {:.0} write units/s = ${od:.0}/month on demand, ${prov:.0}/month provisioned; \
         pollers missing events: {}, resets: {}",
        o.events,
        o.peak_read.0,
        o.peak_read.1,
        o.peak_write.0,
        o.peak_write.1,
        o.reads_per_s,
        o.writes_per_s,
        o.incomplete,
        o.resets
    );
}

/// 2,000 instances and 10,000 revalidations a minute (each with the `set` of its page: 333 feed
/// events a second) with `feedCopies: 10` (one per 200): no partition key passes DynamoDB's limits and every
/// instance applies every event, without a reset.
#[tokio::test(flavor = "current_thread")]
async fn two_thousand_instances_stay_within_dynamodbs_per_item_limits_and_see_every_event() {
    let o = simulate(2_000, 10, 10_000, 4).await;
    report("2,000 instances, feedCopies 10, 10,000 revalidations/min", &o);
    assert!(o.events >= 2 * 10_000 * 4 / 60, "{} events", o.events);
    assert!(o.peak_read.0 <= READ_LIMIT, "{} read units/s on {}", o.peak_read.0, o.peak_read.1);
    assert!(o.peak_write.0 <= WRITE_LIMIT, "{} write units/s on {}", o.peak_write.0, o.peak_write.1);
    assert_eq!(o.incomplete, 0, "every poller applied every event");
    assert_eq!(o.resets, 0);
}

/// The same fleet on one copy (the layout before `feedCopies`): the current page's partition
/// takes every poll of the fleet and passes the read limit several times over. The model sees it.
#[tokio::test(flavor = "current_thread")]
async fn one_copy_for_two_thousand_instances_is_a_hot_partition() {
    let o = simulate(2_000, 1, 10_000, 2).await;
    report("2,000 instances, feedCopies 1, 10,000 revalidations/min", &o);
    assert!(o.peak_read.0 > 2.0 * READ_LIMIT, "{} read units/s on {}", o.peak_read.0, o.peak_read.1);
    assert!(o.peak_read.1.starts_with("F#"), "the hot key is a feed page: {}", o.peak_read.1);
}

/// The figures `docs/scaling.md` quotes (printed with `--nocapture`): 10, 100 and 1,000 instances
/// at 100 and 10,000 revalidations a minute on the copies the docs recommend.
#[tokio::test(flavor = "current_thread")]
async fn the_scaling_table() {
    for (pollers, copies) in [(10, 1), (100, 1), (1_000, 5)] {
        for per_minute in [100, 10_000] {
            let o = simulate(pollers, copies, per_minute, 3).await;
            report(&format!("{pollers} instances, feedCopies {copies}, {per_minute} revalidations/min"), &o);
            assert!(o.peak_read.0 <= READ_LIMIT && o.peak_write.0 <= WRITE_LIMIT);
            assert_eq!(o.incomplete, 0);
        }
    }
}
