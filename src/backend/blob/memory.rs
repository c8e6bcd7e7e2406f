//! In-memory `BlobStore` for unit tests and the `memory` backend.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::BlobStore;
use crate::error::Result;

#[derive(Default)]
pub struct MemoryBlobStore {
    /// Each object with its version (a number no other write reused).
    objects: Mutex<BTreeMap<String, (Bytes, u64)>>,
    writes: std::sync::atomic::AtomicU64,
    /// Freshness stamps (dropped by the next write of the object).
    stamps: Mutex<BTreeMap<String, String>>,
}

impl MemoryBlobStore {
    fn store(&self, objects: &mut BTreeMap<String, (Bytes, u64)>, key: &str, body: Bytes) {
        let v = self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        objects.insert(key.to_string(), (body, v));
        self.stamps.lock().remove(key);
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.objects.lock().get(key).map(|(b, _)| b.clone()))
    }

    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        if if_absent {
            return self.put_if(key, body, None).await;
        }
        self.store(&mut self.objects.lock(), key, body);
        Ok(true)
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, String, Option<String>)>> {
        let objects = self.objects.lock();
        Ok(objects.get(key).map(|(b, v)| (b.clone(), v.to_string(), self.stamps.lock().get(key).cloned())))
    }

    async fn get_stamped(&self, key: &str, magic: &[u8]) -> Result<Option<(Bytes, Option<String>)>> {
        let body = self.get_prefixed(key, magic).await?;
        Ok(body.map(|b| (b, self.stamps.lock().get(key).cloned())))
    }

    async fn stamp(&self, key: &str, stamp: &str) -> Result<bool> {
        let objects = self.objects.lock();
        if !objects.contains_key(key) {
            return Ok(false);
        }
        self.stamps.lock().insert(key.to_string(), stamp.to_string());
        Ok(true)
    }

    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> Result<bool> {
        let mut objects = self.objects.lock();
        let current = objects.get(key).map(|(_, v)| v.to_string());
        if current.as_deref() != expected {
            return Ok(false);
        }
        self.store(&mut objects, key, body);
        Ok(true)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let mut objects = self.objects.lock();
        for k in keys {
            objects.remove(k);
            self.stamps.lock().remove(k);
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
