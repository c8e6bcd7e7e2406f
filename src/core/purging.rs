//! What the core gives CDN purges (`crate::cdn::purger`): the host the purger asks (builds, the tag
//! index, the fleet's path counter), and which rewrites are purged.

use super::*;

impl PurgeHost for Core {
    fn build_id(&self) -> String {
        Core::build_id(self)
    }

    fn instance_id(&self) -> &str {
        &self.instance_id
    }

    async fn sdk_config(&self) -> aws_config::SdkConfig {
        crate::backend::aws::load_sdk_config(&self.cfg).await
    }

    async fn list_build_ids(&self) -> Result<Vec<String>> {
        Ok(self.list_builds().await?.into_iter().map(|b| b.build_id).collect())
    }

    async fn index_rows(&self, tags: &[String]) -> Result<Vec<IndexRow>> {
        self.backends().await.tags.index_rows(tags).await
    }

    async fn add_to_counter(&self, name: &str, n: u64) -> Result<u64> {
        Core::add_to_counter(self, name, n).await
    }
}

impl Core {
    /// Starts sending CDN invalidations to `target` (CloudFront from the options, or a hook);
    /// refused when a target is set already.
    pub fn start_purger(
        self: &Arc<Self>,
        target: Target,
        mut spawn: impl FnMut(futures::future::BoxFuture<'static, ()>),
    ) -> Result<()> {
        let purger = Arc::new(Purger::new(&self.cfg.cdn, target, self.clock.clone()));
        if self.purger.set(purger.clone()).is_err() {
            let on = self.purger.get().map_or("", |p| p.target_name());
            return Err(Error::config(format!(
                "a CDN purge target ({on}) is set already: `cdn.purge` and `cdn.cloudfront` exclude each other"
            )));
        }
        spawn(Box::pin(purger::run(Arc::downgrade(self), purger)));
        Ok(())
    }

    /// Adds `n` to the app's counter `name` in the tag store (kept two months).
    pub async fn add_to_counter(&self, name: &str, n: u64) -> Result<u64> {
        let expires = self.now() / 1000 + 62 * 86_400;
        self.backends().await.tags.add_to_counter(name, n, expires).await
    }

    /// Whether a `set` that rewrote `prior` with other bytes purges it at the CDN: a page or
    /// route rewritten while its stored copy had not reached its revalidate time (an on-demand rewrite:
    /// pages router `res.revalidate`, or a regeneration after `revalidateTag(tag, profile)`
    /// marked it stale). Time-based regenerations are left to the CDN's `s-maxage` (Next sets it
    /// from the same `revalidate`), and a copy a revalidation expired was purged by the
    /// instance that revalidated.
    pub(super) fn purge_for_set(&self, prior: &Entry, class: Class, now: i64) -> bool {
        if class != Class::Route {
            return false;
        }
        let time_stale = match prior.cache_control.map(|c| c.revalidate) {
            Some(crate::entry::Revalidate::Seconds(s)) => (now - prior.last_modified) as f64 >= s * 1000.0,
            _ => false,
        };
        if time_stale {
            return false;
        }
        let states: Vec<TagState> = prior.tags.iter().filter_map(|t| self.mem.tag_clock.get(t)).collect();
        evaluate(prior, states.iter(), None, now) != Verdict::Expired
    }

    /// The URL paths of entries carrying any of `tags` (for CDN invalidation), sorted, unique.
    pub async fn paths_for_tags(&self, tags: &[String]) -> Result<Vec<String>> {
        let rows = self.backends().await.tags.index_rows(tags).await?;
        let mut paths: Vec<String> = rows.into_iter().filter_map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

impl Core {
    /// One round of the CDN purger, as its task runs them (tests drive it by hand, as
    /// `poll_feed_once`, instead of waiting for the task): the tags and pages queued become paths,
    /// and the batches due are sent (to a hook; CloudFront needs the task's client).
    pub async fn purge_round_once(&self) {
        if let Some(p) = self.purger.get() {
            let mut last_poll = 0;
            p.round(self, None, &mut last_poll).await;
        }
    }
}
