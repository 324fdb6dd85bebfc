//! Running a workflow: step kinds, timeouts, retries, parallelism, cancellation,
//! sub-workflows. An [`Engine`] is built with [`Engine::builder`].
//!
//! A run executes in one task: parallel branches are futures polled together
//! (so their calls overlap) rather than spawned tasks, which lets every step
//! borrow the run's state. That state (step outputs and records) sits behind
//! a mutex that is never held across an await.
//!
//! Output storage, as in the original project: a call step's result is stored
//! as `steps.ID.outputs.NAME` when the step sets `outputs: NAME`; otherwise the
//! result itself is the outputs object, and a result that is not an object is
//! stored as `steps.ID.outputs.result`. A parallel step's outputs map each
//! branch step id to that step's outputs; a conditional or switch step's
//! outputs are those of the last step of the branch taken (`{}` if none ran).

mod approval;
mod call;
mod child;
mod containers;
pub mod journal;
pub mod record;
pub mod retry;
mod run;
mod shapes;

pub use approval::ApprovalRequest;
pub use journal::{Durable, Journal, JournalWrite, StepTask};
pub use record::{RunRecord, RunStatus, StepRecord, StepStatus};
pub use shapes::schema_problems;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentClient, Discovery};
use crate::workflow::{LoadedWorkflow, WorkflowSource};

/// The skill the engine serves itself: run another workflow as a child run.
pub const EXECUTE_WORKFLOW: &str = "execute_workflow";

/// How deep `execute_workflow` may nest, counting the top-level workflow.
pub const MAX_WORKFLOW_DEPTH: usize = 8;

/// An agent's status message is cut to this many characters (events, records, store).
pub const MAX_STATUS_MESSAGE_CHARS: usize = 500;
/// A step's record keeps its last this many status messages.
pub const MAX_STATUS_MESSAGES: usize = 100;
/// A step's latest status message is journaled at most this often, so a
/// chatty agent does not flood the store (the last one is written with the
/// step's end).
pub const STATUS_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Progress of a run as it happens, for the terminal view and logs.
///
/// Steps of a child run (`execute_workflow`) are named `PARENT_STEP/CHILD_STEP`.
/// A skipped step gets a `StepFinished` without a `StepStarted`.
#[derive(Debug, Clone)]
pub enum Event {
    StepStarted {
        step: String,
        skill: Option<String>,
    },
    /// `attempt` is the number of the attempt about to start after `delay`.
    StepRetrying {
        step: String,
        attempt: u32,
        delay: std::time::Duration,
        error: String,
    },
    /// The agent's task gave a new status message (its text, at most
    /// [`MAX_STATUS_MESSAGE_CHARS`] characters).
    StepStatusMessage {
        step: String,
        message: String,
    },
    /// Boxed: a record is much larger than the other events.
    StepFinished {
        step: String,
        record: Box<StepRecord>,
    },
}

/// Runs workflows: finds agents through `discovery`, calls them with
/// `client`, finds child workflows in `workflows`. Fields are private so a
/// new one changes [`EngineBuilder`], not every place that builds an engine.
pub struct Engine {
    discovery: Arc<dyn Discovery>,
    client: AgentClient,
    /// Where `execute_workflow` finds child workflows by id.
    workflows: Arc<dyn WorkflowSource>,
    events: Option<mpsc::UnboundedSender<Event>>,
    observer: Option<Arc<dyn StepObserver>>,
}

/// Told of every step's end, on the engine's own task, with the record by
/// reference (nothing cloned): for counters such as the service's metrics.
pub trait StepObserver: Send + Sync {
    fn step_finished(&self, record: &StepRecord);
    /// A call of `agent` failed (each attempt and each agent tried counts);
    /// `kind` is [`crate::agent::CallError::kind`], or `timeout`.
    fn call_failed(&self, _agent: &str, _kind: &'static str) {}
}

/// An [`Engine`] being built: agents and workflows are required, the rest has defaults.
pub struct EngineBuilder {
    discovery: Arc<dyn Discovery>,
    workflows: Arc<dyn WorkflowSource>,
    client: Option<AgentClient>,
    events: Option<mpsc::UnboundedSender<Event>>,
}

impl EngineBuilder {
    /// The agent client (default: a new [`AgentClient`]); pass one to share its connections.
    pub fn client(mut self, client: AgentClient) -> EngineBuilder {
        self.client = Some(client);
        self
    }

    /// Where progress events go (default: nowhere).
    pub fn events(mut self, events: mpsc::UnboundedSender<Event>) -> EngineBuilder {
        self.events = Some(events);
        self
    }

    pub fn build(self) -> Engine {
        Engine {
            discovery: self.discovery,
            client: self.client.unwrap_or_default(),
            workflows: self.workflows,
            events: self.events,
            observer: None,
        }
    }
}

impl Engine {
    /// This engine, telling `observer` of every step's end.
    pub fn with_observer(mut self, observer: Arc<dyn StepObserver>) -> Engine {
        self.observer = Some(observer);
        self
    }
}

/// Where a run sits in a chain of `execute_workflow` calls.
#[derive(Debug, Clone, Default)]
struct Nesting {
    /// Ids of the workflows that led here, outermost first (not this one).
    callers: Vec<String>,
    /// Prepended to step ids in events and idempotency keys (`PARENT_STEP/`):
    /// the same qualified ids the journal of a child run records.
    event_prefix: String,
}

impl Engine {
    /// An engine that finds agents through `discovery` and child workflows in `workflows`.
    pub fn builder(
        discovery: Arc<dyn Discovery>,
        workflows: Arc<dyn WorkflowSource>,
    ) -> EngineBuilder {
        EngineBuilder {
            discovery,
            workflows,
            client: None,
            events: None,
        }
    }

    /// Where this engine finds workflows by reference.
    pub fn workflows(&self) -> &Arc<dyn WorkflowSource> {
        &self.workflows
    }

    /// Run a loaded (hence valid) workflow to the end. Never panics on agent
    /// behaviour; failures are in the record.
    pub async fn run(
        &self,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
    ) -> RunRecord {
        self.run_nested(workflow, input, cancel, Nesting::default(), None)
            .await
    }

    /// Run a stored run: steps in `durable.completed` are not run again, every
    /// other step is journaled as it starts and ends, and an approval step
    /// without a decision pauses the run (`RunStatus::WaitingApproval`).
    /// Child runs of `execute_workflow` are journaled into the same run under
    /// qualified step ids (`PARENT_STEP/CHILD_STEP`), and an approval in a
    /// child pauses the whole run.
    pub async fn run_durable(
        &self,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
        durable: &Durable,
    ) -> RunRecord {
        run::execute(
            self,
            workflow,
            input,
            cancel,
            Nesting::default(),
            Some(durable),
        )
        .await
    }

    /// Boxed so that `execute_workflow` can recurse into it.
    fn run_nested<'a>(
        &'a self,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
        nesting: Nesting,
        durable: Option<&'a Durable>,
    ) -> BoxFuture<'a, RunRecord> {
        Box::pin(run::execute(
            self, workflow, input, cancel, nesting, durable,
        ))
    }

    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(events) = &self.events {
            // A closed receiver only means nobody watches progress any more.
            let _ = events.send(event());
        }
    }
}
