//! The backends: S3 (`blob/`) and DynamoDB (`tags/`), each with an in-memory twin and a
//! conformance suite, the AWS clients and the one mapping of their errors (`aws.rs`), and the
//! circuit breakers in front of them (`breaker.rs`).
//!
//! Here, store construction: the S3 and DynamoDB stores a [`Config`] names (or the in-memory
//! ones), which a core opens on first use; and creating the bucket and table where they are
//! missing (local servers, tests, the demo). `ops/doctor.rs` and the integration tests build their
//! clients here too.

pub mod aws;
pub mod blob;
pub mod breaker;
pub mod tags;

use std::sync::Arc;

use crate::backend::blob::{memory::MemoryBlobStore, s3::S3BlobStore, BlobStore};
use crate::backend::breaker::{Breaker, GuardedBlobs, GuardedTags};
use crate::backend::tags::{dynamodb::DynamoTagStore, memory::MemoryTagStore, TagStore};
use crate::config::{Backend, Config};
use crate::error::{ErrorKind, Result};

/// The two stores a core reads and writes, and the breakers in front of them (AWS only).
pub struct Backends {
    pub blobs: Arc<dyn BlobStore>,
    pub tags: Arc<dyn TagStore>,
    pub breakers: Option<Breakers>,
}

pub struct Breakers {
    pub s3: Arc<Breaker>,
    pub dynamodb: Arc<Breaker>,
}

/// The S3 and DynamoDB stores `cfg` names (standard AWS configuration, explicit options win).
pub async fn aws_stores(cfg: &Config) -> (S3BlobStore, DynamoTagStore) {
    let sdk = crate::backend::aws::load_sdk_config(cfg).await;
    (
        S3BlobStore::new(&sdk, cfg.bucket.clone(), cfg.s3_endpoint.as_deref(), cfg.force_path_style)
            .with_max_object_bytes(crate::codec::max_stored_bytes(cfg.max_entry_bytes)),
        DynamoTagStore::new(&sdk, cfg.table.clone(), cfg.prefix.clone(), cfg.dynamodb_endpoint.as_deref()),
    )
}

/// The stores `cfg` names, with breakers in front of the AWS ones; `instance_id` names this core
/// in the feed copies it reads.
pub async fn open(cfg: &Config, instance_id: &str) -> Backends {
    match cfg.backend {
        Backend::Memory => Backends {
            blobs: Arc::new(MemoryBlobStore::default()),
            tags: Arc::new(MemoryTagStore::default()),
            breakers: None,
        },
        Backend::Aws => {
            let (s3, ddb) = aws_stores(cfg).await;
            let ddb = ddb.with_feed_copies(cfg.feed_copies, instance_id);
            let b = Breakers { s3: Arc::new(Breaker::new("S3")), dynamodb: Arc::new(Breaker::new("DynamoDB")) };
            Backends {
                blobs: Arc::new(GuardedBlobs { inner: Arc::new(s3), breaker: b.s3.clone() }),
                tags: Arc::new(GuardedTags { inner: Arc::new(ddb), breaker: b.dynamodb.clone() }),
                breakers: Some(b),
            }
        }
    }
}

/// Creates the bucket and table `cfg` names when missing (local servers, tests, the demo).
pub async fn ensure_resources(cfg: &Config) -> Result<()> {
    if cfg.backend == Backend::Memory {
        return Ok(());
    }
    let (s3, ddb) = aws_stores(cfg).await;
    if s3.client().head_bucket().bucket(&cfg.bucket).send().await.is_err() {
        if let Err(e) = s3.client().create_bucket().bucket(&cfg.bucket).send().await {
            let err = crate::backend::aws::map_err("CreateBucket", e, &["BucketAlreadyOwnedByYou"]);
            if err.kind != ErrorKind::Conflict {
                return Err(err);
            }
        }
    }
    ddb.ensure_table().await
}
