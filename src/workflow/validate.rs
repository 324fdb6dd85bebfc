//! Semantic checks that a schema cannot express: unique step ids, containers with
//! what they need, template syntax, and `{{ steps.X }}` references that name a step
//! which has finished before the referring step on every path.

use std::collections::HashMap;

use serde_json::Value;

use super::model::{Step, StepType, Workflow};
use super::position::escape;
use super::references::check_references;
use crate::template::step_references;

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

/// The whole tree, flattened depth first; `top` lists the top-level nodes.
pub(crate) struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    pub top: Vec<usize>,
    pub by_id: HashMap<&'a str, usize>,
}

impl<'a> Tree<'a> {
    fn new(workflow: &'a Workflow) -> Tree<'a> {
        let mut tree = Tree {
            nodes: Vec::new(),
            top: Vec::new(),
            by_id: HashMap::new(),
        };
        tree.top = tree.add_sequence(&workflow.steps, "/steps", None, None);
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
            indices.push(index);
        }
        indices
    }
}

/// Every semantic problem of `workflow`, all at once.
pub fn check(workflow: &Workflow) -> Report {
    let tree = Tree::new(workflow);
    let mut report = Report::default();
    check_unique_ids(&tree, &mut report.errors);
    for node in &tree.nodes {
        check_container(node, &mut report);
        for (pointer, text) in templates(node) {
            check_template(&pointer, text, &mut report.errors);
        }
    }
    check_references(&tree, &mut report.errors);
    report
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
    if let Some(condition) = &node.step.condition {
        out.push((format!("{}/condition", node.pointer), condition.as_str()));
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

fn check_template(pointer: &str, text: &str, errors: &mut Vec<Problem>) {
    if let Err(error) = handlebars::Template::compile(text) {
        let place = error
            .pos()
            .map(|(line, column)| format!(" (template line {line}, column {column})"))
            .unwrap_or_default();
        errors.push(Problem::new(
            pointer,
            format!("template syntax error{place}: {}", error.reason()),
            Some("templates look like \"{{ steps.ID.outputs.NAME }}\" or \"{{ eq workflow.input.kind \\\"a\\\" }}\"; every {{ needs a matching }}".to_string()),
        ));
        return;
    }
    for root in unknown_roots(text) {
        let hint = if root.starts_with("input") || root.starts_with("workflow.") {
            let rest = root
                .split_once('.')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            let rest = rest
                .strip_prefix("input.")
                .or(rest.strip_prefix("inputs."))
                .unwrap_or(rest);
            format!(
                "did you mean `workflow.input.{rest}`? templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`"
            )
        } else {
            "templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`".to_string()
        };
        errors.push(Problem::new(
            pointer,
            format!("template refers to `{root}`, which is not available to templates"),
            Some(hint),
        ));
    }
    for reference in step_references(text) {
        if reference.path.is_empty()
            || reference.path == "outputs"
            || reference.path.starts_with("outputs.")
        {
            continue;
        }
        errors.push(Problem::new(
            pointer,
            format!(
                "template refers to `steps.{}.{}`, but a step's results are under `outputs`",
                reference.step, reference.path
            ),
            Some(format!(
                "write `steps.{}.outputs.{}`",
                reference.step, reference.path
            )),
        ));
    }
}

/// Paths in a template that start neither at `workflow.input` nor at `steps`.
/// Helper names, literals and paths inside `#each`/`#with` blocks (relative to the block) are skipped.
pub(crate) fn unknown_roots(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let expression = after[..close]
            .trim_start_matches(['{', '~', '&'])
            .trim_end_matches(['}', '~'])
            .trim();
        rest = &after[close + 2..];
        let relative_scope = blocks.iter().any(|name| name != "if" && name != "unless");
        if let Some(closing) = expression.strip_prefix('/') {
            let _ = closing;
            blocks.pop();
            continue;
        }
        if expression.starts_with('!')
            || expression.starts_with('>')
            || expression == "else"
            || expression == "^"
        {
            continue;
        }
        let (expression, opened) = match expression
            .strip_prefix('#')
            .or(expression.strip_prefix('^'))
        {
            Some(inner) => (inner, true),
            None => (
                expression.strip_prefix("else ").unwrap_or(expression),
                false,
            ),
        };
        if !relative_scope {
            found.extend(
                expression_paths(expression)
                    .into_iter()
                    .filter(|path| !is_known_root(path)),
            );
        }
        if opened {
            blocks.push(
                expression
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    found
}

fn is_known_root(path: &str) -> bool {
    path == "workflow.input"
        || path.starts_with("workflow.input.")
        || path.starts_with("workflow.input.[")
        || path.starts_with("steps.")
        || path.starts_with('@')
}

/// The path arguments of one `{{ }}` expression (not helper names, not literals).
fn expression_paths(expression: &str) -> Vec<String> {
    // Each open (sub)expression: its first word, and whether arguments followed it.
    let mut heads: Vec<(Option<String>, bool)> = vec![(None, false)];
    let mut paths = Vec::new();
    let finish = |head: Option<(Option<String>, bool)>, paths: &mut Vec<String>| {
        if let Some((Some(word), false)) = head
            && is_path(&word)
        {
            paths.push(word);
        }
    };
    let mut characters = expression.chars().peekable();
    while let Some(&character) = characters.peek() {
        characters.next();
        if character.is_whitespace() {
            continue;
        }
        if character == ')' {
            finish(heads.pop(), &mut paths);
            continue;
        }
        if let Some(current) = heads.last_mut()
            && current.0.is_some()
        {
            current.1 = true;
        }
        match character {
            '(' => heads.push((None, false)),
            '"' | '\'' => {
                characters.by_ref().find(|&inner| inner == character);
                mark_word(&mut heads, String::new());
            }
            _ => {
                let mut token = String::from(character);
                while let Some(&next) = characters.peek() {
                    if next.is_whitespace() || next == '(' || next == ')' {
                        break;
                    }
                    token.push(next);
                    characters.next();
                }
                let token = token
                    .split_once('=')
                    .map(|(_, value)| value.to_string())
                    .unwrap_or(token);
                let is_head = heads.last().is_some_and(|current| current.0.is_none());
                if is_head {
                    mark_word(&mut heads, token);
                } else if is_path(&token) {
                    paths.push(token);
                }
            }
        }
    }
    while let Some(head) = heads.pop() {
        finish(Some(head), &mut paths);
    }
    paths
}

/// Records the first word of the innermost expression (a helper name if arguments follow).
fn mark_word(heads: &mut [(Option<String>, bool)], word: String) {
    if let Some(current) = heads.last_mut()
        && current.0.is_none()
    {
        current.0 = Some(word);
    }
}

/// Whether a word is a path (not a literal).
fn is_path(word: &str) -> bool {
    !(word.is_empty()
        || word.starts_with('"')
        || word.starts_with('\'')
        || word.parse::<f64>().is_ok()
        || matches!(word, "true" | "false" | "null" | "undefined"))
}

/// The candidate closest to `word` when it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current.push(
                substitution
                    .min(previous[column + 1] + 1)
                    .min(current[column] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_roots_in_templates() {
        let cases: [(&str, &[&str]); 11] = [
            ("{{ \"text\" }} {{ 42 }}", &[]),
            (
                "{{ lookup workflow.input.map key=nothing.here }}",
                &["nothing.here"],
            ),
            ("{{ workflow.input.requirements }}", &[]),
            ("{{ workflow.input }}", &[]),
            ("Hello {{ workflow.input.name }}!", &[]),
            (
                "{{ eq steps.analyze.outputs.request_type \"code generation\" }}",
                &[],
            ),
            (
                "{{ and (gt steps.a.outputs.n 3) (not workflow.input.skip) }}",
                &[],
            ),
            ("{{ input.name }}", &["input.name"]),
            (
                "{{ eq workflow.inputs.kind 'a' }}",
                &["workflow.inputs.kind"],
            ),
            (
                "{{#each steps.a.outputs.items}}{{ this.name }}{{/each}} {{ other }}",
                &["other"],
            ),
            (
                "{{#if workflow.input.flag}}{{ nope.x }}{{else}}y{{/if}}",
                &["nope.x"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(unknown_roots(text), expected, "{text}");
        }
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
