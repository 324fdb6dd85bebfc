//! Durable runs: start, resume, approve, reject and cancel a stored run. The
//! CLI and the HTTP service both drive runs through [`Runner`].

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::lease::HeldLease;
use super::state::RunState;
use super::{Attempt, RunChange, RunJournal, RunStore, StoreError, StoredRun};
use crate::engine::{ApprovalRequest, Durable, Engine, RunRecord, RunStatus};
use crate::workflow::{LoadError, LoadedWorkflow, Step, StepType, TimeoutDecision};

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
        "run `{id}` is being executed by another process (pid {pid} on host {host}, since {since}): wait for it, or stop it with `pallet cancel {id}`"
    )]
    Leased {
        id: String,
        host: String,
        pid: u32,
        since: String,
    },
    #[error("another process took over run `{id}` while this one executed it; this one stopped")]
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

/// An approval step waiting for a decision.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Its id and `on_reject.retry_from` qualified as stored: `PARENT_STEP/ID`
    /// for an approval in a child run (`execute_workflow`).
    pub step: Step,
    /// Qualified ids of the steps a rejection with `retry_from` runs again.
    pub rework: Vec<String>,
    /// RFC 3339: when the run started waiting.
    pub since: String,
    /// When `on_timeout` decides, if the step has a timeout.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

impl Waiting {
    pub fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| deadline <= chrono::Utc::now())
    }
}

/// Triggers of the seed's state machine: pending -> in_progress,
/// in_progress -> waiting_approval and in_progress -> failed. Where the seed
/// names none (creation, completion, cancellation) pallet's own names stay.
pub const TRIGGER_START: &str = "start";
pub const TRIGGER_WAITING: &str = "agent_complete";
pub const TRIGGER_ERROR: &str = "error";
pub const TRIGGER_COMPLETED: &str = "steps_completed";

pub struct Runner<'a> {
    pub store: &'a RunStore,
    pub engine: &'a Engine,
    /// Who starts, resumes or cancels runs (approvals carry their own actor).
    pub actor: String,
    /// Cancelled before the run's own token (SIGTERM to `pallet run`): the
    /// engine stops as on a cancel, but the run is left `in_progress`, resumable.
    pub interrupt: CancellationToken,
}

/// `sha256:HEX` of a workflow's exact text.
pub fn digest(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The workflow a stored run executes, from its own copy of the text
/// (loaded once per process and digest).
pub fn stored_workflow(run: &StoredRun) -> Result<Arc<LoadedWorkflow>, RunError> {
    super::loaded_workflow(run).map_err(|source| RunError::Workflow {
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
        let run = self.create(&workflow, reference, input.clone())?;
        self.execute(&run.id, workflow, input, cancel).await
    }

    /// Record a new run of `workflow` as started (`in_progress`) without
    /// executing it: a service answers first, then `resume`s it in the background.
    pub fn create(
        &self,
        workflow: &LoadedWorkflow,
        reference: &str,
        input: Value,
    ) -> Result<StoredRun, RunError> {
        let run = self.store.create_run(&super::NewRun {
            workflow_ref: reference.to_string(),
            workflow_id: workflow.workflow.metadata.id.clone(),
            workflow_version: workflow.workflow.metadata.version.to_string(),
            workflow_source: workflow.origin.clone(),
            workflow_yaml: workflow.text.clone(),
            input,
            actor: self.actor.clone(),
        })?;
        self.store.transition(
            &run.id,
            RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor),
        )?;
        Ok(self.store.get(&run.id)?)
    }

    /// Continue a run after a crash, or apply an expired approval's `on_timeout`.
    pub async fn resume(&self, id: &str, cancel: CancellationToken) -> Result<Outcome, RunError> {
        let run_id = id.to_string();
        // Loading a workflow (YAML, schema, checks) is CPU work: off the runtime too.
        let (run, workflow) = self
            .store
            .blocking(move |store| -> Result<_, RunError> {
                let run = store.get(&run_id)?;
                let workflow = stored_workflow(&run)?;
                Ok((run, workflow))
            })
            .await?;
        match run.status {
            RunState::Pending => {
                let mut change = RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor);
                change.metadata = json!({"by": "resume"});
                self.store.transition_queued(id, change).await?;
            }
            RunState::InProgress => {}
            RunState::WaitingApproval => {
                let waiting = self.waiting(&run, &workflow)?;
                if !waiting.expired() {
                    return Err(RunError::Waiting {
                        id: id.to_string(),
                        step: waiting.step.id,
                    });
                }
                return self.apply_timeout(&run, &waiting, cancel).await;
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
        self.execute(id, workflow, input, cancel).await
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
        self.execute(id, workflow, run.input, cancel).await
    }

    /// Stop a run. A process executing it finds out when it next records a status.
    pub fn cancel(&self, id: &str) -> Result<StoredRun, RunError> {
        self.store.transition(
            id,
            RunChange::new(RunState::Cancelled, "cancelled", &self.actor),
        )?;
        Ok(self.store.get(id)?)
    }

    /// The approval step a waiting run stops at: the newest waiting attempt
    /// of an approval (an `execute_workflow` step whose child waits is
    /// `waiting` too, and is passed over).
    pub fn waiting(&self, run: &StoredRun, workflow: &LoadedWorkflow) -> Result<Waiting, RunError> {
        let not_waiting = || RunError::NotWaiting {
            id: run.id.clone(),
            status: run.status,
        };
        if run.status != RunState::WaitingApproval {
            return Err(not_waiting());
        }
        let (attempt, request) = self
            .store
            .attempts(&run.id)?
            .into_iter()
            .rev()
            .filter(|attempt| attempt.status == "waiting")
            .find_map(|attempt| {
                let request = approval_request(&attempt, workflow)?;
                Some((attempt, request))
            })
            .ok_or_else(not_waiting)?;
        let (step, rework) = qualified(request, &attempt.step_id);
        let deadline = match (
            step.approval_timeout(),
            chrono::DateTime::parse_from_rfc3339(&attempt.started_at),
        ) {
            (Some(timeout), Ok(since)) => chrono::Duration::from_std(timeout)
                .ok()
                .map(|timeout| since.to_utc() + timeout),
            _ => None,
        };
        Ok(Waiting {
            step,
            rework,
            since: attempt.started_at,
            deadline,
        })
    }

    /// When a run is looked at after its approval deadline: a timeout that
    /// rejects without rework fails the run at once; other timeouts need the
    /// run to execute and are applied by `resume`. Returns whether it changed.
    pub fn fail_expired(&self, id: &str) -> Result<bool, RunError> {
        let run = self.store.get(id)?;
        if run.status != RunState::WaitingApproval {
            return Ok(false);
        }
        let workflow = stored_workflow(&run)?;
        let waiting = self.waiting(&run, &workflow)?;
        let rejects = waiting.step.on_timeout.unwrap_or_default() == TimeoutDecision::Reject;
        if !waiting.expired() || !rejects || waiting.step.on_reject.is_some() {
            return Ok(false);
        }
        let decision = timeout_decision(&waiting.step);
        let value = decision_value(false, &decision);
        let change = rejected_change(&waiting.step, &decision, None);
        self.store
            .decide(id, &waiting.step.id, &value, &[], change)?;
        Ok(true)
    }

    async fn apply_timeout(
        &self,
        run: &StoredRun,
        waiting: &Waiting,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        let approved = waiting.step.on_timeout.unwrap_or_default() == TimeoutDecision::Approve;
        let decision = timeout_decision(&waiting.step);
        self.record_decision(run, waiting, approved, decision)?;
        self.continue_decided(&run.id, cancel).await
    }

    /// Store the decision and the status it leads to, in one transaction.
    fn record_decision(
        &self,
        run: &StoredRun,
        waiting: &Waiting,
        approved: bool,
        decision: Decision,
    ) -> Result<(), RunError> {
        let step = &waiting.step;
        let value = decision_value(approved, &decision);
        let retry_from = step
            .on_reject
            .as_ref()
            .map(|on_reject| on_reject.retry_from.as_str());
        let (rerun, change) = match (approved, retry_from) {
            (true, _) => {
                let mut change =
                    RunChange::new(RunState::InProgress, "human_approved", &decision.actor);
                change.metadata = json!({"step": step.id, "comment": decision.comment, "fields": decision.fields});
                (&[][..], change)
            }
            (false, Some(from)) => (
                waiting.rework.as_slice(),
                rejected_change(step, &decision, Some(from)),
            ),
            (false, None) => (&[][..], rejected_change(step, &decision, None)),
        };
        self.store
            .decide(&run.id, &step.id, &value, rerun, change)?;
        Ok(())
    }

    /// Run the engine over the stored run and record where it ended.
    async fn execute(
        &self,
        id: &str,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        // The lease first: a live owner's `running` attempts are not interrupted.
        let cancel = cancel.child_token();
        let lease = match HeldLease::acquire(self.store, id, cancel.clone()).await? {
            Ok(lease) => lease,
            Err(holder) => {
                return Err(RunError::Leased {
                    id: id.to_string(),
                    host: holder.owner.host,
                    pid: holder.owner.pid,
                    since: holder.since,
                });
            }
        };
        // Attempts still `running` belong to a process that died: run them again.
        let run_id = id.to_string();
        let (completed, previous_attempts, interrupted_tasks) = self
            .store
            .blocking(move |store| {
                store.interrupt_running(&run_id)?;
                Ok::<_, StoreError>((
                    store.completed_outputs(&run_id)?,
                    store.previous_attempts(&run_id)?,
                    store.interrupted_tasks(&run_id)?,
                ))
            })
            .await?;
        let durable = Durable {
            run_id: id.to_string(),
            journal: Arc::new(RunJournal {
                store: self.store.clone(),
                run_id: id.to_string(),
                lease: Some(lease.token().to_string()),
            }),
            completed,
            previous_attempts,
            interrupted_tasks,
        };
        let record = self
            .engine
            .run_durable(workflow, input, cancel, &durable)
            .await;
        if lease.lost() {
            // The new owner records the run from now on; this executor's start
            // is taken back (it did not crash).
            lease.release().await;
            return Err(RunError::LeaseLost { id: id.to_string() });
        }
        if matches!(record.status, RunStatus::Cancelled) && self.interrupt.is_cancelled() {
            // A graceful stop, not a crash: the start is not counted against the run.
            lease.release().await;
            return Err(RunError::Interrupted { id: id.to_string() });
        }
        // The end and the lease's release are one write: whoever sees the new
        // status (an approver, say) may continue the run at once.
        let ended = self
            .store
            .end_execution_queued(id, self.final_change(&record), lease.token())
            .await;
        // Also when the end could not be stored: another process may go on.
        match ended {
            Ok(_) => lease.released_with_end(),
            Err(_) => lease.release().await,
        }
        let recorded = match ended {
            Err(StoreError::LeaseLost { .. }) => {
                return Err(RunError::LeaseLost { id: id.to_string() });
            }
            // Cancelled meanwhile by another process: the stored state stands.
            Ok(_) | Err(StoreError::Transition(_)) => {
                let run_id = id.to_string();
                self.store.blocking(move |store| store.get(&run_id)).await
            }
            Err(error) => Err(error),
        };
        match recorded {
            Ok(run) => Ok(Outcome {
                run,
                record: Some(record),
            }),
            Err(source) => Err(RunError::Unrecorded {
                id: id.to_string(),
                record: Box::new(record),
                source,
            }),
        }
    }

    /// The status change that records where the engine stopped.
    fn final_change(&self, record: &RunRecord) -> RunChange<'_> {
        let mut change = match record.status {
            RunStatus::Completed => {
                RunChange::new(RunState::Completed, TRIGGER_COMPLETED, "pallet")
            }
            RunStatus::Failed => RunChange::new(RunState::Failed, TRIGGER_ERROR, "pallet"),
            RunStatus::Cancelled => RunChange::new(RunState::Cancelled, "cancelled", &self.actor),
            RunStatus::WaitingApproval => {
                RunChange::new(RunState::WaitingApproval, TRIGGER_WAITING, "pallet")
            }
        };
        change.result = record.output.clone();
        change.error = record.error.clone();
        change
    }
}

fn timeout_decision(step: &Step) -> Decision {
    let waited = step
        .approval_timeout()
        .map(|timeout| humantime::format_duration(timeout).to_string())
        .unwrap_or_default();
    Decision {
        actor: "timeout".to_string(),
        comment: Some(format!("no decision within {waited}")),
        fields: Map::new(),
    }
}

/// What later steps read as `steps.ID.outputs`.
fn decision_value(approved: bool, decision: &Decision) -> Value {
    json!({
        "approved": approved,
        "comment": decision.comment,
        "fields": decision.fields,
        "actor": decision.actor,
        "decided_at": super::now(),
    })
}

fn rejected_change<'a>(
    step: &Step,
    decision: &'a Decision,
    retry_from: Option<&str>,
) -> RunChange<'a> {
    let to = if retry_from.is_some() {
        RunState::InProgress
    } else {
        RunState::Failed
    };
    let mut change = RunChange::new(to, "human_rejected", &decision.actor);
    change.metadata =
        json!({"step": step.id, "comment": decision.comment, "retry_from": retry_from});
    if retry_from.is_none() {
        let reason = decision
            .comment
            .as_deref()
            .map(|comment| format!(": {comment}"))
            .unwrap_or_default();
        change.error = Some(format!(
            "approval step `{}` was rejected by {}{reason}",
            step.id, decision.actor
        ));
    }
    change
}

/// What the waiting attempt recorded about its approval; for a run recorded
/// before attempts carried it, the approval among the top-level steps.
fn approval_request(attempt: &Attempt, workflow: &LoadedWorkflow) -> Option<ApprovalRequest> {
    if let Some(inputs) = &attempt.inputs {
        return serde_json::from_value(inputs.clone()).ok();
    }
    let steps = &workflow.workflow.steps;
    steps
        .iter()
        .find(|step| step.id == attempt.step_id && step.step_type == StepType::Approval)
        .map(|step| ApprovalRequest::new(step, steps))
}

/// The request's step and rework ids as the store knows them: prefixed like
/// `stored_id`, the approval's id as stored (`PARENT_STEP/ID` in a child run).
fn qualified(request: ApprovalRequest, stored_id: &str) -> (Step, Vec<String>) {
    let prefix = stored_id
        .strip_suffix(request.approval.id.as_str())
        .unwrap_or_default();
    let mut step = request.approval;
    step.id = stored_id.to_string();
    if let Some(on_reject) = &mut step.on_reject {
        on_reject.retry_from = format!("{prefix}{}", on_reject.retry_from);
    }
    let rework = request
        .rework
        .into_iter()
        .map(|id| format!("{prefix}{id}"))
        .collect();
    (step, rework)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::load_str;

    #[test]
    fn requests_are_qualified_like_the_stored_step_id() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: a, skill: s}\n  - {id: gate, step_type: approval, title: T, on_reject: {retry_from: a}}\n";
        let workflow = load_str("x.yaml", text).unwrap();
        let steps = &workflow.workflow.steps;
        let request = ApprovalRequest::new(&steps[1], steps);
        let cases: [(&str, &str, &[&str]); 3] = [
            ("gate", "a", &["a", "gate"]),
            ("build/gate", "build/a", &["build/a", "build/gate"]),
            (
                "build/check/gate",
                "build/check/a",
                &["build/check/a", "build/check/gate"],
            ),
        ];
        for (stored_id, retry_from, rework) in cases {
            let (step, ids) = qualified(request.clone(), stored_id);
            assert_eq!(step.id, stored_id);
            assert_eq!(
                step.on_reject.unwrap().retry_from,
                retry_from,
                "{stored_id}"
            );
            assert_eq!(ids, rework, "{stored_id}");
        }
    }

    #[test]
    fn decisions_carry_every_field_templates_may_read() {
        let decision = Decision {
            actor: "ada".to_string(),
            comment: None,
            fields: Map::from_iter([("ticket".to_string(), json!("T-1"))]),
        };
        let value = decision_value(false, &decision);
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, crate::workflow::DECISION_FIELDS);
        assert_eq!(value["approved"], false);
        assert_eq!(value["fields"]["ticket"], "T-1");
    }
}
