//! The write path: `set` keeps the value in memory first, then writes S3 and the tag index; a
//! write S3 refuses is queued in the outbox and uploaded later.

use super::*;

/// A value to store as `Core::set` and `Core::seed` take it (`next_value::SetFields` makes it
/// from what Next hands the handler).
#[derive(Debug, PartialEq)]
pub struct SetParts {
    pub class: Class,
    pub value: Option<Value>,
    pub cache_control: Option<CacheControl>,
    pub tags: Vec<String>,
}

impl Core {
    /// The entry `set` and `seed` store (tags sorted, deduplicated), or a `TooLarge` error past
    /// `maxEntryBytes`.
    pub(crate) fn storable_entry(
        &self,
        key: String,
        last_modified: i64,
        cache_control: Option<CacheControl>,
        mut tags: Vec<String>,
        value: Option<Value>,
    ) -> Result<Entry> {
        tags.sort();
        tags.dedup();
        let entry =
            Entry { key, last_modified, cache_control, tags, value, write_id: self.new_write_id(), rendered_at: 0 };
        let weight = entry.weight();
        if weight > self.cfg.max_entry_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "{}: entry of {weight} bytes exceeds maxEntryBytes ({}); not stored",
                    entry.key, self.cfg.max_entry_bytes
                ),
            ));
        }
        Ok(entry)
    }

    /// Stores `value` (None = notFound) under `key`.
    pub async fn set(&self, key: String, parts: SetParts) -> Result<()> {
        let SetParts { class, value, cache_control, tags } = parts;
        bump(&self.stats.sets);
        let now = self.now();
        // The time window counts from now, as on Next's built-in; revalidations are judged against
        // when the render started (see "The render race" in `feed.rs`).
        let render_start = self.render_starts.remove(&key);
        let (last_modified, rendered_at) = match (&value, render_start) {
            // Next stamps a `'use cache'` result with when its function started: the render start.
            (Some(Value::UseCache { timestamp, .. }), _) if *timestamp >= 1.0 => ((*timestamp as i64).min(now), 0),
            (_, Some((_, t))) if now - t <= RENDER_WINDOW_MS && t <= now => (now, t),
            _ => (now, 0),
        };
        // A regeneration lease this instance holds ends with this set (released in the store
        // below, once the render is stored).
        let held_lease = self.mem.leases.remove(&key).is_some_and(|(_, (until, mine))| mine && until >= now);
        let prior = self.mem.l1.get(&key);
        let mut entry = match self.storable_entry(key, last_modified, cache_control, tags, value) {
            Ok(entry) => Entry { rendered_at, ..entry },
            Err(e) => {
                bump(&self.stats.too_large);
                self.log("set refused", &e.context);
                return Err(e);
            }
        };
        // The same bytes as the stored copy (this instance's, which S3 holds: no upload of it
        // waits): no body is written and nothing is purged; only the freshness moves.
        let same = prior.as_ref().is_some_and(|p| p.same_content(&entry));
        let identical = same && prior.as_ref().is_some_and(|p| p.write_id != 0 && !self.outbox.has_upload(&entry.key));
        if let (true, Some(p)) = (identical, &prior) {
            entry.write_id = p.write_id;
        }
        let entry = Arc::new(entry);
        if let (Some(purger), Some(prior), false) = (self.purger.get(), &prior, same) {
            if self.purge_for_set(prior, class, now) {
                if let Some(path) = keys::path_of_key(&entry.key) {
                    let kind = PageKind::of(&entry.key, entry.value.as_ref(), PageKind::Route);
                    purger.add_page(path, kind);
                }
            }
        }
        self.begin_write(&entry);
        self.mem.l1.insert(entry.clone());
        let b = self.backends().await;
        let deadline = Duration::from_millis(self.cfg.set_timeout_ms);
        let object_key = self.object_key(class, &entry.key);
        if identical {
            let stamp = codec::stamp(entry.last_modified, entry.write_id, entry.rendered_at);
            if let Ok(Ok(true)) = tokio::time::timeout(deadline, b.blobs.stamp(&object_key, &stamp)).await {
                bump(&self.stats.identical_sets);
                crate::log::debug("set", || {
                    format!("{}: same bytes as stored; freshness moved, no body written", entry.key)
                });
                return self.stored(&entry, class, held_lease, &object_key).await;
            }
            // Gone meanwhile, or the stamp failed: written in full below.
        }
        let body = match codec::encode(&entry, self.cfg.compression_level) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                self.end_write(&entry, false);
                return Err(e);
            }
        };
        let put = b.blobs.put(&object_key, body.clone(), false);
        let written = match tokio::time::timeout(deadline, put).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => {
                bump(&self.stats.set_timeouts);
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("S3 write past setTimeoutMs ({} ms)", self.cfg.set_timeout_ms),
                ))
            }
        };
        if let Err(e) = written {
            bump(&self.stats.set_errors);
            return self.queue_upload(class, entry, body, e);
        }
        self.stored(&entry, class, held_lease, &object_key).await
    }

    /// What follows a render landing in S3 (written, or its freshness stamped): the tag index,
    /// the feed event that tells the fleet, and the end of this instance's lease of it.
    pub(super) async fn stored(
        &self,
        entry: &Arc<Entry>,
        class: Class,
        held_lease: bool,
        object_key: &str,
    ) -> Result<()> {
        self.end_write(entry, true);
        let announce = self.announce(Self::key_event(entry));
        futures::join!(self.index(entry, class), announce, self.release_lease(held_lease, object_key)).1
    }

    /// Notes a write of this instance as not yet in S3 (see `feed::Memory::unlanded`).
    pub(super) fn begin_write(&self, entry: &Entry) {
        if entry.write_id == 0 {
            return;
        }
        if self.mem.unlanded.len() >= MAX_TRACKED_KEYS {
            self.mem.unlanded.clear(); // forgotten writes are only evicted as before
        }
        self.mem.unlanded.insert(entry.key.clone(), feed::Unlanded { write_id: entry.write_id, crossed: false });
    }

    /// A write of this instance is in S3 (`landed`), or will never be. When an event of another
    /// of this instance's writes of the key was applied meanwhile, which of the two S3 kept is
    /// unknown: the copy goes from memory, and the next read takes what S3 holds.
    pub(super) fn end_write(&self, entry: &Entry, landed: bool) {
        let ended = self.mem.unlanded.remove_if(&entry.key, |_, u| u.write_id == entry.write_id);
        if let (true, Some((_, u))) = (landed, ended) {
            if u.crossed {
                self.mem.l1.remove_if(&entry.key, |e| e.write_id == entry.write_id);
            }
        }
    }

    /// An object read from the store, decoded within what `maxEntryBytes` allows.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Entry> {
        codec::decode(bytes, codec::max_stored_bytes(self.cfg.max_entry_bytes))
    }

    /// Writes `entry`'s tag index rows; a failure is counted and logged, never the caller's.
    pub(super) async fn index(&self, entry: &Entry, class: Class) {
        if let Err(e) = self.write_index(entry, class).await {
            bump(&self.stats.index_errors);
            self.log("tag index write failed", &format!("{}: {e}", entry.key));
        }
    }

    /// A `set` whose S3 write failed (`why`): the value stays in memory and its upload is queued
    /// in the outbox (resolving the caller), retried until it lands, even when S3 refused it (a
    /// person fixes a policy); unless it can never be valid or the queued uploads already hold a
    /// quarter of `memoryBytes` (then it is logged, counted, and `set` rejects).
    pub(super) fn queue_upload(&self, class: Class, entry: Arc<Entry>, body: Bytes, why: Error) -> Result<()> {
        if outbox::never_valid(&why) {
            self.log("set failed (kept in this instance's memory only)", &format!("{}: {why}", entry.key));
            self.end_write(&entry, false);
            return Err(why);
        }
        let key = entry.key.clone();
        match self.outbox.push(Work::Upload { class, entry: entry.clone(), body }) {
            Ok(claim) => {
                // Queued as is: the retry task uploads it once the backoff allows.
                claim.failed(&why, self.now(), jitter());
                bump(&self.stats.uploads_queued);
                self.log("set's S3 write failed; kept in memory, upload queued", &format!("{key}: {why}"));
                Ok(())
            }
            Err(refused) => {
                bump(&self.stats.uploads_dropped);
                self.end_write(&entry, false);
                let context = format!("{why}; upload not queued (memoryBytes / 4 bounds queued uploads): {refused}");
                self.log("set failed (kept in this instance's memory only)", &context);
                Err(Error { kind: why.kind, retryable: why.retryable, context })
            }
        }
    }

    /// Uploads a queued `set` — unless S3 now holds a render of the key that started no earlier
    /// than this one (another instance's, or a later `set` here): then the unit is done, and this
    /// instance's copy of it evicted, so it serves what S3 holds. The write is conditional on the
    /// version compared (`If-Match` / `If-None-Match`), so a render landing in between is never
    /// overwritten: the unit is compared again on its next attempt.
    pub(super) async fn upload_queued(&self, class: Class, entry: &Arc<Entry>, body: Bytes) -> Result<()> {
        let b = self.backends().await;
        let object_key = self.object_key(class, &entry.key);
        let expected = match b.blobs.get_versioned(&object_key).await? {
            None => None,
            Some((bytes, version, stamp)) => match self.decode(&bytes).map(|mut held| {
                codec::apply_stamp(&mut held, stamp.as_deref());
                held
            }) {
                // An attempt abandoned by its deadline landed after all.
                Ok(held) if held.write_id == entry.write_id => return self.uploaded(class, entry).await,
                Ok(held) if held.last_modified >= entry.last_modified => {
                    bump(&self.stats.uploads_superseded);
                    self.end_write(entry, false);
                    self.mem.l1.remove_if(&entry.key, |e| e.write_id == entry.write_id);
                    return Ok(());
                }
                // Older, or nothing this version can read: replaced, as a `set` would.
                _ => Some(version),
            },
        };
        if b.blobs.put_if(&object_key, body, expected.as_deref()).await? {
            self.uploaded(class, entry).await
        } else {
            Err(Error {
                kind: ErrorKind::Conflict,
                retryable: true,
                context: format!("{}: the object changed while a queued set was uploaded", entry.key),
            })
        }
    }

    /// A queued upload is in S3: its feed event is queued (it lands with the retry task's next
    /// round) and its tag index rows written.
    pub(super) async fn uploaded(&self, class: Class, entry: &Arc<Entry>) -> Result<()> {
        bump(&self.stats.uploads_landed);
        self.end_write(entry, true);
        // Dropped unattempted, the claim leaves the event to the retry task (due at once).
        let _ = self.queue_announce(Self::key_event(entry));
        self.index(entry, class).await;
        Ok(())
    }

    pub(crate) async fn write_index(&self, entry: &Entry, class: Class) -> Result<()> {
        if entry.tags.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let refresh_ms = self.cfg.index_ttl_seconds * 1000 / 2;
        let path = if class == Class::Route { keys::path_of_key(&entry.key) } else { None };
        let rows: Vec<IndexRow> = entry
            .tags
            .iter()
            .filter(|t| self.indexed.get(&((*t).clone(), entry.key.clone())).is_none_or(|at| now - *at > refresh_ms))
            .map(|t| IndexRow { tag: t.clone(), key: entry.key.clone(), path: path.clone() })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let b = self.backends().await;
        b.tags.put_index(&rows, now / 1000 + self.cfg.index_ttl_seconds).await?;
        if self.indexed.len() > MAX_INDEXED_MEMO {
            self.indexed.clear();
        }
        for r in rows {
            self.indexed.insert((r.tag, r.key), now);
        }
        Ok(())
    }
}
