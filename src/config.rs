//! Options, their environment fallbacks and defaults, validated once into a plain [`Config`].
//! Explicit options win over environment variables; every invalid value fails construction with
//! an error that names the option (and the variable, when it came from there).

use crate::error::{Error, Result};

pub const ENV_BACKEND: &str = "FLEETCACHE_BACKEND";
pub const ENV_BUCKET: &str = "FLEETCACHE_BUCKET";
pub const ENV_TABLE: &str = "FLEETCACHE_TABLE";
pub const ENV_PREFIX: &str = "FLEETCACHE_PREFIX";
pub const ENV_BUILD_ID: &str = "FLEETCACHE_BUILD_ID";
pub const ENV_MEMORY_BYTES: &str = "FLEETCACHE_MEMORY_BYTES";
pub const ENV_GET_TIMEOUT_MS: &str = "FLEETCACHE_GET_TIMEOUT_MS";
pub const ENV_MAX_ENTRY_BYTES: &str = "FLEETCACHE_MAX_ENTRY_BYTES";
pub const ENV_COMPRESSION_LEVEL: &str = "FLEETCACHE_COMPRESSION_LEVEL";
pub const ENV_INDEX_TTL_SECONDS: &str = "FLEETCACHE_INDEX_TTL_SECONDS";
pub const ENV_FEED_INTERVAL_MS: &str = "FLEETCACHE_FEED_INTERVAL_MS";
pub const ENV_FEED_STALE_AFTER_MS: &str = "FLEETCACHE_FEED_STALE_AFTER_MS";
pub const ENV_LEASE_MS: &str = "FLEETCACHE_LEASE_MS";
pub const ENV_SHARE_FETCH: &str = "FLEETCACHE_SHARE_FETCH_ACROSS_BUILDS";
pub const ENV_FORCE_PATH_STYLE: &str = "FLEETCACHE_S3_FORCE_PATH_STYLE";
pub const ENV_REGION: &str = "AWS_REGION";
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL";
pub const ENV_ENDPOINT_S3: &str = "AWS_ENDPOINT_URL_S3";
pub const ENV_ENDPOINT_DYNAMODB: &str = "AWS_ENDPOINT_URL_DYNAMODB";

pub const DEFAULT_PREFIX: &str = "fleetcache";
pub const DEFAULT_BUILD_ID: &str = "default";
pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_GET_TIMEOUT_MS: u64 = 1_000;
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
pub const DEFAULT_INDEX_TTL_SECONDS: i64 = 30 * 24 * 3600;
pub const DEFAULT_FEED_INTERVAL_MS: u64 = 250;
pub const DEFAULT_FEED_STALE_AFTER_MS: u64 = 5_000;
pub const DEFAULT_LEASE_MS: u64 = 15_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// S3 + DynamoDB (or servers speaking their protocols).
    Aws,
    /// Process-local stores, for tests and trying things out.
    Memory,
}

/// Options exactly as a user may pass them; every field optional.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct Options {
    /// `"aws"` (default) or `"memory"`. Env: `FLEETCACHE_BACKEND`.
    pub backend: Option<String>,
    /// S3 bucket holding entries. Required for `aws`. Env: `FLEETCACHE_BUCKET`.
    pub bucket: Option<String>,
    /// DynamoDB table holding tag state and the tag index. Required for `aws`. Env: `FLEETCACHE_TABLE`.
    pub table: Option<String>,
    /// Key prefix inside the bucket. Default `"fleetcache"`. Env: `FLEETCACHE_PREFIX`.
    pub prefix: Option<String>,
    /// Build ID namespacing page/route entries. Default: `.next/BUILD_ID`, else `"default"`. Env: `FLEETCACHE_BUILD_ID`.
    pub build_id: Option<String>,
    /// AWS region. Default: the standard AWS chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    /// S3 endpoint URL (local servers). Env: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`.
    pub s3_endpoint: Option<String>,
    /// DynamoDB endpoint URL. Env: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`.
    pub dynamodb_endpoint: Option<String>,
    /// Path-style S3 addressing. Default: true when an S3 endpoint is set. Env: `FLEETCACHE_S3_FORCE_PATH_STYLE`.
    pub force_path_style: Option<bool>,
    /// Byte budget of the in-memory tier. Default 256 MiB; 0 disables it. Env: `FLEETCACHE_MEMORY_BYTES`.
    pub memory_bytes: Option<f64>,
    /// Deadline of a `get` that needs the network, in ms; past it the get is a miss. Default 1000. Env: `FLEETCACHE_GET_TIMEOUT_MS`.
    pub get_timeout_ms: Option<f64>,
    /// Largest entry stored, in bytes; larger `set`s are refused and counted. Default 32 MiB. Env: `FLEETCACHE_MAX_ENTRY_BYTES`.
    pub max_entry_bytes: Option<f64>,
    /// zstd level, 1–19. Default 3. Env: `FLEETCACHE_COMPRESSION_LEVEL`.
    pub compression_level: Option<f64>,
    /// Lifetime of tag-index rows, in seconds. Default 30 days. Env: `FLEETCACHE_INDEX_TTL_SECONDS`.
    pub index_ttl_seconds: Option<f64>,
    /// How often the change feed is polled, in ms; 0 turns the feed off. Default 250. Env: `FLEETCACHE_FEED_INTERVAL_MS`.
    pub feed_interval_ms: Option<f64>,
    /// After this long (ms) without a successful feed read, memory is dropped until the feed is back. Default 5000. Env: `FLEETCACHE_FEED_STALE_AFTER_MS`.
    pub feed_stale_after_ms: Option<f64>,
    /// Regeneration lease of a time-stale entry, in ms (one instance regenerates, the others serve it as fresh meanwhile); 0 turns leases off. Default 15000. Env: `FLEETCACHE_LEASE_MS`.
    pub lease_ms: Option<f64>,
    /// `fetch` and `unstable_cache` entries are shared by every build (default true); false keeps them per build like pages. Env: `FLEETCACHE_SHARE_FETCH_ACROSS_BUILDS`.
    pub share_fetch_across_builds: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    pub bucket: String,
    pub table: String,
    pub prefix: String,
    pub build_id: String,
    /// The build ID came from an option or `FLEETCACHE_BUILD_ID` (else Next's BUILD_ID is adopted).
    pub build_id_explicit: bool,
    pub region: Option<String>,
    pub s3_endpoint: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub force_path_style: bool,
    pub memory_bytes: usize,
    pub get_timeout_ms: u64,
    pub max_entry_bytes: usize,
    pub compression_level: i32,
    pub index_ttl_seconds: i64,
    pub feed_interval_ms: u64,
    pub feed_stale_after_ms: u64,
    pub lease_ms: u64,
    pub share_fetch_across_builds: bool,
    pub connect_timeout_ms: u64,
    pub attempt_timeout_ms: u64,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// A numeric option: the explicit value, else the env var, validated to lie in `[min, max]`.
fn number(
    opt: Option<f64>,
    name: &str,
    env_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    min: f64,
    max: f64,
) -> Result<Option<f64>> {
    let (v, from) = match opt {
        Some(v) => (v, name.to_string()),
        None => match nonempty(env(env_name)) {
            Some(s) => (
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| Error::config(format!("{env_name} (option `{name}`) must be a number, got {s:?}")))?,
                format!("{env_name} (option `{name}`)"),
            ),
            None => return Ok(None),
        },
    };
    if !v.is_finite() || v.fract() != 0.0 || v < min || v > max {
        return Err(Error::config(format!("{from} must be a whole number between {min} and {max}, got {v}")));
    }
    Ok(Some(v))
}

fn flag(opt: Option<bool>, env_name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<bool>> {
    if opt.is_some() {
        return Ok(opt);
    }
    match nonempty(env(env_name)).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(Error::config(format!("{env_name} must be true or false, got {other:?}"))),
    }
}

fn endpoint(
    opt: Option<String>,
    name: &str,
    env_specific: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    let v = nonempty(opt).or_else(|| nonempty(env(env_specific))).or_else(|| nonempty(env(ENV_ENDPOINT)));
    if let Some(u) = &v {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(Error::config(format!("`{name}` must be an http(s) URL, got {u:?}")));
        }
    }
    Ok(v)
}

impl Config {
    /// Validates `opts` with `env` as the fallback (pass `std::env::var` in production).
    pub fn from_options(opts: Options, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let backend = match nonempty(opts.backend.clone()).or_else(|| nonempty(env(ENV_BACKEND))).as_deref() {
            None | Some("aws") => Backend::Aws,
            Some("memory") => Backend::Memory,
            Some(other) => {
                return Err(Error::config(format!("`backend` must be \"aws\" or \"memory\", got {other:?}")))
            }
        };
        let bucket = nonempty(opts.bucket).or_else(|| nonempty(env(ENV_BUCKET)));
        let table = nonempty(opts.table).or_else(|| nonempty(env(ENV_TABLE)));
        if backend == Backend::Aws {
            if bucket.is_none() {
                return Err(Error::config(format!("`bucket` is required (or set {ENV_BUCKET})")));
            }
            if table.is_none() {
                return Err(Error::config(format!("`table` is required (or set {ENV_TABLE})")));
            }
        }
        if let Some(b) = &bucket {
            let ok = (3..=63).contains(&b.len())
                && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
            if !ok {
                return Err(Error::config(format!("`bucket` {b:?} is not a valid S3 bucket name")));
            }
        }
        if let Some(t) = &table {
            let ok = (3..=255).contains(&t.len())
                && t.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
            if !ok {
                return Err(Error::config(format!("`table` {t:?} is not a valid DynamoDB table name")));
            }
        }
        let prefix =
            nonempty(opts.prefix).or_else(|| nonempty(env(ENV_PREFIX))).unwrap_or_else(|| DEFAULT_PREFIX.into());
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.is_empty() || prefix.len() > 128 || prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(Error::config(format!(
                "`prefix` {prefix:?} must be 1–128 characters of non-empty path segments"
            )));
        }
        let explicit_build_id = nonempty(opts.build_id).or_else(|| nonempty(env(ENV_BUILD_ID)));
        let build_id_explicit = explicit_build_id.is_some();
        let build_id = explicit_build_id.unwrap_or_else(|| DEFAULT_BUILD_ID.into());
        if build_id.len() > 128 {
            return Err(Error::config("`buildId` must be at most 128 characters"));
        }
        let s3_endpoint = endpoint(opts.s3_endpoint, "s3Endpoint", ENV_ENDPOINT_S3, env)?;
        let dynamodb_endpoint = endpoint(opts.dynamodb_endpoint, "dynamodbEndpoint", ENV_ENDPOINT_DYNAMODB, env)?;
        let force_path_style = flag(opts.force_path_style, ENV_FORCE_PATH_STYLE, env)?.unwrap_or(s3_endpoint.is_some());
        let max = 9.0e15;
        Ok(Config {
            backend,
            bucket: bucket.unwrap_or_default(),
            table: table.unwrap_or_default(),
            prefix,
            build_id,
            build_id_explicit,
            region: nonempty(opts.region),
            s3_endpoint,
            dynamodb_endpoint,
            force_path_style,
            memory_bytes: number(opts.memory_bytes, "memoryBytes", ENV_MEMORY_BYTES, env, 0.0, max)?
                .map_or(DEFAULT_MEMORY_BYTES, |v| v as usize),
            get_timeout_ms: number(opts.get_timeout_ms, "getTimeoutMs", ENV_GET_TIMEOUT_MS, env, 1.0, 600_000.0)?
                .map_or(DEFAULT_GET_TIMEOUT_MS, |v| v as u64),
            max_entry_bytes: number(opts.max_entry_bytes, "maxEntryBytes", ENV_MAX_ENTRY_BYTES, env, 1024.0, 4.0e9)?
                .map_or(DEFAULT_MAX_ENTRY_BYTES, |v| v as usize),
            compression_level: number(
                opts.compression_level,
                "compressionLevel",
                ENV_COMPRESSION_LEVEL,
                env,
                1.0,
                19.0,
            )?
            .map_or(DEFAULT_COMPRESSION_LEVEL, |v| v as i32),
            index_ttl_seconds: number(
                opts.index_ttl_seconds,
                "indexTtlSeconds",
                ENV_INDEX_TTL_SECONDS,
                env,
                60.0,
                3.0e9,
            )?
            .map_or(DEFAULT_INDEX_TTL_SECONDS, |v| v as i64),
            feed_interval_ms: number(
                opts.feed_interval_ms,
                "feedIntervalMs",
                ENV_FEED_INTERVAL_MS,
                env,
                0.0,
                60_000.0,
            )?
            .map_or(DEFAULT_FEED_INTERVAL_MS, |v| v as u64),
            feed_stale_after_ms: number(
                opts.feed_stale_after_ms,
                "feedStaleAfterMs",
                ENV_FEED_STALE_AFTER_MS,
                env,
                100.0,
                3_600_000.0,
            )?
            .map_or(DEFAULT_FEED_STALE_AFTER_MS, |v| v as u64),
            lease_ms: number(opts.lease_ms, "leaseMs", ENV_LEASE_MS, env, 0.0, 3_600_000.0)?
                .map_or(DEFAULT_LEASE_MS, |v| v as u64),
            share_fetch_across_builds: flag(opts.share_fetch_across_builds, ENV_SHARE_FETCH, env)?.unwrap_or(true),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            attempt_timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
        })
    }

    /// A memory-backed config with defaults (tests, benches).
    pub fn memory() -> Config {
        Config::from_options(Options { backend: Some("memory".into()), ..Default::default() }, &|_| None)
            .expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn aws_backend_requires_bucket_and_table() {
        let e = Config::from_options(Options::default(), &|_| None).unwrap_err();
        assert!(e.context.contains("`bucket`"), "{e}");
        let e = Config::from_options(Options { bucket: Some("my-bucket".into()), ..Default::default() }, &|_| None)
            .unwrap_err();
        assert!(e.context.contains("`table`"), "{e}");
    }

    #[test]
    fn env_fallback_and_explicit_options_win() {
        let env = env_of(&[
            (ENV_BUCKET, "env-bucket"),
            (ENV_TABLE, "env-table"),
            (ENV_MEMORY_BYTES, "1048576"),
            (ENV_ENDPOINT, "http://127.0.0.1:4566"),
        ]);
        let c = Config::from_options(Options { table: Some("opt-table".into()), ..Default::default() }, &env).unwrap();
        assert_eq!((c.bucket.as_str(), c.table.as_str()), ("env-bucket", "opt-table"));
        assert_eq!(c.memory_bytes, 1048576);
        assert_eq!(c.s3_endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert!(c.force_path_style);
        assert_eq!(c.prefix, DEFAULT_PREFIX);
    }

    #[test]
    fn invalid_values_name_the_option() {
        let cases: Vec<(Options, &str)> = vec![
            (Options { backend: Some("redis".into()), ..Default::default() }, "backend"),
            (Options { backend: Some("memory".into()), memory_bytes: Some(-1.0), ..Default::default() }, "memoryBytes"),
            (
                Options { backend: Some("memory".into()), get_timeout_ms: Some(0.5), ..Default::default() },
                "getTimeoutMs",
            ),
            (
                Options { backend: Some("memory".into()), compression_level: Some(40.0), ..Default::default() },
                "compressionLevel",
            ),
            (Options { backend: Some("memory".into()), prefix: Some("a//b".into()), ..Default::default() }, "prefix"),
            (
                Options {
                    backend: Some("memory".into()),
                    s3_endpoint: Some("localhost:9000".into()),
                    ..Default::default()
                },
                "s3Endpoint",
            ),
            (Options { bucket: Some("Bad_Bucket".into()), table: Some("t12".into()), ..Default::default() }, "bucket"),
        ];
        for (opts, name) in cases {
            let e = Config::from_options(opts, &|_| None).unwrap_err();
            assert!(e.context.contains(name), "{name}: {e}");
            assert_eq!(e.kind.code(), "FLEETCACHE_CONFIG");
        }
        let env = env_of(&[(ENV_GET_TIMEOUT_MS, "soon")]);
        let e =
            Config::from_options(Options { backend: Some("memory".into()), ..Default::default() }, &env).unwrap_err();
        assert!(e.context.contains(ENV_GET_TIMEOUT_MS) && e.context.contains("getTimeoutMs"), "{e}");
    }
}
