//! In-memory `TagStore` for unit tests and the `memory` backend.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{IndexRow, TagStore};
use crate::entry::TagState;
use crate::error::Result;

#[derive(Default)]
pub struct MemoryTagStore {
    states: Mutex<HashMap<String, TagState>>,
    index: Mutex<BTreeMap<(String, String), Option<String>>>,
}

#[async_trait]
impl TagStore for MemoryTagStore {
    async fn tag_states(&self, tags: &[String]) -> Result<Vec<(String, TagState)>> {
        let states = self.states.lock();
        Ok(tags
            .iter()
            .map(|t| (t.clone(), states.get(t).copied().unwrap_or_default()))
            .collect())
    }

    async fn revalidate(
        &self,
        tags: &[String],
        now: i64,
        expire_s: Option<f64>,
    ) -> Result<Vec<(String, TagState)>> {
        let mut states = self.states.lock();
        Ok(tags
            .iter()
            .map(|t| {
                let st = states.entry(t.clone()).or_default();
                st.apply(now, expire_s);
                (t.clone(), *st)
            })
            .collect())
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
                    .map(|((tag, key), path)| IndexRow {
                        tag: tag.clone(),
                        key: key.clone(),
                        path: path.clone(),
                    })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        super::super::conformance::run(std::sync::Arc::new(super::MemoryTagStore::default()), "t")
            .await;
    }
}
