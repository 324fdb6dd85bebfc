//! The progress view of a run (seed 003): percentage of steps completed, time
//! spent in each state, the attempts, and the approval it waits for.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{RunError, Runner, stored_workflow};
use crate::store::{Attempt, AttemptStatus, RunState, StoredRun, Transition};
use crate::workflow::{LoadedWorkflow, TimeoutDecision};

#[derive(Debug, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: StoredRun,
    pub progress: Progress,
    /// Seconds per state, the current one counted up to now; ended states are not timed.
    pub time_in_state_seconds: BTreeMap<String, f64>,
    pub total_duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<PendingApproval>,
    /// Steps (qualified ids) whose last attempt failed and that have
    /// `continue_on_error`: the run went on without them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub continued_failures: Vec<String>,
    pub attempts: Vec<Attempt>,
    /// The workflow's steps in its order, nested ones after their parent
    /// (`depth` deeper): what the UI draws the run's step tree from.
    pub steps: Vec<StepOutline>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct StepOutline {
    pub id: String,
    pub kind: crate::workflow::StepType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// The branch of its parent it is in (`if_true`, a switch case), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub depth: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Progress {
    /// Completed top-level steps out of all top-level steps (100 once the run completed).
    pub percentage: u32,
    pub steps_completed: usize,
    pub steps_total: usize,
}

#[derive(Debug, Serialize)]
pub struct PendingApproval {
    pub step: String,
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub required: Vec<String>,
    pub waiting_since: String,
    pub deadline: Option<String>,
    pub on_timeout: TimeoutDecision,
    /// The deadline passed: `pallet resume` applies `on_timeout`.
    pub expired: bool,
}

impl Runner<'_> {
    /// The run as the CLI and the service show it.
    pub fn view(&self, id: &str) -> Result<RunView, RunError> {
        let mut run = self.store.get(id)?;
        // Only a waiting run can have an expired approval to apply.
        if run.status == RunState::WaitingApproval && self.fail_expired(id)? {
            run = self.store.get(id)?;
        }
        let workflow = stored_workflow(&run)?;
        let attempts = self.store.attempts(id)?;
        let history = self.store.history(id)?;
        let approval = self
            .waiting(&run, &workflow)
            .ok()
            .map(|waiting| PendingApproval {
                expired: self.expired(&waiting),
                step: waiting.step.id.clone(),
                title: waiting.step.title.clone(),
                instructions: waiting.step.instructions.clone(),
                required: waiting.step.required.clone(),
                waiting_since: waiting.since.clone(),
                deadline: waiting.deadline.map(|deadline| deadline.to_rfc3339()),
                on_timeout: waiting.step.on_timeout.unwrap_or_default(),
            });
        let (time_in_state_seconds, total_duration_seconds) =
            time_in_states(&history, self.store.clock().now());
        let mut steps = Vec::new();
        outline(&workflow.workflow.steps, None, 0, &mut steps);
        Ok(RunView {
            steps,
            progress: progress(&run, &workflow, &attempts),
            continued_failures: continued_failures(&workflow, &attempts),
            time_in_state_seconds,
            total_duration_seconds,
            approval,
            attempts,
            run,
        })
    }
}

/// `steps` and, after each, what it contains, depth first.
fn outline(
    steps: &[crate::workflow::Step],
    branch: Option<&str>,
    depth: usize,
    into: &mut Vec<StepOutline>,
) {
    for step in steps {
        into.push(StepOutline {
            id: step.id.clone(),
            kind: step.step_type,
            skill: step.skill.clone(),
            branch: branch.map(str::to_string),
            depth,
        });
        for (name, branch_steps) in &step.branches {
            // A parallel step's `steps` are no branch a condition picks.
            let branch = Some(name.as_str()).filter(|name| *name != "steps");
            outline(branch_steps, branch, depth + 1, into);
        }
        outline(&step.steps, None, depth + 1, into);
    }
}

fn progress(run: &StoredRun, workflow: &LoadedWorkflow, attempts: &[Attempt]) -> Progress {
    let steps = &workflow.workflow.steps;
    let steps_completed = steps
        .iter()
        .filter(|step| {
            attempts.iter().any(|attempt| {
                attempt.step_id == step.id && attempt.status == AttemptStatus::Completed
            })
        })
        .count();
    let percentage = if run.status == RunState::Completed || steps.is_empty() {
        100
    } else {
        (steps_completed * 100 / steps.len()) as u32
    };
    Progress {
        percentage,
        steps_completed,
        steps_total: steps.len(),
    }
}

fn continued_failures(workflow: &LoadedWorkflow, attempts: &[Attempt]) -> Vec<String> {
    let continuing: Vec<&str> = workflow
        .workflow
        .all_steps()
        .into_iter()
        .filter(|step| step.continue_on_error)
        .map(|step| step.id.as_str())
        .collect();
    // Attempts come in order: the last one of each step decides.
    let mut last: BTreeMap<&str, AttemptStatus> = BTreeMap::new();
    for attempt in attempts {
        last.insert(&attempt.step_id, attempt.status);
    }
    last.into_iter()
        .filter(|(id, status)| {
            // `each[0]/scan` is an iteration of step `scan`.
            let own = id.rsplit('/').next().unwrap_or(id);
            *status == AttemptStatus::Failed && continuing.contains(&own)
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Seconds spent in each state and the total, from the transitions in order.
pub fn time_in_states(history: &[Transition], now: DateTime<Utc>) -> (BTreeMap<String, f64>, f64) {
    let parse = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.to_utc())
    };
    let mut times = BTreeMap::new();
    for (index, transition) in history.iter().enumerate() {
        if transition.to.is_terminal() {
            continue;
        }
        let Some(start) = parse(&transition.at) else {
            continue;
        };
        let end = history
            .get(index + 1)
            .and_then(|next| parse(&next.at))
            .unwrap_or(now);
        let seconds = (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        *times
            .entry(transition.to.as_str().to_string())
            .or_insert(0.0) += seconds.max(0.0);
    }
    let first = history.first().and_then(|transition| parse(&transition.at));
    let last_end = match history.last() {
        Some(last) if last.to.is_terminal() => parse(&last.at),
        _ => Some(now),
    };
    let total = match (first, last_end) {
        (Some(first), Some(end)) => (end - first).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => 0.0,
    };
    (times, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn transition(to: RunState, at: &str) -> Transition {
        Transition {
            from: None,
            to,
            trigger: "test".to_string(),
            metadata: Value::Null,
            actor: "test".to_string(),
            at: at.to_string(),
        }
    }

    #[test]
    fn time_is_summed_per_state() {
        let now: DateTime<Utc> = "2026-01-01T00:01:40Z".parse().unwrap();
        // (history, seconds per state, total seconds)
        type Case = (Vec<Transition>, Vec<(&'static str, f64)>, f64);
        let cases: Vec<Case> = vec![
            (vec![], vec![], 0.0),
            (
                vec![
                    transition(RunState::Pending, "2026-01-01T00:00:00Z"),
                    transition(RunState::InProgress, "2026-01-01T00:00:01Z"),
                    transition(RunState::WaitingApproval, "2026-01-01T00:00:11Z"),
                    transition(RunState::InProgress, "2026-01-01T00:00:41Z"),
                    transition(RunState::Completed, "2026-01-01T00:00:46Z"),
                ],
                vec![
                    ("in_progress", 15.0),
                    ("pending", 1.0),
                    ("waiting_approval", 30.0),
                ],
                46.0,
            ),
            (
                vec![
                    transition(RunState::Pending, "2026-01-01T00:00:00Z"),
                    transition(RunState::InProgress, "2026-01-01T00:01:00Z"),
                ],
                vec![("in_progress", 40.0), ("pending", 60.0)],
                100.0,
            ),
        ];
        for (history, expected, total) in cases {
            let (times, found_total) = time_in_states(&history, now);
            let expected: BTreeMap<String, f64> = expected
                .into_iter()
                .map(|(state, seconds)| (state.to_string(), seconds))
                .collect();
            assert_eq!(times, expected);
            assert_eq!(found_total, total);
        }
    }
}
