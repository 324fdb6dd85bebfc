//! The durable-run lifecycle: start, resume, rerun from a step (`rerun.rs`),
//! approve, reject (with or without rework), cancel, approval expiry, and one executor per run (the lease
//! policy, [`lease`]). The CLI and the HTTP service both drive runs through
//! [`Runner`], on top of the [`Engine`] and a run database ([`Backend`]).
//!
//! Words, one meaning each:
//! - a *durable run* is a run recorded in a run database, so that it outlives
//!   the process that started it (resume, approvals); a run without a
//!   database is not durable and cannot wait for an approval.
//! - [`RunState`] (store) is where a durable run stands in its lifecycle, as
//!   stored (`pending`, `in_progress`, `waiting_approval`, and the ended ones).
//! - [`crate::engine::RunStatus`] is how one execution of the engine ended in
//!   this process; [`Runner`] turns it into the run's next `RunState`.
//! - [`crate::store::AttemptStatus`] is how one attempt of one step stands.

mod approval;
mod execute;
mod journal;
pub mod lease;
mod rerun;
mod view;
mod workflows;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, RunRecord};
use crate::store::{Backend, NewRun, RunChange, RunState, StoreError, StoredRun};
use crate::workflow::{LoadError, LoadedWorkflow};
use lease::HeldLease;

pub use approval::Waiting;
pub use journal::RunJournal;
pub use view::{PendingApproval, Progress, RunView, time_in_states};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored workflow of run `{id}` cannot be loaded")]
    Workflow {
        id: String,
        #[source]
        source: LoadError,
    },
    #[error("run `{id}` is {status}, not waiting for approval")]
    NotWaiting { id: String, status: RunState },
    #[error("run `{id}` waits for approval at step `{step}`")]
    Waiting { id: String, step: String },
    #[error("run `{id}` has ended ({status})")]
    Ended { id: String, status: RunState },
    #[error("the approval of step `{step}` lacks the required field(s) {}", missing.join(", "))]
    MissingFields { step: String, missing: Vec<String> },
    #[error(
        "workflow `{workflow}` of run `{id}` has no step `{step}`{}; rerun from one of its top-level steps: {}",
        suggestion.as_ref().map(|close| format!(" (did you mean `{close}`?)")).unwrap_or_default(),
        steps.join(", ")
    )]
    UnknownStep {
        id: String,
        workflow: String,
        step: String,
        suggestion: Option<String>,
        /// The top-level steps, in order (boxed: the error stays small).
        steps: Box<[String]>,
    },
    #[error(
        "step `{step}` is inside top-level step `{parent}` of run `{id}`'s workflow; a rerun starts at a top-level step: rerun from `{parent}` (or an earlier step)"
    )]
    NestedStep {
        id: String,
        step: String,
        parent: String,
    },
    #[error(
        "step `{step}`, before `{from}`, did not complete in run `{id}` ({state}): it has no outputs to reuse; rerun from `{step}` or an earlier step"
    )]
    NotCompleted {
        id: String,
        step: String,
        from: String,
        /// How it stands: `it failed`, `it did not run`, ...
        state: String,
    },
    #[error(
        "run `{id}` is being executed by another process (pid {pid} on host {host}, since {since}): wait for it, or stop it with `pallet cancel {id}`"
    )]
    Leased {
        id: String,
        host: String,
        pid: u32,
        since: String,
    },
    #[error(
        "run `{id}`: this process lost its lease while executing it (another process took it over, or it could not be renewed in time); its execution here stopped"
    )]
    LeaseLost { id: String },
    /// Stopped through [`Runner::interrupt`]: the run stays in progress.
    #[error("run `{id}` was interrupted; it stays resumable")]
    Interrupted { id: String },
    /// The engine ran, but the run's end could not be stored; the record is kept.
    #[error(
        "run `{id}` ran, but the run database could not record its end (the run stays resumable)"
    )]
    Unrecorded {
        id: String,
        record: Box<RunRecord>,
        #[source]
        source: StoreError,
    },
}

impl RunError {
    /// The request conflicts with the run's state (HTTP 409 in a service).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            RunError::Store(StoreError::Transition(_) | StoreError::LeaseLost { .. })
                | RunError::NotWaiting { .. }
                | RunError::Waiting { .. }
                | RunError::Ended { .. }
                | RunError::Leased { .. }
                | RunError::LeaseLost { .. }
        )
    }

    /// The request names what the run does not have or need (HTTP 422 in a
    /// service): missing approval fields, or a step a rerun cannot start from.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            RunError::MissingFields { .. }
                | RunError::UnknownStep { .. }
                | RunError::NestedStep { .. }
                | RunError::NotCompleted { .. }
        )
    }

    /// What the engine did before the error, when it ran.
    pub fn record(&self) -> Option<&RunRecord> {
        match self {
            RunError::Unrecorded { record, .. } => Some(record),
            _ => None,
        }
    }
}

/// A human (or timeout) decision on an approval step.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub actor: String,
    pub comment: Option<String>,
    pub fields: Map<String, Value>,
}

/// Where a run stands after this process drove it.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub run: StoredRun,
    /// What the engine did in this process (none when nothing ran).
    #[serde(skip)]
    pub record: Option<RunRecord>,
}

/// Triggers of the seed's state machine: pending -> in_progress,
/// in_progress -> waiting_approval and in_progress -> failed. Where the seed
/// names none (creation, completion, cancellation) pallet's own names stay.
pub const TRIGGER_START: &str = "start";
pub const TRIGGER_WAITING: &str = "agent_complete";
pub const TRIGGER_ERROR: &str = "error";
pub const TRIGGER_COMPLETED: &str = "steps_completed";

/// Drives the durable runs of one run database with one engine. Approval
/// deadlines are checked against the database's clock ([`Backend::clock`]).
pub struct Runner<'a> {
    pub store: &'a dyn Backend,
    pub engine: &'a Engine,
    /// Who starts, resumes or cancels runs (approvals carry their own actor).
    pub actor: String,
    /// Cancelled before the run's own token (SIGTERM to `pallet run`): the
    /// engine stops as on a cancel, but the run is left `in_progress`, resumable.
    pub interrupt: CancellationToken,
}

/// The workflow a stored run executes, from its own copy of the text
/// (loaded once per process and digest).
pub fn stored_workflow(run: &StoredRun) -> Result<Arc<LoadedWorkflow>, RunError> {
    workflows::loaded_workflow(run).map_err(|source| RunError::Workflow {
        id: run.id.clone(),
        source,
    })
}

impl Runner<'_> {
    /// Create a run of `workflow` and execute it until it ends or waits for approval.
    pub async fn start(
        &self,
        workflow: Arc<LoadedWorkflow>,
        reference: &str,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        // Created, started and leased in one write: a new run has no earlier
        // attempts to interrupt or restore.
        let token = lease::new_token();
        let taken_from = std::time::Instant::now();
        let id = self
            .store
            .create_started_run(
                &self.new_run(&workflow, reference, input.clone()),
                RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor),
                Some(&token),
            )
            .await
            .inspect_err(|_| crate::store::lease::let_go(&token))?;
        let cancel = cancel.child_token();
        let lease = lease::HeldLease::adopt(self.store, &id, token, taken_from, cancel.clone());
        self.execute_leased(&id, workflow, input, cancel, lease, Default::default())
            .await
    }

    /// Record a new run of `workflow` as started (`in_progress`) without
    /// executing it: a service answers first, then `resume`s it in the background.
    pub fn create(
        &self,
        workflow: &LoadedWorkflow,
        reference: &str,
        input: Value,
    ) -> Result<StoredRun, RunError> {
        let id = self
            .store
            .create_started_run(
                &self.new_run(workflow, reference, input),
                RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor),
                None,
            )
            .wait()?;
        Ok(self.store.get(&id)?)
    }

    pub(super) fn new_run(
        &self,
        workflow: &LoadedWorkflow,
        reference: &str,
        input: Value,
    ) -> NewRun {
        NewRun {
            workflow_ref: reference.to_string(),
            workflow_id: workflow.workflow.metadata.id.clone(),
            workflow_version: workflow.workflow.metadata.version.to_string(),
            workflow_source: workflow.origin.clone(),
            workflow_yaml: workflow.text.clone(),
            input,
            actor: self.actor.clone(),
        }
    }

    /// Continue a run after a crash, or apply an expired approval's `on_timeout`.
    pub async fn resume(&self, id: &str, cancel: CancellationToken) -> Result<Outcome, RunError> {
        self.resume_leased(id, cancel, None).await
    }

    /// [`Runner::resume`] of a run a worker claimed: its lease is already
    /// taken under `token` ([`Backend::claim`]), renewed from now on, and
    /// given back when the run has nothing to execute.
    pub async fn resume_claimed(
        &self,
        id: &str,
        token: String,
        taken_from: std::time::Instant,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        // Held before anything can fail: a lease nobody renews nor releases
        // would bind the run (on this host, for as long as this process lives).
        let cancel = cancel.child_token();
        let lease = HeldLease::adopt(self.store, id, token, taken_from, cancel.clone());
        self.resume_leased(id, cancel, Some(lease)).await
    }

    /// [`Runner::resume`], under `claimed` when a claim took the lease; the
    /// lease is released on every way out (dropped) unless the execution
    /// ended it.
    async fn resume_leased(
        &self,
        id: &str,
        cancel: CancellationToken,
        mut claimed: Option<HeldLease>,
    ) -> Result<Outcome, RunError> {
        let run_id = id.to_string();
        // Loading a workflow (YAML, schema, checks) is CPU work: off the runtime too.
        let loaded = blocking(self.store, move |store| -> Result<_, RunError> {
            let run = store.get(&run_id)?;
            let workflow = stored_workflow(&run)?;
            Ok((run, workflow))
        })
        .await;
        let (run, workflow) = match (loaded, claimed) {
            (Ok(loaded), lease) => {
                claimed = lease;
                loaded
            }
            (
                Err(
                    error @ (RunError::Workflow { .. }
                    | RunError::Store(StoreError::Corrupt { .. })),
                ),
                Some(lease),
            ) => {
                return Err(self.unloadable(id, error, lease).await);
            }
            // A claimed lease dropped here is released.
            (Err(error), _) => return Err(error),
        };
        match run.status {
            RunState::Pending => {
                let mut change = RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor);
                change.metadata = json!({"by": "resume"});
                self.store.transition(id, change).await?;
            }
            RunState::InProgress => {}
            RunState::WaitingApproval => {
                let waiting = self.waiting(&run, &workflow)?;
                if !self.expired(&waiting) {
                    return Err(RunError::Waiting {
                        id: id.to_string(),
                        step: waiting.step.id,
                    });
                }
                // Boxed: rare, and its room would be in every executing run's future.
                return Box::pin(self.apply_timeout(&run, &waiting, cancel)).await;
            }
            status => {
                return Err(RunError::Ended {
                    id: id.to_string(),
                    status,
                });
            }
        }
        // Only the input lives on while the run executes (the rest of the
        // stored run, the workflow text included, is dropped here).
        let input = { run }.input;
        self.execute(id, workflow, input, cancel, claimed).await
    }

    /// A claimed run whose stored workflow does not load in this process (a
    /// worker older than the one that started it, say), or whose record
    /// does not read (an unknown status): the reason is
    /// recorded on the run and the lease given up with its start counted, so
    /// that after a few tries (by any worker) claims leave it for a human.
    async fn unloadable(&self, id: &str, error: RunError, lease: HeldLease) -> RunError {
        let reason = format!(
            "{}; this worker cannot execute the run: fix the cause (or run a pallet that loads it) and resume it with `pallet resume {id}`",
            crate::error::chain_of(&error)
        );
        let run_id = id.to_string();
        if let Err(stored) =
            blocking(self.store, move |store| store.set_error(&run_id, &reason)).await
        {
            tracing::warn!(
                "run {id}: cannot record why it is not executed: {}",
                crate::error::chain_of(&stored)
            );
        }
        lease.abandon().await;
        error
    }

    pub async fn approve(
        &self,
        id: &str,
        decision: Decision,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        self.decide(id, true, decision)?;
        self.continue_decided(id, cancel).await
    }

    pub async fn reject(
        &self,
        id: &str,
        decision: Decision,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        self.decide(id, false, decision)?;
        self.continue_decided(id, cancel).await
    }

    /// Record a decision on the approval step run `id` waits at, without
    /// executing what follows: the run is then `in_progress` (to be continued
    /// with `resume`), `completed` or `failed`.
    pub fn decide(
        &self,
        id: &str,
        approved: bool,
        decision: Decision,
    ) -> Result<StoredRun, RunError> {
        let run = self.store.get(id)?;
        let workflow = stored_workflow(&run)?;
        let waiting = self.waiting(&run, &workflow)?;
        let missing: Vec<String> = waiting
            .step
            .required
            .iter()
            .filter(|field| approved && !decision.fields.contains_key(*field))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(RunError::MissingFields {
                step: waiting.step.id,
                missing,
            });
        }
        self.record_decision(&run, &waiting, approved, decision)?;
        Ok(self.store.get(id)?)
    }

    /// After a decision: execute the rest of the run if the decision continues it.
    async fn continue_decided(
        &self,
        id: &str,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        let run = self.store.get(id)?;
        if run.status != RunState::InProgress {
            return Ok(Outcome { run, record: None });
        }
        let workflow = stored_workflow(&run)?;
        self.execute(id, workflow, run.input, cancel, None).await
    }

    /// Stop a run. A process executing it finds out when it next records a status.
    pub fn cancel(&self, id: &str) -> Result<StoredRun, RunError> {
        self.store
            .transition(
                id,
                RunChange::new(RunState::Cancelled, "cancelled", &self.actor),
            )
            .wait()?;
        Ok(self.store.get(id)?)
    }
}

/// Run synchronous store calls on tokio's blocking threads, so an async
/// caller's runtime thread is not held while the database works.
async fn blocking<T, E>(
    store: &dyn Backend,
    calls: impl FnOnce(&dyn Backend) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let store = store.shared();
    tokio::task::spawn_blocking(move || calls(store.as_ref()))
        .await
        .map_err(|error| E::from(StoreError::TaskStopped(error)))?
}
