//! Approvals of a waiting run: the step it waits at, its deadline by the
//! store's clock, a decision (human or `on_timeout`) and the status it leads to.

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Decision, Outcome, RunError, Runner, stored_workflow};
use crate::engine::ApprovalRequest;
use crate::store::clock::timestamp;
use crate::store::{Attempt, AttemptStatus, Clock, RunChange, RunState, StoredRun};
use crate::workflow::{LoadedWorkflow, Step, StepType, TimeoutDecision};

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
    /// Whether the deadline passed by `clock`.
    pub fn expired_at(&self, clock: &dyn Clock) -> bool {
        self.deadline
            .is_some_and(|deadline| deadline <= clock.now())
    }
}

impl Runner<'_> {
    /// Whether `waiting`'s deadline passed by the store's clock.
    pub fn expired(&self, waiting: &Waiting) -> bool {
        waiting.expired_at(self.store.clock())
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
            .filter(|attempt| attempt.status == AttemptStatus::Waiting)
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
        let waiting = match self.waiting(&run, &workflow) {
            Ok(waiting) => waiting,
            // Decided since `run` was read (a resume in flight has written
            // the approval's end, not yet the run's next state): nothing to fail.
            Err(RunError::NotWaiting { .. }) => return Ok(false),
            Err(error) => return Err(error),
        };
        let rejects = waiting.step.on_timeout.unwrap_or_default() == TimeoutDecision::Reject;
        if !self.expired(&waiting) || !rejects || waiting.step.on_reject.is_some() {
            return Ok(false);
        }
        let decision = timeout_decision(&waiting.step);
        let value = decision_value(false, &decision, self.store.clock());
        let change = rejected_change(&waiting.step, &decision, None);
        self.store
            .decide(id, &waiting.step.id, &value, &[], change)
            .wait()?;
        Ok(true)
    }

    pub(super) async fn apply_timeout(
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
    pub(super) fn record_decision(
        &self,
        run: &StoredRun,
        waiting: &Waiting,
        approved: bool,
        decision: Decision,
    ) -> Result<(), RunError> {
        let step = &waiting.step;
        let value = decision_value(approved, &decision, self.store.clock());
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
            .decide(&run.id, &step.id, &value, rerun, change)
            .wait()?;
        Ok(())
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
fn decision_value(approved: bool, decision: &Decision, clock: &dyn Clock) -> Value {
    json!({
        "approved": approved,
        "comment": decision.comment,
        "fields": decision.fields,
        "actor": decision.actor,
        "decided_at": timestamp(clock.now()),
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
    use crate::store::{ManualClock, SystemClock};
    use crate::workflow::load_str;

    #[test]
    fn a_deadline_passes_when_the_clock_reaches_it() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: gate, step_type: approval, title: T, timeout: 1h}\n";
        let workflow = load_str("x.yaml", text).unwrap();
        let clock = ManualClock::new();
        let waiting = |deadline| Waiting {
            step: workflow.workflow.steps[0].clone(),
            rework: Vec::new(),
            since: String::new(),
            deadline,
        };
        let in_an_hour = Some(clock.now() + chrono::Duration::hours(1));
        assert!(!waiting(None).expired_at(&clock));
        assert!(!waiting(in_an_hour).expired_at(&clock));
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(waiting(in_an_hour).expired_at(&clock));
        assert!(!waiting(None).expired_at(&clock));
    }

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
        let value = decision_value(false, &decision, &SystemClock);
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
