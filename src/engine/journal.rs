//! The engine's persistence hook. A durable run hands the engine a [`Journal`]
//! that records each step as it starts and finishes, plus the outputs of the
//! steps an earlier process already completed; the engine stays storage-free
//! and a run without a journal pays nothing.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::StepRecord;
use crate::agent::AgentTask;

/// The answer of one journal write: it resolves once the write is committed.
pub type JournalWrite = BoxFuture<'static, Result<(), String>>;

/// Records step progress as it happens. A call queues its write and returns
/// at once; the engine awaits the answer (a start's while the step works, a
/// finish's before the next step starts), so no runtime thread waits on
/// storage. An error fails the step. Writes are applied in the order the
/// calls were made.
pub trait Journal: Send + Sync {
    /// A step is about to run (before any agent is called).
    fn step_started(&self, step_id: &str) -> JournalWrite;
    /// A step that ran has ended (completed, failed or cancelled). Fails when
    /// the run is no longer in progress, so that no further step starts.
    fn step_finished(&self, record: &StepRecord) -> JournalWrite;
    /// An approval step has no decision yet: the run pauses here.
    fn approval_waiting(&self, step_id: &str) -> JournalWrite;
    /// The running step's agent accepted its call as a task still running
    /// (or, on a resume, the agent still knows the interrupted attempt's
    /// task): kept with the step's attempt so that a resume after a crash can
    /// ask the agent for it. One small write, queued like the others.
    fn task_accepted(&self, step_id: &str, task: &StepTask) -> JournalWrite;
    /// The running step's agent gave a new status message (throttled by the
    /// engine). Nothing is recorded by default.
    fn step_status(&self, step_id: &str, message: &str) -> JournalWrite {
        let _ = (step_id, message);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// An agent's task for a step attempt, as a durable run keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTask {
    /// The name of the agent that accepted the task.
    pub agent: String,
    pub task: AgentTask,
    /// The key the task was sent with; a task the agent forgot is sent again with it.
    pub idempotency_key: String,
    /// The attempt number of the interrupted attempt whose task this one took
    /// over (reattached) instead of sending the step again.
    pub reattached_from: Option<u32>,
}

/// What the engine needs to run (or continue) a durable run (the `runs` module gives it one).
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
    /// step id -> the agent's task of its interrupted attempt, when the agent
    /// had accepted one: the step first asks the agent for that task
    /// (`reattached_from` names the attempt) rather than sending it again.
    pub interrupted_tasks: HashMap<String, StepTask>,
    /// step id -> the error of its failed attempt, for steps whose
    /// `on_failure` handler had started: a resume runs the handler again
    /// (its completed steps not), not the failed step.
    pub handled_failures: HashMap<String, String>,
}
