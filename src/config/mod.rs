//! Options, their environment fallbacks and defaults, validated once into a plain [`Config`].
//! Explicit options win over environment variables; every invalid value fails construction with
//! an error that names the option (and the variable, when it came from there).

pub mod cdn;

use crate::error::{Error, Result};

pub use cdn::{CdnConfig, PlannerConfig, RscVariants};

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
pub const ENV_FEED_COPIES: &str = "FLEETCACHE_FEED_COPIES";
pub const ENV_LEASE_MS: &str = "FLEETCACHE_LEASE_MS";
pub const ENV_SET_TIMEOUT_MS: &str = "FLEETCACHE_SET_TIMEOUT_MS";
pub const ENV_REVALIDATE_TIMEOUT_MS: &str = "FLEETCACHE_REVALIDATE_TIMEOUT_MS";
pub const ENV_SPOOL_DIR: &str = "FLEETCACHE_SPOOL_DIR";
pub const ENV_HEARTBEAT_MS: &str = "FLEETCACHE_HEARTBEAT_MS";
pub const ENV_SHARE_FETCH: &str = "FLEETCACHE_SHARE_FETCH_ACROSS_BUILDS";
pub const ENV_FORCE_PATH_STYLE: &str = "FLEETCACHE_S3_FORCE_PATH_STYLE";
pub const ENV_WRITE_DURING_BUILD: &str = "FLEETCACHE_WRITE_DURING_BUILD";
pub const ENV_NEXT_PHASE: &str = "NEXT_PHASE";
pub const BUILD_PHASE: &str = "phase-production-build";
pub const ENV_REGION: &str = "AWS_REGION";
pub const ENV_CDN_DISTRIBUTION_ID: &str = "FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID";
pub const ENV_ENDPOINT_CLOUDFRONT: &str = "AWS_ENDPOINT_URL_CLOUDFRONT";
pub const ENV_CDN_WINDOW_MS: &str = "FLEETCACHE_CDN_WINDOW_MS";
pub const ENV_CDN_COLLAPSE_AT: &str = "FLEETCACHE_CDN_COLLAPSE_AT";
pub const ENV_CDN_MAX_PATHS: &str = "FLEETCACHE_CDN_MAX_PATHS_PER_MONTH";
pub const ENV_CDN_MAX_DOLLARS: &str = "FLEETCACHE_CDN_MAX_DOLLARS_PER_MONTH";
pub const ENV_CDN_RSC_VARIANTS: &str = "FLEETCACHE_CDN_RSC_VARIANTS";
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL";
pub const ENV_ENDPOINT_S3: &str = "AWS_ENDPOINT_URL_S3";
pub const ENV_ENDPOINT_DYNAMODB: &str = "AWS_ENDPOINT_URL_DYNAMODB";

pub const DEFAULT_PREFIX: &str = "fleetcache";
pub const DEFAULT_BUILD_ID: &str = "default";
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// S3 + DynamoDB (or servers speaking their protocols).
    Aws,
    /// Process-local stores, for tests and trying things out.
    Memory,
}

/// An option's value as it arrived from JS, before its type is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Str(String),
    Num(f64),
    Bool(bool),
    /// `null` or `undefined`: the option is not given.
    Absent,
    /// Any other JS type, by its `typeof` name.
    Other(&'static str),
}

impl OptionValue {
    fn type_name(&self) -> &'static str {
        match self {
            OptionValue::Str(_) => "string",
            OptionValue::Num(_) => "number",
            OptionValue::Bool(_) => "boolean",
            OptionValue::Absent => "undefined",
            OptionValue::Other(t) => t,
        }
    }
    fn wrong(&self, name: &str, want: &str) -> Error {
        Error::config(format!("`{name}` must be a {want}, got {}", self.type_name()))
    }
}

/// The Rust types an option can have, and the JS type each accepts.
trait OptionType: Sized {
    fn from_value(v: OptionValue, name: &str) -> Result<Self>;
}

impl OptionType for String {
    fn from_value(v: OptionValue, name: &str) -> Result<Self> {
        match v {
            OptionValue::Str(s) => Ok(s),
            v => Err(v.wrong(name, "string")),
        }
    }
}

impl OptionType for f64 {
    fn from_value(v: OptionValue, name: &str) -> Result<Self> {
        match v {
            OptionValue::Num(n) => Ok(n),
            v => Err(v.wrong(name, "number")),
        }
    }
}

impl OptionType for bool {
    fn from_value(v: OptionValue, name: &str) -> Result<Self> {
        match v {
            OptionValue::Bool(b) => Ok(b),
            v => Err(v.wrong(name, "boolean")),
        }
    }
}

/// One option as the table in [`options!`] gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    /// The JS name (`cdn.windowMs` for `cdn: { windowMs }`).
    pub name: &'static str,
    /// The environment variable read when the option is not given.
    pub env: Option<&'static str>,
    /// A number option's range (whole numbers only).
    pub range: Option<(f64, f64)>,
    /// A number option's default, when it has one.
    pub default: Option<f64>,
    /// What `binding.d.ts` says of it.
    pub doc: &'static str,
}

/// The table's row for `name`; every name the code reads is in it (a test reads them all).
fn spec(name: &str) -> &'static OptionSpec {
    OPTION_SPECS.iter().find(|s| s.name == name).unwrap_or_else(|| unreachable!("option {name} is not in the table"))
}

/// `Some(x)` for a table cell given, `None` for one left out.
macro_rules! some {
    () => {
        None
    };
    ($e:expr) => {
        Some($e)
    };
}

/// The one list of options: each line gives the Rust field, its type and its JS name (`String`,
/// `f64`, `bool`); the doc (written `#[doc = "…"]`: napi's type generator reads only plain
/// string literals) is what users read in `binding.d.ts`.
macro_rules! options {
    ($( $(#[doc = $doc:tt])* $field:ident: $ty:ident = $js:literal
        $(, env $env:ident)? $(, range $min:literal ..= $max:literal)? $(, default $def:expr)? ; )*) => {
        /// Options exactly as a user may pass them; every field optional.
        #[derive(Debug, Clone, Default, PartialEq)]
        #[cfg_attr(feature = "node", napi_derive::napi(object))]
        pub struct Options {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
        }

        /// Every option's JS name, in the order docs/configuration.md documents them.
        pub const OPTION_NAMES: &[&str] = &[$($js),*];

        /// Every option's JS name, environment variable and range, as the table above gives them.
        pub const OPTION_SPECS: &[OptionSpec] = &[$(OptionSpec {
            name: $js,
            env: some!($($env)?),
            range: some!($(($min as f64, $max as f64))?),
            default: some!($($def)?),
            doc: concat!($($doc),*),
        }),*];

        impl Options {
            /// Sets the option named `name` (its JS name); `Ok(false)` when there is none.
            fn set(&mut self, name: &str, v: OptionValue) -> Result<bool> {
                if v == OptionValue::Absent {
                    return Ok(OPTION_NAMES.contains(&name));
                }
                match name {
                    $( $js => self.$field = Some(<$ty as OptionType>::from_value(v, $js)?), )*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

options! {
    #[doc = " `\"aws\"` (default) or `\"memory\"`. Env: `FLEETCACHE_BACKEND`."]
    backend: String = "backend", env ENV_BACKEND;
    #[doc = " S3 bucket holding entries. Required for `aws`. Env: `FLEETCACHE_BUCKET`."]
    bucket: String = "bucket", env ENV_BUCKET;
    #[doc = " DynamoDB table holding tag state and the tag index. Required for `aws`. Env: `FLEETCACHE_TABLE`."]
    table: String = "table", env ENV_TABLE;
    #[doc = " Key prefix inside the bucket. Default `\"fleetcache\"`. Env: `FLEETCACHE_PREFIX`."]
    prefix: String = "prefix", env ENV_PREFIX;
    #[doc = " Build ID namespacing page/route entries. Default: `.next/BUILD_ID`, else `\"default\"`. Env: `FLEETCACHE_BUILD_ID`."]
    build_id: String = "buildId", env ENV_BUILD_ID;
    #[doc = " AWS region. Default: the standard AWS chain (`AWS_REGION`, profile), else `us-east-1`."]
    region: String = "region", env ENV_REGION;
    #[doc = " S3 endpoint URL (local servers). Env: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`."]
    s3_endpoint: String = "s3Endpoint", env ENV_ENDPOINT_S3;
    #[doc = " DynamoDB endpoint URL. Env: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`."]
    dynamodb_endpoint: String = "dynamodbEndpoint", env ENV_ENDPOINT_DYNAMODB;
    #[doc = " Path-style S3 addressing. Default: true when an S3 endpoint is set. Env: `FLEETCACHE_S3_FORCE_PATH_STYLE`."]
    force_path_style: bool = "forcePathStyle", env ENV_FORCE_PATH_STYLE;
    #[doc = " Byte budget of the in-memory tier. Default 256 MiB; 0 disables it. Env: `FLEETCACHE_MEMORY_BYTES`."]
    memory_bytes: f64 = "memoryBytes", env ENV_MEMORY_BYTES, range 0 ..= 9.0e15, default 256.0 * 1024.0 * 1024.0;
    #[doc = " Deadline of a `get` that needs the network, in ms; past it the get is a miss. Default 1000. Env: `FLEETCACHE_GET_TIMEOUT_MS`."]
    get_timeout_ms: f64 = "getTimeoutMs", env ENV_GET_TIMEOUT_MS, range 1 ..= 600_000, default 1_000.0;
    #[doc = " Largest entry stored, in bytes; larger `set`s are refused and counted. Default 32 MiB. Env: `FLEETCACHE_MAX_ENTRY_BYTES`."]
    max_entry_bytes: f64 = "maxEntryBytes", env ENV_MAX_ENTRY_BYTES, range 1024 ..= 4.0e9, default 32.0 * 1024.0 * 1024.0;
    #[doc = " zstd level, 1–19. Default 3. Env: `FLEETCACHE_COMPRESSION_LEVEL`."]
    compression_level: f64 = "compressionLevel", env ENV_COMPRESSION_LEVEL, range 1 ..= 19, default 3.0;
    #[doc = " Lifetime of tag-index rows, in seconds. Default 30 days. Env: `FLEETCACHE_INDEX_TTL_SECONDS`."]
    index_ttl_seconds: f64 = "indexTtlSeconds", env ENV_INDEX_TTL_SECONDS, range 60 ..= 3.0e9, default 30.0 * 24.0 * 3600.0;
    #[doc = " How often the change feed is polled, in ms; 0 turns the feed off. Default 250. Env: `FLEETCACHE_FEED_INTERVAL_MS`."]
    feed_interval_ms: f64 = "feedIntervalMs", env ENV_FEED_INTERVAL_MS, range 0 ..= 60_000, default 250.0;
    #[doc = " After this long (ms) without a successful feed read, memory is dropped until the feed is back. Default 5000. Env: `FLEETCACHE_FEED_STALE_AFTER_MS`."]
    feed_stale_after_ms: f64 = "feedStaleAfterMs", env ENV_FEED_STALE_AFTER_MS, range 100 ..= 3_600_000, default 5_000.0;
    #[doc = " Copies of the change feed in DynamoDB (each event written this many times, each instance polls one): the same on every instance; about one per 200 instances. Default 1. Env: `FLEETCACHE_FEED_COPIES`."]
    feed_copies: f64 = "feedCopies", env ENV_FEED_COPIES, range 1 ..= 64, default 1.0;
    #[doc = " Regeneration lease of a stale page or route handler entry (by time or by `revalidateTag(t, 'max')`; `fetch` entries take none), in ms (one instance regenerates, the others serve it as fresh meanwhile, until its `set` ends the lease); 0 turns leases off. Default 15000. Env: `FLEETCACHE_LEASE_MS`."]
    lease_ms: f64 = "leaseMs", env ENV_LEASE_MS, range 0 ..= 3_600_000, default 15_000.0;
    #[doc = " Deadline of a `set`'s S3 write, in ms; past it the value stays in this instance's memory only (logged, counted). Default 2000. Env: `FLEETCACHE_SET_TIMEOUT_MS`."]
    set_timeout_ms: f64 = "setTimeoutMs", env ENV_SET_TIMEOUT_MS, range 1 ..= 600_000, default 2_000.0;
    #[doc = " How long `revalidateTag` waits for DynamoDB, in ms; past it the revalidation stays queued (honoured here, retried until it lands) and the call resolves. Default 2000. Env: `FLEETCACHE_REVALIDATE_TIMEOUT_MS`."]
    revalidate_timeout_ms: f64 = "revalidateTimeoutMs", env ENV_REVALIDATE_TIMEOUT_MS, range 1 ..= 600_000, default 2_000.0;
    #[doc = " Directory where a process told to stop (SIGTERM) leaves the revalidations, feed events and uploads it could not deliver in time; the next start on this machine with the same bucket, table and prefix delivers them. `\"off\"` turns it off. Default: `fleetcache-spool` in the OS temp directory. Env: `FLEETCACHE_SPOOL_DIR`."]
    spool_dir: String = "spoolDir", env ENV_SPOOL_DIR;
    #[doc = " How often this instance writes its heartbeat (one DynamoDB write; `fleetcache status` lists the live instances, `prune` spares the builds they serve), in ms; 0 turns it off. Only instances that read the feed beat. Default 15000. Env: `FLEETCACHE_HEARTBEAT_MS`."]
    heartbeat_ms: f64 = "heartbeatMs", env ENV_HEARTBEAT_MS, range 0 ..= 3_600_000, default 15_000.0;
    #[doc = " `fetch` and `unstable_cache` entries are shared by every build (default true); false keeps them per build like pages. Env: `FLEETCACHE_SHARE_FETCH_ACROSS_BUILDS`."]
    share_fetch_across_builds: bool = "shareFetchAcrossBuilds", env ENV_SHARE_FETCH;
    #[doc = " During `next build`, use the shared store instead of a process-local one. Default false. Env: `FLEETCACHE_WRITE_DURING_BUILD`."]
    write_during_build: bool = "writeDuringBuild", env ENV_WRITE_DURING_BUILD;
    #[doc = " CloudFront distribution to purge after revalidations (turns CDN purging on). Env: `FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID`."]
    cdn_distribution_id: String = "cdn.cloudfront.distributionId", env ENV_CDN_DISTRIBUTION_ID;
    #[doc = " CloudFront API endpoint URL (local servers). Env: `AWS_ENDPOINT_URL_CLOUDFRONT`, `AWS_ENDPOINT_URL`."]
    cdn_endpoint: String = "cdn.cloudfront.endpoint", env ENV_ENDPOINT_CLOUDFRONT;
    #[doc = " How long paths collect before a purge is sent, in ms. Default 300. Env: `FLEETCACHE_CDN_WINDOW_MS`."]
    cdn_window_ms: f64 = "cdn.windowMs", env ENV_CDN_WINDOW_MS, range 0 ..= 60_000, default 300.0;
    #[doc = " Files under one folder that become one wildcard `<folder>/*`. Default 20. Env: `FLEETCACHE_CDN_COLLAPSE_AT`."]
    cdn_collapse_at: f64 = "cdn.collapseAt", env ENV_CDN_COLLAPSE_AT, range 2 ..= 3_000, default 20.0;
    #[doc = " Most invalidation paths the fleet sends a month (a wildcard counts one); past it purges widen, then stop. Default: no ceiling. Env: `FLEETCACHE_CDN_MAX_PATHS_PER_MONTH`."]
    cdn_max_paths_per_month: f64 = "cdn.maxPathsPerMonth", env ENV_CDN_MAX_PATHS, range 0 ..= 1.0e12;
    #[doc = " The same ceiling in dollars beyond the free 1,000 paths ($0.005 a path). Env: `FLEETCACHE_CDN_MAX_DOLLARS_PER_MONTH`."]
    cdn_max_dollars_per_month: f64 = "cdn.maxDollarsPerMonth", env ENV_CDN_MAX_DOLLARS, range 0 ..= 1.0e9;
    #[doc = " How the CDN keys RSC requests: `\"query\"` (by `_rsc`, purged as `<path>?_rsc=*`; default) or `\"headers\"` (by Next's headers, covered by the path). Env: `FLEETCACHE_CDN_RSC_VARIANTS`."]
    cdn_rsc_variants: String = "cdn.rscVariants", env ENV_CDN_RSC_VARIANTS;
}

/// Options the JS face takes itself and removes before the core sees them (`index.js`): the
/// docs/configuration.md documents them with the others.
pub const JS_OPTIONS: &[&str] = &["logger", "cdn.purge"];

/// Options whose value is an object of options (`cdn: { cloudfront: { distributionId } }`): the
/// boundary reads them as dotted names (`cdn.cloudfront.distributionId`).
pub const OPTION_GROUPS: &[&str] = &["cdn", "cdn.cloudfront"];

/// Optimal-string-alignment distance (edits, with adjacent swaps counting one), case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The known option nearest to a misspelt one, if any is near enough to be a likely meaning.
pub fn nearest_option(name: &str) -> Option<&'static str> {
    OPTION_NAMES
        .iter()
        .chain(JS_OPTIONS)
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= name.chars().count().max(k.len()) / 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Options {
    /// Options from `(name, value)` pairs as JS passed them: unknown names and wrong types are
    /// refused, naming the option (and the nearest known name for a misspelling).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, OptionValue)>) -> Result<Options> {
        let mut o = Options::default();
        for (name, v) in entries {
            if !o.set(&name, v)? {
                return Err(Error::config(match nearest_option(&name) {
                    Some(k) => format!("unknown option `{name}`: did you mean `{k}`?"),
                    None => format!("unknown option `{name}` (known: {})", OPTION_NAMES.join(", ")),
                }));
            }
        }
        Ok(o)
    }

    /// The options in force during `next build` (`NEXT_PHASE` = `phase-production-build`):
    /// a process-local store that needs no AWS configuration and makes no network call, keeping
    /// only the options that do not name or reach a store; unless `writeDuringBuild`
    /// (`FLEETCACHE_WRITE_DURING_BUILD`) asks for the shared store. `None` outside the build.
    pub fn for_build_phase(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Options>> {
        if env(ENV_NEXT_PHASE).as_deref() != Some(BUILD_PHASE) {
            return Ok(None);
        }
        if flag(self.write_during_build, "writeDuringBuild", env)?.unwrap_or(false) {
            return Ok(None);
        }
        Ok(Some(Options {
            backend: Some("memory".into()),
            feed_interval_ms: Some(0.0),
            lease_ms: Some(0.0),
            memory_bytes: self.memory_bytes,
            max_entry_bytes: self.max_entry_bytes,
            compression_level: self.compression_level,
            get_timeout_ms: self.get_timeout_ms,
            ..Options::default()
        }))
    }
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
    pub feed_copies: u32,
    pub lease_ms: u64,
    pub revalidate_timeout_ms: u64,
    /// Where undelivered outbox units go at shutdown (`None`: off).
    pub spool_dir: Option<std::path::PathBuf>,
    pub set_timeout_ms: u64,
    /// How often the heartbeat is written (0: never).
    pub heartbeat_ms: u64,
    pub share_fetch_across_builds: bool,
    pub connect_timeout_ms: u64,
    pub attempt_timeout_ms: u64,
    /// `next build` is running and this core keeps entries in the process (`Options::for_build_phase`).
    pub build_phase_local: bool,
    pub cdn: CdnConfig,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// A number as JS prints it (`Infinity`, `NaN`, `9000000000000000`), for messages.
pub fn js_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e21 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

/// A number option: the explicit value, else its environment variable, checked to be a whole
/// number within its range (both from the table in [`options!`]).
fn number(opt: Option<f64>, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<f64>> {
    let spec = spec(name);
    let (min, max) = spec.range.unwrap_or((f64::MIN, f64::MAX));
    let (v, from) = match (opt, spec.env) {
        (Some(v), _) => (v, name.to_string()),
        (None, None) => return Ok(None),
        (None, Some(env_name)) => match nonempty(env(env_name)) {
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
        return Err(Error::config(format!(
            "{from} must be a whole number between {} and {}, got {}",
            js_number(min),
            js_number(max),
            js_number(v)
        )));
    }
    Ok(Some(v))
}

/// A number option with a default: its value, else the table's default.
fn or_default(opt: Option<f64>, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<f64> {
    Ok(number(opt, name, env)?.or(spec(name).default).unwrap_or_else(|| unreachable!("{name} has no default")))
}

/// A string option: the explicit value, else its environment variable; blank is unset.
fn text(opt: Option<String>, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    nonempty(opt).or_else(|| spec(name).env.and_then(|e| nonempty(env(e))))
}

/// A boolean option: the explicit value, else its environment variable (`1`/`true`/`yes`,
/// `0`/`false`/`no`).
fn flag(opt: Option<bool>, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<bool>> {
    let Some(env_name) = spec(name).env.filter(|_| opt.is_none()) else {
        return Ok(opt);
    };
    match nonempty(env(env_name)).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(Error::config(format!("{env_name} must be true or false, got {other:?}"))),
    }
}

/// An endpoint option: the explicit value, else its service's variable, else `AWS_ENDPOINT_URL`;
/// an http(s) URL.
fn endpoint(opt: Option<String>, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let v = text(opt, name, env).or_else(|| nonempty(env(ENV_ENDPOINT)));
    if let Some(u) = &v {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(Error::config(format!("`{name}` must be an http(s) URL, got {u:?}")));
        }
    }
    Ok(v)
}

/// `prefix`: 1–128 characters of letters, digits, `-`, `_`, `.` in non-empty `/`-separated
/// segments (no `.`/`..` segment). It names S3 folders and the app's namespace in the table, so
/// characters S3 or a shell would treat specially (NUL, `#`, spaces, `%`, …) are refused.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok_chars = prefix.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'));
    if prefix.is_empty()
        || prefix.len() > 128
        || !ok_chars
        || prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Error::config(format!(
            "`prefix` {prefix:?} must be 1–128 characters of letters, digits, `-`, `_`, `.` in non-empty `/`-separated segments"
        )));
    }
    Ok(())
}

/// A build ID (configured, or Next's `BUILD_ID`): 1–128 printable characters, no `/`, `#`, `%`
/// or whitespace. The error completes a sentence about the ID.
pub fn check_build_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!(
            "must be 1–128 characters, got {} ({:?})",
            id.len(),
            id.chars().take(40).collect::<String>()
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '#' | '%')) {
        return Err(format!("{id:?} contains {c:?}: use letters, digits and punctuation other than `/`, `#`, `%`"));
    }
    Ok(())
}

/// Next's `INFINITE_CACHE` (`0xfffffffe` s, ~136 years): durations at or past it mean "forever".
pub const MAX_DURATION_S: f64 = 4_294_967_294.0;

/// A duration in seconds from JS (`revalidate`, `expire`): NaN or negative is refused (the
/// message names `what`), anything past [`MAX_DURATION_S`] (Infinity included) clamps to it.
pub fn duration_s(v: f64, what: &str) -> Result<f64> {
    if v.is_nan() || v < 0.0 {
        return Err(Error::invalid(format!("{what} must be a non-negative number of seconds, got {}", js_number(v))));
    }
    Ok(v.min(MAX_DURATION_S))
}

impl Config {
    /// Validates `opts` with `env` as the fallback (pass `std::env::var` in production).
    pub fn from_options(opts: Options, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let (opts, build_phase_local) = match opts.for_build_phase(env)? {
            Some(local) => (local, true),
            None => (opts, false),
        };
        // Off during `next build` (the options kept there name no CDN).
        let cdn = cdn::from_options(&opts, &|name| if build_phase_local { None } else { env(name) })?;
        let backend = match text(opts.backend.clone(), "backend", env).as_deref() {
            None | Some("aws") => Backend::Aws,
            Some("memory") => Backend::Memory,
            Some(other) => {
                return Err(Error::config(format!("`backend` must be \"aws\" or \"memory\", got {other:?}")))
            }
        };
        let bucket = text(opts.bucket, "bucket", env);
        let table = text(opts.table, "table", env);
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
        // An explicit empty prefix is a mistake (it would silently mean the default); an empty
        // environment variable is unset.
        if opts.prefix.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(Error::config("`prefix` must not be empty (leave it out for the default \"fleetcache\")"));
        }
        let prefix = text(opts.prefix, "prefix", env).unwrap_or_else(|| DEFAULT_PREFIX.into());
        let prefix = prefix.trim_matches('/').to_string();
        check_prefix(&prefix)?;
        if opts.build_id.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(Error::config("`buildId` must not be empty (leave it out to use Next's BUILD_ID)"));
        }
        let explicit_build_id = text(opts.build_id, "buildId", env);
        let build_id_explicit = explicit_build_id.is_some();
        let build_id = explicit_build_id.unwrap_or_else(|| DEFAULT_BUILD_ID.into());
        check_build_id(&build_id).map_err(|e| Error::config(format!("`buildId` {e}")))?;
        let s3_endpoint = endpoint(opts.s3_endpoint, "s3Endpoint", env)?;
        let dynamodb_endpoint = endpoint(opts.dynamodb_endpoint, "dynamodbEndpoint", env)?;
        let force_path_style = flag(opts.force_path_style, "forcePathStyle", env)?.unwrap_or(s3_endpoint.is_some());
        Ok(Config {
            cdn,
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
            memory_bytes: or_default(opts.memory_bytes, "memoryBytes", env)? as usize,
            get_timeout_ms: or_default(opts.get_timeout_ms, "getTimeoutMs", env)? as u64,
            max_entry_bytes: or_default(opts.max_entry_bytes, "maxEntryBytes", env)? as usize,
            compression_level: or_default(opts.compression_level, "compressionLevel", env)? as i32,
            index_ttl_seconds: or_default(opts.index_ttl_seconds, "indexTtlSeconds", env)? as i64,
            feed_interval_ms: or_default(opts.feed_interval_ms, "feedIntervalMs", env)? as u64,
            feed_stale_after_ms: or_default(opts.feed_stale_after_ms, "feedStaleAfterMs", env)? as u64,
            feed_copies: or_default(opts.feed_copies, "feedCopies", env)? as u32,
            lease_ms: or_default(opts.lease_ms, "leaseMs", env)? as u64,
            set_timeout_ms: or_default(opts.set_timeout_ms, "setTimeoutMs", env)? as u64,
            revalidate_timeout_ms: or_default(opts.revalidate_timeout_ms, "revalidateTimeoutMs", env)? as u64,
            heartbeat_ms: or_default(opts.heartbeat_ms, "heartbeatMs", env)? as u64,
            spool_dir: match text(opts.spool_dir, "spoolDir", env) {
                Some(d) if d == "off" => None,
                Some(d) => Some(std::path::PathBuf::from(d)),
                None => Some(std::env::temp_dir().join("fleetcache-spool")),
            },
            share_fetch_across_builds: flag(opts.share_fetch_across_builds, "shareFetchAcrossBuilds", env)?
                .unwrap_or(true),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            attempt_timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
            build_phase_local,
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
    fn prefix_and_build_id_are_checked() {
        let with = |prefix: Option<&str>, build: Option<&str>| {
            Config::from_options(
                Options {
                    backend: Some("memory".into()),
                    prefix: prefix.map(Into::into),
                    build_id: build.map(Into::into),
                    ..Default::default()
                },
                &|_| None,
            )
        };
        for bad in ["", "  ", "a#b", "a b", "a\0b", "a//b", "x/../y", "100%", &"p".repeat(129)] {
            let e = with(Some(bad), None).unwrap_err();
            assert!(e.context.contains("`prefix`"), "{bad:?}: {e}");
        }
        assert_eq!(with(Some("/sites/shop-1/"), None).unwrap().prefix, "sites/shop-1");
        for bad in ["", "a/b", "a b", "a#b", "x\u{7}", &"b".repeat(129)] {
            let e = with(None, Some(bad)).unwrap_err();
            assert!(e.context.contains("`buildId`"), "{bad:?}: {e}");
        }
        assert_eq!(with(None, Some("v1.2.3+git.abc_DEF-9")).unwrap().build_id, "v1.2.3+git.abc_DEF-9");
        // An empty variable is unset, not an error.
        let c = Config::from_options(
            Options { backend: Some("memory".into()), ..Default::default() },
            &env_of(&[(ENV_PREFIX, "")]),
        )
        .unwrap();
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(duration_s(f64::INFINITY, "x").unwrap(), MAX_DURATION_S);
        let e = Config::from_options(
            Options { backend: Some("memory".into()), memory_bytes: Some(f64::INFINITY), ..Default::default() },
            &|_| None,
        )
        .unwrap_err();
        assert!(e.context.ends_with("got Infinity"), "{e}");
        assert!(e.context.contains("between 0 and 9000000000000000"), "{e}");
        assert!(duration_s(f64::NAN, "x").is_err());
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

    fn entries(pairs: &[(&str, OptionValue)]) -> Vec<(String, OptionValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn entries_are_typed_by_the_one_option_list() {
        let o = Options::from_entries(entries(&[
            ("bucket", OptionValue::Str("b".into())),
            ("memoryBytes", OptionValue::Num(1024.0)),
            ("forcePathStyle", OptionValue::Bool(true)),
            ("table", OptionValue::Absent),
        ]))
        .unwrap();
        assert_eq!(o.bucket.as_deref(), Some("b"));
        assert_eq!(o.memory_bytes, Some(1024.0));
        assert_eq!(o.force_path_style, Some(true));
        assert_eq!(o.table, None);
        let e = Options::from_entries(entries(&[("getTimeoutMs", OptionValue::Str("100".into()))])).unwrap_err();
        assert_eq!(e.context, "`getTimeoutMs` must be a number, got string");
        let e = Options::from_entries(entries(&[("writeDuringBuild", OptionValue::Other("object"))])).unwrap_err();
        assert_eq!(e.context, "`writeDuringBuild` must be a boolean, got object");
        // every listed name is accepted
        for name in OPTION_NAMES {
            assert!(Options::from_entries(entries(&[(name, OptionValue::Absent)])).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_readme_documents_every_option() {
        let readme = include_str!("../../docs/configuration.md");
        let table = &readme[readme.find("## Options").unwrap()..];
        let table = &table[..table.find("\n\n###").unwrap()];
        let documented: Vec<&str> =
            table.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
        let mut want = OPTION_NAMES.to_vec();
        want.extend_from_slice(JS_OPTIONS);
        let mut got: Vec<&str> = documented.iter().copied().filter(|o| !o.is_empty() && *o != "—").collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        // Each row names the option's environment variable as the table in `options!` does, and
        // so does the doc `binding.d.ts` carries.
        for spec in OPTION_SPECS {
            let row = table.lines().find(|l| l.starts_with(&format!("| `{}` |", spec.name))).unwrap();
            if let Some(env) = spec.env {
                assert!(
                    row.split('|').nth(2).unwrap().contains(env),
                    "docs/configuration.md: {} without {env}",
                    spec.name
                );
                assert!(spec.doc.contains(env), "the doc of `{}` does not name {env}", spec.name);
            }
        }
    }

    #[test]
    fn every_option_has_a_variable_and_every_name_read_is_in_the_table() {
        for s in OPTION_SPECS {
            assert!(s.env.is_some(), "{} has no environment variable", s.name);
            if let Some(d) = s.default {
                assert!(s.range.is_some_and(|(lo, hi)| lo <= d && d <= hi), "{}'s default is out of its range", s.name);
                assert!(s.doc.contains("Default"), "the doc of `{}` does not give its default", s.name);
            }
        }
        // Every option the code reads resolves through the table: the defaults go through them all.
        let c = Config::memory();
        assert_eq!(c.get_timeout_ms, 1_000);
        assert_eq!(spec("getTimeoutMs").range, Some((1.0, 600_000.0)));
        let e = Config::from_options(
            Options { backend: Some("memory".into()), ..Default::default() },
            &env_of(&[(ENV_CDN_COLLAPSE_AT, "1")]),
        )
        .unwrap_err();
        assert!(
            e.context.contains(
                "FLEETCACHE_CDN_COLLAPSE_AT (option `cdn.collapseAt`) must be a whole number between 2 and 3000"
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_options_are_refused_with_the_nearest_name() {
        let cases = [
            ("bucektName", "did you mean `bucket`?"),
            ("bukket", "did you mean `bucket`?"),
            ("memoryByte", "did you mean `memoryBytes`?"),
            ("getTimeout", "did you mean `getTimeoutMs`?"),
            ("dynamoEndpoint", "did you mean `dynamodbEndpoint`?"),
            ("region_", "did you mean `region`?"),
        ];
        for (name, want) in cases {
            let e = Options::from_entries(entries(&[(name, OptionValue::Num(1.0))])).unwrap_err();
            assert_eq!(e.kind.code(), "FLEETCACHE_CONFIG");
            assert!(e.context.starts_with(&format!("unknown option `{name}`")), "{e}");
            assert!(e.context.ends_with(want), "{name}: {e}");
        }
        let e = Options::from_entries(entries(&[("zzzzzzzzzzzzzzzz", OptionValue::Num(1.0))])).unwrap_err();
        assert!(e.context.contains("(known: backend, bucket,"), "{e}");
    }

    #[test]
    fn the_build_phase_keeps_entries_in_the_process_unless_told_otherwise() {
        let opts = Options {
            bucket: Some("b".into()),
            table: Some("t".into()),
            region: Some("eu-west-1".into()),
            memory_bytes: Some(1024.0),
            max_entry_bytes: Some(10.0),
            ..Default::default()
        };
        let build = |extra: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                if k == ENV_NEXT_PHASE {
                    return Some(BUILD_PHASE.to_string());
                }
                extra.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
            }
        };
        let local = opts.for_build_phase(&build(&[])).unwrap().unwrap();
        assert_eq!(
            local,
            Options {
                backend: Some("memory".into()),
                feed_interval_ms: Some(0.0),
                lease_ms: Some(0.0),
                memory_bytes: Some(1024.0),
                max_entry_bytes: Some(10.0),
                ..Default::default()
            }
        );
        let write = Options { write_during_build: Some(true), ..opts.clone() };
        assert_eq!(write.for_build_phase(&build(&[])).unwrap(), None);
        assert_eq!(opts.for_build_phase(&build(&[(ENV_WRITE_DURING_BUILD, "1")])).unwrap(), None);
        let no = Options { write_during_build: Some(false), ..opts.clone() };
        assert!(no.for_build_phase(&build(&[(ENV_WRITE_DURING_BUILD, "1")])).unwrap().is_some());
        let serve = env_of(&[(ENV_NEXT_PHASE, "phase-production-server")]);
        assert_eq!(opts.for_build_phase(&serve).unwrap(), None);
        // the build needs no bucket or table, and says so in the config
        let c = Config::from_options(Options::default(), &build(&[])).unwrap();
        assert_eq!((c.backend, c.build_phase_local, c.feed_interval_ms), (Backend::Memory, true, 0));
        assert!(!Config::memory().build_phase_local);
    }
}
