//! Shared AWS plumbing: building the SDK configuration from [`Config`](crate::config::Config) and
//! the standard AWS environment, and the one mapping from SDK errors to [`Error`].

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::Config;
use crate::error::{Error, ErrorKind};

/// The region used when none is configured anywhere.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Loads the standard AWS configuration (credential chain, `AWS_REGION`, `AWS_PROFILE`,
/// `AWS_ENDPOINT_URL[_S3|_DYNAMODB]`); explicit options win. Without a region anywhere, uses
/// [`FALLBACK_REGION`] and warns (once), unless both endpoints are set (local servers).
pub async fn load_sdk_config(cfg: &Config) -> aws_config::SdkConfig {
    let (sdk, defaulted) = load_sdk_config_reporting(cfg).await;
    if defaulted && (cfg.s3_endpoint.is_none() || cfg.dynamodb_endpoint.is_none()) {
        crate::log::warn(
            "no AWS region configured",
            &format!(
                "using {FALLBACK_REGION}; set the `region` option or AWS_REGION if the bucket and table live elsewhere"
            ),
        );
    }
    sdk
}

/// [`load_sdk_config`] without the warning, and whether the region was defaulted.
pub async fn load_sdk_config_reporting(cfg: &Config) -> (aws_config::SdkConfig, bool) {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .operation_attempt_timeout(Duration::from_millis(cfg.attempt_timeout_ms))
            .build(),
    );
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return (sdk.into_builder().region(Region::from_static(FALLBACK_REGION)).build(), true);
    }
    (sdk, false)
}

/// The HTTP status of an SDK error's raw response, when it got one.
fn status_of<R: 'static>(raw: Option<&R>) -> Option<u16> {
    let raw = raw?;
    (raw as &dyn std::any::Any).downcast_ref::<aws_smithy_runtime_api::http::Response>().map(|r| r.status().as_u16())
}

/// One line for an error and its causes: the messages of the chain that read as sentences (no
/// Debug dumps), outermost and root cause, at most 300 characters.
pub fn summarize(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msgs: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let full = e.to_string();
        // The first line: chains such as the credential provider's list every attempt below it.
        let m = full.lines().next().unwrap_or("").trim().trim_end_matches([':', '.']);
        if !m.is_empty() && !m.contains('{') && !msgs.iter().any(|x| x == m) {
            msgs.push(m.to_string());
        }
        cur = e.source();
    }
    let line = match msgs.len() {
        0 => "unknown error".to_string(),
        1 => msgs.remove(0),
        n => format!("{}: {}", msgs[0], msgs[n - 1]),
    };
    if line.chars().count() > 300 {
        line.chars().take(297).collect::<String>() + "..."
    } else {
        line
    }
}

/// What an HTTP status without an AWS error code most likely means.
pub fn status_hint(status: u16) -> &'static str {
    match status {
        301 | 307 | 308 => " (redirect: the bucket is in another region, set `region`)",
        400 => " (bad request)",
        403 => " (access denied: check the credentials and the IAM policy)",
        404 => " (not found: check the bucket/table name and endpoint)",
        500..=599 => " (server error)",
        _ => "",
    }
}

/// Maps any SDK error to one line: the operation, the HTTP status and AWS error code when there
/// are any, and a summary of the cause (never a Debug dump). `conflict_codes` are service error
/// codes that mean "a condition lost".
/// Whether a DynamoDB `ValidationException`'s message is about a size limit (an item past
/// 400 KB, a key past 2,048 bytes, a transaction past 4 MB).
fn too_large_message(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("size has exceeded")
        || m.contains("exceeds the maximum")
        || m.contains("key size")
        || m.contains("size limit")
}

pub fn map_err<E, R>(op: &str, err: SdkError<E, R>, conflict_codes: &[&str]) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    let status = status_of(err.raw_response());
    match &err {
        SdkError::TimeoutError(_) => Error::new(ErrorKind::Timeout, format!("{op}: timed out")),
        SdkError::DispatchFailure(d) => {
            let why = summarize(&err);
            let credentials = why.to_ascii_lowercase().contains("credential");
            let what = if credentials {
                "no usable AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or give the process a role)"
            } else if d.is_timeout() {
                "connection timed out"
            } else if d.is_io() {
                "could not reach the endpoint"
            } else if d.is_user() {
                "the request could not be sent"
            } else {
                "request failed"
            };
            let root = why.rsplit(": ").next().unwrap_or("");
            // Retryable, credentials included: a role's credentials can arrive late (a slow
            // metadata endpoint at start), and a revalidation must not be dropped for that.
            if credentials {
                Error::backend(format!("{op}: {what}"), true)
            } else {
                Error::backend(format!("{op}: {what} ({root})"), true)
            }
        }
        SdkError::ResponseError(_) => {
            let st = status.map_or(String::new(), |s| format!(" (HTTP {s})"));
            Error::backend(format!("{op}: unreadable response{st}: {}", summarize(&err)), true)
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code();
            if code.is_some_and(|c| conflict_codes.contains(&c)) {
                return Error::new(ErrorKind::Conflict, format!("{op}: {}", code.unwrap_or_default()));
            }
            let msg = se.err().message().filter(|m| !m.is_empty());
            let http = status.map_or(String::new(), |s| format!("HTTP {s} "));
            let line = match (code, msg) {
                (Some(c), Some(m)) => format!("{op}: {http}{c}: {m}"),
                (Some(c), None) => format!("{op}: {http}{c}"),
                (None, _) => format!("{op}: {}no error code{}", http, status.map_or("", status_hint)),
            };
            if matches!(
                code,
                Some(
                    "SlowDown"
                        | "ThrottlingException"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                )
            ) || status == Some(429)
            {
                return Error::new(ErrorKind::Throttled, line);
            }
            // A request no policy change can make valid (an item or key past DynamoDB's size
            // limits): the outbox changes or drops it instead of retrying it for ever.
            if code == Some("ValidationException") && msg.is_some_and(too_large_message) {
                return Error::new(ErrorKind::TooLarge, line);
            }
            let retryable = matches!(code, Some("InternalError" | "ServiceUnavailable" | "InternalServerError"))
                || status.is_some_and(|s| s >= 500);
            Error::backend(line, retryable)
        }
        _ => Error::backend(format!("{op}: {}", summarize(&err)), false),
    }
}
