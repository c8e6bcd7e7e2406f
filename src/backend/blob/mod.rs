//! `BlobStore`: where encoded entries live (one object per entry). S3 in production, memory for
//! fast tests; both must pass [`conformance`].

pub mod memory;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// `Ok(None)` when the object does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// `get`, refusing (`Corrupt`) an object that does not start with `magic`, as early as the
    /// store can tell (S3: at the first bytes of the body, which is then not read further).
    async fn get_prefixed(&self, key: &str, magic: &[u8]) -> Result<Option<Bytes>> {
        match self.get(key).await? {
            Some(b) if !b.starts_with(magic) => {
                Err(crate::error::Error::corrupt(format!("{key}: not a fleetcache object")))
            }
            other => Ok(other),
        }
    }
    /// `get_prefixed` with the object's freshness stamp (see [`BlobStore::stamp`]), if it has one.
    async fn get_stamped(&self, key: &str, magic: &[u8]) -> Result<Option<(Bytes, Option<String>)>> {
        Ok(self.get_prefixed(key, magic).await?.map(|b| (b, None)))
    }
    /// Gives the object at `key` the freshness stamp `stamp` without writing its body again (S3:
    /// a copy onto itself that replaces its metadata; the ETag stays). `Ok(false)` when there is
    /// no object, or the store cannot (the caller writes the body instead).
    async fn stamp(&self, _key: &str, _stamp: &str) -> Result<bool> {
        Ok(false)
    }
    /// Writes `body` at `key`. With `if_absent`, an existing object is left alone and the call
    /// returns `Ok(false)` (S3 `If-None-Match: *`).
    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool>;
    /// The object at `key` with its version tag (S3: its ETag), for a write conditional on it,
    /// and its freshness stamp.
    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, String, Option<String>)>>;
    /// Writes `body` at `key` only if the object there is still the one tagged `expected`, or
    /// with `None` still absent; `Ok(false)` when it is not (S3 `If-Match` / `If-None-Match: *`).
    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> Result<bool>;
    /// Checks the store answers (a breaker's probe; stores without a breaker have nothing to do).
    async fn probe(&self) -> Result<()> {
        Ok(())
    }
    /// Deletes these objects; absent ones are not an error.
    async fn delete(&self, keys: &[String]) -> Result<()>;
    /// Every key under `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}

/// The behaviour every `BlobStore` must have. Run by `cargo test` against memory, and against an
/// S3 protocol server by `tests/backends.rs` (feature `conformance`); never in the shipped addon.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance {
    use super::*;

    pub async fn run(store: &dyn BlobStore, prefix: &str) {
        let k = |s: &str| format!("{prefix}/{s}");
        assert_eq!(store.get(&k("missing")).await.unwrap(), None);

        let body = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<_>>());
        assert!(store.put(&k("a/1"), body.clone(), false).await.unwrap());
        assert_eq!(store.get(&k("a/1")).await.unwrap(), Some(body.clone()));

        // overwrite
        assert!(store.put(&k("a/1"), Bytes::from_static(b"v2"), false).await.unwrap());
        assert_eq!(store.get(&k("a/1")).await.unwrap().as_deref(), Some(&b"v2"[..]));

        // conditional create
        assert!(!store.put(&k("a/1"), Bytes::from_static(b"v3"), true).await.unwrap());
        assert_eq!(store.get(&k("a/1")).await.unwrap().as_deref(), Some(&b"v2"[..]));
        assert!(store.put(&k("a/2"), Bytes::from_static(b"new"), true).await.unwrap());

        // writes conditional on the version read
        let (read, v2, _) = store.get_versioned(&k("a/1")).await.unwrap().unwrap();
        assert_eq!(read.as_ref(), b"v2");
        assert!(store.put_if(&k("a/1"), Bytes::from_static(b"v4"), Some(&v2)).await.unwrap());
        assert!(!store.put_if(&k("a/1"), Bytes::from_static(b"v5"), Some(&v2)).await.unwrap(), "not the version read");
        assert!(!store.put_if(&k("a/1"), Bytes::from_static(b"v5"), None).await.unwrap(), "not absent");
        let (read, v4, _) = store.get_versioned(&k("a/1")).await.unwrap().unwrap();
        assert_eq!(read.as_ref(), b"v4");
        assert_ne!(v4, v2);
        assert!(store.put(&k("a/1"), Bytes::from_static(b"v2"), false).await.unwrap());
        assert_eq!(store.get_versioned(&k("a/3")).await.unwrap(), None);
        assert!(store.put_if(&k("a/3"), Bytes::from_static(b"c"), None).await.unwrap());
        store.delete(&[k("a/3")]).await.unwrap();

        // Freshness stamps: kept with the body (and its version), gone with the next write.
        assert!(!store.stamp(&k("a/missing"), "1:2").await.unwrap(), "no object, no stamp");
        assert_eq!(store.get_stamped(&k("a/1"), b"v").await.unwrap(), Some((Bytes::from_static(b"v2"), None)));
        let (_, before, _) = store.get_versioned(&k("a/1")).await.unwrap().unwrap();
        assert!(store.stamp(&k("a/1"), "1700000000000:00000000000000ab").await.unwrap());
        assert_eq!(
            store.get_stamped(&k("a/1"), b"v").await.unwrap(),
            Some((Bytes::from_static(b"v2"), Some("1700000000000:00000000000000ab".to_string())))
        );
        let (body, after, stamp) = store.get_versioned(&k("a/1")).await.unwrap().unwrap();
        assert_eq!((body.as_ref(), stamp.as_deref()), (&b"v2"[..], Some("1700000000000:00000000000000ab")));
        assert_eq!(after, before, "a stamp leaves the version: a write conditional on it still lands");
        assert!(store.stamp(&k("a/1"), "1700000000001:00000000000000ab").await.unwrap(), "stamped again");
        assert!(store.put(&k("a/1"), Bytes::from_static(b"v2"), false).await.unwrap());
        assert_eq!(store.get_stamped(&k("a/1"), b"v").await.unwrap(), Some((Bytes::from_static(b"v2"), None)));

        // odd but valid keys
        let odd = k("r/k%2F%24%5B%5D~_-x");
        assert!(store.put(&odd, Bytes::from_static(b"odd"), false).await.unwrap());
        assert_eq!(store.get(&odd).await.unwrap().as_deref(), Some(&b"odd"[..]));

        let mut listed = store.list(&k("a/")).await.unwrap();
        listed.sort();
        assert_eq!(listed, vec![k("a/1"), k("a/2")]);

        store.delete(&[k("a/1"), k("a/2"), k("never")]).await.unwrap();
        assert_eq!(store.get(&k("a/1")).await.unwrap(), None);
        assert!(store.list(&k("a/")).await.unwrap().is_empty());
        store.delete(&[odd]).await.unwrap();
    }
}
