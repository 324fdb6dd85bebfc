//! What deciding on a waiting approval needs, recorded with the approval's
//! waiting attempt. The stored run keeps the text of its top-level workflow
//! only; an approval inside a child run (`execute_workflow`) sits in another
//! workflow, so the engine, which has that workflow at hand, records the
//! step's definition and the steps a rework re-runs.

use serde::{Deserialize, Serialize};

use crate::workflow::Step;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The approval step as written in its workflow (ids not qualified).
    pub approval: Step,
    /// Ids (as written in the same workflow) of the steps a rejection with
    /// `on_reject.retry_from` runs again, the approval included.
    pub rework: Vec<String>,
}

impl ApprovalRequest {
    /// The request for `approval`, one of the top-level `steps` of its workflow.
    pub fn new(approval: &Step, steps: &[Step]) -> ApprovalRequest {
        let rework = approval
            .on_reject
            .as_ref()
            .map(|on_reject| rework_steps(steps, &on_reject.retry_from, &approval.id))
            .unwrap_or_default();
        ApprovalRequest {
            approval: approval.clone(),
            rework,
        }
    }
}

/// Ids of the top-level steps from `from` to `to` (both included) and of every
/// step nested in them; empty if either is not a top-level step.
pub fn rework_steps(steps: &[Step], from: &str, to: &str) -> Vec<String> {
    let start = steps.iter().position(|step| step.id == from);
    let end = steps.iter().position(|step| step.id == to);
    let (Some(start), Some(end)) = (start, end) else {
        return Vec::new();
    };
    fn walk(step: &Step, ids: &mut Vec<String>) {
        ids.push(step.id.clone());
        for child in step.children() {
            walk(child, ids);
        }
    }
    let mut ids = Vec::new();
    for step in &steps[start..=end.max(start)] {
        walk(step, &mut ids);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::load_str;

    const TEXT: &str = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: a, skill: s}\n  - id: b\n    step_type: parallel\n    branches: {steps: [{id: b1, skill: s}, {id: b2, skill: s}]}\n  - {id: gate, step_type: approval, title: T, on_reject: {retry_from: b}}\n  - {id: plain, step_type: approval, title: T}\n  - {id: c, skill: s}\n";

    #[test]
    fn rework_covers_the_steps_from_retry_from_to_the_approval() {
        let workflow = load_str("x.yaml", TEXT).unwrap();
        let steps = &workflow.workflow.steps;
        let cases: [(&str, &str, &[&str]); 4] = [
            ("b", "gate", &["b", "b1", "b2", "gate"]),
            ("a", "gate", &["a", "b", "b1", "b2", "gate"]),
            ("gate", "gate", &["gate"]),
            ("missing", "gate", &[]),
        ];
        for (from, to, expected) in cases {
            assert_eq!(rework_steps(steps, from, to), expected, "{from}..{to}");
        }
    }

    #[test]
    fn a_request_round_trips_through_json() {
        let workflow = load_str("x.yaml", TEXT).unwrap();
        let steps = &workflow.workflow.steps;
        let cases: [(&str, &[&str]); 2] = [("gate", &["b", "b1", "b2", "gate"]), ("plain", &[])];
        for (id, rework) in cases {
            let step = steps.iter().find(|step| step.id == id).unwrap();
            let request = ApprovalRequest::new(step, steps);
            assert_eq!(request.rework, rework, "{id}");
            let json = serde_json::to_value(&request).unwrap();
            let back: ApprovalRequest = serde_json::from_value(json).unwrap();
            assert_eq!(back, request, "{id}");
        }
    }
}
