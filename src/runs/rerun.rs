//! Reruns (`pallet rerun ID --from STEP`): a new run of a stored run's
//! workflow, from the run's own copy of its text (so the same digest), with
//! the same input. The top-level steps before STEP take over the original's
//! recorded outputs (their completed attempts are copied into the new run,
//! marked `reused_from`), so their agents are not called again; STEP and
//! everything after it run. Afterwards the rerun is an ordinary durable run
//! (resume, approvals, cancel).
//!
//! Rules, each checked before anything is written:
//! - STEP is a top-level step; a nested one is refused naming the top-level
//!   step that holds it (a branch or an iteration cannot run alone: its
//!   siblings' and container's outputs are one value).
//! - every top-level step before STEP completed in the original (or was
//!   skipped by its `if:` guard, which the rerun evaluates again on the same
//!   values); any other state is refused, naming the step to rerun from.
//! - the original may still be running or waiting: only what it recorded as
//!   completed is taken over.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::execute::Earlier;
use super::{Outcome, RunError, Runner, TRIGGER_START, blocking, lease, stored_workflow};
use crate::store::{
    Attempt, AttemptStatus, Backend, Pending, RerunOf, ReusedAttempt, RunChange, RunState,
    StoredRun,
};
use crate::workflow::{LoadedWorkflow, Step, Workflow};

/// What a rerun starts from: the original run, its workflow, and what it takes over.
pub(super) struct Prepared {
    original: StoredRun,
    workflow: Arc<LoadedWorkflow>,
    of: RerunOf,
    reused: Vec<ReusedAttempt>,
}

impl Runner<'_> {
    /// Create a rerun of run `id` from its top-level step `from` and execute
    /// it here until it ends or waits for approval.
    pub async fn rerun(
        &self,
        id: &str,
        from: &str,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        let (id, from) = (id.to_string(), from.to_string());
        // Loading the workflow and reading the attempts: off the runtime.
        let prepared = blocking(self.store, move |store| prepare(store, &id, &from)).await?;
        let completed = completed_outputs(&prepared.reused);
        let token = lease::new_token();
        let taken_from = std::time::Instant::now();
        let new_id = self
            .write_rerun(&prepared, Some(&token))
            .await
            .inspect_err(|_| crate::store::lease::let_go(&token))?;
        let cancel = cancel.child_token();
        let lease = lease::HeldLease::adopt(self.store, &new_id, token, taken_from, cancel.clone());
        let Prepared {
            original, workflow, ..
        } = prepared;
        let earlier = Earlier::reused(completed);
        self.execute_leased(&new_id, workflow, original.input, cancel, lease, earlier)
            .await
    }

    /// Record a rerun of run `id` from step `from` as started (`in_progress`)
    /// without executing it: a service answers first, then `resume`s it.
    pub fn create_rerun(&self, id: &str, from: &str) -> Result<StoredRun, RunError> {
        let prepared = prepare(self.store, id, from)?;
        let new_id = self.write_rerun(&prepared, None).wait()?;
        Ok(self.store.get(&new_id)?)
    }

    /// The write that creates the rerun, started, with what it takes over.
    fn write_rerun(&self, prepared: &Prepared, lease: Option<&str>) -> Pending<String> {
        let run = self.new_run(
            &prepared.workflow,
            &prepared.original.workflow_ref,
            prepared.original.input.clone(),
        );
        let mut start = RunChange::new(RunState::InProgress, TRIGGER_START, &self.actor);
        start.metadata = json!({
            "by": "rerun",
            "rerun_of": prepared.of.run_id,
            "from": prepared.of.from_step,
        });
        let rerun = (prepared.of.clone(), prepared.reused.clone());
        self.store.create_rerun(&run, rerun, start, lease)
    }
}

/// Read run `id` and its workflow and attempts, and check `from` against them.
fn prepare(store: &dyn Backend, id: &str, from: &str) -> Result<Prepared, RunError> {
    let original = store.get(id)?;
    let workflow = stored_workflow(&original)?;
    let attempts = store.attempts(id)?;
    let reused = reused_attempts(&original, &workflow.workflow, &attempts, from)?;
    Ok(Prepared {
        of: RerunOf {
            run_id: original.id.clone(),
            from_step: from.to_string(),
        },
        original,
        workflow,
        reused,
    })
}

/// The attempts of `run` a rerun from `from` takes over: for each top-level
/// step before `from`, the latest completed attempt of the step and of every
/// step recorded under it (nested steps, iterations `STEP[N]/...`, child
/// runs `STEP/...`), for `runs show` to list them.
pub(super) fn reused_attempts(
    run: &StoredRun,
    workflow: &Workflow,
    attempts: &[Attempt],
    from: &str,
) -> Result<Vec<ReusedAttempt>, RunError> {
    let position = top_level_position(run, workflow, from)?;
    let mut reused = Vec::new();
    for step in &workflow.steps[..position] {
        let latest = attempts
            .iter()
            .rev()
            .find(|attempt| attempt.step_id == step.id);
        match latest.map(|attempt| attempt.status) {
            Some(AttemptStatus::Completed) => {}
            // Evaluated again by the rerun, on the same input and outputs.
            Some(AttemptStatus::Skipped) => continue,
            status => {
                return Err(RunError::NotCompleted {
                    id: run.id.clone(),
                    step: step.id.clone(),
                    from: from.to_string(),
                    state: not_completed(status).to_string(),
                });
            }
        }
        let owned = subtree_ids(step);
        // step id -> the index of its latest completed attempt.
        let mut latest_by_step: HashMap<&str, usize> = HashMap::new();
        for (index, attempt) in attempts.iter().enumerate() {
            if attempt.status == AttemptStatus::Completed
                && recorded_under(&attempt.step_id, &owned)
            {
                latest_by_step.insert(&attempt.step_id, index);
            }
        }
        // In the order they ran, as `runs show` lists attempts.
        let mut taken: Vec<usize> = latest_by_step.into_values().collect();
        taken.sort_unstable();
        let taken = taken.into_iter().map(|index| &attempts[index]);
        reused.extend(taken.map(|attempt| {
            ReusedAttempt {
                step_id: attempt.step_id.clone(),
                inputs: attempt.inputs.clone(),
                output: attempt.output.clone(),
                agent: attempt.agent.clone(),
                started_at: attempt.started_at.clone(),
                ended_at: attempt.ended_at.clone(),
                // A rerun of a rerun names the run whose agent call made it.
                reused_from: attempt
                    .reused_from
                    .clone()
                    .unwrap_or_else(|| run.id.clone()),
            }
        }));
    }
    Ok(reused)
}

/// Where `from` stands among the top-level steps; a nested or unknown step is refused.
fn top_level_position(run: &StoredRun, workflow: &Workflow, from: &str) -> Result<usize, RunError> {
    if let Some(position) = workflow.steps.iter().position(|step| step.id == from) {
        return Ok(position);
    }
    if let Some(parent) = workflow
        .steps
        .iter()
        .find(|step| subtree_ids(step).contains(&from))
    {
        return Err(RunError::NestedStep {
            id: run.id.clone(),
            step: from.to_string(),
            parent: parent.id.clone(),
        });
    }
    let steps: Vec<String> = workflow.steps.iter().map(|step| step.id.clone()).collect();
    // Echoed back at most as long as a step id may be (it comes from outside).
    let limit = crate::workflow::limits::MAX_ID_LENGTH;
    let shown = match from.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &from[..end]),
        None => from.to_string(),
    };
    let suggestion = crate::workflow::validate::suggest(from, steps.iter().map(String::as_str))
        .map(str::to_string);
    Err(RunError::UnknownStep {
        id: run.id.clone(),
        workflow: workflow.metadata.id.clone(),
        step: shown,
        suggestion,
        steps: steps.into(),
    })
}

/// The ids of `step` and of every step nested in it (branches, bodies, handlers).
fn subtree_ids(step: &Step) -> Vec<&str> {
    let mut ids = vec![step.id.as_str()];
    for nested in step.children().chain(&step.on_failure) {
        ids.extend(subtree_ids(nested));
    }
    ids
}

/// Whether an attempt recorded as `step_id` belongs to one of `owned`: the
/// step itself, or one recorded under it (`ID[N]/...`, `ID/...`). Step ids
/// hold neither `[` nor `/`, so the prefixes are unambiguous.
fn recorded_under(step_id: &str, owned: &[&str]) -> bool {
    owned.iter().any(|id| {
        step_id
            .strip_prefix(id)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('['))
    })
}

/// How a step that is not reusable stands, for the error.
fn not_completed(status: Option<AttemptStatus>) -> &'static str {
    match status {
        None => "it did not run",
        Some(AttemptStatus::Running | AttemptStatus::Interrupted) => "it has not finished",
        Some(AttemptStatus::Waiting) => "it waits for approval",
        Some(AttemptStatus::Failed) => "it failed",
        Some(AttemptStatus::Cancelled) => "it was cancelled",
        Some(AttemptStatus::Superseded) => "a rejection sent it back for rework",
        Some(AttemptStatus::Completed | AttemptStatus::Skipped) => "it completed",
    }
}

/// step id -> outputs of the reused attempts, as the engine skips them.
fn completed_outputs(reused: &[ReusedAttempt]) -> HashMap<String, Value> {
    reused
        .iter()
        .map(|attempt| {
            let output = attempt.output.clone().unwrap_or_else(|| json!({}));
            (attempt.step_id.clone(), output)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::load_str;

    const STEPS: &str = "metadata: {id: rerun-test, name: Rerun test, version: 1.0.0}
steps:
  - {id: one, skill: first}
  - id: both
    step_type: parallel
    branches:
      steps:
        - {id: left, skill: first}
        - {id: right, skill: first}
  - id: each
    step_type: for_each
    items: '{{ workflow.input.items }}'
    steps:
      - {id: item, skill: first}
  - {id: last, skill: last}
";

    fn run() -> StoredRun {
        StoredRun {
            id: "R".to_string(),
            workflow_ref: "w".to_string(),
            workflow_id: "rerun-test".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_digest: String::new(),
            workflow_source: "w.yaml".to_string(),
            workflow_yaml: STEPS.to_string(),
            status: RunState::Failed,
            current_step: None,
            input: json!({}),
            context: json!({}),
            result: None,
            error: None,
            created_at: String::new(),
            updated_at: String::new(),
            completed_at: None,
            rerun_of: None,
        }
    }

    fn attempt(step: &str, status: AttemptStatus, output: Value) -> Attempt {
        Attempt {
            step_id: step.to_string(),
            attempt: 1,
            status,
            inputs: Some(json!({})),
            output: Some(output),
            error: None,
            agent: Some("a".to_string()),
            started_at: "t".to_string(),
            ended_at: Some("t".to_string()),
            task_id: None,
            task_interface: None,
            idempotency_key: None,
            reattached_from: None,
            status_message: None,
            reused_from: None,
        }
    }

    fn reused(attempts: &[Attempt], from: &str) -> Result<Vec<(String, Value)>, String> {
        let workflow = load_str("w.yaml", STEPS).unwrap().workflow;
        reused_attempts(&run(), &workflow, attempts, from)
            .map(|reused| {
                reused
                    .into_iter()
                    .map(|attempt| (attempt.step_id, attempt.output.unwrap()))
                    .collect()
            })
            .map_err(|error| error.to_string())
    }

    fn ids(taken: &[(String, Value)]) -> Vec<&str> {
        taken.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn the_steps_before_from_are_taken_over_with_what_is_recorded_under_them() {
        use AttemptStatus::{Completed, Failed};
        let attempts = [
            attempt("one", Failed, json!(null)),
            attempt("one", Completed, json!({"n": 1})),
            attempt("left", Completed, json!({"l": 1})),
            attempt("right", Completed, json!({"r": 1})),
            attempt("both", Completed, json!({"left": {"l": 1}})),
            attempt("each[0]/item", Completed, json!({"i": 0})),
            attempt("each", Completed, json!({"count": 1})),
            attempt("last", Failed, json!(null)),
        ];
        // (from, steps taken over, in the order they ran)
        let cases: [(&str, &[&str]); 4] = [
            ("one", &[]),
            ("both", &["one"]),
            ("each", &["one", "left", "right", "both"]),
            (
                "last",
                &["one", "left", "right", "both", "each[0]/item", "each"],
            ),
        ];
        for (from, expected) in cases {
            let taken = reused(&attempts, from).unwrap();
            assert_eq!(ids(&taken), expected, "from {from}");
        }
        // The latest completed attempt's outputs, not the failed one before it.
        assert_eq!(reused(&attempts, "both").unwrap()[0].1, json!({"n": 1}));
    }

    #[test]
    fn a_guard_skip_is_not_taken_over_and_a_step_that_did_not_complete_is_refused() {
        use AttemptStatus::{Completed, Failed, Skipped, Waiting};
        let skipped = [
            attempt("one", Skipped, json!(null)),
            attempt("both", Completed, json!({})),
        ];
        assert_eq!(ids(&reused(&skipped, "each").unwrap()), ["both"]);
        let cases = [
            (vec![], "it did not run"),
            (vec![attempt("one", Failed, json!(null))], "it failed"),
            (
                vec![attempt("one", Waiting, json!(null))],
                "it waits for approval",
            ),
        ];
        for (attempts, state) in cases {
            assert_eq!(
                reused(&attempts, "both").unwrap_err(),
                format!(
                    "step `one`, before `both`, did not complete in run `R` ({state}): it has no outputs to reuse; rerun from `one` or an earlier step"
                )
            );
        }
    }

    #[test]
    fn a_nested_or_unknown_step_is_refused_naming_what_to_use() {
        let cases = [
            (
                "left",
                "step `left` is inside top-level step `both` of run `R`'s workflow; a rerun starts at a top-level step: rerun from `both` (or an earlier step)",
            ),
            (
                "item",
                "step `item` is inside top-level step `each` of run `R`'s workflow; a rerun starts at a top-level step: rerun from `each` (or an earlier step)",
            ),
            (
                "lats",
                "workflow `rerun-test` of run `R` has no step `lats` (did you mean `last`?); rerun from one of its top-level steps: one, both, each, last",
            ),
            (
                "zzz",
                "workflow `rerun-test` of run `R` has no step `zzz`; rerun from one of its top-level steps: one, both, each, last",
            ),
        ];
        for (from, message) in cases {
            assert_eq!(reused(&[], from).unwrap_err(), message);
        }
    }

    #[test]
    fn an_attempt_is_recorded_under_a_step_only_by_its_own_prefixes() {
        let owned = ["each", "item"];
        for (step_id, under) in [
            ("each", true),
            ("each[3]/item", true),
            ("each/on_failure/x", true),
            ("eachx", false),
            ("other", false),
            ("item", true),
        ] {
            assert_eq!(recorded_under(step_id, &owned), under, "{step_id}");
        }
    }
}
