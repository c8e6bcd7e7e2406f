//! The `cdn.*` options, validated: what the CDN purger (`crate::cdn`) plans with.

use super::{endpoint, number, or_default, text, Options};
use crate::error::{Error, Result};

/// `cdn.*` options, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CdnConfig {
    pub planner: PlannerConfig,
    pub rsc: RscVariants,
    /// `cdn.cloudfront.distributionId` (`FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID`): CloudFront on.
    pub distribution_id: Option<String>,
    /// `cdn.cloudfront.endpoint` (`AWS_ENDPOINT_URL_CLOUDFRONT`, `AWS_ENDPOINT_URL`): local servers.
    pub endpoint: Option<String>,
}

impl Default for CdnConfig {
    fn default() -> Self {
        CdnConfig { planner: PlannerConfig::default(), rsc: RscVariants::Query, distribution_id: None, endpoint: None }
    }
}

/// How the CDN keys RSC responses (`cdn.rscVariants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RscVariants {
    /// By the `_rsc` query string (the cache policy docs/cdn.md recommends): purge `<path>?_rsc=*`.
    Query,
    /// By Next's request headers only: purging the path covers them.
    Headers,
}

/// CloudFront's limits on invalidations in progress.
pub const MAX_FILES_IN_PROGRESS: usize = 3_000;
pub const MAX_WILDCARDS_IN_PROGRESS: usize = 15;
/// Invalidation paths a month without charge, and the price of each one past them.
pub const FREE_PATHS_PER_MONTH: u64 = 1_000;
pub const PRICE_PER_PATH: f64 = 0.005;

#[derive(Debug, Clone, PartialEq)]
pub struct PlannerConfig {
    pub window_ms: i64,
    pub collapse_at: usize,
    pub max_files_in_progress: usize,
    pub max_wildcards_in_progress: usize,
    pub free_paths_per_month: u64,
    pub price_per_path: f64,
    /// Most paths to send in a month (a wildcard counts one); `None`: no ceiling.
    pub ceiling_paths: Option<u64>,
    /// The same ceiling in dollars (free paths included on top); the lower of the two applies.
    pub ceiling_dollars: Option<f64>,
    /// When a sent batch counts as done if no completion is reported.
    pub assume_done_ms: i64,
    /// First wait after a refusal; doubles per refusal in a row, with up to 50 % jitter.
    pub backoff_ms: i64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            window_ms: super::spec("cdn.windowMs").default.unwrap_or_default() as i64,
            collapse_at: super::spec("cdn.collapseAt").default.unwrap_or_default() as usize,
            max_files_in_progress: MAX_FILES_IN_PROGRESS,
            max_wildcards_in_progress: MAX_WILDCARDS_IN_PROGRESS,
            free_paths_per_month: FREE_PATHS_PER_MONTH,
            price_per_path: PRICE_PER_PATH,
            ceiling_paths: None,
            ceiling_dollars: None,
            assume_done_ms: 10 * 60_000,
            backoff_ms: 1_000,
        }
    }
}

impl PlannerConfig {
    /// The monthly path ceiling in force (the lower of paths and dollars), if any.
    pub fn ceiling(&self) -> Option<u64> {
        let from_dollars =
            self.ceiling_dollars.map(|d| self.free_paths_per_month + (d.max(0.0) / self.price_per_path).floor() as u64);
        match (self.ceiling_paths, from_dollars) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The `cdn.*` options.
pub(super) fn from_options(opts: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<CdnConfig> {
    let distribution_id = text(opts.cdn_distribution_id.clone(), "cdn.cloudfront.distributionId", env);
    if let Some(id) = &distribution_id {
        if id.len() > 64 || !id.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return Err(Error::config(format!(
                "`cdn.cloudfront.distributionId` {id:?} is not a CloudFront distribution ID (like \"E2QWRUHAPOMQZL\")"
            )));
        }
    }
    let endpoint = endpoint(opts.cdn_endpoint.clone(), "cdn.cloudfront.endpoint", env)?;
    let rsc = match text(opts.cdn_rsc_variants.clone(), "cdn.rscVariants", env).as_deref() {
        None | Some("query") => RscVariants::Query,
        Some("headers") => RscVariants::Headers,
        Some(other) => {
            return Err(Error::config(format!("`cdn.rscVariants` must be \"query\" or \"headers\", got {other:?}")))
        }
    };
    let d = PlannerConfig::default();
    let planner = PlannerConfig {
        window_ms: or_default(opts.cdn_window_ms, "cdn.windowMs", env)? as i64,
        collapse_at: or_default(opts.cdn_collapse_at, "cdn.collapseAt", env)? as usize,
        ceiling_paths: number(opts.cdn_max_paths_per_month, "cdn.maxPathsPerMonth", env)?.map(|v| v as u64),
        ceiling_dollars: number(opts.cdn_max_dollars_per_month, "cdn.maxDollarsPerMonth", env)?,
        ..d
    };
    Ok(CdnConfig { planner, rsc, distribution_id, endpoint })
}
