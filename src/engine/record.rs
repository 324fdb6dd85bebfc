//! The result of a run: what ran, with which input, what each step did.

use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

/// How one execution of the engine ended in this process. A durable run's
/// state as stored is `store::RunState`, which `runs::Runner` derives from this.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Failed,
    Cancelled,
    /// Paused at an approval step without a decision (durable runs only).
    WaitingApproval,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Completed,
    Failed,
    Cancelled,
    /// A branch not taken, or a step never reached because an earlier one failed.
    Skipped,
    /// An approval step without a decision yet.
    Waiting,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: String,
    /// Where the definition came from: a file path, or later a registry digest.
    pub workflow_source: String,
    pub input: Value,
    pub status: RunStatus,
    /// Steps in the order they started (containers included).
    pub steps: Vec<StepRecord>,
    /// The outputs of the last top-level step that ran; set when the run completed.
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Steps with `continue_on_error` that failed while the run went on, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continued_failures: Vec<String>,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// The step's outputs object, as later steps see it under `steps.ID.outputs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    /// Name of the agent that answered (the last one tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The child run of an `execute_workflow` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<Box<RunRecord>>,
    /// The agent's status messages, in order (the last
    /// [`super::MAX_STATUS_MESSAGES`] of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_messages: Vec<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: f64,
}

/// When something started, as wall-clock text for the record and as an
/// instant for the duration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall: chrono::DateTime<Utc>,
    instant: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            wall: Utc::now(),
            instant: Instant::now(),
        }
    }

    pub(crate) fn started_at(&self) -> String {
        self.wall.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// The end time (RFC 3339) and the duration in milliseconds.
    pub(crate) fn stop(&self) -> (String, f64) {
        let elapsed = self.instant.elapsed();
        let ended = self.wall + elapsed;
        let ended_at = ended.to_rfc3339_opts(SecondsFormat::Micros, true);
        (ended_at, elapsed.as_secs_f64() * 1000.0)
    }
}
