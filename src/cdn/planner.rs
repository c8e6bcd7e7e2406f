//! The invalidation planner: the window, dedupe and cover, collapse, CloudFront's limits on
//! invalidations in progress, and the monthly budget (see the module doc of [`crate::cdn`]).

use std::collections::{BTreeMap, BTreeSet};

pub use crate::config::cdn::{FREE_PATHS_PER_MONTH, MAX_FILES_IN_PROGRESS, MAX_WILDCARDS_IN_PROGRESS, PRICE_PER_PATH};
pub use crate::config::PlannerConfig;

/// One invalidation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: u64,
    /// Sorted; wildcards end in `*`.
    pub paths: Vec<String>,
    pub files: usize,
    pub wildcards: usize,
    /// Dollars this batch adds to the month's bill.
    pub cost: f64,
    /// The budget forced wildcards where files were asked for.
    pub widened: bool,
}

/// What the planner has done (for logs and metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlannerStats {
    pub batches: u64,
    pub paths_sent: u64,
    pub paths_requested: u64,
    pub collapsed: u64,
    pub widened_batches: u64,
    /// Wildcards merged into wider ones to fit CloudFront's 15 in progress.
    pub merged: u64,
    pub refusals: u64,
    pub cost: f64,
    /// Paths not sent because the month's ceiling was reached.
    pub over_budget: u64,
}

pub fn is_wildcard(p: &str) -> bool {
    p.ends_with('*')
}

/// Whether `wildcard` (`/blog/*`, `/*`) covers `path`.
fn covers(wildcard: &str, path: &str) -> bool {
    let stem = wildcard.trim_end_matches('*');
    path != wildcard && path.starts_with(stem)
}

/// The folder of a path: `/blog/a` → `/blog`, `/a` → `` (the root); of a wildcard, its stem's
/// parent (`/blog/*` → ``), which is where widening takes it next.
fn folder(path: &str) -> &str {
    let p = path.trim_end_matches('*');
    let p = p.strip_suffix('/').unwrap_or(p);
    p.rfind('/').map_or("", |i| &p[..i])
}

fn wildcard_of(folder: &str) -> String {
    format!("{folder}/*")
}

pub struct Planner {
    cfg: PlannerConfig,
    pending: BTreeSet<String>,
    first_pending_at: Option<i64>,
    /// Sent and not known to be done: (id, files, wildcards, assumed done at).
    in_progress: Vec<(u64, usize, usize, i64)>,
    /// The month (`year * 12 + month`) and the paths sent in it.
    month: (i64, u64),
    next_id: u64,
    /// No batch before this (after a refusal), and refusals in a row.
    hold_until: i64,
    refusals_in_a_row: u32,
    jitter_seed: u64,
    pub stats: PlannerStats,
}

/// Months since the epoch of `ms` (UTC), for the monthly budget.
fn month_of(ms: i64) -> i64 {
    let (y, m, _) = crate::clock::civil_date(ms);
    y * 12 + m - 1
}

impl Planner {
    pub fn new(cfg: PlannerConfig) -> Planner {
        Planner {
            cfg,
            pending: BTreeSet::new(),
            first_pending_at: None,
            in_progress: Vec::new(),
            month: (0, 0),
            next_id: 1,
            hold_until: 0,
            refusals_in_a_row: 0,
            jitter_seed: 0x9e37_79b9_7f4a_7c15,
            stats: PlannerStats::default(),
        }
    }

    pub fn config(&self) -> &PlannerConfig {
        &self.cfg
    }

    pub fn ceiling(&self) -> Option<u64> {
        self.cfg.ceiling()
    }

    /// The fleet's count of paths sent this month (a shared counter): the budget is checked
    /// against the larger of it and this planner's own count.
    pub fn sync_used(&mut self, fleet: u64, now: i64) {
        let m = month_of(now);
        if self.month.0 != m {
            self.month = (m, 0);
        }
        self.month.1 = self.month.1.max(fleet);
    }

    /// Paths sent this month so far.
    pub fn used_this_month(&self, now: i64) -> u64 {
        if self.month.0 == month_of(now) {
            self.month.1
        } else {
            0
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Queues paths to purge.
    pub fn add(&mut self, paths: impl IntoIterator<Item = String>, now: i64) {
        for p in paths {
            self.stats.paths_requested += 1;
            if self.pending.insert(p) && self.first_pending_at.is_none() {
                self.first_pending_at = Some(now);
            }
        }
    }

    /// Whether a batch may go out at `now` (the window has passed, no backoff in force).
    pub fn due(&self, now: i64) -> bool {
        self.first_pending_at.is_some_and(|t| now - t >= self.cfg.window_ms) && now >= self.hold_until
    }

    /// A sent batch is done (CloudFront reported it `Completed`).
    pub fn completed(&mut self, id: u64) {
        self.in_progress.retain(|b| b.0 != id);
    }

    /// CloudFront refused `batch` (`TooManyInvalidationsInProgress`): its paths wait for the next
    /// batch, after a backoff with jitter; its cost and budget are given back.
    pub fn refused(&mut self, batch: Batch, now: i64) {
        self.in_progress.retain(|b| b.0 != batch.id);
        if self.month.0 == month_of(now) {
            self.month.1 = self.month.1.saturating_sub(batch.paths.len() as u64);
        }
        self.stats.paths_sent -= batch.paths.len() as u64;
        self.stats.cost -= batch.cost;
        self.stats.batches -= 1;
        self.stats.refusals += 1;
        self.refusals_in_a_row += 1;
        self.jitter_seed =
            self.jitter_seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let base = self.cfg.backoff_ms.saturating_mul(1 << self.refusals_in_a_row.min(10).saturating_sub(1));
        let jitter = (self.jitter_seed >> 33) as i64 % (base / 2 + 1);
        self.hold_until = now + base + jitter;
        for p in batch.paths {
            self.pending.insert(p);
        }
        self.first_pending_at.get_or_insert(now);
    }

    /// The next batch, if one is due and anything fits in CloudFront's limits.
    pub fn plan(&mut self, now: i64) -> Option<Batch> {
        if !self.due(now) {
            return None;
        }
        self.in_progress.retain(|b| b.3 > now);
        let set = self.shaped();
        // The budget: widen until what would be sent fits in what is left this month.
        let used = self.used_this_month(now);
        let (set, widened) = match self.cfg.ceiling() {
            Some(c) if used >= c => {
                // Exhausted: nothing more is sent this month; the CDN serves these until their
                // s-maxage runs out. Counted (and logged by the caller).
                self.stats.over_budget += set.len() as u64;
                self.first_pending_at = None;
                return None;
            }
            Some(c) if used + set.len() as u64 > c => (widen(set, c - used), true),
            _ => (set, false),
        };
        // CloudFront's in-progress limits: what fits goes now, the rest stays pending.
        let files_free = self.cfg.max_files_in_progress.saturating_sub(self.in_progress.iter().map(|b| b.1).sum());
        let wild_free = self.cfg.max_wildcards_in_progress.saturating_sub(self.in_progress.iter().map(|b| b.2).sum());
        let asked = set.iter().filter(|p| is_wildcard(p)).count();
        let set = if asked > wild_free && wild_free > 0 {
            let fitted = fit_wildcards(set, wild_free);
            self.stats.merged += (asked - fitted.iter().filter(|p| is_wildcard(p)).count()) as u64;
            fitted
        } else {
            set
        };
        let (mut files, mut wilds) = (Vec::new(), Vec::new());
        let mut rest = BTreeSet::new();
        for p in set {
            if is_wildcard(&p) && wilds.len() < wild_free {
                wilds.push(p);
            } else if !is_wildcard(&p) && files.len() < files_free {
                files.push(p);
            } else {
                rest.insert(p);
            }
        }
        if files.is_empty() && wilds.is_empty() {
            // Nothing fits until something completes; keep everything (as shaped) pending, and
            // let paths added meanwhile collect for a window again.
            self.pending = rest;
            self.first_pending_at = Some(now);
            return None;
        }
        let (nf, nw) = (files.len(), wilds.len());
        let mut paths = files;
        paths.extend(wilds);
        paths.sort();
        let n = paths.len() as u64;
        let before = used.saturating_sub(self.cfg.free_paths_per_month);
        let after = (used + n).saturating_sub(self.cfg.free_paths_per_month);
        let cost = (after - before) as f64 * self.cfg.price_per_path;
        let month = month_of(now);
        self.month = (month, used + n);
        let id = self.next_id;
        self.next_id += 1;
        self.in_progress.push((id, nf, nw, now + self.cfg.assume_done_ms));
        // What did not fit waits for room, with the paths added meanwhile, a window from now.
        self.first_pending_at = if rest.is_empty() { None } else { Some(now) };
        self.pending = rest;
        self.refusals_in_a_row = 0;
        self.stats.batches += 1;
        self.stats.paths_sent += n;
        self.stats.cost += cost;
        if widened {
            self.stats.widened_batches += 1;
        }
        Some(Batch { id, paths, files: nf, wildcards: nw, cost, widened })
    }

    /// The pending paths deduplicated, covered paths dropped, crowded folders collapsed.
    fn shaped(&mut self) -> BTreeSet<String> {
        let mut by_folder: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in std::mem::take(&mut self.pending) {
            by_folder.entry(folder(&p).to_string()).or_default().push(p);
        }
        let mut out = BTreeSet::new();
        for (f, paths) in by_folder {
            let files = paths.iter().filter(|p| !is_wildcard(p)).count();
            if files >= self.cfg.collapse_at {
                self.stats.collapsed += files as u64;
                out.insert(wildcard_of(&f));
                out.extend(paths.into_iter().filter(|p| is_wildcard(p)));
            } else {
                out.extend(paths);
            }
        }
        cover(out)
    }
}

/// Drops every path a wildcard in the set covers.
fn cover(set: BTreeSet<String>) -> BTreeSet<String> {
    let wilds: Vec<String> = set.iter().filter(|p| is_wildcard(p)).cloned().collect();
    set.into_iter().filter(|p| !wilds.iter().any(|w| covers(w, p))).collect()
}

/// Merges sibling wildcards (two or more in one folder) into their folder's wildcard, the most
/// crowded folder first, until at most `room` are left or no folder holds two; what still does
/// not fit waits for room. It never climbs above the pages' own folders: a purge of unrelated
/// pages is not traded for a sooner one.
fn fit_wildcards(mut set: BTreeSet<String>, room: usize) -> BTreeSet<String> {
    loop {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        if set.iter().filter(|p| is_wildcard(p)).count() <= room {
            return set;
        }
        // Page wildcards (`/blog/a?_rsc=*`) by folder; folder wildcards (`/blog/*`) stay.
        for w in set.iter().filter(|p| is_wildcard(p) && !p.ends_with("/*")) {
            *counts.entry(folder(w).to_string()).or_default() += 1;
        }
        match counts.into_iter().filter(|(_, n)| *n >= 2).max_by_key(|(f, n)| (*n, f.matches('/').count())) {
            Some((f, _)) => {
                set.insert(wildcard_of(&f));
                set = cover(set);
            }
            None => return set,
        }
    }
}

/// Collapses folders, the most crowded first and then their parents, until at most `room`
/// paths are left (at worst `/*`).
fn widen(mut set: BTreeSet<String>, room: u64) -> BTreeSet<String> {
    while set.len() as u64 > room {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for p in &set {
            *counts.entry(folder(p).to_string()).or_default() += 1;
        }
        let Some((f, n)) = counts.into_iter().max_by_key(|(f, n)| (*n, std::cmp::Reverse(f.len()))) else { break };
        if n <= 1 {
            // Every folder holds one path: only the root wildcard is smaller.
            return BTreeSet::from(["/*".to_string()]);
        }
        set.insert(wildcard_of(&f));
        set = cover(set);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::paths::{page_paths, PageKind, RscVariants};

    const T0: i64 = 1_795_000_000_000; // 2026-11-17

    fn paths(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn folders_wildcards_and_cover() {
        assert_eq!(folder("/blog/a"), "/blog");
        assert_eq!(folder("/a"), "");
        assert_eq!(folder("/blog/*"), "", "a wildcard's folder is its stem's parent");
        assert_eq!(folder("/a/b/*"), "/a");
        assert!(covers("/blog/*", "/blog/a/b"));
        assert!(covers("/*", "/x"));
        assert!(!covers("/blog/*", "/blogger"));
        assert_eq!(month_of(T0), 2026 * 12 + 10);
        let c = PlannerConfig { ceiling_dollars: Some(10.0), ..Default::default() };
        assert_eq!(c.ceiling(), Some(3_000));
    }

    #[test]
    fn the_window_collects_and_dedupes() {
        let mut p = Planner::new(PlannerConfig::default());
        p.add(["/a".to_string(), "/b".into()], T0);
        p.add(["/a".to_string()], T0 + 100);
        assert!(p.plan(T0 + 299).is_none(), "the window is still open");
        let b = p.plan(T0 + 300).unwrap();
        assert_eq!(b.paths, vec!["/a", "/b"]);
        assert_eq!((b.files, b.wildcards, b.cost, b.widened), (2, 0, 0.0, false));
        assert!(p.plan(T0 + 1_000).is_none(), "nothing left");
    }

    /// CloudFront as the scripted tests model it: an invalidation completes `done_after_ms` after
    /// it was created (the planner learns it as the purger does, by polling), and the in-progress
    /// limits are checked after every batch.
    struct Cf {
        sent: Vec<(i64, Batch)>,
        done_after_ms: i64,
        done: BTreeSet<u64>,
    }

    impl Cf {
        fn new(done_after_ms: i64) -> Cf {
            Cf { sent: Vec::new(), done_after_ms, done: BTreeSet::new() }
        }
        fn tick(&mut self, p: &mut Planner, now: i64) {
            for (at, b) in &self.sent {
                if now - at >= self.done_after_ms && self.done.insert(b.id) {
                    p.completed(b.id);
                }
            }
            while let Some(b) = p.plan(now) {
                let files: usize = p.in_progress.iter().map(|b| b.1).sum();
                let wilds: usize = p.in_progress.iter().map(|b| b.2).sum();
                assert!(
                    files <= MAX_FILES_IN_PROGRESS && wilds <= MAX_WILDCARDS_IN_PROGRESS,
                    "{files} files, {wilds} wildcards in progress"
                );
                self.sent.push((now, b));
            }
        }
        fn batches(&self, from: usize) -> Vec<&Batch> {
            self.sent[from..].iter().map(|(_, b)| b).collect()
        }
    }

    fn app_page(path: &str) -> Vec<String> {
        page_paths(path, PageKind::App, &[], RscVariants::Query)
    }

    /// The scripted sequence of issue 15's acceptance, with the paths an app-router page
    /// brings (the page and its `?_rsc=*` variants), a $10 monthly ceiling (1,000 free + 2,000
    /// paid paths) and invalidations that take a minute to complete: one tag on 500 pages under
    /// /blog/, then 50 single-page revalidations within a second, then 3,500 distinct paths in a
    /// minute.
    #[test]
    fn the_scripted_sequence_keeps_within_cloudfronts_limits_and_the_budget() {
        let mut p = Planner::new(PlannerConfig { ceiling_dollars: Some(10.0), ..Default::default() });
        let mut cf = Cf::new(60_000);

        // 1. One tag on 500 pages under /blog/ (1,000 paths asked): one wildcard.
        for i in 0..500 {
            p.add(app_page(&format!("/blog/post-{i}")), T0);
        }
        cf.tick(&mut p, T0 + 300);
        assert_eq!(cf.sent.len(), 1);
        let b = &cf.sent[0].1;
        assert_eq!((b.paths.clone(), b.cost, b.widened), (vec!["/blog/*".to_string()], 0.0, false));
        assert_eq!(p.stats.collapsed, 500);

        // 2. 50 single pages, each in its own folder, within a second: one batch per 300 ms
        // window. Every page's file goes at once; its RSC wildcard goes while there is room
        // among the 15 in progress (14 beside /blog/*), the rest when the first ones complete.
        let t = T0 + 1_000;
        for i in 0..50 {
            p.add(app_page(&format!("/products/{i}/reviews")), t + i * 20);
            cf.tick(&mut p, t + i * 20);
        }
        cf.tick(&mut p, t + 2_000);
        let singles = cf.batches(1);
        let shape: Vec<(usize, usize)> = singles.iter().map(|b| (b.files, b.wildcards)).collect();
        assert_eq!(shape, vec![(16, 14), (15, 0), (15, 0), (4, 0)], "one batch per window; 14 wildcards fit");
        assert_eq!(p.pending(), 36, "the other 36 RSC wildcards wait for room");
        let n_singles = singles.len();
        // The first invalidations complete a minute later: the waiting wildcards go, 15 at a time.
        for s in 0..6 {
            cf.tick(&mut p, t + 61_000 + s * 61_000);
        }
        let later = cf.batches(1 + n_singles);
        let shape: Vec<(usize, usize)> = later.iter().map(|b| (b.files, b.wildcards)).collect();
        assert_eq!(shape, vec![(0, 15), (0, 15), (0, 6)]);
        assert_eq!(p.pending(), 0);
        let purged: BTreeSet<&String> = cf.batches(1).into_iter().flat_map(|b| &b.paths).collect();
        assert_eq!(purged.len(), 100, "every page and its RSC variants, once");
        assert_eq!(p.used_this_month(t + 400_000), 101);
        assert_eq!(p.stats.cost, 0.0, "within the free 1,000");

        // 3. 3,500 distinct paths in a minute (350 folders of 10 route handlers: nothing to
        // collapse), planned as they come: past 3,000 paths this month the budget turns what is
        // left into wildcards, then stops.
        let t = t + 400_000;
        let before = cf.sent.len();
        for i in 0..3_500i64 {
            p.add([format!("/shop/c{}/item-{}", i / 10, i % 10)], t + i * 60_000 / 3_500);
            cf.tick(&mut p, t + i * 60_000 / 3_500);
        }
        for s in 1..=3 {
            cf.tick(&mut p, t + s * 61_000);
        }
        let bulk = cf.batches(before);
        assert_eq!(p.used_this_month(t + 200_000), 3_000, "the ceiling is reached, not passed");
        assert_eq!(bulk.iter().map(|b| b.paths.len()).sum::<usize>(), 3_000 - 101);
        let widened: Vec<&&Batch> = bulk.iter().filter(|b| b.widened).collect();
        assert_eq!(p.stats.widened_batches, widened.len() as u64, "the stats say so");
        assert!(bulk.iter().take_while(|b| !b.widened).all(|b| b.wildcards == 0 && b.files <= 60));
        let widened_paths: Vec<Vec<&str>> =
            widened.iter().map(|b| b.paths.iter().map(String::as_str).collect()).collect();
        assert_eq!(widened_paths, WIDENED_AT_THE_CEILING);
        assert_eq!(p.stats.over_budget, OVER_BUDGET);
        let total_cost: f64 = cf.sent.iter().map(|(_, b)| b.cost).sum();
        assert!((total_cost - 10.0).abs() < 1e-9, "exactly the ceiling: {total_cost}");
        assert!((p.stats.cost - 10.0).abs() < 1e-9);
        // Every requested path was purged, or counted as over the budget.
        let all: Vec<&String> = cf.sent.iter().flat_map(|(_, b)| &b.paths).collect();
        let unpurged = (0..3_500)
            .map(|i| format!("/shop/c{}/item-{}", i / 10, i % 10))
            .filter(|path| !all.iter().any(|s| **s == *path || (is_wildcard(s) && covers(s, path))))
            .count() as u64;
        assert!(unpurged <= p.stats.over_budget, "{unpurged} unpurged, {} over budget", p.stats.over_budget);
    }

    /// The end of the month's budget in the scripted sequence: with 10 paths left, the batch's
    /// most crowded folder (c289, ten files) becomes one wildcard; with one left, the next batch
    /// becomes its parent's wildcard `/shop/*`; the 574 paths after it are counted, not sent.
    const WIDENED_AT_THE_CEILING: &[&[&str]] = &[
        &[
            "/shop/c288/item-8",
            "/shop/c288/item-9",
            "/shop/c289/*",
            "/shop/c290/item-0",
            "/shop/c290/item-1",
            "/shop/c290/item-2",
            "/shop/c290/item-3",
            "/shop/c290/item-4",
            "/shop/c290/item-5",
            "/shop/c290/item-6",
        ],
        &["/shop/*"],
    ];
    const OVER_BUDGET: u64 = 574;

    #[test]
    fn sibling_rsc_wildcards_merge_into_their_folder_when_cloudfront_has_no_room_for_them() {
        let mut p = Planner::new(PlannerConfig::default());
        for f in 0..14 {
            p.add(app_page(&format!("/f{f}/only")), T0);
        }
        for i in 0..5 {
            p.add(app_page(&format!("/news/{i}")), T0);
        }
        let b = p.plan(T0 + 300).unwrap();
        // 19 RSC wildcards asked, 15 room: the five under /news become /news/* (which covers
        // their files too); the 14 lone ones stay as they are.
        assert_eq!((b.files, b.wildcards), (14, 15));
        assert!(b.paths.contains(&"/news/*".to_string()));
        assert!(!b.paths.iter().any(|p| p.starts_with("/news/") && p != "/news/*"));
        assert_eq!(p.stats.merged, 4);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn an_rsc_wildcard_sits_in_its_pages_folder() {
        // The root page's RSC wildcard is its own folder's: `/?_rsc=*` sits in the root.
        assert_eq!(folder("/?_rsc=*"), "");
        assert_eq!(folder("/blog/a?_rsc=*"), "/blog");
        assert!(covers("/blog/*", "/blog/a?_rsc=*"));
        assert!(!covers("/blog/a?_rsc=*", "/blog/ab"));
    }

    #[test]
    fn files_past_three_thousand_in_progress_wait_for_completions() {
        let mut p = Planner::new(PlannerConfig::default());
        p.add((0..3_500).map(|i| format!("/c{}/p{}", i / 10, i % 10)), T0);
        let b = p.plan(T0 + 300).unwrap();
        assert_eq!((b.files, b.wildcards), (3_000, 0));
        assert_eq!(b.cost, 2_000.0 * PRICE_PER_PATH);
        assert!(p.plan(T0 + 600).is_none(), "3,000 files in progress");
        assert_eq!(p.pending(), 500);
        p.completed(b.id);
        let b2 = p.plan(T0 + 900).unwrap();
        assert_eq!(b2.files, 500);
        // Or, when CloudFront's completion is never reported, after `assume_done_ms`.
        let mut q = Planner::new(PlannerConfig { assume_done_ms: 60_000, ..Default::default() });
        q.add((0..3_100).map(|i| format!("/c{}/p{}", i / 10, i % 10)), T0);
        q.plan(T0 + 300).unwrap();
        assert!(q.plan(T0 + 30_000).is_none());
        assert_eq!(q.plan(T0 + 60_300).unwrap().files, 100);
    }

    #[test]
    fn a_refused_batch_comes_back_after_a_backoff_and_gives_back_its_budget() {
        let mut p = Planner::new(PlannerConfig { backoff_ms: 1_000, ..Default::default() });
        p.add(paths("/x/", 5), T0);
        let b = p.plan(T0 + 300).unwrap();
        assert_eq!(p.used_this_month(T0 + 300), 5);
        p.refused(b.clone(), T0 + 400);
        assert_eq!(p.used_this_month(T0 + 400), 0);
        assert_eq!(p.pending(), 5);
        assert!(p.plan(T0 + 1_300).is_none(), "backing off");
        let again = p.plan(T0 + 2_000).unwrap();
        assert_eq!(again.paths, b.paths);
        assert_eq!(p.stats.refusals, 1);
    }

    #[test]
    fn wildcards_are_capped_at_fifteen_in_progress() {
        let mut p = Planner::new(PlannerConfig::default());
        for f in 0..20 {
            p.add(paths(&format!("/f{f}/p"), 20), T0);
        }
        let b = p.plan(T0 + 300).unwrap();
        assert_eq!((b.files, b.wildcards), (0, 15));
        assert!(p.plan(T0 + 600).is_none(), "no wildcard room until one completes");
        p.completed(b.id);
        let b2 = p.plan(T0 + 900).unwrap();
        assert_eq!(b2.wildcards, 5);
    }
}
