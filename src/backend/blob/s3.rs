//! `BlobStore` on S3 (or any S3 protocol server). One object per entry; conditional creates use
//! `If-None-Match: *`, writes conditional on the version read `If-Match` with its ETag.
//! Path-style addressing when an endpoint is configured (local servers).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::BlobStore;
use crate::backend::aws::map_err;
use crate::error::{Error, ErrorKind, Result};

pub struct S3BlobStore {
    client: Client,
    bucket: String,
    /// Objects larger than this are refused before their body is read (`Content-Length`), and a
    /// body that turns out larger is abandoned there: a foreign 300 MB object costs nothing.
    max_object_bytes: usize,
}

/// S3 answers a lost `If-None-Match` with 412 PreconditionFailed, or 409 when another
/// conditional write to the key is in flight.
const CONFLICT_CODES: &[&str] = &["PreconditionFailed", "ConditionalRequestConflict"];

/// User metadata (`x-amz-meta-fleetcache-fresh`) holding an object's freshness stamp.
const STAMP_META: &str = "fleetcache-fresh";

impl S3BlobStore {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: String, endpoint: Option<&str>, path_style: bool) -> Self {
        let mut b = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .interceptor(crate::backend::breaker::Answered);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        S3BlobStore { client: Client::from_conf(b.build()), bucket, max_object_bytes: usize::MAX }
    }

    /// Refuses objects larger than `bytes` (`get` reads at most that much).
    pub fn with_max_object_bytes(mut self, bytes: usize) -> Self {
        self.max_object_bytes = bytes;
        self
    }

    /// Reads an object, refusing it by `Content-Length` past `max_object_bytes` and at its first
    /// bytes when they are not `magic`; the body is not read further in either case.
    async fn read(&self, key: &str, magic: &[u8]) -> Result<Option<(Bytes, Option<String>, Option<String>)>> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(mut out) => {
                let etag = out.e_tag().map(str::to_string);
                let stamp = out.metadata().and_then(|m| m.get(STAMP_META)).cloned();
                let max = self.max_object_bytes;
                let too_large = |n: u64| {
                    Error::new(
                        ErrorKind::TooLarge,
                        format!("GetObject {key}: object of {n} bytes exceeds the limit ({max} bytes)"),
                    )
                };
                let declared = out.content_length().unwrap_or(0).max(0) as u64;
                if declared > max as u64 {
                    return Err(too_large(declared));
                }
                let mut buf = bytes::BytesMut::with_capacity(declared as usize);
                while let Some(chunk) = out.body.next().await {
                    let chunk =
                        chunk.map_err(|e| Error::backend(format!("GetObject {key}: reading body: {e}"), true))?;
                    if buf.len() + chunk.len() > max {
                        return Err(too_large((buf.len() + chunk.len()) as u64));
                    }
                    buf.extend_from_slice(&chunk);
                    // Not one of ours: stop reading at the first bytes.
                    let head = buf.len().min(magic.len());
                    if buf[..head] != magic[..head] {
                        return Err(Error::corrupt(format!("GetObject {key}: not a fleetcache object")));
                    }
                }
                Ok(Some((buf.freeze(), etag, stamp)))
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
        Ok(self.read(key, &[]).await?.map(|(b, _, _)| b))
    }

    async fn get_prefixed(&self, key: &str, magic: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.read(key, magic).await?.map(|(b, _, _)| b))
    }

    async fn get_stamped(&self, key: &str, magic: &[u8]) -> Result<Option<(Bytes, Option<String>)>> {
        Ok(self.read(key, magic).await?.map(|(b, _, stamp)| (b, stamp)))
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, String, Option<String>)>> {
        match self.read(key, &[]).await? {
            Some((b, Some(etag), stamp)) => Ok(Some((b, etag, stamp))),
            Some((_, None, _)) => Err(Error::backend(format!("GetObject {key}: no ETag in the answer"), false)),
            None => Ok(None),
        }
    }

    async fn stamp(&self, key: &str, stamp: &str) -> Result<bool> {
        let source = format!("{}/{}", self.bucket, crate::keys::encode_component(key));
        let res = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(source)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .metadata(STAMP_META, stamp)
            .content_type("application/octet-stream")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => {
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                    || e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchKey")
                {
                    return Ok(false);
                }
                Err(map_err("CopyObject", e, CONFLICT_CODES))
            }
        }
    }

    async fn put_if(&self, key: &str, body: Bytes, expected: Option<&str>) -> Result<bool> {
        let req = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body));
        let req = match expected {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                // An `If-Match` on an object deleted meanwhile answers 404.
                if expected.is_some() && e.raw_response().is_some_and(|r| r.status().as_u16() == 404) {
                    return Ok(false);
                }
                match map_err("PutObject", e, CONFLICT_CODES) {
                    err if err.kind == ErrorKind::Conflict => Ok(false),
                    err => Err(err),
                }
            }
        }
    }

    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool> {
        if if_absent {
            return self.put_if(key, body, None).await;
        }
        let req = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body));
        req.send().await.map(|_| true).map_err(|e| map_err("PutObject", e, CONFLICT_CODES))
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
