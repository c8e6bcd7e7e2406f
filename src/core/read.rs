//! The read path: `get_sync` (memory and the local tag clock only), `get` (memory, then S3 and the
//! tag states), the fail-open fallback, and judging an entry against its tags.

use super::*;

impl Core {
    /// `known` (a tag's state as this process knows it) joined with what this instance revalidated
    /// itself (`pinned`), which no memory drop forgets.
    pub(super) fn with_own(&self, tag: &str, known: Option<TagState>) -> Option<TagState> {
        let own = if self.pinned.is_empty() { None } else { self.pinned.get(tag) };
        match (known, own) {
            (Some(k), Some(o)) => Some(k.join(&o)),
            (k, o) => k.or(o),
        }
    }

    pub(super) fn all_tags<'a>(entry: &'a Entry, req: &'a GetRequest) -> impl Iterator<Item = &'a String> {
        entry.tags.iter().chain(req.tags.iter()).chain(req.soft_tags.iter())
    }

    /// Judges `entry` with the tag states in the clock; `None` if some tag is unknown and
    /// `unknown_as_fresh` is false, or if a regeneration lease must be asked for first.
    pub(super) fn judge(
        &self,
        entry: &Arc<Entry>,
        gen: u64,
        req: &GetRequest,
        unknown_as_fresh: bool,
    ) -> Option<Lookup> {
        let mut states: Vec<TagState> = Vec::new();
        for t in Self::all_tags(entry, req) {
            match self.mem.tag_clock.get(t) {
                Some(s) => states.push(self.with_own(t, Some(s)).unwrap_or(s)),
                None if unknown_as_fresh => states.extend(self.with_own(t, None)),
                None => return None,
            }
        }
        let now = self.now();
        let verdict = evaluate(entry, states.iter(), req.revalidate, now);
        Some(match verdict {
            Verdict::Fresh => {
                if self.needs_lease(entry, req, now) {
                    match self.live_lease(&entry.key, now)? {
                        true => Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen },
                        // Another instance is regenerating: serve as fresh meanwhile.
                        false => Lookup::Hit { entry: entry.clone(), last_modified: now, gen },
                    }
                } else {
                    Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen }
                }
            }
            Verdict::Stale { last_modified } => {
                // Stale by a revalidation (`revalidateTag(t, 'max')`): one regeneration per key
                // too. The lease holder is told it is stale (its Next regenerates); the others
                // serve it as fresh until the holder's `set` arrives or the lease runs out.
                if self.leases_apply(entry) && !self.live_lease(&entry.key, now)? {
                    return Some(Lookup::Hit { entry: entry.clone(), last_modified: now, gen });
                }
                bump(&self.stats.stale);
                Lookup::Hit { entry: entry.clone(), last_modified, gen }
            }
            Verdict::Expired => {
                bump(&self.stats.expired);
                Lookup::Miss
            }
        })
    }

    pub(super) fn note_render_start(&self, key: &str) {
        let now = self.now();
        if let Some(mut t) = self.render_starts.get_mut(key) {
            *t = now;
            return;
        }
        if self.render_starts.len() >= MAX_TRACKED_KEYS {
            self.render_starts.clear();
        }
        self.render_starts.insert(key.to_string(), now);
    }

    /// The hit path: memory and the local tag clock only, no network, no await.
    pub fn get_sync(&self, req: &GetRequest) -> SyncLookup {
        self.note_render_start(&req.key);
        if !self.feed.trusted() {
            return SyncLookup::NeedsBackend;
        }
        let Some((entry, gen)) = self.mem.l1.get_with_gen(&req.key) else {
            return SyncLookup::NeedsBackend;
        };
        match self.judge(&entry, gen, req, false) {
            Some(Lookup::Miss) => {
                // Expired by a revalidation. Another instance may have stored a render made after
                // it already: this copy goes, and the async path reads what S3 holds, so that
                // render is served here instead of being made again (computed once per fleet
                // when the instances are not asked at the same moment).
                self.mem.l1.remove_if(&req.key, |e| std::ptr::eq(e, &*entry));
                SyncLookup::NeedsBackend
            }
            Some(l) => {
                bump(&self.stats.memory_hits);
                crate::log::debug("get", || format!("{}: memory hit", req.key));
                SyncLookup::Done(l)
            }
            None => SyncLookup::NeedsBackend,
        }
    }

    /// The miss path, bounded by `getTimeoutMs`. Never fails.
    pub async fn get(&self, req: &GetRequest) -> Lookup {
        self.note_render_start(&req.key);
        let began = self.now();
        let ms = self.get_deadline.ms(self.cfg.get_timeout_ms, began);
        let started = std::time::Instant::now();
        let (what, why) = match tokio::time::timeout(Duration::from_millis(ms), self.load(req)).await {
            Ok(Ok(l)) => {
                self.get_deadline.answered(started.elapsed().as_millis() as u64);
                return l;
            }
            Ok(Err(e)) => {
                if e.kind == ErrorKind::Corrupt {
                    bump(&self.stats.corrupt);
                } else {
                    bump(&self.stats.get_errors);
                }
                if e.kind == ErrorKind::Timeout {
                    self.get_deadline.timed_out(began);
                }
                ("get failed", format!("{}: {e}", req.key))
            }
            Err(_) => {
                bump(&self.stats.get_timeouts);
                self.get_deadline.timed_out(began);
                let of = if ms < self.cfg.get_timeout_ms { " (shortened: a backend timed out lately)" } else { "" };
                ("get timed out", format!("{} after {ms} ms{of}", req.key))
            }
        };
        let served = self.fallback(req);
        self.log(&fallback_line(what, &served), &why);
        served
    }

    /// When the backend failed: the copy in memory (judged by what the clock knows), else a miss.
    /// A `'use cache'` result is never served this way: Next recomputes one it is not given
    /// (inside the render, no page is lost), and a result a revalidation elsewhere expired would
    /// otherwise be served while the tag states cannot be read.
    pub(super) fn fallback(&self, req: &GetRequest) -> Lookup {
        let entry =
            self.mem.l1.get_with_gen(&req.key).filter(|(e, _)| !matches!(e.value, Some(Value::UseCache { .. })));
        if let Some((entry, gen)) = entry {
            // A lease that cannot be asked for is taken, as when the lease read fails.
            let judged = self.judge(&entry, gen, req, true).or_else(|| {
                self.lease_locally(&entry.key, self.now());
                self.judge(&entry, gen, req, true)
            });
            if let Some(l @ Lookup::Hit { .. }) = judged {
                bump(&self.stats.served_from_memory_on_error);
                return l;
            }
        }
        bump(&self.stats.misses);
        Lookup::Miss
    }

    pub(super) async fn load(&self, req: &GetRequest) -> Result<Lookup> {
        let b = self.backends().await;
        // What the feed did while we read: a drop (epoch) or a rewrite of this key (its mark)
        // means what we read may predate an event already applied, so it is used for this
        // answer only and not kept.
        let epoch = self.mem.epoch.load(Ordering::Acquire);
        let mark = self.mem.marks.0.load(Ordering::Acquire);
        let unchanged = |core: &Core| {
            core.mem.epoch.load(Ordering::Acquire) == epoch && core.mem.marks.1.get(&req.key).is_none_or(|m| *m <= mark)
        };
        let (entry, from_backend) = match self.mem.l1.get(&req.key) {
            Some(e) => (e, false),
            None => {
                let class = Class::from_kind(req.kind.as_deref());
                let Some((bytes, stamp)) = b.blobs.get_stamped(&self.object_key(class, &req.key), codec::MAGIC).await?
                else {
                    bump(&self.stats.misses);
                    crate::log::debug("get", || format!("{}: miss (not in the store; Next renders)", req.key));
                    return Ok(Lookup::Miss);
                };
                let mut entry = self.decode(&bytes)?;
                // A later render of the same bytes moved its freshness (no body was rewritten).
                codec::apply_stamp(&mut entry, stamp.as_deref());
                if entry.key != req.key {
                    return Err(Error::corrupt(format!("object holds key {:?}", entry.key)));
                }
                let entry = Arc::new(entry);
                // Kept even if the tag states cannot be read: the fail-open copy.
                if unchanged(self) {
                    self.mem.l1.insert_if_newer(entry.clone());
                }
                (entry, true)
            }
        };
        let unknown: Vec<String> = {
            let set: HashSet<&String> =
                Self::all_tags(&entry, req).filter(|t| self.mem.tag_clock.get(t).is_none()).collect();
            set.into_iter().cloned().collect()
        };
        if !unknown.is_empty() {
            let states = b.tags.tag_states(&unknown).await?;
            if self.mem.epoch.load(Ordering::Acquire) == epoch {
                for (tag, st) in states {
                    self.mem.tag_clock.merge(&tag, st);
                }
            } else {
                // Judge with what was read (and what this instance revalidated itself), without
                // keeping it.
                let states: Vec<TagState> = Self::all_tags(&entry, req)
                    .filter_map(|t| {
                        let read =
                            states.iter().find(|(n, _)| n == t).map(|(_, s)| *s).or_else(|| self.mem.tag_clock.get(t));
                        self.with_own(t, read)
                    })
                    .collect();
                let verdict = evaluate(&entry, states.iter(), req.revalidate, self.now());
                return Ok(match verdict {
                    Verdict::Fresh => Lookup::Hit { entry: entry.clone(), last_modified: entry.last_modified, gen: 0 },
                    Verdict::Stale { last_modified } => Lookup::Hit { entry: entry.clone(), last_modified, gen: 0 },
                    Verdict::Expired => {
                        bump(&self.stats.misses);
                        Lookup::Miss
                    }
                });
            }
        }
        let l = self.judge_with_lease(b, &entry, 0, req).await;
        match &l {
            Lookup::Hit { .. } if from_backend => bump(&self.stats.backend_hits),
            Lookup::Hit { .. } => bump(&self.stats.memory_hits),
            // Expired (by a revalidation or its expire time): Next renders it.
            Lookup::Miss => bump(&self.stats.misses),
        }
        crate::log::debug("get", || {
            let what = match (&l, from_backend) {
                (Lookup::Hit { last_modified, .. }, _) if *last_modified != entry.last_modified => {
                    "stale hit (Next regenerates)"
                }
                (Lookup::Hit { .. }, true) => "S3 hit",
                (Lookup::Hit { .. }, false) => "memory hit",
                (Lookup::Miss, _) => "miss (expired or revalidated; Next renders)",
            };
            format!("{}: {what}", req.key)
        });
        Ok(l)
    }
}

/// The log line of a `get` the backends did not answer, naming what it served (it used to say "a
/// miss" when it served this instance's copy).
fn fallback_line(what: &str, served: &Lookup) -> String {
    let serving = match served {
        Lookup::Hit { .. } => "serving this instance's copy",
        Lookup::Miss => "serving a miss",
    };
    format!("{what}, {serving}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_line_says_what_was_served() {
        let entry = Arc::new(Entry {
            key: "/k".into(),
            last_modified: 1,
            cache_control: None,
            tags: vec![],
            value: None,
            write_id: 0,
            rendered_at: 0,
        });
        let hit = Lookup::Hit { entry, last_modified: 1, gen: 0 };
        assert_eq!(fallback_line("get timed out", &hit), "get timed out, serving this instance's copy");
        assert_eq!(fallback_line("get failed", &Lookup::Miss), "get failed, serving a miss");
    }
}
