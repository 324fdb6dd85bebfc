//! The run database's notion of now: every time it stamps (a transition, an
//! attempt's start, a decision) and every deadline the run lifecycle checks
//! (an approval's `timeout`) is read from one [`Clock`], so tests move time on
//! instead of sleeping. Leases are the exception: they guard against other
//! processes, so they follow the system clock (see `lease.rs`).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Where now comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock: the default of every store.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock moved on by hand: for tests of deadlines. Clones share
/// their offset, so a test keeps one and hands another to the store.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset: Arc<Mutex<chrono::Duration>>,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Move now on by `by`, for every holder of this clock.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).expect("a test advances by a sane duration");
        *self.lock() += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, chrono::Duration> {
        // An offset is a plain value: a panic elsewhere leaves it usable.
        self.offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.lock()
    }
}

/// `at` as stored: RFC 3339 UTC with microseconds (sorts as text).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_on_for_all_its_clones() {
        let clock = ManualClock::new();
        let other = clock.clone();
        let before = other.now();
        clock.advance(std::time::Duration::from_secs(3600));
        let moved = other.now() - before;
        assert!(moved >= chrono::Duration::seconds(3600), "{moved}");
        assert!(moved < chrono::Duration::seconds(3660), "{moved}");
    }
}
