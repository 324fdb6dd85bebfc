//! The result of a run: what ran, with which input, what each step did.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Completed,
    Failed,
    Cancelled,
    /// A branch not taken, or a step never reached because an earlier one failed.
    Skipped,
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
    /// The outputs of the last top-level step that ran.
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: f64,
}
