//! How long the run database's write transactions take (from `BEGIN` to the
//! commit's answer, one observation per transaction, of either backend), for
//! the service's `pallet_store_write_seconds` histogram. Process-wide: a
//! process has one run database, and counters need no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets.
pub const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static BUCKETS: [AtomicU64; BOUNDS.len()] = [const { AtomicU64::new(0) }; BOUNDS.len()];
static COUNT: AtomicU64 = AtomicU64::new(0);
static SUM_NANOS: AtomicU64 = AtomicU64::new(0);

pub fn record(elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    if let Some(bucket) = BOUNDS.iter().position(|bound| seconds <= *bound) {
        BUCKETS[bucket].fetch_add(1, Ordering::Relaxed);
    }
    COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    SUM_NANOS.fetch_add(nanos, Ordering::Relaxed);
}

/// Observations at most each bound (not cumulative), the sum in seconds, the count.
pub fn snapshot() -> ([u64; BOUNDS.len()], f64, u64) {
    let buckets = std::array::from_fn(|index| BUCKETS[index].load(Ordering::Relaxed));
    let sum = SUM_NANOS.load(Ordering::Relaxed) as f64 / 1e9;
    (buckets, sum, COUNT.load(Ordering::Relaxed))
}
