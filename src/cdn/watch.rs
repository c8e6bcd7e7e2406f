//! A receipt's view of the CDN purge of its revalidation: the purger (`purger.rs`) plans the
//! paths of a watched revalidation's tags and tells the watch of each batch that carries them.

use parking_lot::Mutex;

/// The CDN purge of a revalidation, as its receipt reports it.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "node", napi_derive::napi(object))]
pub struct CdnReceipt {
    /// The paths planned for the revalidation's tags (pages with their variants).
    pub planned: Vec<String>,
    /// Every planned path went out in an invalidation (a page may be covered by a wildcard).
    pub sent: bool,
    /// CloudFront's ids of those invalidations ("" for a batch a hook took).
    pub invalidation_ids: Vec<String>,
    /// Why a path was not sent or the pages were not looked up; absent while it is still on its way.
    pub error: Option<String>,
}

/// A receipt waiting for the purge of `tags` (`Purger::watch`): filled in by the purger's rounds.
pub struct PurgeWatch {
    pub(super) tags: Vec<String>,
    pub(super) state: Mutex<WatchState>,
    done: tokio::sync::Notify,
}

#[derive(Default)]
pub(super) struct WatchState {
    pub(super) receipt: CdnReceipt,
    /// Looked up in the tag index (the planned paths are known).
    pub(super) looked_up: bool,
    /// The planned paths not sent yet.
    pub(super) waiting: Vec<String>,
    pub(super) finished: bool,
}

impl PurgeWatch {
    /// What is known now.
    pub fn new(tags: &[String]) -> PurgeWatch {
        PurgeWatch { tags: tags.to_vec(), state: Default::default(), done: Default::default() }
    }

    pub fn receipt(&self) -> CdnReceipt {
        self.state.lock().receipt.clone()
    }

    /// Waits until every planned path is sent (or failed), or `until`.
    pub async fn wait_until(&self, until: tokio::time::Instant) {
        loop {
            let notified = self.done.notified();
            if self.state.lock().finished {
                return;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return;
            }
        }
    }

    pub(super) fn finish(&self, st: &mut WatchState) {
        st.finished = true;
        st.receipt.sent = st.receipt.error.is_none() && st.waiting.is_empty();
        self.done.notify_waiters();
    }
}

/// Does an invalidation path cover `path`: the same, or a wildcard (`/blog/*`) it starts with.
pub(super) fn covers(batch_path: &str, path: &str) -> bool {
    batch_path == path || batch_path.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_wildcard_covers_the_paths_it_starts() {
        assert!(covers("/blog/a", "/blog/a"));
        assert!(covers("/blog/*", "/blog/a?_rsc=*"));
        assert!(covers("/*", "/anything"));
        assert!(!covers("/blog/a", "/blog/ab"));
        assert!(!covers("/news/*", "/blog/a"));
    }
}
