//! `BlobStore` on S3 (or any S3 protocol server). One object per entry; conditional creates use
//! `If-None-Match: *`. Path-style addressing when an endpoint is configured (local servers).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::BlobStore;
use crate::aws::map_err;
use crate::error::{Error, ErrorKind, Result};

pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

/// S3 answers a lost `If-None-Match` with 412 PreconditionFailed, or 409 when another
/// conditional write to the key is in flight.
const CONFLICT_CODES: &[&str] = &["PreconditionFailed", "ConditionalRequestConflict"];

impl S3BlobStore {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: String, endpoint: Option<&str>, path_style: bool) -> Self {
        let mut b = aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        S3BlobStore { client: Client::from_conf(b.build()), bucket }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let data = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::backend(format!("GetObject {key}: reading body: {e}"), true))?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => {
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) {
                    return Ok(None);
                }
                Err(map_err("GetObject", e, CONFLICT_CODES))
            }
        }
    }

    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        let mut req = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body));
        if if_absent {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = map_err("PutObject", e, CONFLICT_CODES);
                if err.kind == ErrorKind::Conflict && if_absent {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::invalid(format!("DeleteObjects: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::invalid(format!("DeleteObjects: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| map_err("DeleteObjects", e, CONFLICT_CODES))?;
            if let Some(first) = out.errors().first() {
                return Err(Error::backend(
                    format!(
                        "DeleteObjects: {} failed, first: {:?} {:?}",
                        out.errors().len(),
                        first.key(),
                        first.code()
                    ),
                    true,
                ));
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| map_err("ListObjectsV2", e, CONFLICT_CODES))?;
            out.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}
