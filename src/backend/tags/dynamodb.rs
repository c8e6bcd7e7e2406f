//! `TagStore` on DynamoDB: one table, string keys `pk` + `sk`, TTL attribute `ttl`.
//!
//! ## Item layout
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | tag state | `T#<tag>` | `state` | `hard`, `stale`, `soft` (N, ms since the epoch; see [`TagState`]), `ver` (N, optimistic-lock counter) |
//! | tag → key index | `I#<tag>` | `<cache key>` (or `h#<sha256>` past 1,000 bytes) | `key` (S), `path` (S, absent for fetch/image keys), `ttl` (N, epoch s) |
//! | feed counter | `F#head` | `head` | `seq` (N): the newest event's number, taken with an atomic `ADD` |
//! | feed event | `F#<seq / 1000>` | `<seq, 20 digits>` | `e` (B: msgpack of `FeedRecord`), `ttl` (N, one day) |
//! | feed event, copy *c* (1 ≤ *c* < `feedCopies`) | `F#<seq / 1000>#<c>` | `<seq, 20 digits>` | the same |
//! | regeneration lease | `L#<cache key>` (or `L#h#<sha256>`) | `lease` | `owner` (S), `until` (N, ms), `ttl` (N) |
//! | counter (the CDN purger's paths this month) | `C#<prefix>#cdn-paths-<yyyy-mm>` | `counter` | `seq` (N, atomic `ADD`), `ttl` (N, two months) |
//!
//! ## Cost per operation
//! - `revalidateTag(tags)`, per unit of at most 50 tags: one `UpdateItem` (the feed number), one
//!   strongly consistent `BatchGetItem` of the tags' states, then one `TransactWriteItems` holding every tag's
//!   conditional `Put` and the event's conditional `Put` (retried whole on a lost condition).
//! - first load of an entry from S3: one strongly consistent `BatchGetItem` per 100 of its tags.
//! - `set`: index rows for (tag, key) pairs this process has not written within half the index
//!   TTL, one `BatchWriteItem` per 25 rows; in the steady state a regeneration writes nothing.
//! - `pathsForTags(tags)`: one `Query` (paginated) per tag; the CDN purger does the same for
//!   the tags revalidated on its instance, and with a monthly ceiling one `UpdateItem` of the
//!   counter per planned window and per batch sent.
//! - the feed event of a `set`: one `UpdateItem` (counter) + one conditional `PutItem` (row).
//! - the poller, per interval: one strongly consistent `Query` of its copy of the current page
//!   (events after its cursor; 1 read unit when there are none), and every 2 s one strongly
//!   consistent `GetItem` of the counter (how far the feed goes: holes at a page's end, falling
//!   behind). With `feedCopies` = *K* every event is written *K* times (copy 0 in the
//!   revalidation's transaction or the `set`'s `PutItem`, the others in one `BatchWriteItem`
//!   after it) and each process reads copy `hash(instance) % K`, so a page's partition is read
//!   by 1/*K* of the fleet: see `docs/scaling.md` for the numbers.
//! - a time-stale entry: at most one conditional `PutItem` (+ one `GetItem` when lost) per key
//!   per lease period per instance.
//!
//! ## Write order and partial failure
//! `set` writes the S3 object first and the index rows after it: a failure between the two
//! leaves an entry that `pathsForTags` does not list yet (the next `set` of it retries), never an
//! index row pointing at content that was not written. Index rows outlive their entries until
//! their TTL: that only over-invalidates a CDN, it never serves wrong content. A revalidation's
//! tag states and its feed event are one transaction: both land or neither, and a retry at the
//! same feed number finds the event there and changes nothing (applying a revalidation twice would
//! be harmless anyway). An S3 object is written before its feed event, so an instance that applies
//! an event always finds what it announces. A writer whose write fails after taking a feed number
//! leaves a hole until its retry lands (see `outbox.rs`); one that dies leaves it for good; pollers
//! wait a short grace period, stop trusting their memory, and keep reading the hole for a while
//! (see `feed.rs`).
//!
//! ## Create the table
//! [`create_table_command`] gives the AWS CLI commands (string keys `pk` + `sk`, TTL on `ttl`,
//! on-demand billing); `doctor` prints them when the table is missing, docs/deployment.md shows them, and
//! [`DynamoTagStore::ensure_table`] creates the same table on local servers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes, Put, PutRequest,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::future::try_join_all;

use super::{FeedEvent, FeedRecord, IndexRow, Lease, TagStore, Unit};
use crate::backend::aws::map_err;
use crate::entry::TagState;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::sha256_hex;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ATTR_PK: &str = "pk";
pub const ATTR_SK: &str = "sk";
pub const ATTR_TTL: &str = "ttl";

/// The AWS CLI commands that create a table for fleetcache named `table` (the one place they are
/// written; docs/deployment.md shows their output for `my-site-cache`).
pub fn create_table_command(table: &str) -> String {
    format!(
        "aws dynamodb create-table --table-name {table} \\\n  \
         --attribute-definitions AttributeName={ATTR_PK},AttributeType=S AttributeName={ATTR_SK},AttributeType=S \\\n  \
         --key-schema AttributeName={ATTR_PK},KeyType=HASH AttributeName={ATTR_SK},KeyType=RANGE \\\n  \
         --billing-mode PAY_PER_REQUEST\n\
         aws dynamodb update-time-to-live --table-name {table} \\\n  \
         --time-to-live-specification Enabled=true,AttributeName={ATTR_TTL}"
    )
}
const ATTR_HARD: &str = "hard";
const ATTR_STALE: &str = "stale";
const ATTR_SOFT: &str = "soft";
const ATTR_VER: &str = "ver";
const ATTR_KEY: &str = "key";
const ATTR_PATH: &str = "path";
const TAG_PREFIX: &str = "T#";
/// Longer tags are keyed by their hash (see `tag_part`).
pub const MAX_TAG_KEY_BYTES: usize = 1024;
const INDEX_PREFIX: &str = "I#";
/// Counters (`C#<prefix>#<name>`): the CDN purger's monthly path count.
const COUNTER_PREFIX: &str = "C#";
/// Groups (`M#<prefix>#<group>`, one item per member): heartbeats and receipts' acknowledgements.
const GROUP_PREFIX: &str = "M#";
const ATTR_BODY: &str = "b";
const STATE_SK: &str = "state";
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;
const MAX_ATTEMPTS: usize = 8;
const ATTR_SEQ: &str = "seq";
const ATTR_EVENT: &str = "e";
/// Present (true) on a feed event a receipt waits for; beside the body, which readers of the
/// version before receipts decode as exactly four fields.
const ATTR_ACK: &str = "ack";
const ATTR_OWNER: &str = "owner";
const ATTR_UNTIL: &str = "until";
/// The feed counter's partition key (the head).
pub const FEED_HEAD_PK: &str = "F#head";
use super::{feed_page_end, FEED_PAGE};
/// Most copies of the feed (`feedCopies`).
pub const MAX_FEED_COPIES: u32 = 64;
const FEED_TTL_SECONDS: i64 = 24 * 3600;
const CONFLICT_CODES: &[&str] = &["ConditionalCheckFailedException", "TransactionConflictException"];
/// A transaction is cancelled whole when one of its conditions fails (or it met another).
const CONFLICT_CODES_TX: &[&str] = &["TransactionCanceledException", "TransactionConflictException"];

pub struct DynamoTagStore {
    client: Client,
    table: String,
    /// The app's `prefix`: tag states, index rows, leases and feed events of one app never meet
    /// another's in a shared table.
    ns: String,
    reads: AtomicU64,
    writes: AtomicU64,
    /// Copies of each feed event written (`feedCopies`, ≥ 1).
    copies: u32,
    /// The copy this process polls.
    read_copy: u32,
}

/// The stored bytes of a feed event (its `e` attribute).
pub fn event_body(record: &FeedRecord, now: i64, ns: &str) -> Result<Vec<u8>> {
    let stamped = FeedRecord { at: now, ns: ns.to_string(), ..record.clone() };
    rmp_serde::to_vec(&stamped).map_err(|e| Error::invalid(format!("feed event: {e}")))
}

/// The size DynamoDB bills for a feed event item of `body_bytes` (attribute names and values:
/// `pk` `F#<page>[#c]`, `sk` 20 digits, `e`, `ttl`), for the capacity model of `docs/scaling.md`.
pub fn event_item_bytes(body_bytes: usize, copy: u32) -> usize {
    let pk = feed_pk(0, copy).len() + 6; // page numbers up to a million
    (2 + pk) + (2 + 20) + (1 + body_bytes) + (3 + 10)
}

/// The item of feed event `seq` (expires after a day), stamped with its time and namespace.
fn event_item(seq: u64, record: &FeedRecord, now: i64, ns: &str) -> Result<HashMap<String, AttributeValue>> {
    let body = event_body(record, now, ns)?;
    let mut item = HashMap::from([
        (ATTR_PK.to_string(), s(&feed_pk(seq, 0))),
        (ATTR_SK.to_string(), s(&feed_sk(seq))),
        (ATTR_EVENT.to_string(), AttributeValue::B(aws_smithy_types::Blob::new(body))),
        (ATTR_TTL.to_string(), n(now / 1000 + FEED_TTL_SECONDS)),
    ]);
    if record.ack {
        item.insert(ATTR_ACK.to_string(), AttributeValue::Bool(true));
    }
    Ok(item)
}

/// The feed record of a stored event item (None when it has no readable body), as this
/// namespace sees it.
fn event_of(item: &HashMap<String, AttributeValue>, ns: &str) -> Option<FeedRecord> {
    let body = item.get(ATTR_EVENT).and_then(|v| v.as_b().ok())?;
    let mut rec = rmp_serde::from_slice::<FeedRecord>(body.as_ref()).ok()?;
    rec.ack = matches!(item.get(ATTR_ACK), Some(AttributeValue::Bool(true)));
    Some(own(rec, ns))
}

/// The partition key of feed event `seq` in copy `copy` (copy 0 is the original layout).
pub fn feed_pk(seq: u64, copy: u32) -> String {
    if copy == 0 {
        format!("F#{}", seq / FEED_PAGE)
    } else {
        format!("F#{}#{copy}", seq / FEED_PAGE)
    }
}

/// The copy of the feed that instance `origin` polls, of `copies`: spread evenly over a fleet
/// (FNV-1a of the instance id; ids are random, so any fleet divides about equally).
pub fn reader_copy(origin: &str, copies: u32) -> u32 {
    if copies <= 1 {
        return 0;
    }
    let h = origin.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (h % u64::from(copies)) as u32
}
fn feed_sk(seq: u64) -> String {
    format!("{seq:020}")
}

/// An item's key.
fn key_of(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(ATTR_PK.to_string(), s(pk)), (ATTR_SK.to_string(), s(sk))])
}

/// The key of the feed's counter item (its head).
fn feed_head_key() -> HashMap<String, AttributeValue> {
    key_of(FEED_HEAD_PK, "head")
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}
fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}
/// A tag as it appears in partition keys: `t<tag>`, or `h<sha256(tag)>` when longer than
/// [`MAX_TAG_KEY_BYTES`] (DynamoDB keys hold 2,048 bytes); the two forms never collide.
fn tag_part(tag: &str) -> String {
    if tag.len() <= MAX_TAG_KEY_BYTES {
        format!("t{tag}")
    } else {
        format!("h{}", sha256_hex(tag))
    }
}

/// A decoded feed record of another namespace (an app sharing the table under another
/// `prefix`) keeps its place in the sequence but carries nothing to apply.
fn own(mut rec: FeedRecord, ns: &str) -> FeedRecord {
    if rec.ns != ns {
        rec.event = FeedEvent::Tags { states: Vec::new() };
    }
    rec
}
fn index_sk(key: &str) -> String {
    if key.len() <= 1000 {
        key.to_string()
    } else {
        format!("h#{}", sha256_hex(key))
    }
}
fn state_of(item: &HashMap<String, AttributeValue>) -> TagState {
    TagState { hard: get_n(item, ATTR_HARD), stale: get_n(item, ATTR_STALE), soft_expire: get_n(item, ATTR_SOFT) }
}

async fn backoff(attempt: usize) {
    tokio::time::sleep(Duration::from_millis(10 * (1 << attempt.min(6)) as u64)).await;
}

impl DynamoTagStore {
    pub fn new(sdk: &aws_config::SdkConfig, table: String, ns: String, endpoint: Option<&str>) -> Self {
        let mut b = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(crate::backend::breaker::Answered);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        DynamoTagStore {
            client: Client::from_conf(b.build()),
            table,
            ns,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            copies: 1,
            read_copy: 0,
        }
    }

    /// Writes every feed event `copies` times and polls the copy of instance `origin` (see the
    /// module doc; every instance of a fleet must use the same `copies`).
    pub fn with_feed_copies(mut self, copies: u32, origin: &str) -> Self {
        self.copies = copies.clamp(1, MAX_FEED_COPIES);
        self.read_copy = reader_copy(origin, self.copies);
        self
    }

    /// Writes copies 1.. of a feed event whose copy 0 is `item` (idempotent: a retry rewrites
    /// the same event at the same number).
    async fn put_copies(&self, seq: u64, item: &HashMap<String, AttributeValue>) -> Result<()> {
        if self.copies <= 1 {
            return Ok(());
        }
        let puts: Vec<WriteRequest> = (1..self.copies)
            .map(|c| {
                let mut it = item.clone();
                it.insert(ATTR_PK.to_string(), s(&feed_pk(seq, c)));
                PutRequest::builder().set_item(Some(it)).build().map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::invalid(format!("feed event copy: {e}")))?;
        for chunk in puts.chunks(BATCH_WRITE_MAX) {
            self.batch_write(chunk.to_vec()).await?;
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn state_key(&self, tag: &str) -> HashMap<String, AttributeValue> {
        key_of(&self.state_pk(tag), STATE_SK)
    }
    fn state_pk(&self, tag: &str) -> String {
        format!("{TAG_PREFIX}{}#{}", self.ns, tag_part(tag))
    }
    fn index_pk(&self, tag: &str) -> String {
        format!("{INDEX_PREFIX}{}#{}", self.ns, tag_part(tag))
    }
    /// The item of `key`'s regeneration lease (taken by `try_lease`, ended by `release_lease`).
    fn lease_pk(&self, key: &str) -> String {
        format!("L#{}#{}", self.ns, index_sk(key))
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Creates the table (and turns on TTL) if it does not exist. For local servers, tests and
    /// the demo; production tables are created by infrastructure code (see the module doc).
    pub async fn ensure_table(&self) -> Result<()> {
        if self.client.describe_table().table_name(&self.table).send().await.is_ok() {
            return Ok(());
        }
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kt| KeySchemaElement::builder().attribute_name(name).key_type(kt).build();
        let inv = |e: aws_sdk_dynamodb::error::BuildError| Error::invalid(e.to_string());
        let res = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr(ATTR_PK).map_err(inv)?)
            .attribute_definitions(attr(ATTR_SK).map_err(inv)?)
            .key_schema(key(ATTR_PK, KeyType::Hash).map_err(inv)?)
            .key_schema(key(ATTR_SK, KeyType::Range).map_err(inv)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        if let Err(e) = res {
            let err = map_err("CreateTable", e, &["ResourceInUseException"]);
            if err.kind != ErrorKind::Conflict {
                return Err(err);
            }
        }
        let spec = TimeToLiveSpecification::builder().enabled(true).attribute_name(ATTR_TTL).build().map_err(inv)?;
        // Best effort: some local servers lack the TTL API.
        let _ = self.client.update_time_to_live().table_name(&self.table).time_to_live_specification(spec).send().await;
        Ok(())
    }

    /// The states and versions of a unit's tags, in one strongly consistent `BatchGetItem` (a unit
    /// holds at most 50 tags: one request, where a `GetItem` per tag made 50).
    async fn states_with_versions(&self, tags: &[String]) -> Result<Vec<(TagState, Option<i64>)>> {
        let mut keys: Vec<HashMap<String, AttributeValue>> = Vec::with_capacity(tags.len());
        let mut seen = std::collections::HashSet::new();
        for t in tags {
            if seen.insert(self.state_pk(t)) {
                keys.push(self.state_key(t));
            }
        }
        let items = self.batch_get(keys).await?;
        let by_pk: HashMap<String, &HashMap<String, AttributeValue>> =
            items.iter().filter_map(|i| Some((get_s(i, ATTR_PK)?, i))).collect();
        Ok(tags
            .iter()
            .map(|t| match by_pk.get(&self.state_pk(t)) {
                Some(item) => (state_of(item), Some(get_n(item, ATTR_VER))),
                None => (TagState::default(), None),
            })
            .collect())
    }

    /// The conditional write of a tag's new state: it lands only if nobody wrote since `ver` was read.
    fn state_put(&self, tag: &str, st: TagState, ver: Option<i64>) -> Result<TransactWriteItem> {
        let mut item = self.state_key(tag);
        item.insert(ATTR_HARD.into(), n(st.hard));
        item.insert(ATTR_STALE.into(), n(st.stale));
        item.insert(ATTR_SOFT.into(), n(st.soft_expire));
        item.insert(ATTR_VER.into(), n(ver.unwrap_or(0) + 1));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match ver {
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", ATTR_VER)
                .expression_attribute_values(":v", n(v)),
            None => put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", ATTR_PK),
        };
        let put = put.build().map_err(|e| Error::invalid(format!("tag state: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Feed event `seq` as copy 0 holds it, if it was written (read strongly).
    async fn event_at(&self, seq: u64) -> Result<Option<HashMap<String, AttributeValue>>> {
        self.get_strong("GetItem(feed event)", key_of(&feed_pk(seq, 0), &feed_sk(seq))).await
    }

    /// One item, read strongly (`op` names the read in errors).
    async fn get_strong(
        &self,
        op: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>> {
        self.read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_err(op, e, CONFLICT_CODES))?;
        Ok(out.item().cloned())
    }

    /// Events `from..=to` of feed copy `copy` that exist: one strongly consistent `Query` per
    /// page of the range.
    async fn read_range(&self, copy: u32, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        for page in (from / FEED_PAGE)..=(to / FEED_PAGE) {
            let lo = from.max(page * FEED_PAGE);
            let hi = to.min(feed_page_end(lo));
            for item in self.query_all(feed_pk(lo, copy), Some((feed_sk(lo), feed_sk(hi)))).await? {
                let seq = get_s(&item, ATTR_SK).and_then(|v| v.parse::<u64>().ok());
                let rec = event_of(&item, &self.ns);
                if let (Some(seq), Some(rec)) = (seq, rec) {
                    out.push((seq, rec));
                }
            }
        }
        Ok(out)
    }

    /// Every item of partition `pk` (with `sk` between the bounds, if given), all pages.
    async fn query_all(
        &self,
        pk: String,
        sk_between: Option<(String, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            self.read();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_values(":pk", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            q = match &sk_between {
                Some((lo, hi)) => q
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                    .expression_attribute_names("#sk", ATTR_SK)
                    .expression_attribute_values(":lo", s(lo))
                    .expression_attribute_values(":hi", s(hi)),
                None => q.key_condition_expression("#pk = :pk"),
            };
            let res = q.send().await.map_err(|e| map_err("Query", e, CONFLICT_CODES))?;
            out.extend(res.items().iter().cloned());
            match res.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut pending = keys;
        let mut out = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            if pending.is_empty() {
                return Ok(out);
            }
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| Error::invalid(e.to_string()))?;
            self.read();
            let res = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(|e| map_err("BatchGetItem", e, CONFLICT_CODES))?;
            if let Some(items) = res.responses().and_then(|r| r.get(&self.table)) {
                out.extend(items.iter().cloned());
            }
            if let Some(un) = res.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = un.keys().to_vec();
                if !pending.is_empty() {
                    backoff(attempt).await;
                }
            }
        }
        if pending.is_empty() {
            Ok(out)
        } else {
            Err(Error::backend("BatchGetItem: keys left unprocessed", true))
        }
    }

    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
        let mut pending = requests;
        for attempt in 0..MAX_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            self.write();
            let res = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| map_err("BatchWriteItem", e, CONFLICT_CODES))?;
            if let Some(un) = res.unprocessed_items().and_then(|u| u.get(&self.table)) {
                pending = un.clone();
                if !pending.is_empty() {
                    backoff(attempt).await;
                }
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(Error::backend("BatchWriteItem: items left unprocessed", true))
        }
    }
}

#[async_trait]
impl TagStore for DynamoTagStore {
    async fn add_to_counter(&self, name: &str, n_add: u64, expires_at_s: i64) -> Result<u64> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(&format!("{COUNTER_PREFIX}{}#{name}", self.ns)))
            .key(ATTR_SK, s("counter"))
            .update_expression("ADD #s :n SET #ttl = :ttl")
            .expression_attribute_names("#s", ATTR_SEQ)
            .expression_attribute_names("#ttl", ATTR_TTL)
            .expression_attribute_values(":n", n(n_add as i64))
            .expression_attribute_values(":ttl", n(expires_at_s))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| map_err("UpdateItem(counter)", e, CONFLICT_CODES))?;
        Ok(out.attributes().map(|a| get_n(a, ATTR_SEQ)).unwrap_or(0).max(0) as u64)
    }

    async fn put_member(&self, group: &str, id: &str, body: &str, expires_at_s: i64) -> Result<()> {
        let item = HashMap::from([
            (ATTR_PK.to_string(), s(&format!("{GROUP_PREFIX}{}#{group}", self.ns))),
            (ATTR_SK.to_string(), s(id)),
            (ATTR_BODY.to_string(), s(body)),
            (ATTR_TTL.to_string(), n(expires_at_s)),
        ]);
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| map_err("PutItem(member)", e, CONFLICT_CODES))?;
        Ok(())
    }

    async fn members(&self, group: &str, now_s: i64) -> Result<Vec<(String, String)>> {
        let pk = format!("{GROUP_PREFIX}{}#{group}", self.ns);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            self.read();
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_values(":pk", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_err("Query(members)", e, CONFLICT_CODES))?;
            for item in page.items() {
                // TTL deletes lazily: an expired member may still be listed.
                if get_n(item, ATTR_TTL) > now_s {
                    if let (Some(id), Some(body)) = (get_s(item, ATTR_SK), get_s(item, ATTR_BODY)) {
                        out.push((id, body));
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn reserve_seq(&self) -> Result<u64> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(feed_head_key()))
            .update_expression("ADD #s :one")
            .expression_attribute_names("#s", ATTR_SEQ)
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| map_err("UpdateItem(feed head)", e, CONFLICT_CODES))?;
        let seq = out.attributes().map(|a| get_n(a, ATTR_SEQ)).unwrap_or(0) as u64;
        if seq == 0 {
            return Err(Error::backend("feed counter returned no sequence number", true));
        }
        Ok(seq)
    }

    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()> {
        let item = event_item(seq, record, now, &self.ns)?;
        self.write();
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match res {
            Ok(_) => {}
            Err(e) => {
                let err = map_err("PutItem(feed event)", e, CONFLICT_CODES);
                // There already: an earlier attempt landed and its answer was lost.
                if err.kind != ErrorKind::Conflict {
                    return Err(err);
                }
            }
        }
        self.put_copies(seq, &item).await
    }

    async fn revalidate_at(&self, unit: Unit<'_>) -> Result<Vec<(String, TagState)>> {
        let Unit { event, tags, now, expire_s, ack } = unit;
        if tags.len() > super::MAX_TAGS_PER_UNIT {
            return Err(Error::invalid(format!("{} tags in one revalidation unit", tags.len())));
        }
        for attempt in 0..MAX_ATTEMPTS {
            if let Some((seq, _)) = event {
                if attempt > 0 {
                    // The unit landed before (its answer was lost, or its copies failed).
                    if let Some(item) = self.event_at(seq).await? {
                        self.put_copies(seq, &item).await?;
                        return self.tag_states(tags).await;
                    }
                }
            }
            let current = self.states_with_versions(tags).await?;
            let mut states = Vec::with_capacity(tags.len());
            let mut writes = Vec::with_capacity(tags.len() + 1);
            for (tag, (mut st, ver)) in tags.iter().zip(current) {
                st.apply(now, expire_s);
                states.push((tag.clone(), st));
                writes.push(self.state_put(tag, st, ver)?);
            }
            let mut event_row = None;
            if let Some((seq, origin)) = event {
                let rec = FeedRecord { ack, ..FeedRecord::new(origin, FeedEvent::Tags { states: states.clone() }) };
                let item = event_item(seq, &rec, now, &self.ns)?;
                event_row = Some((seq, item.clone()));
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", ATTR_PK)
                    .build()
                    .map_err(|e| Error::invalid(format!("feed event: {e}")))?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            self.write();
            // One attempt per call: the outbox is this write's retry loop (with its own backoff),
            // so a throttled transaction answers at once instead of outliving its caller's deadline
            // inside the SDK's retries (an abandoned call counts against the breaker).
            let once = aws_sdk_dynamodb::config::Builder::default()
                .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(1));
            let sent =
                self.client.transact_write_items().set_transact_items(Some(writes)).customize().config_override(once);
            match sent.send().await {
                Ok(_) => {
                    if let Some((seq, item)) = event_row {
                        // A failure here is retried by the outbox at the same number (above).
                        self.put_copies(seq, &item).await?;
                    }
                    return Ok(states);
                }
                Err(e) => {
                    let err = map_err("TransactWriteItems(revalidation)", e, CONFLICT_CODES_TX);
                    if err.kind != ErrorKind::Conflict {
                        return Err(err);
                    }
                    // A state changed under us, or the event landed before: look again.
                    backoff(attempt).await;
                }
            }
        }
        Err(Error::new(ErrorKind::Conflict, format!("revalidate {tags:?}: too much contention")))
    }

    async fn feed_head(&self) -> Result<u64> {
        let head = self.get_strong("GetItem(feed head)", feed_head_key()).await?;
        Ok(head.map(|i| get_n(&i, ATTR_SEQ)).unwrap_or(0).max(0) as u64)
    }

    async fn read_feed(&self, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>> {
        self.read_range(0, from, to).await
    }

    async fn read_feed_page(&self, from: u64) -> Result<Vec<(u64, FeedRecord)>> {
        self.read_range(self.read_copy, from, feed_page_end(from)).await
    }

    async fn try_lease(&self, key: &str, owner: &str, now: i64, until: i64) -> Result<Lease> {
        let pk = self.lease_pk(key);
        let item = HashMap::from([
            (ATTR_PK.to_string(), s(&pk)),
            (ATTR_SK.to_string(), s("lease")),
            (ATTR_OWNER.to_string(), s(owner)),
            (ATTR_UNTIL.to_string(), n(until)),
            (ATTR_TTL.to_string(), n(until / 1000 + 3600)),
        ]);
        self.write();
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #u < :now")
            .expression_attribute_names("#pk", ATTR_PK)
            .expression_attribute_names("#u", ATTR_UNTIL)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Lease { won: true, until }),
            Err(e) => {
                let err = map_err("PutItem(lease)", e, CONFLICT_CODES);
                if err.kind != ErrorKind::Conflict {
                    return Err(err);
                }
                let cur = self.get_strong("GetItem(lease)", key_of(&pk, "lease")).await?;
                let holder = cur.as_ref().and_then(|i| get_s(i, ATTR_OWNER));
                let held_until = cur.as_ref().map(|i| get_n(i, ATTR_UNTIL)).unwrap_or(until);
                // The holder asking again (it dropped its memory) still holds it.
                Ok(Lease { won: holder.as_deref() == Some(owner), until: held_until })
            }
        }
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        let pk = self.lease_pk(key);
        self.write();
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s("lease"))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", ATTR_OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_err("DeleteItem(lease)", e, CONFLICT_CODES);
                // Another owner's lease, or none: nothing of ours to end.
                if err.kind == ErrorKind::Conflict {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn request_counts(&self) -> (u64, u64) {
        (self.reads.load(Ordering::Relaxed), self.writes.load(Ordering::Relaxed))
    }

    async fn read_events(&self, seqs: &[u64]) -> Result<Vec<(u64, FeedRecord)>> {
        let mut unique = seqs.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let key = |seq: u64| {
            HashMap::from([(ATTR_PK.to_string(), s(&feed_pk(seq, 0))), (ATTR_SK.to_string(), s(&feed_sk(seq)))])
        };
        let items = try_join_all(
            unique.chunks(BATCH_GET_MAX).map(|chunk| self.batch_get(chunk.iter().map(|s| key(*s)).collect())),
        )
        .await?;
        let mut out: Vec<(u64, FeedRecord)> = items
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let seq = get_s(&item, ATTR_SK).and_then(|v| v.parse::<u64>().ok())?;
                Some((seq, event_of(&item, &self.ns)?))
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }

    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>> {
        let mut unique: Vec<&String> = tags.iter().collect();
        unique.sort();
        unique.dedup();
        let items = try_join_all(
            unique.chunks(BATCH_GET_MAX).map(|chunk| self.batch_get(chunk.iter().map(|t| self.state_key(t)).collect())),
        )
        .await?;
        // By partition key: a long tag's key is its hash, which does not give the tag back.
        let mut found: HashMap<String, TagState> = HashMap::new();
        for item in items.into_iter().flatten() {
            if let Some(pk) = get_s(&item, ATTR_PK) {
                found.insert(pk, state_of(&item));
            }
        }
        Ok(tags.iter().map(|t| (t.clone(), found.get(&self.state_pk(t)).copied().unwrap_or_default())).collect())
    }

    async fn put_index(&self, rows: &[IndexRow], expires_at_s: i64) -> Result<()> {
        // One request per (pk, sk): DynamoDB rejects duplicates inside a batch.
        let mut unique: BTreeMap<(String, String), &IndexRow> = BTreeMap::new();
        for r in rows {
            unique.insert((self.index_pk(&r.tag), index_sk(&r.key)), r);
        }
        let mut requests = Vec::with_capacity(unique.len());
        for ((pk, sk), r) in unique {
            let mut item = HashMap::from([
                (ATTR_PK.to_string(), s(&pk)),
                (ATTR_SK.to_string(), s(&sk)),
                (ATTR_KEY.to_string(), s(&r.key)),
                (ATTR_TTL.to_string(), n(expires_at_s)),
            ]);
            if let Some(p) = &r.path {
                item.insert(ATTR_PATH.to_string(), s(p));
            }
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| Error::invalid(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let mut chunks = Vec::new();
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_WRITE_MAX));
            chunks.push(std::mem::replace(&mut requests, rest));
        }
        try_join_all(chunks.into_iter().map(|c| self.batch_write(c))).await?;
        Ok(())
    }

    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>> {
        let per_tag = try_join_all(tags.iter().map(|tag| async move {
            let items = self.query_all(self.index_pk(tag), None).await?;
            Ok::<_, Error>(
                items
                    .iter()
                    .filter_map(|item| {
                        Some(IndexRow { tag: tag.clone(), key: get_s(item, ATTR_KEY)?, path: get_s(item, ATTR_PATH) })
                    })
                    .collect::<Vec<_>>(),
            )
        }))
        .await?;
        Ok(per_tag.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_shows_the_create_table_command() {
        let readme = include_str!("../../../docs/deployment.md");
        assert!(
            readme.contains(&super::create_table_command("my-site-cache")),
            "docs/deployment.md's create-table block is out of step"
        );
    }
}
