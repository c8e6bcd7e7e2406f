//! The per-instance in-memory tier: decoded entries in a `DashMap`, bounded in bytes.
//!
//! Keeps true: `bytes()` equals the sum of the weights of the entries present (updated under
//! the shard lock of every insert/replace/remove); an entry heavier than the whole budget is never
//! admitted; after an insert the total is at most the budget. Eviction drops the least recently
//! used entries (by a global access tick) down to 90 % of the budget, so its O(n log n) sort is
//! paid once per many inserts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::entry::Entry;

/// Generations are unique per process, so a generation names one immutable entry for good.
static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

pub struct Slot {
    pub entry: Arc<Entry>,
    /// Unique id of this inserted copy; the JS face caches decoded strings under it.
    pub gen: u64,
    weight: usize,
    last_access: AtomicU64,
}

pub struct L1 {
    map: DashMap<String, Slot>,
    bytes: AtomicUsize,
    budget: usize,
    tick: AtomicU64,
    evictions: AtomicU64,
    evict_lock: parking_lot::Mutex<()>,
}

impl L1 {
    pub fn new(budget: usize) -> Self {
        L1 {
            map: DashMap::new(),
            bytes: AtomicUsize::new(0),
            budget,
            tick: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            evict_lock: parking_lot::Mutex::new(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.get_with_gen(key).map(|(e, _)| e)
    }

    /// The entry and the generation of this copy.
    pub fn get_with_gen(&self, key: &str) -> Option<(Arc<Entry>, u64)> {
        let slot = self.map.get(key)?;
        slot.last_access.store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some((slot.entry.clone(), slot.gen))
    }

    /// Inserts or replaces. Returns false when the entry is too heavy to keep.
    pub fn insert(&self, entry: Arc<Entry>) -> bool {
        let weight = entry.weight();
        if weight > self.budget {
            self.remove(&entry.key);
            return false;
        }
        let slot = Slot {
            entry: entry.clone(),
            gen: NEXT_GEN.fetch_add(1, Ordering::Relaxed),
            weight,
            last_access: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
        };
        match self.map.insert(entry.key.clone(), slot) {
            Some(old) => {
                self.bytes.fetch_add(weight, Ordering::SeqCst);
                self.bytes.fetch_sub(old.weight, Ordering::SeqCst);
            }
            None => {
                self.bytes.fetch_add(weight, Ordering::SeqCst);
            }
        }
        if self.bytes.load(Ordering::SeqCst) > self.budget {
            self.evict();
        }
        true
    }

    /// Inserts only if the present copy (if any) is not newer. Used when a load from the backend
    /// races a local `set`.
    pub fn insert_if_newer(&self, entry: Arc<Entry>) -> bool {
        if let Some(cur) = self.map.get(&entry.key) {
            if cur.entry.last_modified > entry.last_modified {
                return false;
            }
        }
        self.insert(entry)
    }

    pub fn remove(&self, key: &str) -> bool {
        self.remove_if(key, |_| true)
    }

    /// Removes the copy of `key` if `pred` holds for it.
    pub fn remove_if(&self, key: &str, pred: impl Fn(&Entry) -> bool) -> bool {
        if let Some((_, old)) = self.map.remove_if(key, |_, slot| pred(&slot.entry)) {
            self.bytes.fetch_sub(old.weight, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    pub fn clear(&self) {
        self.map.retain(|_, slot| {
            self.bytes.fetch_sub(slot.weight, Ordering::SeqCst);
            false
        });
    }

    fn evict(&self) {
        let Some(_guard) = self.evict_lock.try_lock() else {
            return;
        };
        let target = self.budget / 10 * 9;
        let mut by_age: Vec<(u64, String)> =
            self.map.iter().map(|r| (r.last_access.load(Ordering::Relaxed), r.key().clone())).collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in by_age {
            if self.bytes.load(Ordering::SeqCst) <= target {
                break;
            }
            if self.remove(&key) {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The key held here that a hashed feed event key stands for (`tags::event_key`): only keys
    /// too long to travel as they are are hashed, so only those are looked at.
    pub fn find_hashed(&self, hash: &str) -> Option<String> {
        self.map
            .iter()
            .map(|r| r.key().clone())
            .filter(|k| {
                k.len() > crate::backend::tags::MAX_EVENT_KEY || k.starts_with(crate::backend::tags::HASHED_KEY)
            })
            .find(|k| crate::keys::sha256_hex(k) == hash)
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Value;

    fn entry(key: &str, size: usize) -> Arc<Entry> {
        Arc::new(Entry {
            key: key.into(),
            last_modified: 1,
            cache_control: None,
            tags: vec![],
            write_id: 0,
            rendered_at: 0,
            value: Some(Value::Redirect { props_json: "x".repeat(size) }),
        })
    }

    #[test]
    fn stays_within_budget_and_counts_exactly() {
        let l1 = L1::new(100_000);
        for i in 0..100 {
            l1.insert(entry(&format!("/k{i}"), 5_000));
            assert!(l1.bytes() <= 100_000);
        }
        let sum: usize = l1.map.iter().map(|s| s.weight).sum();
        assert_eq!(sum, l1.bytes());
        assert!(l1.len() < 20 && l1.len() > 10, "{}", l1.len());
        assert!(l1.evictions() > 0);
    }

    #[test]
    fn replace_and_remove_keep_the_count() {
        let l1 = L1::new(1 << 20);
        l1.insert(entry("/a", 1000));
        let w1 = l1.bytes();
        l1.insert(entry("/a", 5000));
        assert_eq!(l1.bytes(), w1 + 4000);
        l1.remove("/a");
        assert_eq!(l1.bytes(), 0);
        l1.insert(entry("/b", 10));
        l1.clear();
        assert_eq!((l1.bytes(), l1.len()), (0, 0));
    }

    #[test]
    fn oversized_entry_is_not_admitted_and_drops_the_old_copy() {
        let l1 = L1::new(10_000);
        l1.insert(entry("/a", 100));
        assert!(!l1.insert(entry("/a", 20_000)));
        assert!(l1.get("/a").is_none());
        assert_eq!(l1.bytes(), 0);
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let l1 = L1::new(50_000);
        for i in 0..8 {
            l1.insert(entry(&format!("/k{i}"), 5_000));
        }
        l1.get("/k0"); // touch the oldest
        for i in 8..12 {
            l1.insert(entry(&format!("/k{i}"), 5_000));
        }
        assert!(l1.get("/k0").is_some(), "recently used entry survived");
        assert!(l1.get("/k1").is_none(), "least recently used entry evicted");
    }
}
