//! Durable runs: start, resume, approve, reject and cancel a stored run. The
//! CLI and the HTTP service both drive runs through [`Runner`].

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::state::RunState;
use super::{RunChange, RunJournal, RunStore, StoreError, StoredRun};
use crate::engine::{Durable, Engine, RunRecord, RunStatus};
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
}

impl RunError {
    /// The request conflicts with the run's state (HTTP 409 in a service).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            RunError::Store(StoreError::Transition(_))
                | RunError::NotWaiting { .. }
                | RunError::Waiting { .. }
                | RunError::Ended { .. }
        )
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
    pub step: Step,
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

pub struct Runner<'a> {
    pub store: &'a RunStore,
    pub engine: &'a Engine,
    /// Who starts, resumes or cancels runs (approvals carry their own actor).
    pub actor: String,
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
            RunChange::new(RunState::InProgress, "started", &self.actor),
        )?;
        Ok(self.store.get(&run.id)?)
    }

    /// Continue a run after a crash, or apply an expired approval's `on_timeout`.
    pub async fn resume(&self, id: &str, cancel: CancellationToken) -> Result<Outcome, RunError> {
        let run_id = id.to_string();
        let run = self.store.blocking(move |store| store.get(&run_id)).await?;
        let workflow = stored_workflow(&run)?;
        match run.status {
            RunState::Pending => {
                self.store.transition(
                    id,
                    RunChange::new(RunState::InProgress, "resumed", &self.actor),
                )?;
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
        self.execute(id, workflow, run.input, cancel).await
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
        self.record_decision(&run, &waiting.step, approved, decision)?;
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

    /// The approval step a waiting run stops at.
    pub fn waiting(&self, run: &StoredRun, workflow: &LoadedWorkflow) -> Result<Waiting, RunError> {
        let not_waiting = || RunError::NotWaiting {
            id: run.id.clone(),
            status: run.status,
        };
        if run.status != RunState::WaitingApproval {
            return Err(not_waiting());
        }
        let attempt = self
            .store
            .attempts(&run.id)?
            .into_iter()
            .rev()
            .find(|attempt| attempt.status == "waiting")
            .ok_or_else(not_waiting)?;
        let step = workflow
            .workflow
            .steps
            .iter()
            .find(|step| step.id == attempt.step_id && step.step_type == StepType::Approval)
            .ok_or_else(not_waiting)?
            .clone();
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
        self.record_decision(run, &waiting.step, approved, decision)?;
        self.continue_decided(&run.id, cancel).await
    }

    /// Store the decision and the status it leads to, in one transaction.
    fn record_decision(
        &self,
        run: &StoredRun,
        step: &Step,
        approved: bool,
        decision: Decision,
    ) -> Result<(), RunError> {
        let workflow = stored_workflow(run)?;
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
                (Vec::new(), change)
            }
            (false, Some(from)) => (
                steps_between(&workflow, from, &step.id),
                rejected_change(step, &decision, Some(from)),
            ),
            (false, None) => (Vec::new(), rejected_change(step, &decision, None)),
        };
        self.store
            .decide(&run.id, &step.id, &value, &rerun, change)?;
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
        // Attempts still `running` belong to a process that died: run them again.
        let run_id = id.to_string();
        let (completed, previous_attempts) = self
            .store
            .blocking(move |store| {
                store.interrupt_running(&run_id)?;
                Ok::<_, StoreError>((
                    store.completed_outputs(&run_id)?,
                    store.previous_attempts(&run_id)?,
                ))
            })
            .await?;
        let durable = Durable {
            run_id: id.to_string(),
            journal: Arc::new(RunJournal {
                store: self.store.clone(),
                run_id: id.to_string(),
            }),
            completed,
            previous_attempts,
        };
        let record = self
            .engine
            .run_durable(workflow, input, cancel, &durable)
            .await;
        let mut change = match record.status {
            RunStatus::Completed => {
                RunChange::new(RunState::Completed, "steps_completed", "pallet")
            }
            RunStatus::Failed => RunChange::new(RunState::Failed, "step_failed", "pallet"),
            RunStatus::Cancelled => RunChange::new(RunState::Cancelled, "cancelled", &self.actor),
            RunStatus::WaitingApproval => {
                RunChange::new(RunState::WaitingApproval, "approval_requested", "pallet")
            }
        };
        change.result = record.output.clone();
        change.error = record.error.clone();
        match self.store.transition_queued(id, change).await {
            // Cancelled meanwhile by another process: the stored state stands.
            Ok(_) | Err(StoreError::Transition(_)) => {}
            Err(error) => return Err(error.into()),
        }
        let run_id = id.to_string();
        Ok(Outcome {
            run: self.store.blocking(move |store| store.get(&run_id)).await?,
            record: Some(record),
        })
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

/// Ids of the top-level steps from `from` to `to` (both included) and of every step nested in them.
fn steps_between(workflow: &LoadedWorkflow, from: &str, to: &str) -> Vec<String> {
    let steps = &workflow.workflow.steps;
    let start = steps.iter().position(|step| step.id == from);
    let end = steps.iter().position(|step| step.id == to);
    let (Some(start), Some(end)) = (start, end) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    fn walk(step: &Step, ids: &mut Vec<String>) {
        ids.push(step.id.clone());
        for child in step.children() {
            walk(child, ids);
        }
    }
    for step in &steps[start..=end.max(start)] {
        walk(step, &mut ids);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::load_str;

    #[test]
    fn rework_covers_the_steps_from_retry_from_to_the_approval() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: a, skill: s}\n  - id: b\n    step_type: parallel\n    branches: {steps: [{id: b1, skill: s}, {id: b2, skill: s}]}\n  - {id: gate, step_type: approval, title: T, on_reject: {retry_from: b}}\n  - {id: c, skill: s}\n";
        let workflow = load_str("x.yaml", text).unwrap();
        let cases: [(&str, &str, &[&str]); 4] = [
            ("b", "gate", &["b", "b1", "b2", "gate"]),
            ("a", "gate", &["a", "b", "b1", "b2", "gate"]),
            ("gate", "gate", &["gate"]),
            ("missing", "gate", &[]),
        ];
        for (from, to, expected) in cases {
            assert_eq!(steps_between(&workflow, from, to), expected, "{from}..{to}");
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
