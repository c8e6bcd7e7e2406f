//! Planning CDN invalidations (issue 15): which URL paths a change makes stale at the CDN, and
//! how they are batched. [`crate::cdn::purger`] runs the planner and sends what it plans.
//!
//! **Which paths.** A page's path (`/blog/a`; `/` for `/index`), plus what Next serves for it
//! under other URLs:
//! - app-router pages: the RSC requests, `/blog/a?_rsc=<hash>`. The hash varies per client
//!   state, so they are named by one wildcard, `/blog/a?_rsc=*` (CloudFront allows a `*` only at
//!   the end of a path; it may follow a query string). With `rscVariants: "headers"` (a cache
//!   policy that keys RSC responses on Next's headers instead of `_rsc`, which an invalidation of
//!   the path covers whatever the header values) the page's path alone is sent.
//! - pages-router pages: `/_next/data/<buildId>/blog/a.json`, for every build still serving.
//! - route handlers: the path alone.
//!
//! Paths arrive as revalidations happen; the planner collects them over a short window,
//! dedupes them, collapses many paths under one folder into a wildcard, and hands out
//! invalidation batches that keep within CloudFront's limits and a monthly budget:
//!
//! 1. **Window.** Paths added within `window_ms` of the first pending one go out together.
//! 2. **Dedupe and cover.** A path is sent once per batch; a path under a pending wildcard
//!    (`/blog/x` under `/blog/*`) is dropped, and `/*` covers everything.
//! 3. **Collapse.** When `collapse_at` or more pending files share a folder, they become one
//!    wildcard `<folder>/*` (a wildcard counts as one path, for the price and the budget).
//! 4. **In progress.** CloudFront allows at most 3,000 file paths and 15 wildcard paths in
//!    invalidations in progress. Files past the room wait for completions ([`Planner::completed`],
//!    or `assume_done_ms` after sending when none is reported). Wildcards past the room are
//!    first merged with their siblings into their folder's wildcard (`/blog/a?_rsc=*` and
//!    `/blog/b?_rsc=*` → `/blog/*`, the most crowded folder first; counted as `merged`), so the
//!    purge goes now, a little wider (folder wildcards are not merged further: that would
//!    purge unrelated pages); what still does not fit waits for room, and is planned again with
//!    what arrives meanwhile once a window has passed.
//!    A batch refused with `TooManyInvalidationsInProgress` comes back ([`Planner::refused`]) and
//!    waits a backoff with jitter.
//! 5. **Budget.** Past the free 1,000 paths a month each path costs $0.005. With a ceiling
//!    (`ceiling_paths`, or `ceiling_dollars` turned into paths), a batch that would pass it is
//!    widened: the folders with the most pending paths collapse first, then their parents, up to
//!    `/*`. Widened batches are marked and counted, so logs and metrics can say so. Once the
//!    ceiling is reached nothing more is sent that month (counted as `over_budget`): the CDN
//!    serves those pages until their `s-maxage` runs out.

pub mod paths;
pub mod planner;
pub mod purger;
pub mod watch;

pub use crate::config::CdnConfig;
pub use paths::*;
pub use planner::*;
