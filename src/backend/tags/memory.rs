//! In-memory `TagStore` for unit tests and the `memory` backend.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{FeedEvent, FeedRecord, IndexRow, Lease, TagStore, Unit};
use crate::entry::TagState;
use crate::error::Result;

/// A group's members: id → (body, expires at, epoch seconds).
type Group = BTreeMap<String, (String, i64)>;

#[derive(Default)]
pub struct MemoryTagStore {
    states: Mutex<HashMap<String, TagState>>,
    index: Mutex<BTreeMap<(String, String), Option<String>>>,
    /// The feed: the counter, and the rows written (a reserved number not written is a hole).
    feed: Mutex<(u64, BTreeMap<u64, FeedRecord>)>,
    leases: Mutex<HashMap<String, (String, i64)>>,
    counters: Mutex<HashMap<String, u64>>,
    /// Groups: group → id → (body, expires at, epoch seconds).
    groups: Mutex<HashMap<String, Group>>,
}

#[async_trait]
impl TagStore for MemoryTagStore {
    async fn add_to_counter(&self, name: &str, n: u64, _expires_at_s: i64) -> Result<u64> {
        let mut c = self.counters.lock();
        let v = c.entry(name.to_string()).or_default();
        *v += n;
        Ok(*v)
    }

    async fn put_member(&self, group: &str, id: &str, body: &str, expires_at_s: i64) -> Result<()> {
        self.groups
            .lock()
            .entry(group.to_string())
            .or_default()
            .insert(id.to_string(), (body.to_string(), expires_at_s));
        Ok(())
    }

    async fn members(&self, group: &str, now_s: i64) -> Result<Vec<(String, String)>> {
        let groups = self.groups.lock();
        let Some(g) = groups.get(group) else { return Ok(Vec::new()) };
        Ok(g.iter().filter(|(_, (_, exp))| *exp > now_s).map(|(id, (b, _))| (id.clone(), b.clone())).collect())
    }

    async fn reserve_seq(&self) -> Result<u64> {
        let mut feed = self.feed.lock();
        feed.0 += 1;
        Ok(feed.0)
    }

    async fn announce_at(&self, seq: u64, record: &FeedRecord, now: i64) -> Result<()> {
        self.feed.lock().1.entry(seq).or_insert_with(|| FeedRecord { at: now, ..record.clone() });
        Ok(())
    }

    async fn revalidate_at(&self, unit: Unit<'_>) -> Result<Vec<(String, TagState)>> {
        let Unit { event, tags, now, expire_s, ack } = unit;
        let mut feed = self.feed.lock();
        let mut states = self.states.lock();
        let landed = event.is_some_and(|(seq, _)| feed.1.contains_key(&seq));
        let out: Vec<(String, TagState)> = tags
            .iter()
            .map(|t| {
                let st = states.entry(t.clone()).or_default();
                if !landed {
                    st.apply(now, expire_s);
                }
                (t.clone(), *st)
            })
            .collect();
        if let (Some((seq, origin)), false) = (event, landed) {
            let mut rec = FeedRecord { ack, ..FeedRecord::new(origin, FeedEvent::Tags { states: out.clone() }) };
            rec.at = now;
            feed.1.insert(seq, rec);
        }
        Ok(out)
    }

    async fn feed_head(&self) -> Result<u64> {
        Ok(self.feed.lock().0)
    }

    async fn read_feed(&self, from: u64, to: u64) -> Result<Vec<(u64, FeedRecord)>> {
        let feed = self.feed.lock();
        if from > to {
            return Ok(Vec::new());
        }
        Ok(feed.1.range(from..=to).map(|(i, r)| (*i, r.clone())).collect())
    }

    async fn try_lease(&self, key: &str, owner: &str, now: i64, until: i64) -> Result<Lease> {
        let mut leases = self.leases.lock();
        match leases.get(key) {
            Some((holder, held_until)) if *held_until >= now => Ok(Lease { won: holder == owner, until: *held_until }),
            _ => {
                leases.insert(key.to_string(), (owner.to_string(), until));
                Ok(Lease { won: true, until })
            }
        }
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        let mut leases = self.leases.lock();
        if leases.get(key).is_some_and(|(holder, _)| holder == owner) {
            leases.remove(key);
        }
        Ok(())
    }

    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>> {
        let states = self.states.lock();
        Ok(tags.iter().map(|t| (t.clone(), states.get(t).copied().unwrap_or_default())).collect())
    }

    async fn put_index(&self, rows: &[IndexRow], _expires_at_s: i64) -> Result<()> {
        let mut index = self.index.lock();
        for r in rows {
            index.insert((r.tag.clone(), r.key.clone()), r.path.clone());
        }
        Ok(())
    }

    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>> {
        let index = self.index.lock();
        Ok(tags
            .iter()
            .flat_map(|t| {
                index
                    .range((t.clone(), String::new())..)
                    .take_while(move |((tag, _), _)| tag == t)
                    .map(|((tag, key), path)| IndexRow { tag: tag.clone(), key: key.clone(), path: path.clone() })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        super::super::conformance::run(std::sync::Arc::new(super::MemoryTagStore::default()), "t").await;
    }
}
