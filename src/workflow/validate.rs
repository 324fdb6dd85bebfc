//! Semantic checks that a schema cannot express: unique step ids, containers with
//! what they need, template syntax, and `{{ steps.X }}` references that name a step
//! which has finished before the referring step on every path.

use std::collections::HashMap;

use serde_json::Value;

use super::limits;
use super::model::{Step, StepType, Workflow};
use super::references::check_references;
use super::template_checks::check_template;
use crate::yaml::escape;

/// One problem, located by the JSON pointer of the offending node.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub pointer: String,
    /// Point at the mapping key rather than its value (unknown keys).
    pub at_key: bool,
    pub message: String,
    pub hint: Option<String>,
    /// The key an unknown key probably meant (lets the schema drop a redundant "missing" error).
    pub(crate) suggestion: Option<String>,
    /// The field a "missing required field" problem is about.
    pub(crate) missing: Option<String>,
}

impl Problem {
    pub fn new(pointer: &str, message: impl Into<String>, hint: Option<String>) -> Problem {
        Problem {
            pointer: pointer.to_string(),
            at_key: false,
            message: message.into(),
            hint,
            suggestion: None,
            missing: None,
        }
    }
}

/// Errors stop a workflow from running; warnings are only shown.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// One step of the tree with where it sits.
pub(crate) struct Node<'a> {
    pub step: &'a Step,
    pub pointer: String,
    pub parent: Option<usize>,
    /// Branch of the parent holding this step (None at the top level).
    pub branch: Option<&'a str>,
    /// Index within that branch (or within the top-level steps).
    pub position: usize,
    /// Branch name -> indices of the child nodes, in order.
    pub branches: Vec<(&'a str, Vec<usize>)>,
}

/// The branch name of a for_each or loop step's body (`steps:`), which no
/// branch of a conditional or switch can have: branch names are case names.
pub(crate) const BODY: &str = "steps:";

/// The branch name of an on_failure handler (a step's, or the workflow's at the top).
pub(crate) const ON_FAILURE: &str = "on_failure:";

/// The whole tree, flattened depth first; `top` lists the top-level nodes.
pub(crate) struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    pub top: Vec<usize>,
    /// The workflow's on_failure steps.
    pub handler: Vec<usize>,
    pub by_id: HashMap<&'a str, usize>,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(workflow: &'a Workflow) -> Tree<'a> {
        let mut tree = Tree {
            nodes: Vec::new(),
            top: Vec::new(),
            handler: Vec::new(),
            by_id: HashMap::new(),
        };
        tree.top = tree.add_sequence(&workflow.steps, "/steps", None, None);
        tree.handler =
            tree.add_sequence(&workflow.on_failure, "/on_failure", None, Some(ON_FAILURE));
        tree
    }

    fn add_sequence(
        &mut self,
        steps: &'a [Step],
        pointer: &str,
        parent: Option<usize>,
        branch: Option<&'a str>,
    ) -> Vec<usize> {
        let mut indices = Vec::with_capacity(steps.len());
        for (position, step) in steps.iter().enumerate() {
            let index = self.nodes.len();
            let step_pointer = format!("{pointer}/{position}");
            self.nodes.push(Node {
                step,
                pointer: step_pointer.clone(),
                parent,
                branch,
                position,
                branches: Vec::new(),
            });
            self.by_id.entry(step.id.as_str()).or_insert(index);
            for (name, children) in &step.branches {
                let branch_pointer = format!("{step_pointer}/branches/{}", escape(name));
                let child_indices =
                    self.add_sequence(children, &branch_pointer, Some(index), Some(name.as_str()));
                self.nodes[index]
                    .branches
                    .push((name.as_str(), child_indices));
            }
            if !step.on_failure.is_empty() {
                let handler_pointer = format!("{step_pointer}/on_failure");
                let child_indices = self.add_sequence(
                    &step.on_failure,
                    &handler_pointer,
                    Some(index),
                    Some(ON_FAILURE),
                );
                self.nodes[index].branches.push((ON_FAILURE, child_indices));
            }
            if !step.steps.is_empty() {
                // The body of a for_each or loop step: a branch named [`BODY`].
                let body_pointer = format!("{step_pointer}/steps");
                let child_indices =
                    self.add_sequence(&step.steps, &body_pointer, Some(index), Some(BODY));
                self.nodes[index].branches.push((BODY, child_indices));
            }
            indices.push(index);
        }
        indices
    }
}

/// Every semantic problem of `workflow`, all at once.
pub fn check(workflow: &Workflow) -> Report {
    let tree = Tree::new(workflow);
    let mut report = Report::default();
    check_container_depth(&tree, &mut report.errors);
    check_unique_ids(&tree, &mut report.errors);
    for node in &tree.nodes {
        check_container(node, &mut report);
        for (pointer, text) in templates(node) {
            check_template(&pointer, text, &mut report.errors);
        }
    }
    check_references(&tree, &mut report.errors);
    super::input_checks::check(workflow, &tree, &mut report);
    super::approval_checks::check_approvals(&tree, &mut report.errors);
    // A template naming the same missing step twice is one problem.
    let mut seen = std::collections::HashSet::new();
    report
        .errors
        .retain(|problem| seen.insert((problem.pointer.clone(), problem.message.clone())));
    report
}

/// The first step nested in more than [`limits::MAX_CONTAINER_DEPTH`] containers.
fn check_container_depth(tree: &Tree, errors: &mut Vec<Problem>) {
    // Parents come before their children, so one pass computes every depth.
    let mut depths = Vec::with_capacity(tree.nodes.len());
    for node in &tree.nodes {
        let depth = node.parent.map_or(0, |parent: usize| depths[parent] + 1);
        depths.push(depth);
        if depth > limits::MAX_CONTAINER_DEPTH {
            errors.push(Problem::new(
                &node.pointer,
                format!(
                    "step `{}` is nested in {depth} containers, more than the limit of {}",
                    node.step.id,
                    limits::MAX_CONTAINER_DEPTH
                ),
                Some("move the inner steps into a workflow of their own and run it with the `execute_workflow` skill".to_string()),
            ));
            return;
        }
    }
}

fn check_unique_ids(tree: &Tree, errors: &mut Vec<Problem>) {
    for (index, node) in tree.nodes.iter().enumerate() {
        let first = tree.by_id[node.step.id.as_str()];
        if first != index {
            errors.push(Problem::new(
                &format!("{}/id", node.pointer),
                format!("duplicate step id `{}`", node.step.id),
                Some(format!(
                    "step ids must be unique across the whole workflow, nested steps included; `{}` is first used at {}",
                    node.step.id, tree.nodes[first].pointer
                )),
            ));
        }
    }
}

fn check_container(node: &Node, report: &mut Report) {
    let step = node.step;
    if step.step_type == StepType::Switch
        && !step.branches.is_empty()
        && step.branches.keys().all(|name| name == "default")
    {
        report.errors.push(Problem::new(
            &format!("{}/branches", node.pointer),
            format!("switch step `{}` has no cases, only `default`", step.id),
            Some("add at least one case: `branches: {CASE: [...], default: [...]}`; the condition's value picks the case".to_string()),
        ));
    }
    if let Some(condition) = &step.condition
        && !condition.contains("{{")
    {
        report.warnings.push(Problem::new(
            &format!("{}/condition", node.pointer),
            format!("the condition of step `{}` holds no `{{{{ }}}}` template, so it never changes", step.id),
            Some(format!("write a template, e.g. \"{{{{ steps.ID.outputs.NAME }}}}\" (the text `{condition}` is used as is)")),
        ));
    }
    if step.step_type != StepType::Sequential && step.skill.is_some() {
        let type_name = serde_json::to_value(step.step_type).ok();
        let type_name = type_name
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or("container");
        let mut warning = Problem::new(
            &format!("{}/skill", node.pointer),
            format!("`skill` is ignored on {type_name} step `{}`", step.id),
            Some(
                "container steps run their branches and call no skill; remove the line".to_string(),
            ),
        );
        warning.at_key = true;
        report.warnings.push(warning);
    }
}

/// The step's template strings with their pointers: the condition and every string in the inputs.
pub(crate) fn templates<'a>(node: &Node<'a>) -> Vec<(String, &'a str)> {
    fn walk<'a>(value: &'a Value, pointer: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::String(text) if text.contains("{{") => out.push((pointer, text)),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, format!("{pointer}/{index}"), out);
                }
            }
            Value::Object(fields) => {
                for (name, item) in fields {
                    walk(item, format!("{pointer}/{}", escape(name)), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let conditions = [
        ("condition", &node.step.condition),
        ("items", &node.step.items),
        ("until", &node.step.until),
        ("if", &node.step.guard),
    ];
    for (key, text) in conditions {
        if let Some(text) = text {
            out.push((format!("{}/{key}", node.pointer), text.as_str()));
        }
    }
    for (name, value) in &node.step.inputs {
        walk(
            value,
            format!("{}/inputs/{}", node.pointer, escape(name)),
            &mut out,
        );
    }
    out
}

/// The candidate closest to `word` when it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = word.chars().count();
    let limit = (length / 3).max(1);
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip those at once.
        .filter(|candidate| candidate.chars().count().abs_diff(length) <= limit)
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let mut table = vec![vec![0usize; right.len() + 1]; left.len() + 1];
    for (row, cells) in table.iter_mut().enumerate() {
        cells[0] = row;
    }
    for (column, cell) in table[0].iter_mut().enumerate() {
        *cell = column;
    }
    for row in 1..=left.len() {
        for column in 1..=right.len() {
            let cost = usize::from(left[row - 1] != right[column - 1]);
            let mut best = (table[row - 1][column] + 1)
                .min(table[row][column - 1] + 1)
                .min(table[row - 1][column - 1] + cost);
            if row > 1
                && column > 1
                && left[row - 1] == right[column - 2]
                && left[row - 2] == right[column - 1]
            {
                best = best.min(table[row - 2][column - 2] + 1);
            }
            table[row][column] = best;
        }
    }
    table[left.len()][right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_for_ignored_skill_and_constant_condition() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - id: route\n    skill: s\n    step_type: conditional\n    condition: steps.a.outputs\n    branches: {if_true: [{id: b, skill: s}]}\n";
        let workflow: Workflow = crate::yaml::from_snippet(text).expect("test workflow parses");
        let report = check(&workflow);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let warnings: Vec<&str> = report
            .warnings
            .iter()
            .map(|warning| warning.message.as_str())
            .collect();
        assert_eq!(
            warnings,
            [
                "the condition of step `route` holds no `{{ }}` template, so it never changes",
                "`skill` is ignored on conditional step `route`",
            ]
        );
    }

    #[test]
    fn suggestions_only_for_close_words() {
        let keys = ["skill", "step_type", "timeout", "outputs"];
        let cases = [
            ("skil", Some("skill")),
            ("steptype", Some("step_type")),
            ("timeot", Some("timeout")),
            ("banana", None),
        ];
        for (word, expected) in cases {
            assert_eq!(suggest(word, keys), expected, "{word}");
        }
    }
}
