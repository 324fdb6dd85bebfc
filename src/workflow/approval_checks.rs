//! Rules for approval steps: they sit at the top level (a run pauses between
//! top-level steps), `on_reject.retry_from` names an earlier top-level step, and
//! templates read only the fields a decision has.

use super::model::StepType;
use super::validate::{Problem, Tree, templates};
use crate::template::step_references;

/// What `steps.APPROVAL.outputs` holds once a decision is recorded.
pub const DECISION_FIELDS: [&str; 5] = ["approved", "comment", "fields", "actor", "decided_at"];

pub(crate) fn check_approvals(tree: &Tree, errors: &mut Vec<Problem>) {
    for (index, node) in tree.nodes.iter().enumerate() {
        let step = node.step;
        if step.step_type != StepType::Approval {
            continue;
        }
        let position = tree.top.iter().position(|&top| top == index);
        let Some(position) = position else {
            errors.push(Problem::new(
                &node.pointer,
                format!("approval step `{}` is nested in a container", step.id),
                Some("put approval steps at the top level of `steps`".to_string()),
            ));
            continue;
        };
        if let Some(on_reject) = &step.on_reject {
            let earlier = tree.top[..position]
                .iter()
                .any(|&top| tree.nodes[top].step.id == on_reject.retry_from);
            if !earlier {
                errors.push(Problem::new(
                    &format!("{}/on_reject/retry_from", node.pointer),
                    format!(
                        "`retry_from` of approval step `{}` names `{}`, which is not an earlier top-level step",
                        step.id, on_reject.retry_from
                    ),
                    Some("name a top-level step that runs before the approval".to_string()),
                ));
            }
        }
    }
    for node in &tree.nodes {
        for (pointer, text) in templates(node) {
            for reference in step_references(text) {
                check_decision_path(tree, &pointer, &reference.step, &reference.path, errors);
            }
        }
    }
}

fn check_decision_path(
    tree: &Tree,
    pointer: &str,
    step: &str,
    path: &str,
    errors: &mut Vec<Problem>,
) {
    let Some(&target) = tree.by_id.get(step) else {
        return;
    };
    if tree.nodes[target].step.step_type != StepType::Approval {
        return;
    }
    let Some(rest) = path.strip_prefix("outputs.") else {
        return;
    };
    let name = rest.split('.').next().unwrap_or_default();
    if !DECISION_FIELDS.contains(&name) {
        errors.push(Problem::new(
            pointer,
            format!("template refers to `steps.{step}.outputs.{name}`, but approval step `{step}` has no such field"),
            Some(format!("an approval's outputs are {}", DECISION_FIELDS.join(", "))),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::workflow::load_str;

    fn errors(steps_yaml: &str) -> Vec<String> {
        let text = format!("metadata: {{id: x, name: X, version: 1.0.0}}\nsteps:\n{steps_yaml}");
        match load_str("test.yaml", &text) {
            Ok(_) => Vec::new(),
            Err(error) => match error {
                crate::workflow::LoadError::Invalid { diagnostics, .. } => diagnostics
                    .into_iter()
                    .map(|diagnostic| diagnostic.message)
                    .collect(),
                other => vec![other.to_string()],
            },
        }
    }

    #[test]
    fn approval_rules() {
        let cases: [(&str, &[&str]); 5] = [
            (
                "- {id: a, skill: s}\n- {id: ok, step_type: approval, title: T, required: [ticket], timeout: 60, on_timeout: approve, on_reject: {retry_from: a}}\n- {id: b, skill: s, inputs: {x: '{{ steps.ok.outputs.approved }} {{ steps.ok.outputs.fields.ticket }} {{ steps.ok.outputs.actor }} {{ steps.ok.outputs.decided_at }} {{ steps.ok.outputs.comment }}'}}\n",
                &[],
            ),
            (
                "- {id: ok, step_type: approval, title: T}\n- {id: b, skill: s, inputs: {x: '{{ steps.ok.outputs.verdict }}'}}\n",
                &[
                    "template refers to `steps.ok.outputs.verdict`, but approval step `ok` has no such field",
                ],
            ),
            (
                "- {id: ok, step_type: approval, title: T, on_reject: {retry_from: b}}\n- {id: b, skill: s}\n",
                &[
                    "`retry_from` of approval step `ok` names `b`, which is not an earlier top-level step",
                ],
            ),
            (
                "- id: group\n  step_type: parallel\n  branches: {steps: [{id: ok, step_type: approval, title: T}]}\n",
                &["approval step `ok` is nested in a container"],
            ),
            (
                "- {id: ok, step_type: approval, title: T, skill: s}\n",
                &["skill"],
            ),
        ];
        for (yaml, expected) in cases {
            let found = errors(yaml);
            assert_eq!(found.len(), expected.len(), "{yaml}: {found:?}");
            for (message, fragment) in found.iter().zip(expected) {
                assert!(message.contains(fragment), "{yaml}: {message}");
            }
        }
    }
}
