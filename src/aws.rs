//! Shared AWS plumbing: building the SDK configuration from [`Config`](crate::config::Config) and
//! the standard AWS environment, and the one mapping from SDK errors to [`Error`].

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::Config;
use crate::error::{Error, ErrorKind};

/// Loads the standard AWS configuration (credential chain, `AWS_REGION`, `AWS_PROFILE`,
/// `AWS_ENDPOINT_URL[_S3|_DYNAMODB]`); explicit options win.
pub async fn load_sdk_config(cfg: &Config) -> aws_config::SdkConfig {
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
        // Local servers do not care; AWS itself needs a region and will say so on first use.
        return sdk.into_builder().region(Region::from_static("us-east-1")).build();
    }
    sdk
}

/// Maps any SDK error. `conflict_codes` are service error codes that mean "a condition lost".
pub fn map_err<E, R>(op: &str, err: SdkError<E, R>, conflict_codes: &[&str]) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) => Error::new(ErrorKind::Timeout, format!("{op}: timed out")),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::backend(format!("{op}: {}", DisplayErrorContext(&err)), true)
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            if conflict_codes.contains(&code) {
                return Error::new(ErrorKind::Conflict, format!("{op}: {code}"));
            }
            let msg = se.err().message().unwrap_or("");
            if matches!(
                code,
                "SlowDown" | "ThrottlingException" | "ProvisionedThroughputExceededException" | "RequestLimitExceeded"
            ) {
                return Error::new(ErrorKind::Throttled, format!("{op}: {code}: {msg}"));
            }
            let retryable = matches!(code, "InternalError" | "ServiceUnavailable" | "InternalServerError");
            Error::backend(format!("{op}: {code}: {msg}"), retryable)
        }
        _ => Error::backend(format!("{op}: {}", DisplayErrorContext(&err)), false),
    }
}
