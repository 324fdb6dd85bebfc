//! Retry schedule as data plus a pure delay iterator, so tests check the
//! schedule without sleeping.
//!
//! Delay before retry `n` (1-based) is `initial * multiplier^(n-1)`, spread by
//! a jitter of ±`JITTER_RATIO` and capped at `max`. When the agent asked for a
//! delay (HTTP Retry-After), that delay is the floor, itself capped at `max`:
//! an agent must not stall a step for longer than its workflow allows.

use std::time::Duration;

use crate::workflow::RetryPolicy;

/// How far the jitter moves a delay either way, as a fraction of it.
pub const JITTER_RATIO: f64 = 0.2;

/// When and how often a failed step is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Total attempts including the first one; at least 1.
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Schedule {
    /// One attempt, no retry: what a step without `retry` gets.
    pub fn once() -> Schedule {
        Schedule {
            max_attempts: 1,
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 1.0,
        }
    }

    /// The delays before each retry (`max_attempts - 1` of them).
    /// `jitter` returns values in `[0, 1)`; pass a constant in tests.
    pub fn delays<J: FnMut() -> f64>(&self, jitter: J) -> Delays<J> {
        Delays {
            schedule: self.clone(),
            retries_left: self.max_attempts.saturating_sub(1),
            base: self.initial.as_secs_f64(),
            jitter,
        }
    }
}

impl From<&RetryPolicy> for Schedule {
    fn from(policy: &RetryPolicy) -> Schedule {
        Schedule {
            max_attempts: policy.max_attempts.max(1),
            initial: policy.backoff.initial,
            max: policy.backoff.max,
            multiplier: policy.backoff.multiplier,
        }
    }
}

/// Iterator over the delays of a [`Schedule`].
pub struct Delays<J> {
    schedule: Schedule,
    retries_left: u32,
    /// Delay of the next retry before jitter and cap, in seconds.
    base: f64,
    jitter: J,
}

impl<J: FnMut() -> f64> Delays<J> {
    /// The next delay, or `None` when no retry is left. The agent's
    /// `retry_after`, when given, is honoured as the smallest delay up to
    /// the schedule's `max`.
    pub fn next_with(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let computed = self.next()?;
        let cap = self.schedule.max.max(computed);
        Some(retry_after.map_or(computed, |asked| asked.min(cap).max(computed)))
    }
}

impl<J: FnMut() -> f64> Iterator for Delays<J> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retries_left == 0 {
            return None;
        }
        self.retries_left -= 1;
        let spread = 1.0 + JITTER_RATIO * (2.0 * (self.jitter)().clamp(0.0, 1.0) - 1.0);
        let cap = self.schedule.max.as_secs_f64();
        let seconds = (self.base * spread).min(cap);
        // The base grows only up to the cap so it never overflows to infinity.
        self.base = (self.base * self.schedule.multiplier.max(1.0)).min(cap);
        Some(Duration::from_secs_f64(seconds.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(max_attempts: u32, initial_ms: u64, max_ms: u64, multiplier: f64) -> Schedule {
        Schedule {
            max_attempts,
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier,
        }
    }

    fn millis(delays: impl Iterator<Item = Duration>) -> Vec<u128> {
        delays.map(|delay| delay.as_millis()).collect()
    }

    #[test]
    fn schedule_without_jitter() {
        // A jitter draw of 0.5 is the midpoint: no spread.
        let cases = [
            (schedule(1, 100, 1000, 2.0), vec![]),
            (schedule(4, 100, 10_000, 2.0), vec![100, 200, 400]),
            (schedule(6, 100, 500, 2.0), vec![100, 200, 400, 500, 500]),
            (schedule(3, 250, 10_000, 1.0), vec![250, 250]),
            (schedule(4, 10, 10_000, 3.0), vec![10, 30, 90]),
        ];
        for (schedule, expected) in cases {
            assert_eq!(millis(schedule.delays(|| 0.5)), expected, "{schedule:?}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_under_cap() {
        let schedule = schedule(5, 1000, 3000, 2.0);
        let low = millis(schedule.delays(|| 0.0));
        let high = millis(schedule.delays(|| 0.999_999));
        assert_eq!(low, vec![800, 1600, 2400, 2400]);
        assert_eq!(high, vec![1199, 2399, 3000, 3000]);
        // Out-of-range draws are clamped rather than trusted.
        assert_eq!(
            millis(schedule.delays(|| 7.0)),
            vec![1200, 2400, 3000, 3000]
        );
        assert_eq!(millis(schedule.delays(|| -3.0)), low);
    }

    #[test]
    fn jitter_source_is_drawn_once_per_delay() {
        let draws = [0.0, 1.0, 0.5];
        let mut next = draws.iter().copied();
        let delays = millis(schedule(4, 100, 10_000, 2.0).delays(move || next.next().unwrap()));
        assert_eq!(delays, vec![80, 240, 400]);
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_max() {
        let cases = [
            (None, 100),
            (Some(Duration::from_millis(50)), 100),
            (Some(Duration::from_millis(700)), 700),
            (Some(Duration::from_secs(2)), 1000),
            (Some(Duration::from_secs(99_999_999)), 1000),
        ];
        for (retry_after, expected) in cases {
            let mut delays = schedule(2, 100, 1000, 2.0).delays(|| 0.5);
            assert_eq!(
                delays.next_with(retry_after).map(|d| d.as_millis()),
                Some(expected)
            );
            assert_eq!(delays.next_with(retry_after), None, "only one retry");
        }
    }

    #[test]
    fn policy_converts_with_at_least_one_attempt() {
        let policy = RetryPolicy {
            max_attempts: 0,
            backoff: Default::default(),
        };
        let schedule = Schedule::from(&policy);
        assert_eq!(schedule.max_attempts, 1);
        assert_eq!(schedule.delays(|| 0.5).count(), 0);
        assert_eq!(Schedule::once().delays(|| 0.5).count(), 0);
    }

    #[test]
    fn huge_multiplier_does_not_overflow() {
        let delays = millis(schedule(5, 1000, 60_000, 1e300).delays(|| 0.5));
        assert_eq!(delays, vec![1000, 60_000, 60_000, 60_000]);
    }
}
