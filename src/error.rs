//! One error type for the whole core: a stable kind (mapped to a JS `code`), whether a retry
//! could help, and a human context line. SDK errors of both backends are mapped in exactly one
//! function, `aws::map_err`; nothing else inspects SDK errors (`doctor` reads their codes to
//! explain a failed check).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An option is missing or invalid; the message names the option.
    Config,
    /// A value from JS has the wrong shape or type.
    InvalidInput,
    /// A stored object could not be decoded (foreign, truncated, newer format).
    Corrupt,
    /// An entry is larger than `maxEntryBytes`.
    TooLarge,
    /// The deadline for a backend call passed.
    Timeout,
    /// A conditional write lost (S3 412, DynamoDB ConditionalCheckFailed).
    Conflict,
    /// S3 or DynamoDB answered with an error, or could not be reached.
    Backend,
    /// S3 or DynamoDB asked to slow down (throttling): retried with backoff, and not counted by
    /// the circuit breakers (the backend answers; opening would stop the change feed too).
    Throttled,
}

impl ErrorKind {
    /// The stable `code` string JS callers see.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "FLEETCACHE_CONFIG",
            ErrorKind::InvalidInput => "FLEETCACHE_INVALID_INPUT",
            ErrorKind::Corrupt => "FLEETCACHE_CORRUPT",
            ErrorKind::TooLarge => "FLEETCACHE_TOO_LARGE",
            ErrorKind::Timeout => "FLEETCACHE_TIMEOUT",
            ErrorKind::Conflict => "FLEETCACHE_CONFLICT",
            ErrorKind::Backend => "FLEETCACHE_BACKEND",
            ErrorKind::Throttled => "FLEETCACHE_THROTTLED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub retryable: bool,
    pub context: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Timeout | ErrorKind::Backend | ErrorKind::Throttled);
        Error { kind, retryable, context: context.into() }
    }
    pub fn config(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, context)
    }
    pub fn invalid(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, context)
    }
    pub fn corrupt(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, context)
    }
    pub fn backend(context: impl Into<String>, retryable: bool) -> Self {
        Error { kind: ErrorKind::Backend, retryable, context: context.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.context)
    }
}

impl std::error::Error for Error {}
