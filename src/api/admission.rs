//! Admission control: runs this service executes at once, and the bytes of
//! their inputs, are bounded; past a bound `POST /workflows` answers 429
//! with `Retry-After` instead of growing memory and the database until the
//! machine gives out. A run holds its [`Ticket`] while it executes.

use std::sync::{Arc, Mutex};

/// The bounds (see the README's Limits section for the flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Runs executing at once in this process.
    pub max_active_runs: usize,
    /// Sum of the (JSON) input sizes of those runs.
    pub max_inflight_input_bytes: u64,
    /// One run's input.
    pub max_input_bytes: u64,
    /// Runs waiting in a shared database for a worker with room, past
    /// which a worker without room refuses new ones.
    pub max_queued_runs: usize,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            max_active_runs: 10_000,
            max_inflight_input_bytes: 64 * 1024 * 1024,
            max_input_bytes: 1024 * 1024,
            max_queued_runs: 10_000,
        }
    }
}

/// Which bound refused a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{active} runs are executing, the limit (--max-active-runs, PALLET_MAX_ACTIVE_RUNS); retry later"
    )]
    ActiveRuns { active: usize },
    #[error(
        "the inputs of the executing runs take {used} bytes; {size} more would pass the limit of {limit} (--max-inflight-input-bytes, PALLET_MAX_INFLIGHT_INPUT_BYTES); retry later"
    )]
    InputBytes { used: u64, size: u64, limit: u64 },
    #[error(
        "no worker has room, and {queued} runs already wait in the run database for one, the limit (--max-queued-runs, PALLET_MAX_QUEUED_RUNS); retry later"
    )]
    QueuedRuns { queued: usize },
    #[error(
        "{limit} event streams are open, the limit (--max-event-streams, PALLET_MAX_EVENT_STREAMS); close one or retry later"
    )]
    EventStreams { limit: usize },
}

#[derive(Default)]
struct Usage {
    active: usize,
    input_bytes: u64,
}

pub struct Admission {
    limits: AdmissionLimits,
    usage: Arc<Mutex<Usage>>,
}

/// One admitted run's share; given back when dropped.
pub struct Ticket {
    input_bytes: u64,
    usage: Arc<Mutex<Usage>>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            usage: Arc::default(),
        }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Admit a new run with an input of `input_bytes`, or say which bound it passes.
    pub fn admit(&self, input_bytes: u64) -> Result<Ticket, Refusal> {
        let mut usage = self.lock();
        if usage.active >= self.limits.max_active_runs {
            return Err(Refusal::ActiveRuns {
                active: usage.active,
            });
        }
        if usage.input_bytes + input_bytes > self.limits.max_inflight_input_bytes {
            return Err(Refusal::InputBytes {
                used: usage.input_bytes,
                size: input_bytes,
                limit: self.limits.max_inflight_input_bytes,
            });
        }
        Ok(self.count(&mut usage, input_bytes))
    }

    /// Runs executing now (holding a ticket).
    pub fn active(&self) -> usize {
        self.lock().active
    }

    /// Runs that may still start before [`AdmissionLimits::max_active_runs`].
    pub fn free(&self) -> usize {
        self.limits
            .max_active_runs
            .saturating_sub(self.lock().active)
    }

    /// Count a run that is continued, not started (resumed, approved): it
    /// is already recorded, so it is never refused.
    pub fn continuing(&self) -> Ticket {
        let mut usage = self.lock();
        self.count(&mut usage, 0)
    }

    fn count(&self, usage: &mut Usage, input_bytes: u64) -> Ticket {
        usage.active += 1;
        usage.input_bytes += input_bytes;
        Ticket {
            input_bytes,
            usage: self.usage.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut usage = self
            .usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        usage.active -= 1;
        usage.input_bytes -= self.input_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_bytes_are_bounded_and_given_back() {
        let admission = Admission::new(AdmissionLimits {
            max_active_runs: 2,
            max_inflight_input_bytes: 100,
            max_input_bytes: 100,
            ..AdmissionLimits::default()
        });
        let first = admission.admit(60).unwrap();
        assert!(matches!(
            admission.admit(50),
            Err(Refusal::InputBytes { used: 60, .. })
        ));
        let second = admission.admit(40).unwrap();
        assert!(matches!(
            admission.admit(0),
            Err(Refusal::ActiveRuns { active: 2 })
        ));
        let continued = admission.continuing();
        drop((first, second, continued));
        assert!(admission.admit(100).is_ok());
    }
}
