//! The local tag clock: what this process knows of the fleet's tag states.
//!
//! A tag is *known* once its state was read from the `TagStore` (first load of an entry that
//! carries it), written by a local `revalidateTag`, or carried by a feed event (which holds the
//! tag's whole state after that revalidation). Only entries whose tags are all known are
//! served on the synchronous hit path; an unknown tag sends the `get` down the async path, which
//! reads the states first. States only grow (see [`TagState::join`]), so merging a remote read
//! with a concurrent local write never loses either.

use dashmap::DashMap;

use crate::entry::TagState;

/// Above this many known tags the clock forgets everything and relearns on demand.
pub const MAX_KNOWN_TAGS: usize = 200_000;

#[derive(Default)]
pub struct TagClock {
    known: DashMap<String, TagState>,
}

impl TagClock {
    pub fn get(&self, tag: &str) -> Option<TagState> {
        self.known.get(tag).map(|s| *s)
    }

    pub fn merge(&self, tag: &str, state: TagState) {
        if self.known.len() >= MAX_KNOWN_TAGS && !self.known.contains_key(tag) {
            self.known.clear();
        }
        self.known.entry(tag.to_string()).and_modify(|s| *s = s.join(&state)).or_insert(state);
    }

    pub fn apply(&self, tag: &str, now: i64, expire_s: Option<f64>) -> TagState {
        let mut st = self.get(tag).unwrap_or_default();
        st.apply(now, expire_s);
        self.merge(tag, st);
        self.get(tag).unwrap_or(st)
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
    pub fn clear(&self) {
        self.known.clear()
    }
}
