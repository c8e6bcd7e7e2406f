//! How long a `get` waits for the backends (issue 26): `getTimeoutMs` until a get times out; then
//! only three times the slowest of the recent answers (at least [`FLOOR_MS`]), so that while a
//! backend hangs and before its breaker opens, one get pays the full deadline instead of every
//! get until then. The first answer restores it; so does [`HUNG_FOR_MS`] without one, so that a
//! backend that is back but slower than before is found by a get that waits the full deadline.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// The shortest deadline of a get while a backend hangs.
pub(crate) const FLOOR_MS: u64 = 50;
/// How long a timeout shortens the deadlines that follow it.
pub(crate) const HUNG_FOR_MS: i64 = 5_000;
/// Answers remembered (their slowest is the recent p98 or so).
const KEPT: usize = 64;

#[derive(Default)]
pub(crate) struct GetDeadline {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recent: VecDeque<u64>,
    /// When the get that timed out began waiting (0: none did lately).
    hung_at: i64,
}

impl GetDeadline {
    /// The deadline of a get starting at `now`, given the configured `full` one (ms).
    pub(crate) fn ms(&self, full: u64, now: i64) -> u64 {
        let s = self.state.lock();
        if s.hung_at == 0 || now - s.hung_at >= HUNG_FOR_MS {
            return full;
        }
        let slowest = s.recent.iter().copied().max().unwrap_or(0);
        slowest.saturating_mul(3).max(FLOOR_MS).min(full)
    }

    /// A get was answered after `took_ms`.
    pub(crate) fn answered(&self, took_ms: u64) {
        let mut s = self.state.lock();
        s.hung_at = 0;
        if s.recent.len() >= KEPT {
            s.recent.pop_front();
        }
        s.recent.push_back(took_ms);
    }

    /// A get that began at `began` was not answered by its deadline.
    pub(crate) fn timed_out(&self, began: i64) {
        let mut s = self.state.lock();
        if s.hung_at == 0 || began - s.hung_at >= HUNG_FOR_MS {
            s.hung_at = began.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_shortens_the_deadlines_until_an_answer_or_five_seconds() {
        let d = GetDeadline::default();
        assert_eq!(d.ms(1_000, 10), 1_000, "no timeout yet: the full deadline");
        for took in [4, 9, 6] {
            d.answered(took);
        }
        d.timed_out(100);
        assert_eq!(d.ms(1_000, 1_100), 50, "3 × 9 ms is under the floor");
        d.answered(40);
        assert_eq!(d.ms(1_000, 1_200), 1_000, "answered again: the full deadline");
        d.timed_out(2_000);
        assert_eq!(d.ms(1_000, 2_500), 120, "3 × the slowest recent answer");
        d.timed_out(3_000); // a short one: the window still counts from the first
        assert_eq!(d.ms(1_000, 2_000 + HUNG_FOR_MS - 1), 120);
        assert_eq!(d.ms(1_000, 2_000 + HUNG_FOR_MS), 1_000, "five seconds on: one get waits the full deadline");
        d.timed_out(2_000 + HUNG_FOR_MS);
        assert_eq!(d.ms(1_000, 2_001 + HUNG_FOR_MS), 120, "and when it times out too, short again");
        d.answered(5_000);
        d.timed_out(20_000);
        assert_eq!(d.ms(1_000, 20_001), 1_000, "never past the configured deadline");
    }
}
