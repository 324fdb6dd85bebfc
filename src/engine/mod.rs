//! Running a workflow: step kinds, timeouts, retries, parallelism, cancellation,
//! sub-workflows. OWNER: engine helper. The types below are the contract the CLI uses.

pub mod record;
pub mod retry;
pub mod source;

pub use record::{RunRecord, RunStatus, StepRecord, StepStatus};
pub use source::{DirectorySource, SourceError, WorkflowSource};

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentClient, Discovery};
use crate::workflow::LoadedWorkflow;

/// Progress of a run as it happens, for the terminal view and logs.
#[derive(Debug, Clone)]
pub enum Event {
    StepStarted { step: String, skill: Option<String> },
    StepRetrying { step: String, attempt: u32, delay: std::time::Duration, error: String },
    StepFinished { step: String, record: StepRecord },
}

pub struct Engine {
    pub discovery: Arc<dyn Discovery>,
    pub client: AgentClient,
    /// Where `execute_workflow` finds child workflows by id.
    pub workflows: Arc<dyn WorkflowSource>,
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

impl Engine {
    /// Run a loaded (hence valid) workflow to the end. Never panics on agent
    /// behaviour; failures are in the record.
    pub async fn run(&self, workflow: Arc<LoadedWorkflow>, input: Value, cancel: CancellationToken) -> RunRecord {
        let _ = (workflow, input, cancel);
        todo!("engine helper")
    }
}
