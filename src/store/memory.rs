//! In-memory `BlobStore` for unit tests and the `memory` backend.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::BlobStore;
use crate::error::Result;

#[derive(Default)]
pub struct MemoryBlobStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.objects.lock().get(key).cloned())
    }

    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        let mut objects = self.objects.lock();
        if if_absent && objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), body);
        Ok(true)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let mut objects = self.objects.lock();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .objects
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run(&super::MemoryBlobStore::default(), "t").await;
    }
}
