//! The outbox and the spool (see `spool.rs`): what a stopping process could not deliver goes to
//! disk, and the next start on the machine delivers it.

use super::*;
use crate::spool::{self, Spooled};

impl Core {
    fn spool_store(&self) -> String {
        spool::identity(&self.cfg.bucket, &self.cfg.table, &self.cfg.prefix)
    }

    /// Writes what the outbox still holds to the spool (SIGTERM, after `flush`); returns how many
    /// units were written. What cannot be written is named in an error line, unit by unit: the
    /// last word on what the fleet will not learn.
    pub fn spool_outbox(&self) -> usize {
        // Units an attempt holds right now (the retry task's, on another thread) go too: left
        // out, they would be lost when the process exits mid-attempt.
        let taken = self.outbox.take_all();
        if taken.is_empty() {
            return 0;
        }
        let units: Vec<Spooled> = taken
            .iter()
            .map(|u| match &u.work {
                Work::Revalidate { tags, at, expire_s } => {
                    Spooled::Revalidate { tags: tags.clone(), at: *at, expire_s: *expire_s }
                }
                Work::Announce { event, at } => Spooled::Announce { event: event.clone(), at: *at },
                Work::Upload { class, body, .. } => {
                    Spooled::Upload { class: spool::class_code(*class), body: body.to_vec() }
                }
            })
            .collect();
        let why = match &self.cfg.spool_dir {
            None => "spoolDir is off".to_string(),
            Some(dir) => match spool::write(dir, &self.spool_store(), units) {
                Ok(path) => {
                    let n = taken.len();
                    crate::log::emit(
                        crate::log::Level::Warn,
                        "outbox spooled",
                        &format!(
                            "{n} revalidations, feed events or uploads not delivered before shutdown are in {} (the next start on this machine delivers them)",
                            path.display()
                        ),
                    );
                    return n;
                }
                Err(e) => format!("the spool could not be written: {e}"),
            },
        };
        let lost: Vec<String> = taken.iter().map(|u| describe(&u.work)).collect();
        crate::log::emit(
            crate::log::Level::Error,
            "shutting down with work lost",
            &format!("{why}; the rest of the fleet will not see: {}", lost.join("; ")),
        );
        0
    }

    /// Queues what a stopped process on this machine left in the spool for this store (at start).
    pub(super) fn replay_spool(&self) {
        let Some(dir) = &self.cfg.spool_dir else { return };
        if self.cfg.backend != crate::config::Backend::Aws || self.cfg.build_phase_local {
            return;
        }
        let (units, bad) = spool::claim(dir, &self.spool_store());
        for b in bad {
            crate::log::emit(crate::log::Level::Error, "spool file unreadable (left as .bad)", &b);
        }
        if units.is_empty() {
            return;
        }
        let n = units.len();
        for u in units {
            let work = match u {
                Spooled::Revalidate { tags, at, expire_s } => {
                    // Honoured here at once, as on the instance that made it.
                    for t in &tags {
                        self.mem.tag_clock.apply(t, at, expire_s);
                        self.pinned.apply(t, at, expire_s);
                    }
                    Work::Revalidate { tags, at, expire_s }
                }
                Spooled::Announce { event, at } => Work::Announce { event, at },
                Spooled::Upload { class, body } => {
                    let decoded = spool::class_of(class)
                        .ok_or_else(|| format!("unknown class {class}"))
                        .and_then(|c| self.decode(&body).map(|e| (c, e)).map_err(|e| e.to_string()));
                    match decoded {
                        Ok((class, entry)) => Work::Upload { class, entry: Arc::new(entry), body: Bytes::from(body) },
                        Err(e) => {
                            crate::log::emit(crate::log::Level::Error, "spooled upload unreadable, dropped", &e);
                            continue;
                        }
                    }
                }
            };
            let what = describe(&work);
            // Dropped unattempted, the claim leaves the unit to the retry task, due at once.
            if let Err(e) = self.outbox.push(work) {
                crate::log::emit(crate::log::Level::Error, "spooled unit not queued", &format!("{what}: {e}"));
            }
        }
        crate::log::emit(
            crate::log::Level::Warn,
            "outbox replayed",
            &format!(
                "{n} revalidations, feed events or uploads a stopped process left in the spool are queued for delivery"
            ),
        );
    }
}

/// A unit in words, for the lines that say what was lost.
fn describe(w: &Work) -> String {
    match w {
        Work::Revalidate { tags, .. } => format!("revalidateTag({})", tags.join(", ")),
        Work::Announce { event: FeedEvent::Key { key, .. }, .. } => format!("the feed event of set({key})"),
        Work::Announce { .. } => "a feed event".into(),
        Work::Upload { entry, .. } => format!("the upload of set({})", entry.key),
    }
}
