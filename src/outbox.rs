//! The outbox: writes that must reach the store — revalidations with their feed events, the feed
//! events of `set`s, and the S3 uploads of `set`s whose write failed — kept in the process until
//! they land.
//!
//! A unit is queued *before* its first attempt, so a caller that stops waiting (the
//! `revalidateTimeoutMs` deadline, a dropped future) never loses it: the attempt's [`Claim`]
//! hands the unit back on drop, and the retry task ([`run`]) delivers it later, with exponential
//! backoff and jitter, for as long as the process lives (and on SIGTERM, within a deadline:
//! `Core::flush`). A unit keeps the feed sequence number it reserved, so every retry writes the
//! same event: the store makes that idempotent (see `TagStore::revalidate_at`).
//!
//! A unit is never given up for an error a person can fix: a request DynamoDB refuses (access
//! denied, a disabled KMS key, a table being recreated) is retried like an outage, backing off up
//! to [`MAX_REFUSED_BACKOFF_MS`], and the retry task says so loudly (an error line a minute naming
//! the error and what waits; `outboxOldestSeconds`). Only a request that can never be valid (past
//! a size limit) is given up; events are bounded so that none should be (see `tags::bounded_key`).
//! Overflow of the bounded queue and give-ups are logged and counted.

use std::collections::BTreeMap;

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::entry::Entry;
use crate::keys::Class;

use crate::backend::tags::FeedEvent;
use crate::error::{Error, ErrorKind, Result};

/// Units the outbox holds at most; past it a new unit is refused (logged, counted, and the
/// caller's `revalidateTag` rejects).
pub const DEFAULT_CAPACITY: usize = 10_000;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF_MS`], with ±50 % jitter.
pub const FIRST_BACKOFF_MS: i64 = 100;
pub const MAX_BACKOFF_MS: i64 = 5_000;
/// The ceiling for a unit the store refused (access denied…): a person fixes that in minutes, and
/// retrying every 5 s meanwhile would only fill the logs and the bill.
pub const MAX_REFUSED_BACKOFF_MS: i64 = 60_000;
/// How often the retry task logs the units waiting (once they have waited [`LOUD_AFTER_MS`]).
pub const LOUD_EVERY_MS: i64 = 60_000;
pub const LOUD_AFTER_MS: i64 = 10_000;
/// A retry writes its event at the number it reserved for this long; later it takes a new one,
/// since readers stop looking for a hole `feed::HOLE_MEMORY_MS` after they gave up on it.
pub const SEQ_REUSE_MS: i64 = 60_000;

/// What one unit writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A revalidation of at most `tags::MAX_TAGS_PER_UNIT` tags, stamped `at`, and its feed event.
    Revalidate { tags: Vec<String>, at: i64, expire_s: Option<f64> },
    /// A feed event (a `set`'s `Key` event).
    Announce { event: FeedEvent, at: i64 },
    /// A `set` whose S3 write failed: its encoded object, uploaded later unless S3 meanwhile
    /// holds a render that started no earlier (`Core::upload_queued`); its `Key` event follows.
    Upload { class: Class, entry: Arc<Entry>, body: Bytes },
}

impl Work {
    /// When the work was made (a revalidation's or an event's time; the upload's `set`).
    pub fn made_at(&self) -> i64 {
        match self {
            Work::Revalidate { at, .. } | Work::Announce { at, .. } => *at,
            Work::Upload { entry, .. } => entry.last_modified,
        }
    }
}

/// A unit as an attempt sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: u64,
    pub work: Work,
    /// The feed sequence number reserved for its event, once reserved, and when.
    pub seq: Option<u64>,
    pub reserved_at: i64,
    pub attempts: u32,
    /// Its feed event asks for acknowledgements (a receipt waits for it).
    pub ack: bool,
}

struct Slot {
    unit: Unit,
    claimed: bool,
    not_before: i64,
    /// Its feed number is being reserved: not claimable until the answer is recorded, or a
    /// dropped attempt's retry would reserve another and leave the first a hole for good.
    reserving: bool,
}

pub struct Outbox {
    capacity: usize,
    /// Bytes the queued uploads may hold together (see [`Outbox::with_upload_limit`]).
    upload_limit: usize,
    slots: Mutex<BTreeMap<u64, Slot>>,
    next_id: std::sync::atomic::AtomicU64,
    /// The latest failed attempt's error, and when the waiting units were last logged.
    last_error: Mutex<Option<String>>,
    logged_at: std::sync::atomic::AtomicI64,
}

/// What the retry task logs about units that keep waiting.
#[derive(Debug, PartialEq)]
pub struct Waiting {
    pub units: usize,
    pub oldest_ms: i64,
    pub last_error: String,
}

/// The right to attempt one unit. Dropped without [`Claim::landed`] or [`Claim::failed`], the
/// unit goes back to the queue, ready at once (its caller stopped waiting mid-attempt).
pub struct Claim<'a> {
    outbox: &'a Outbox,
    pub unit: Unit,
    settled: bool,
}

impl Claim<'_> {
    /// Records the sequence number reserved at `now` for the unit's event (kept across retries
    /// for [`SEQ_REUSE_MS`]).
    pub fn reserved(&mut self, seq: u64, now: i64) {
        self.unit.seq = Some(seq);
        self.unit.reserved_at = now;
        if let Some(s) = self.outbox.slots.lock().get_mut(&self.unit.id) {
            s.unit.seq = Some(seq);
            s.unit.reserved_at = now;
        }
    }

    /// The reserved sequence number, while readers still look for it (see `feed::HOLE_MEMORY_MS`).
    pub fn reusable_seq(&self, now: i64) -> Option<u64> {
        self.unit.seq.filter(|_| now - self.unit.reserved_at < SEQ_REUSE_MS)
    }

    /// The unit landed: it leaves the outbox.
    pub fn landed(mut self) {
        self.settled = true;
        self.outbox.slots.lock().remove(&self.unit.id);
    }

    /// The attempt failed at `now`: the unit is retried after a backoff (a longer one when the
    /// store refused it), or given up when `err` says it can never be valid. Returns whether it
    /// was given up.
    pub fn failed(mut self, err: &Error, now: i64, jitter: f64) -> bool {
        self.settled = true;
        *self.outbox.last_error.lock() = Some(err.to_string());
        let mut slots = self.outbox.slots.lock();
        if never_valid(err) {
            slots.remove(&self.unit.id);
            return true;
        }
        let ceiling = if retryable(err) { MAX_BACKOFF_MS } else { MAX_REFUSED_BACKOFF_MS };
        if let Some(s) = slots.get_mut(&self.unit.id) {
            s.unit.attempts += 1;
            s.claimed = false;
            s.not_before = now + backoff_ms(s.unit.attempts, jitter, ceiling);
        }
        false
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            if let Some(s) = self.outbox.slots.lock().get_mut(&self.unit.id) {
                s.claimed = false;
                s.not_before = 0;
            }
        }
    }
}

/// Whether another attempt could land without anyone acting: backend outages, deadlines and lost
/// conditions (contention) can; a request the store refuses outright (access denied) needs a person.
pub fn retryable(err: &Error) -> bool {
    err.retryable || matches!(err.kind, ErrorKind::Timeout | ErrorKind::Conflict)
}

/// Whether no attempt can ever land, whoever acts: a request past a size limit, or input the
/// core itself finds invalid. Everything else is kept.
pub fn never_valid(err: &Error) -> bool {
    matches!(err.kind, ErrorKind::TooLarge | ErrorKind::InvalidInput)
}

/// The delay before attempt `attempts + 1`: 100 ms doubling to `ceiling`, scaled by `jitter`
/// ∈ [0.5, 1.5) (and never past [`MAX_REFUSED_BACKOFF_MS`]).
pub fn backoff_ms(attempts: u32, jitter: f64, ceiling: i64) -> i64 {
    let base = FIRST_BACKOFF_MS.saturating_mul(1i64 << attempts.saturating_sub(1).min(16)).min(ceiling);
    ((base as f64 * jitter.clamp(0.5, 1.5)) as i64).min(MAX_REFUSED_BACKOFF_MS)
}

fn upload_bytes(slots: &BTreeMap<u64, Slot>) -> usize {
    slots
        .values()
        .map(|s| match &s.unit.work {
            Work::Upload { body, .. } => body.len(),
            _ => 0,
        })
        .sum()
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            capacity,
            upload_limit: usize::MAX,
            slots: Mutex::new(BTreeMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            last_error: Mutex::new(None),
            logged_at: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Bounds the bytes queued uploads hold together: past it an upload is refused.
    pub fn with_upload_limit(mut self, bytes: usize) -> Outbox {
        self.upload_limit = bytes;
        self
    }

    /// Queues `work` and claims it for the caller's first attempt; `Err` when the outbox is full
    /// (or, for an upload, when the queued uploads would pass their byte limit).
    pub fn push(&self, work: Work) -> Result<Claim<'_>> {
        self.push_unit(work, false)
    }

    /// [`Outbox::push`] for a unit whose feed event asks the instances that apply it to say so.
    pub fn push_acked(&self, work: Work) -> Result<Claim<'_>> {
        self.push_unit(work, true)
    }

    fn push_unit(&self, work: Work, ack: bool) -> Result<Claim<'_>> {
        let mut slots = self.slots.lock();
        if slots.len() >= self.capacity {
            return Err(Error::backend(
                format!("outbox full ({} revalidations and feed events waiting for DynamoDB)", self.capacity),
                false,
            ));
        }
        if let Work::Upload { body, .. } = &work {
            let held = upload_bytes(&slots) + body.len();
            if held > self.upload_limit {
                return Err(Error::backend(
                    format!("queued uploads would hold {held} bytes, over their limit ({})", self.upload_limit),
                    false,
                ));
            }
        }
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let unit = Unit { id, work, seq: None, reserved_at: 0, attempts: 0, ack };
        slots.insert(id, Slot { unit: unit.clone(), claimed: true, not_before: 0, reserving: false });
        Ok(Claim { outbox: self, unit, settled: false })
    }

    /// Folds a revalidation of `tags` at `at` into a waiting one (not being attempted, no feed
    /// number taken yet) with the same `expire_s`, instead of queueing another unit: one that
    /// holds every tag already (a tag revalidated again while the store refuses: the later time
    /// subsumes the earlier, exactly), or, once the outbox is full, any with room for them (its
    /// other tags then count from the later time too: entries rendered in between are rendered
    /// again, nothing stale is served). Returns whether it was folded in.
    pub fn merge_revalidation(&self, tags: &[String], at: i64, expire_s: Option<f64>) -> bool {
        let mut slots = self.slots.lock();
        let full = slots.len() >= self.capacity;
        for s in slots.values_mut() {
            if s.claimed || s.reserving || s.unit.seq.is_some() {
                continue;
            }
            let Work::Revalidate { tags: held, at: held_at, expire_s: held_expire } = &mut s.unit.work else {
                continue;
            };
            if *held_expire != expire_s {
                continue;
            }
            let new: Vec<&String> = tags.iter().filter(|t| !held.contains(t)).collect();
            let room = held.len() + new.len() <= crate::backend::tags::MAX_TAGS_PER_UNIT
                && held.iter().chain(new.iter().copied()).map(String::len).sum::<usize>()
                    <= crate::backend::tags::MAX_TAG_BYTES_PER_UNIT;
            if new.is_empty() || (full && room) {
                held.extend(new.into_iter().cloned());
                *held_at = (*held_at).max(at);
                return true;
            }
        }
        false
    }

    /// Claims up to `max` units due at `now` (all unclaimed ones when `now` is `i64::MAX`), oldest first.
    pub fn claim_ready(&self, now: i64, max: usize) -> Vec<Claim<'_>> {
        let mut slots = self.slots.lock();
        let mut out = Vec::new();
        for s in slots.values_mut() {
            if out.len() >= max {
                break;
            }
            if !s.claimed && !s.reserving && s.not_before <= now {
                s.claimed = true;
                out.push(Claim { outbox: self, unit: s.unit.clone(), settled: false });
            }
        }
        out
    }

    /// Takes every unit out, the ones being attempted right now included (their attempts' outcomes
    /// then find nothing to settle): what a stopping process writes to the spool. A unit whose
    /// attempt lands meanwhile is delivered twice, which is harmless; one left out would be lost.
    pub fn take_all(&self) -> Vec<Unit> {
        std::mem::take(&mut *self.slots.lock()).into_values().map(|s| s.unit).collect()
    }

    /// A feed number is being reserved for unit `id` (see `Slot::reserving`).
    pub fn begin_reserve(&self, id: u64) {
        if let Some(s) = self.slots.lock().get_mut(&id) {
            s.reserving = true;
        }
    }

    /// The reservation for unit `id` ended: with the number it got (kept for its retries, from
    /// `now`), or without one.
    pub fn end_reserve(&self, id: u64, seq: Option<u64>, now: i64) {
        if let Some(s) = self.slots.lock().get_mut(&id) {
            s.reserving = false;
            if let Some(seq) = seq {
                s.unit.seq = Some(seq);
                s.unit.reserved_at = now;
            }
        }
    }

    /// Makes every waiting unit due now (the store answered again: no reason to keep backing off).
    pub fn expedite(&self) {
        for s in self.slots.lock().values_mut() {
            s.not_before = 0;
        }
    }

    /// Units waiting (claimed or not).
    pub fn depth(&self) -> usize {
        self.slots.lock().len()
    }

    /// Bytes the queued uploads hold.
    pub fn upload_bytes(&self) -> usize {
        upload_bytes(&self.slots.lock())
    }

    /// How long the oldest unit has waited at `now` (0 when none waits).
    pub fn oldest_ms(&self, now: i64) -> i64 {
        self.slots.lock().values().map(|s| now - s.unit.work.made_at()).max().unwrap_or(0).max(0)
    }

    /// What to log about the units waiting, once they have waited [`LOUD_AFTER_MS`] and at most
    /// once every [`LOUD_EVERY_MS`].
    pub fn loud_due(&self, now: i64) -> Option<Waiting> {
        use std::sync::atomic::Ordering::Relaxed;
        let units = self.depth();
        let oldest_ms = self.oldest_ms(now);
        let last = self.logged_at.load(Relaxed);
        if units == 0 || oldest_ms < LOUD_AFTER_MS || (last != 0 && now - last < LOUD_EVERY_MS) {
            return None;
        }
        self.logged_at.store(now, Relaxed);
        let last_error = self
            .last_error
            .lock()
            .clone()
            .unwrap_or_else(|| "no attempt has finished (the backend does not answer)".into());
        Some(Waiting { units, oldest_ms, last_error })
    }

    /// When the next unclaimed unit is due (`None`: none waits).
    pub fn next_due(&self) -> Option<i64> {
        self.slots.lock().values().filter(|s| !s.claimed).map(|s| s.not_before).min()
    }

    /// Whether an upload of `key` waits (its entry is not what S3 holds).
    pub fn has_upload(&self, key: &str) -> bool {
        self.slots.lock().values().any(|s| matches!(&s.unit.work, Work::Upload { entry, .. } if entry.key == key))
    }

    /// The tags of revalidations not landed yet, with when and how (honoured locally meanwhile).
    pub fn pending_revalidations(&self) -> Vec<(Vec<String>, i64, Option<f64>)> {
        self.slots
            .lock()
            .values()
            .filter_map(|s| match &s.unit.work {
                Work::Revalidate { tags, at, expire_s } => Some((tags.clone(), *at, *expire_s)),
                Work::Announce { .. } | Work::Upload { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(tag: &str) -> Work {
        Work::Revalidate { tags: vec![tag.into()], at: 1, expire_s: None }
    }

    #[test]
    fn take_all_includes_the_units_being_attempted() {
        let o = Outbox::new(10);
        let in_flight = o.push(rev("a")).unwrap();
        drop(o.push(rev("b")).unwrap());
        o.begin_reserve(in_flight.unit.id + 1);
        let taken: Vec<Work> = o.take_all().into_iter().map(|u| u.work).collect();
        assert_eq!(taken, vec![rev("a"), rev("b")], "the claimed and the reserving unit both");
        assert_eq!(o.depth(), 0);
        in_flight.landed(); // its attempt ends after: nothing to settle
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_unit_stays_until_it_lands_and_keeps_its_sequence_number() {
        let o = Outbox::new(10);
        let mut c = o.push(rev("a")).unwrap();
        assert!(o.claim_ready(i64::MAX, 10).is_empty(), "claimed by its caller");
        c.reserved(42, 1_000);
        assert_eq!(c.reusable_seq(1_000 + SEQ_REUSE_MS - 1), Some(42));
        assert_eq!(c.reusable_seq(1_000 + SEQ_REUSE_MS), None, "readers have stopped looking for it");
        assert!(!c.failed(&Error::backend("down", true), 1_000, 1.0));
        assert_eq!(o.depth(), 1);
        assert!(o.claim_ready(1_050, 10).is_empty(), "backing off");
        let mut ready = o.claim_ready(1_100, 10);
        assert_eq!(ready.len(), 1);
        let c = ready.pop().unwrap();
        assert_eq!((c.unit.seq, c.unit.attempts), (Some(42), 1));
        c.landed();
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_dropped_attempt_gives_the_unit_back_at_once() {
        let o = Outbox::new(10);
        {
            let mut c = o.push(rev("a")).unwrap();
            c.reserved(7, 0);
        } // the caller stopped waiting mid-attempt
        let ready = o.claim_ready(0, 10);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].unit.seq, Some(7));
        assert_eq!(o.pending_revalidations(), vec![(vec!["a".to_string()], 1, None)]);
    }

    #[test]
    fn a_tag_revalidated_again_while_it_waits_needs_no_second_unit_and_a_full_outbox_folds() {
        let o = Outbox::new(2);
        let c = o.push(rev("a")).unwrap(); // at 1
        assert!(!o.merge_revalidation(&["a".into()], 5, None), "being attempted: not touched");
        assert!(!c.failed(&Error::backend("AccessDenied", false), 2, 1.0));
        assert!(o.merge_revalidation(&["a".into()], 5, None), "waiting: the later time replaces it");
        assert!(!o.merge_revalidation(&["a".into()], 6, Some(60.0)), "another profile: a unit of its own");
        assert!(!o.merge_revalidation(&["b".into()], 6, None), "not full: another tag gets its own unit");
        o.push(rev("c")).unwrap();
        assert!(o.merge_revalidation(&["b".into()], 7, None), "full: folded into a waiting unit with room");
        assert_eq!(o.depth(), 2);
        let mut held = o.pending_revalidations();
        held.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(held[0], (vec!["a".to_string(), "b".to_string()], 7, None));
    }

    #[test]
    fn a_unit_whose_number_is_being_reserved_waits_for_the_answer() {
        let o = Outbox::new(10);
        let c = o.push(rev("a")).unwrap();
        let id = c.unit.id;
        o.begin_reserve(id);
        drop(c); // the caller stopped waiting while the reservation was in flight
        assert!(o.claim_ready(i64::MAX, 10).is_empty(), "not claimable: the answer would be lost");
        o.end_reserve(id, Some(42), 5);
        let ready = o.claim_ready(i64::MAX, 10);
        assert_eq!((ready[0].unit.seq, ready[0].unit.reserved_at), (Some(42), 5), "retried at that number");
    }

    #[test]
    fn overflow_and_give_ups_are_errors_not_silence() {
        let o = Outbox::new(1);
        let c = o.push(rev("a")).unwrap();
        let e = o.push(rev("b")).err().unwrap();
        assert!(e.context.contains("outbox full"), "{e}");
        assert!(c.failed(&Error::invalid("refused"), 0, 1.0), "never valid: given up");
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_refused_unit_is_kept_and_retried_within_a_minute_and_said_loudly() {
        let o = Outbox::new(10);
        let c = o.push(rev("a")).unwrap(); // made at 1
        let denied = Error::backend("TransactWriteItems: HTTP 400 AccessDeniedException: not authorized", false);
        assert!(!c.failed(&denied, 2, 1.0), "access denied: a person can fix it, kept");
        assert_eq!(o.depth(), 1);
        assert_eq!(o.next_due(), Some(2 + 100));
        for _ in 0..30 {
            let c = o.claim_ready(i64::MAX, 1).pop().unwrap();
            assert!(!c.failed(&denied, 2, 1.49));
        }
        assert_eq!(o.next_due(), Some(2 + MAX_REFUSED_BACKOFF_MS), "backs off to a minute, jitter included");
        assert_eq!(o.loud_due(1 + LOUD_AFTER_MS - 1), None, "not yet: waited under 10 s");
        let w = o.loud_due(1 + LOUD_AFTER_MS).expect("said after 10 s");
        assert_eq!((w.units, w.oldest_ms), (1, LOUD_AFTER_MS));
        assert!(w.last_error.contains("AccessDeniedException"), "{}", w.last_error);
        assert_eq!(o.loud_due(1 + LOUD_AFTER_MS + 1_000), None, "once a minute");
        assert!(o.loud_due(1 + LOUD_AFTER_MS + LOUD_EVERY_MS).is_some());
        let too_large =
            Error::new(ErrorKind::TooLarge, "TransactWriteItems: ValidationException: Item size has exceeded");
        assert!(o.claim_ready(i64::MAX, 1).pop().unwrap().failed(&too_large, 3, 1.0), "never valid: given up");
        assert_eq!((o.depth(), o.oldest_ms(100)), (0, 0));
    }

    #[test]
    fn queued_uploads_are_bounded_by_their_bytes() {
        let upload = |n: usize| Work::Upload {
            class: Class::Route,
            entry: Arc::new(Entry {
                key: "/k".into(),
                last_modified: 1,
                cache_control: None,
                tags: vec![],
                value: None,
                write_id: 1,
                rendered_at: 0,
            }),
            body: Bytes::from(vec![0u8; n]),
        };
        let o = Outbox::new(10).with_upload_limit(10);
        let first = o.push(upload(6)).unwrap();
        o.push(rev("a")).unwrap();
        assert_eq!(o.upload_bytes(), 6);
        let e = o.push(upload(6)).err().unwrap();
        assert!(e.context.contains("queued uploads would hold 12 bytes"), "{e}");
        first.landed();
        assert_eq!(o.upload_bytes(), 0);
        o.push(upload(6)).unwrap();
    }

    #[test]
    fn backoff_doubles_to_a_ceiling_with_jitter() {
        assert_eq!(backoff_ms(1, 1.0, MAX_BACKOFF_MS), 100);
        assert_eq!(backoff_ms(2, 1.0, MAX_BACKOFF_MS), 200);
        assert_eq!(backoff_ms(10, 1.0, MAX_BACKOFF_MS), 5_000);
        assert_eq!(backoff_ms(40, 1.0, MAX_BACKOFF_MS), 5_000);
        assert_eq!(backoff_ms(1, 0.5, MAX_BACKOFF_MS), 50);
        assert_eq!(backoff_ms(1, 1.49, MAX_BACKOFF_MS), 149);
        assert_eq!(backoff_ms(40, 1.0, MAX_REFUSED_BACKOFF_MS), 60_000);
        assert_eq!(backoff_ms(40, 1.49, MAX_REFUSED_BACKOFF_MS), 60_000);
    }
}
