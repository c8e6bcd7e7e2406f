//! Sending CDN invalidations: the [`cdn::Planner`] run against a target, CloudFront
//! (`CreateInvalidation`) or a hook the app gives (`cdn.purge`, for Cloudflare, Fastly, …).
//!
//! Only the instance that made a change sends its purge: the one whose `revalidateTag` /
//! `revalidatePath` ran (the tags' pages, from the tag index), or whose `set` rewrote a page
//! on demand (the core's `set` says when). Nothing is sent from the change feed,
//! so a revalidation is purged once however many instances learn of it.
//!
//! The monthly path count the budget is checked against is the fleet's: a counter in DynamoDB
//! (`C#<prefix>#cdn-paths-<yyyy-mm>`), read before a batch is planned and added to once
//! CloudFront accepted it. Instances planning at the same moment can pass the ceiling by at
//! most one batch each.
//!
//! CloudFront's in-progress limits are per distribution; each instance knows only its own
//! invalidations, so instances of a large fleet can together pass them: CloudFront then refuses
//! with `TooManyInvalidationsInProgress` and the batch comes back after a backoff with jitter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::cdn::watch::{covers, PurgeWatch};
pub use crate::cdn::CdnConfig;
use crate::cdn::{Batch, PageKind, Planner, PlannerConfig, PlannerStats, RscVariants};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::IndexRow;

/// What the purger asks of the core it works for (the core implements it). Everything here is
/// awaited on the purger's own task, never on a `get`'s or a `set`'s path.
pub trait PurgeHost: Send + Sync + 'static {
    /// The build this instance serves (its `/_next/data/` paths come first).
    fn build_id(&self) -> String;
    /// Names this instance in CloudFront's caller references.
    fn instance_id(&self) -> &str;
    /// The app's AWS configuration (for the CloudFront client).
    fn sdk_config(&self) -> impl std::future::Future<Output = aws_config::SdkConfig> + Send;
    /// The registered builds' IDs, oldest first.
    fn list_build_ids(&self) -> impl std::future::Future<Output = Result<Vec<String>>> + Send;
    /// The tag index rows of `tags`.
    fn index_rows(&self, tags: &[String]) -> impl std::future::Future<Output = Result<Vec<IndexRow>>> + Send;
    /// Adds `n` to the app's counter `name` (the fleet's monthly path count).
    fn add_to_counter(&self, name: &str, n: u64) -> impl std::future::Future<Output = Result<u64>> + Send;
}

/// A batch as a hook receives it.
pub type HookFn = Arc<dyn Fn(Batch) -> BoxFuture<'static, std::result::Result<(), String>> + Send + Sync>;

pub enum Target {
    CloudFront { distribution_id: String, endpoint: Option<String> },
    Hook(HookFn),
}

/// Counts beyond the planner's own.
#[derive(Default)]
pub struct PurgeCounters {
    pub failed_batches: AtomicU64,
}

pub struct Purger {
    planner: Mutex<Planner>,
    target: Target,
    /// Tags revalidated here whose pages are still to be looked up in the tag index.
    tags: Mutex<Vec<String>>,
    /// Pages rewritten here whose paths (and, for the pages router, the builds' data paths) are
    /// still to be named.
    pages: Mutex<Vec<(String, PageKind)>>,
    rsc: RscVariants,
    wake: tokio::sync::Notify,
    /// Our batch id → CloudFront's invalidation id, while in progress.
    in_flight: Mutex<HashMap<u64, String>>,
    clock: Arc<dyn Clock>,
    pub counters: PurgeCounters,
    /// Registered builds (for pages-router data paths), and when they were read.
    builds: Mutex<(i64, Vec<String>)>,
    /// Receipts waiting for the purge of their tags' pages.
    watches: Mutex<Vec<Arc<PurgeWatch>>>,
}

/// How often CloudFront is asked which invalidations completed, while any is in progress.
const COMPLETION_POLL_MS: i64 = 10_000;
/// A hook's batch that has not settled by then failed (it comes back after a backoff).
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Registered builds are read again after this long.
const BUILDS_TTL_MS: i64 = 5 * 60_000;
/// At most this many builds (the most recently active) get `/_next/data/` paths.
pub const MAX_DATA_BUILDS: usize = 5;

pub fn counter_name(now: i64) -> String {
    let (y, m, _) = crate::clock::civil_date(now);
    format!("cdn-paths-{y:04}-{m:02}")
}

impl Purger {
    pub fn new(cfg: &CdnConfig, target: Target, clock: Arc<dyn Clock>) -> Purger {
        Purger {
            planner: Mutex::new(Planner::new(cfg.planner.clone())),
            target,
            tags: Mutex::new(Vec::new()),
            pages: Mutex::new(Vec::new()),
            rsc: cfg.rsc,
            wake: tokio::sync::Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            clock,
            counters: PurgeCounters::default(),
            builds: Mutex::new((i64::MIN, Vec::new())),
            watches: Mutex::new(Vec::new()),
        }
    }

    /// Follows the purge of `tags` for a receipt: register before the tags are queued
    /// (`add_tags`), so the round that takes them also plans the watch's paths. `unwatch` after.
    pub fn watch(&self, tags: &[String]) -> Arc<PurgeWatch> {
        let w = Arc::new(PurgeWatch::new(tags));
        self.watches.lock().push(w.clone());
        w
    }

    pub fn unwatch(&self, w: &Arc<PurgeWatch>) {
        self.watches.lock().retain(|x| !Arc::ptr_eq(x, w));
    }

    /// The watches whose paths are not planned yet get them (one tag-index lookup each).
    async fn plan_watches<H: PurgeHost>(&self, host: &H) {
        let fresh: Vec<Arc<PurgeWatch>> =
            self.watches.lock().iter().filter(|w| !w.state.lock().looked_up).cloned().collect();
        for w in fresh {
            let planned = self.paths_for_tags(host, &w.tags).await;
            let mut st = w.state.lock();
            st.looked_up = true;
            match planned {
                Ok(paths) => {
                    st.receipt.planned = paths.clone();
                    st.waiting = paths;
                    if st.waiting.is_empty() {
                        w.finish(&mut st);
                    }
                }
                Err(e) => {
                    st.receipt.error = Some(format!("pages not looked up: {e}"));
                    w.finish(&mut st);
                }
            }
        }
    }

    /// A batch went out (`Ok(id)`) or failed for good: the watches it covers hear of it.
    fn tell_watches(&self, batch: &Batch, outcome: std::result::Result<&str, &str>) {
        for w in self.watches.lock().iter() {
            let mut st = w.state.lock();
            if st.finished || !st.looked_up {
                continue;
            }
            let before = st.waiting.len();
            st.waiting.retain(|p| !batch.paths.iter().any(|b| covers(b, p)));
            if st.waiting.len() == before {
                continue;
            }
            match outcome {
                Ok(id) => {
                    if !st.receipt.invalidation_ids.iter().any(|x| x == id) {
                        st.receipt.invalidation_ids.push(id.to_string());
                    }
                }
                Err(e) => st.receipt.error = Some(e.to_string()),
            }
            if st.waiting.is_empty() || st.receipt.error.is_some() {
                w.finish(&mut st);
            }
        }
    }

    pub fn target_name(&self) -> &'static str {
        match self.target {
            Target::CloudFront { .. } => "cloudfront",
            Target::Hook(_) => "hook",
        }
    }

    /// Queues paths to purge.
    pub fn add(&self, paths: Vec<String>) {
        if paths.is_empty() {
            return;
        }
        self.planner.lock().add(paths, self.clock.now_ms());
        self.wake.notify_one();
    }

    /// Queues revalidated tags: their pages are looked up in the tag index by the purger's task,
    /// never on the caller's path.
    pub fn add_tags(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        self.tags.lock().extend(tags.iter().cloned());
        self.wake.notify_one();
    }

    /// Queues a page rewritten on demand: its paths are named by the purger's task (a
    /// pages-router page's name every build's data path, which takes a listing of the builds).
    pub fn add_page(&self, path: String, kind: PageKind) {
        self.pages.lock().push((path, kind));
        self.wake.notify_one();
    }

    pub fn stats(&self) -> (PlannerStats, usize) {
        let p = self.planner.lock();
        (p.stats.clone(), p.pending())
    }

    pub fn used_this_month(&self) -> u64 {
        self.planner.lock().used_this_month(self.clock.now_ms())
    }

    /// The builds whose `/_next/data/` paths a pages-router purge names (this one first).
    pub async fn builds<H: PurgeHost>(&self, host: &H) -> Vec<String> {
        let now = self.clock.now_ms();
        {
            let b = self.builds.lock();
            if now.saturating_sub(b.0) < BUILDS_TTL_MS {
                return b.1.clone();
            }
        }
        let own = host.build_id();
        let mut out = vec![own.clone()];
        match host.list_build_ids().await {
            Ok(list) => out.extend(list.into_iter().rev().filter(|b| *b != own).take(MAX_DATA_BUILDS - 1)),
            Err(e) => crate::log::warn("CDN purge: builds not listed (this build's data paths only)", &e.to_string()),
        }
        *self.builds.lock() = (now, out.clone());
        out
    }

    /// One round: tags into paths, completions, and the batches due. Returns how long to wait
    /// before the next round (less if woken).
    pub(crate) async fn round<H: PurgeHost>(
        &self,
        host: &H,
        cf: Option<&aws_sdk_cloudfront::Client>,
        last_poll: &mut i64,
    ) -> Duration {
        let pages = std::mem::take(&mut *self.pages.lock());
        if !pages.is_empty() {
            let builds =
                if pages.iter().any(|(_, k)| *k == PageKind::Pages) { self.builds(host).await } else { vec![] };
            self.add(pages.iter().flat_map(|(p, k)| crate::cdn::page_paths(p, *k, &builds, self.rsc)).collect());
        }
        self.plan_watches(host).await;
        let tags = std::mem::take(&mut *self.tags.lock());
        if !tags.is_empty() {
            match self.paths_for_tags(host, &tags).await {
                Ok(paths) => self.add(paths),
                Err(e) => {
                    self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    crate::log::error(
                        "CDN purge: pages of revalidated tags not looked up (the CDN serves them until their s-maxage)",
                        &format!("{} tag(s): {e}", tags.len()),
                    );
                }
            }
        }
        let now = self.clock.now_ms();
        if let (Some(cf), Target::CloudFront { distribution_id, .. }) = (cf, &self.target) {
            if !self.in_flight.lock().is_empty() && now - *last_poll >= COMPLETION_POLL_MS {
                *last_poll = now;
                self.poll_completions(cf, distribution_id).await;
            }
        }
        let due = self.planner.lock().due(now);
        let mut sent_any = false;
        if due {
            // The fleet's count this month, before the budget is checked.
            if self.planner.lock().ceiling().is_some() {
                if let Ok(used) = host.add_to_counter(&counter_name(now), 0).await {
                    self.planner.lock().sync_used(used, now);
                }
            }
            loop {
                let batch = self.planner.lock().plan(self.clock.now_ms());
                let Some(batch) = batch else { break };
                sent_any = true;
                self.send(host, cf, batch).await;
            }
        }
        let p = self.planner.lock();
        let window = Duration::from_millis(p.config().window_ms.clamp(20, 5_000) as u64);
        match p.pending() {
            0 => Duration::from_millis(COMPLETION_POLL_MS as u64),
            // Collecting: plan when the window has passed.
            _ if sent_any || !due => window,
            // Waiting for room (or a backoff): look again in a while, not every window.
            _ => window.max(Duration::from_secs(1)),
        }
    }

    /// The paths of `tags`' pages (the tag index) and of the pages they name, with variants.
    async fn paths_for_tags<H: PurgeHost>(&self, host: &H, tags: &[String]) -> Result<Vec<String>> {
        let rows = host.index_rows(tags).await?;
        let builds = if crate::cdn::rows_name_pages_router(&rows) { self.builds(host).await } else { vec![] };
        Ok(crate::cdn::paths_of_rows(tags, rows, &builds, self.rsc))
    }

    async fn send<H: PurgeHost>(&self, host: &H, cf: Option<&aws_sdk_cloudfront::Client>, batch: Batch) {
        let now = self.clock.now_ms();
        let what = format!(
            "{} path(s) ({} wildcard), ${:.3}{}: {}",
            batch.paths.len(),
            batch.wildcards,
            batch.cost,
            if batch.widened { ", widened to wildcards by the monthly ceiling" } else { "" },
            preview(&batch.paths)
        );
        let sent = match (&self.target, cf) {
            (Target::CloudFront { distribution_id, .. }, Some(cf)) => {
                create_invalidation(cf, distribution_id, &batch, host.instance_id(), now).await.map(Some)
            }
            (Target::Hook(f), _) => match tokio::time::timeout(HOOK_TIMEOUT, f(batch.clone())).await {
                Ok(Ok(())) => Ok(None),
                Ok(Err(msg)) => Err(Error::backend(format!("cdn.purge hook: {msg}"), true)),
                Err(_) => Err(Error::new(ErrorKind::Timeout, "cdn.purge hook did not settle within 30 s")),
            },
            (Target::CloudFront { .. }, None) => Err(Error::backend("CloudFront client not ready", true)),
        };
        match sent {
            Ok(inv) => {
                self.tell_watches(&batch, Ok(inv.as_ref().map_or("", |i| i.id.as_str())));
                match inv {
                    Some(Invalidation { id, completed: false }) if !id.is_empty() => {
                        self.in_flight.lock().insert(batch.id, id);
                    }
                    // Completed already (or a hook: its CDN has its own limits).
                    _ => self.planner.lock().completed(batch.id),
                }
                let n = batch.paths.len() as u64;
                if let Err(e) = host.add_to_counter(&counter_name(now), n).await {
                    crate::log::warn("CDN purge: the fleet's monthly path count not updated", &e.to_string());
                }
                if batch.widened {
                    crate::log::warn("CDN purge widened (monthly ceiling)", &what);
                } else {
                    crate::log::emit(crate::log::Level::Info, "CDN purge sent", &what);
                }
            }
            Err(e) if e.retryable || e.kind == ErrorKind::Timeout || e.kind == ErrorKind::Throttled => {
                crate::log::warn("CDN purge refused or failed; retried after a backoff", &format!("{what}: {e}"));
                self.planner.lock().refused(batch, now);
            }
            Err(e) => {
                self.tell_watches(&batch, Err(&format!("not sent: {e}")));
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.planner.lock().completed(batch.id);
                crate::log::error(
                    "CDN purge failed (not retried: the CDN serves these until their s-maxage)",
                    &format!("{what}: {e}"),
                );
            }
        }
    }

    async fn poll_completions(&self, cf: &aws_sdk_cloudfront::Client, distribution_id: &str) {
        let out = match cf.list_invalidations().distribution_id(distribution_id).max_items(100).send().await {
            Ok(o) => o,
            Err(e) => {
                crate::log::debug("cdn", || format!("ListInvalidations: {e}"));
                return;
            }
        };
        let done: Vec<String> = out
            .invalidation_list()
            .map(|l| l.items())
            .unwrap_or_default()
            .iter()
            .filter(|i| i.status().eq_ignore_ascii_case("completed"))
            .map(|i| i.id().to_string())
            .collect();
        let mut flight = self.in_flight.lock();
        let finished: Vec<u64> = flight.iter().filter(|(_, cf_id)| done.contains(cf_id)).map(|(id, _)| *id).collect();
        let mut planner = self.planner.lock();
        for id in finished {
            flight.remove(&id);
            planner.completed(id);
        }
    }
}

fn preview(paths: &[String]) -> String {
    let mut s = paths.iter().take(5).cloned().collect::<Vec<_>>().join(" ");
    if paths.len() > 5 {
        s.push_str(&format!(" … (+{})", paths.len() - 5));
    }
    s
}

/// A CloudFront client on the app's AWS configuration. CloudFront is global: its API lives in
/// us-east-1 whatever the app's region.
pub fn cloudfront_client_from(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_cloudfront::Client {
    let mut b =
        aws_sdk_cloudfront::config::Builder::from(sdk).region(aws_sdk_cloudfront::config::Region::new("us-east-1"));
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_cloudfront::Client::from_conf(b.build())
}

/// Sends one `CreateInvalidation`; the invalidation's id, or an empty one when CloudFront
/// reports it completed already.
pub async fn create_invalidation(
    cf: &aws_sdk_cloudfront::Client,
    distribution_id: &str,
    batch: &Batch,
    instance: &str,
    now: i64,
) -> Result<Invalidation> {
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
    let paths = Paths::builder()
        .quantity(batch.paths.len() as i32)
        .set_items(Some(batch.paths.clone()))
        .build()
        .map_err(|e| Error::invalid(format!("CreateInvalidation: {e}")))?;
    let inv = InvalidationBatch::builder()
        .paths(paths)
        .caller_reference(format!("fleetcache-{instance}-{now}-{}", batch.id))
        .build()
        .map_err(|e| Error::invalid(format!("CreateInvalidation: {e}")))?;
    let out = cf.create_invalidation().distribution_id(distribution_id).invalidation_batch(inv).send().await.map_err(
        |e| {
            let too_many = e.as_service_error().is_some_and(|s| s.is_too_many_invalidations_in_progress());
            let err = crate::backend::aws::map_err("CreateInvalidation", e, &[]);
            if too_many {
                Error { kind: ErrorKind::Throttled, retryable: true, context: err.context }
            } else {
                err
            }
        },
    )?;
    Ok(match out.invalidation() {
        Some(inv) => {
            Invalidation { id: inv.id().to_string(), completed: inv.status().eq_ignore_ascii_case("completed") }
        }
        None => Invalidation { id: String::new(), completed: true },
    })
}

/// An invalidation CloudFront took: its id, and whether it reported it completed at once.
pub struct Invalidation {
    pub id: String,
    pub completed: bool,
}

/// One invalidation of a one-shot purge (`fleetcache purge`), and how sending it went.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "node", napi_derive::napi(object, js_name = "PurgeBatchReport"))]
pub struct SentBatch {
    pub paths: Vec<String>,
    pub files: u32,
    pub wildcards: u32,
    pub cost: f64,
    pub widened: bool,
    /// CloudFront's invalidation id once sent.
    pub invalidation_id: Option<String>,
    pub error: Option<String>,
}

impl SentBatch {
    fn planned(b: &Batch) -> SentBatch {
        SentBatch {
            paths: b.paths.clone(),
            files: b.files as u32,
            wildcards: b.wildcards as u32,
            cost: b.cost,
            widened: b.widened,
            invalidation_id: None,
            error: None,
        }
    }
}

/// What `fleetcache purge` planned and sent.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct PurgeReport {
    /// The paths asked for (pages with their variants), before planning.
    pub paths: Vec<String>,
    pub batches: Vec<SentBatch>,
    /// Paths left over (CloudFront's in-progress limits) or over the month's ceiling.
    pub not_sent: f64,
    pub cost: f64,
    pub sent: bool,
}

/// `fleetcache purge --tag t | --path p [--dry-run]`: the paths of `tags` (the tag index) and
/// `paths` (a page: with its variants; a path ending in `*`: as given), planned by the same
/// rules at once (no window), then sent to CloudFront unless `dry_run`.
pub async fn purge_now<H: PurgeHost>(
    host: &H,
    cfg: &CdnConfig,
    tags: &[String],
    paths: &[String],
    dry_run: bool,
) -> Result<PurgeReport> {
    if !dry_run && cfg.distribution_id.is_none() {
        return Err(Error::config(
            "no CloudFront distribution: set cdn.cloudfront.distributionId (FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID, or --distribution-id); --dry-run shows the plan",
        ));
    }
    let mut asked: Vec<String> = Vec::new();
    for p in paths {
        if !p.starts_with('/') {
            return Err(Error::invalid(format!("a path to purge starts with `/`, got {p:?}")));
        }
        if crate::cdn::is_wildcard(p) {
            asked.push(p.clone());
        } else {
            asked.extend(crate::cdn::page_paths(p, crate::cdn::PageKind::App, &[], cfg.rsc));
        }
    }
    if !tags.is_empty() {
        let rows = host.index_rows(tags).await?;
        asked.extend(crate::cdn::paths_of_rows(tags, rows, &[host.build_id()], cfg.rsc));
    }
    asked.sort();
    asked.dedup();
    let now = crate::clock::SystemClock.now_ms();
    let mut planner = Planner::new(PlannerConfig { window_ms: 0, ..cfg.planner.clone() });
    if planner.ceiling().is_some() {
        planner.sync_used(host.add_to_counter(&counter_name(now), 0).await?, now);
    }
    planner.add(asked.clone(), now);
    let mut report = PurgeReport { paths: asked, sent: !dry_run, ..Default::default() };
    let planned: Vec<Batch> = std::iter::from_fn(|| planner.plan(now)).collect();
    report.batches = planned.iter().map(SentBatch::planned).collect();
    report.not_sent = (planner.pending() as u64 + planner.stats.over_budget) as f64;
    report.cost = planner.stats.cost;
    if dry_run {
        return Ok(report);
    }
    let id = cfg.distribution_id.clone().unwrap_or_default();
    let cf = cloudfront_client_from(&host.sdk_config().await, cfg.endpoint.as_deref());
    for (b, sb) in planned.iter().zip(&mut report.batches) {
        match create_invalidation(&cf, &id, b, host.instance_id(), now).await {
            Ok(inv) => {
                sb.invalidation_id = Some(inv.id);
                let _ = host.add_to_counter(&counter_name(now), b.paths.len() as u64).await;
            }
            Err(e) => sb.error = Some(e.to_string()),
        }
    }
    Ok(report)
}

/// The purger's task: rounds until the core is dropped.
pub async fn run<H: PurgeHost>(host: Weak<H>, purger: Arc<Purger>) {
    let cf = match &purger.target {
        Target::CloudFront { endpoint, .. } => {
            let Some(h) = host.upgrade() else { return };
            Some(cloudfront_client_from(&h.sdk_config().await, endpoint.as_deref()))
        }
        Target::Hook(_) => None,
    };
    let mut last_poll = 0;
    loop {
        let wait = {
            let Some(h) = host.upgrade() else { return };
            purger.round(h.as_ref(), cf.as_ref(), &mut last_poll).await
        };
        tokio::select! {
            _ = purger.wake.notified() => {
                // Let the window collect what arrives with it.
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
