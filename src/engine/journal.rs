//! The engine's persistence hook. A durable run hands the engine a [`Journal`]
//! that records each step as it starts and finishes, plus the outputs of the
//! steps an earlier process already completed; the engine stays storage-free
//! and a run without a journal pays nothing.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::StepRecord;

/// Records step progress as it happens. Calls are synchronous and short (one
/// small write each); an error fails the step, since a step whose start was
/// not recorded could be re-run unnoticed after a crash.
pub trait Journal: Send + Sync {
    /// A step is about to run (before any agent is called).
    fn step_started(&self, step_id: &str) -> Result<(), String>;
    /// A step that ran has ended (completed, failed or cancelled).
    fn step_finished(&self, record: &StepRecord) -> Result<(), String>;
    /// An approval step has no decision yet: the run pauses here.
    fn approval_waiting(&self, step_id: &str) -> Result<(), String>;
}

/// What the engine needs to run (or continue) a stored run.
pub struct Durable {
    /// The stored run's id: it is the engine's run id, hence part of every idempotency key.
    pub run_id: String,
    pub journal: Arc<dyn Journal>,
    /// step id -> outputs of steps that completed before (not run again);
    /// an approval step with a recorded decision is among them.
    pub completed: HashMap<String, Value>,
    /// step id -> attempts made before that count towards the idempotency key
    /// (an interrupted attempt does not count, so its re-run sends the same key).
    pub previous_attempts: HashMap<String, u32>,
}
