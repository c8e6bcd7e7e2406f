//! `fleetcache doctor`: checks that the configured bucket and table exist with the right shape
//! and that the credentials in force may perform every request the cache makes, by making each
//! one on a scratch key (`<prefix>/_doctor/…` in S3, `pk = "D#doctor"` in DynamoDB) and
//! cleaning up after itself. Each finding names what is wrong and how to fix it.
//!
//! The requests probed are exactly those the cache uses (see `examples/aws/iam-policy.json`):
//! S3 `GetObject`, `PutObject` (also conditional, for `seed`), `ListBucket` (`prune`),
//! `DeleteObject` (`prune`); DynamoDB `DescribeTable`, `GetItem`, `PutItem`, `UpdateItem`,
//! `Query`, `BatchGetItem`, `BatchWriteItem`.

use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeyType, KeysAndAttributes, ScalarAttributeType, WriteRequest,
};
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::backend::tags::dynamodb::{ATTR_PK, ATTR_SK, ATTR_TTL};
use crate::config::{Backend, Config};

/// One finding of `doctor`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object, js_name = "DoctorCheck"))]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Works, but probably not as meant (`ok` stays true).
    pub warning: bool,
    pub detail: String,
    /// How to fix it (absent when `ok`).
    pub fix: Option<String>,
}

fn ok(name: &str, detail: impl Into<String>) -> Check {
    Check { name: name.into(), ok: true, warning: false, detail: detail.into(), fix: None }
}

/// The check of a probe that failed: `missing` when what it probes does not exist; else the
/// probe (`what`) was denied (naming the IAM action and resource to allow) or did not get through.
fn probe_failed(f: Failure, missing: Check, what: &str, (action, arn): (&str, &str), service: &str) -> Check {
    let name = missing.name.clone();
    match f {
        Failure::NotFound(_) => missing,
        Failure::Denied(t) => bad(&name, format!("{what} denied: {t}"), denied_fix(action, arn)),
        Failure::Other(t) => bad(
            &name,
            format!("{what} failed: {t}"),
            format!("check the region, endpoint and network path to {service}"),
        ),
    }
}

fn bad(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name: name.into(), ok: false, warning: false, detail: detail.into(), fix: Some(fix.into()) }
}

/// How a request failed, as far as a fix is concerned.
enum Failure {
    Denied(String),
    NotFound(String),
    Other(String),
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &SdkError<E, Response>) -> Failure {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match err {
        SdkError::ServiceError(se) => {
            (se.err().code().unwrap_or("").to_string(), se.err().message().unwrap_or("").to_string())
        }
        other => (String::new(), crate::backend::aws::summarize(other)),
    };
    let text = if code.is_empty() { message.clone() } else { format!("{code}: {message}") };
    let text = if text.trim().is_empty() {
        let st = status.unwrap_or(0);
        format!("HTTP {st}{}", crate::backend::aws::status_hint(st))
    } else {
        text
    };
    if status == Some(403) || code.starts_with("AccessDenied") || code == "UnauthorizedOperation" {
        Failure::Denied(text)
    } else if status == Some(404) || code == "ResourceNotFoundException" || code == "NoSuchBucket" {
        Failure::NotFound(text)
    } else {
        Failure::Other(text)
    }
}

const POLICY: &str = "examples/aws/iam-policy.json";

fn denied_fix(action: &str, resource: &str) -> String {
    format!("allow `{action}` on {resource} for the role the app runs as (the least-privilege policy is in {POLICY})")
}

struct Probe<'a> {
    checks: &'a mut Vec<Check>,
}

impl Probe<'_> {
    /// Records the outcome of one permission probe; returns whether it succeeded.
    fn record<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
        &mut self,
        action: &str,
        resource: &str,
        r: Result<T, SdkError<E, Response>>,
    ) -> bool {
        match r {
            Ok(_) => {
                self.checks.push(ok(action, format!("allowed on {resource}")));
                true
            }
            Err(e) => {
                let check = match classify(&e) {
                    Failure::Denied(t) => {
                        bad(action, format!("denied on {resource}: {t}"), denied_fix(action, resource))
                    }
                    Failure::NotFound(t) | Failure::Other(t) => bad(
                        action,
                        format!("failed on {resource}: {t}"),
                        "check the endpoint, region and network path to AWS, then run doctor again",
                    ),
                };
                self.checks.push(check);
                false
            }
        }
    }
}

/// `aws s3api create-bucket` for `region`: outside us-east-1 S3 needs the location constraint.
pub fn create_bucket_command(bucket: &str, region: &str) -> String {
    if region.is_empty() || region == "us-east-1" {
        format!("aws s3api create-bucket --bucket {bucket} --region us-east-1")
    } else {
        format!(
            "aws s3api create-bucket --bucket {bucket} --region {region} --create-bucket-configuration LocationConstraint={region}"
        )
    }
}

fn create_table_fix(table: &str, region: &str) -> String {
    let cmd = crate::backend::tags::dynamodb::create_table_command(table).replace(" \\\n  ", " ").replace('\n', " && ");
    format!("create it in {region} (AWS_REGION={region}): {cmd} (or deploy examples/aws/cloudformation.yaml)")
}

/// Runs every check against the stores `cfg` names.
pub async fn run(cfg: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    if cfg.backend == Backend::Memory {
        checks.push(ok("backend", "memory: nothing to check (set FLEETCACHE_BACKEND=aws to use S3 and DynamoDB)"));
        return checks;
    }
    checks.push(ok("config", format!("bucket `{}`, table `{}`, prefix `{}`", cfg.bucket, cfg.table, cfg.prefix)));
    let (sdk, defaulted) = crate::backend::aws::load_sdk_config_reporting(cfg).await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    if defaulted {
        checks.push(Check {
            name: "region".into(),
            ok: true,
            warning: true,
            detail: format!("no region configured (option `region`, AWS_REGION, AWS_PROFILE): using {region}"),
            fix: Some("set AWS_REGION (or `region`) to the region of the bucket and table".into()),
        });
    }
    match sdk.credentials_provider() {
        None => {
            checks.push(bad(
                "credentials",
                "no AWS credentials provider is configured",
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role (ECS task role, IRSA, instance profile)",
            ));
            return checks;
        }
        Some(p) => match p.provide_credentials().await {
            Ok(c) => {
                let id = c.access_key_id();
                let shown = if id.len() > 8 { format!("{}…", &id[..8]) } else { id.to_string() };
                checks.push(ok("credentials", format!("found (access key {shown}), region {region}")));
            }
            Err(e) => {
                checks.push(bad(
                    "credentials",
                    format!("no usable AWS credentials: {}", crate::backend::aws::summarize(&e)),
                    "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role (ECS task role, IRSA, instance profile)",
                ));
                return checks;
            }
        },
    }
    let (s3, ddb) = crate::backend::aws_stores(cfg).await;
    let (s3, ddb) = (s3.client().clone(), ddb.client().clone());
    let bucket = &cfg.bucket;
    let table = &cfg.table;
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let objects_arn = format!("arn:aws:s3:::{bucket}/{}/*", cfg.prefix);
    let table_arn = format!("arn:aws:dynamodb:{region}:<account>:table/{table}");

    // Bucket: a one-key listing (needs only s3:ListBucket, as HeadBucket does on AWS).
    let bucket_ok = match s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{}/", cfg.prefix))
        .max_keys(1)
        .send()
        .await
    {
        Ok(_) => {
            checks.push(ok("bucket", format!("`{bucket}` exists and is reachable")));
            true
        }
        Err(e) => {
            let missing = bad(
                "bucket",
                format!("bucket `{bucket}` does not exist"),
                format!("create it: {} (or deploy examples/aws/cloudformation.yaml), or point FLEETCACHE_BUCKET at an existing bucket", create_bucket_command(bucket, &region)),
            );
            checks.push(probe_failed(
                classify(&e),
                missing,
                &format!("listing `{bucket}`"),
                ("s3:ListBucket", &bucket_arn),
                "S3",
            ));
            false
        }
    };

    // Table and its shape.
    let table_ok = match ddb.describe_table().table_name(table).send().await {
        Ok(out) => {
            let schema = out.table().map(|t| (t.key_schema().to_vec(), t.attribute_definitions().to_vec()));
            let (ks, defs) = schema.unwrap_or_default();
            let type_of =
                |name: &str| defs.iter().find(|d| d.attribute_name() == name).map(|d| d.attribute_type().clone());
            let has = |name: &str, kt: KeyType| ks.iter().any(|k| k.attribute_name() == name && *k.key_type() == kt);
            if has(ATTR_PK, KeyType::Hash)
                && has(ATTR_SK, KeyType::Range)
                && ks.len() == 2
                && type_of(ATTR_PK) == Some(ScalarAttributeType::S)
                && type_of(ATTR_SK) == Some(ScalarAttributeType::S)
            {
                checks.push(ok("table", format!("`{table}` exists with keys pk (S, hash) + sk (S, range)")));
                true
            } else {
                checks.push(bad(
                    "table",
                    format!("`{table}` exists but its key schema is not pk (string, hash) + sk (string, range)"),
                    format!("use a table created for fleetcache: {}", create_table_fix(table, &region)),
                ));
                false
            }
        }
        Err(e) => {
            let missing =
                bad("table", format!("table `{table}` does not exist in {region}"), create_table_fix(table, &region));
            let action = ("dynamodb:DescribeTable", table_arn.as_str());
            checks.push(probe_failed(
                classify(&e),
                missing,
                &format!("DescribeTable on `{table}`"),
                action,
                "DynamoDB",
            ));
            false
        }
    };
    if table_ok {
        match ddb.describe_time_to_live().table_name(table).send().await {
            Ok(out) => {
                let d = out.time_to_live_description();
                let enabled = d.and_then(|d| d.time_to_live_status()).map(|s| s.as_str().to_string()).unwrap_or_default();
                let attr = d.and_then(|d| d.attribute_name()).unwrap_or("");
                if (enabled == "ENABLED" || enabled == "ENABLING") && attr == ATTR_TTL {
                    checks.push(ok("table ttl", "enabled on `ttl`"));
                } else {
                    checks.push(bad(
                        "table ttl",
                        format!("TTL is not enabled on attribute `ttl` (status {enabled:?}, attribute {attr:?}): feed and index rows are never removed"),
                        format!("aws dynamodb update-time-to-live --table-name {table} --time-to-live-specification Enabled=true,AttributeName=ttl"),
                    ));
                }
            }
            // Reading the TTL setting is not needed at run time; say so and go on.
            Err(e) => checks.push(bad(
                "table ttl",
                format!("could not read the TTL setting: {}", match classify(&e) { Failure::Denied(t) | Failure::NotFound(t) | Failure::Other(t) => t }),
                format!("check in the console that TTL is on for attribute `ttl` of `{table}` (or allow dynamodb:DescribeTimeToLive to let doctor check)"),
            )),
        }
    }

    // Every request the cache makes, on scratch keys.
    let mut probe = Probe { checks: &mut checks };
    let nonce = crate::keys::sha256_hex(&format!("{:?}-{}", std::time::SystemTime::now(), std::process::id()));
    if bucket_ok {
        let key = format!("{}/_doctor/{}", cfg.prefix, &nonce[..16]);
        let put =
            s3.put_object().bucket(bucket).key(&key).body(ByteStream::from_static(b"fleetcache doctor")).send().await;
        let wrote = probe.record("s3:PutObject", &objects_arn, put);
        if wrote {
            probe.record("s3:GetObject", &objects_arn, s3.get_object().bucket(bucket).key(&key).send().await);
        }
        let list =
            s3.list_objects_v2().bucket(bucket).prefix(format!("{}/_doctor/", cfg.prefix)).max_keys(1).send().await;
        probe.record("s3:ListBucket", &bucket_arn, list);
        if wrote {
            // DeleteObjects (what prune uses) reports per-key denials in its body.
            let id = aws_sdk_s3::types::ObjectIdentifier::builder().key(&key).build().expect("key is set");
            let del = aws_sdk_s3::types::Delete::builder().objects(id).quiet(true).build().expect("objects set");
            match s3.delete_objects().bucket(bucket).delete(del).send().await {
                Ok(out) if out.errors().is_empty() => {
                    probe.checks.push(ok("s3:DeleteObject", format!("allowed on {objects_arn}")))
                }
                Ok(out) => {
                    let e = &out.errors()[0];
                    probe.checks.push(bad(
                        "s3:DeleteObject",
                        format!("denied on {objects_arn}: {} {}", e.code().unwrap_or(""), e.message().unwrap_or("")),
                        denied_fix("s3:DeleteObject", &objects_arn),
                    ));
                }
                Err(e) => {
                    probe.record::<(), _>("s3:DeleteObject", &objects_arn, Err(e));
                }
            }
        }
    }
    if table_ok {
        let pk = AttributeValue::S("D#doctor".into());
        let sk = AttributeValue::S(nonce[..16].to_string());
        // The scratch item's key, as every probe below names it.
        let key = std::collections::HashMap::from([(ATTR_PK.to_string(), pk.clone()), (ATTR_SK.to_string(), sk)]);
        let put = ddb.put_item().table_name(table).set_item(Some(key.clone())).send().await;
        let wrote = probe.record("dynamodb:PutItem", &table_arn, put);
        let get = ddb.get_item().table_name(table).set_key(Some(key.clone())).consistent_read(true).send().await;
        probe.record("dynamodb:GetItem", &table_arn, get);
        let upd = ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        probe.record("dynamodb:UpdateItem", &table_arn, upd);
        let q = ddb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", pk)
            .limit(1)
            .send()
            .await;
        probe.record("dynamodb:Query", &table_arn, q);
        let keys = KeysAndAttributes::builder().keys(key.clone()).consistent_read(true).build().expect("keys set");
        probe.record("dynamodb:BatchGetItem", &table_arn, ddb.batch_get_item().request_items(table, keys).send().await);
        let del = DeleteRequest::builder().set_key(Some(key)).build().expect("key set");
        let bw = ddb
            .batch_write_item()
            .request_items(table, vec![WriteRequest::builder().delete_request(del).build()])
            .send()
            .await;
        let cleaned = probe.record("dynamodb:BatchWriteItem", &table_arn, bw);
        if wrote && !cleaned {
            probe.checks.push(bad(
                "cleanup",
                format!("left the scratch item pk=D#doctor in `{table}`"),
                "harmless; delete it by hand once BatchWriteItem is allowed",
            ));
        }
    }
    // CDN purging (`cdn.cloudfront.distributionId`): the distribution answers and its
    // invalidations can be listed. CreateInvalidation is not probed (a probe would be a real
    // invalidation, billed past the free tier); `fleetcache purge --dry-run` shows what one sends.
    if let Some(id) = &cfg.cdn.distribution_id {
        let cf = crate::cdn::purger::cloudfront_client_from(&sdk, cfg.cdn.endpoint.as_deref());
        let arn = format!("arn:aws:cloudfront::<account>:distribution/{id}");
        match cf.list_invalidations().distribution_id(id).max_items(1).send().await {
            Ok(_) => checks.push(ok(
                "cloudfront:ListInvalidations",
                format!("distribution `{id}` answers; allow cloudfront:CreateInvalidation on it too (see {POLICY})"),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_distribution()) => checks.push(bad(
                "cloudfront:ListInvalidations",
                format!("distribution `{id}` does not exist"),
                "set cdn.cloudfront.distributionId (FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID) to the distribution in front of the app",
            )),
            Err(e) => {
                let mut probe = Probe { checks: &mut checks };
                probe.record::<(), _>("cloudfront:ListInvalidations", &arn, Err(e));
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_fixes_name_the_region() {
        assert_eq!(
            super::create_bucket_command("b", "us-east-1"),
            "aws s3api create-bucket --bucket b --region us-east-1"
        );
        let eu = super::create_bucket_command("b", "eu-west-1");
        assert!(eu.contains("--region eu-west-1 --create-bucket-configuration LocationConstraint=eu-west-1"), "{eu}");
        assert!(super::create_table_fix("t", "eu-west-1").contains("AWS_REGION=eu-west-1"));
    }
}
