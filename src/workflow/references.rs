//! `{{ steps.X... }}` references: X must have finished before the referring step
//! on every path. Steps of an earlier parallel step count (all branches run); steps
//! inside an earlier conditional or switch do not (one branch runs), only the
//! container itself, whose output is the taken branch's last output.

use std::collections::HashMap;

use super::limits;
use super::model::StepType;
use super::validate::{BODY, Node, ON_FAILURE, Problem, Tree, suggest, templates};
use crate::template::{guard_requires, locals_read, step_references, tolerated_absences};

/// The step ids finished at the current point of the walk, each either
/// sure to have outputs or maybe not (skipped by its `if:`, failed with
/// `continue_on_error`, in a branch not taken). A count per id and kind so
/// leaving a branch only forgets what that branch added.
#[derive(Default)]
struct Finished<'a> {
    counts: HashMap<(&'a str, bool), usize>,
    order: Vec<(&'a str, bool)>,
}

impl<'a> Finished<'a> {
    fn add(&mut self, id: &'a str) {
        self.add_kind(id, true);
    }

    fn add_kind(&mut self, id: &'a str, sure: bool) {
        *self.counts.entry((id, sure)).or_default() += 1;
        self.order.push((id, sure));
    }

    /// Finished with outputs on every path.
    fn contains(&self, id: &str) -> bool {
        self.counts.get(&(id, true)).is_some_and(|count| *count > 0)
    }

    /// Finished, but possibly without outputs.
    fn maybe(&self, id: &str) -> bool {
        self.counts
            .get(&(id, false))
            .is_some_and(|count| *count > 0)
    }

    fn truncate(&mut self, length: usize) {
        for key in self.order.drain(length..) {
            if let Some(count) = self.counts.get_mut(&key) {
                *count -= 1;
            }
        }
    }
}

pub(crate) fn check_references(tree: &Tree, errors: &mut Vec<Problem>) {
    let mut finished = Finished::default();
    walk_sequence(tree, &tree.top, &mut finished, errors);
    // The workflow's handler runs after some step failed: none is sure to have run.
    walk_sequence(tree, &tree.handler, &mut Finished::default(), errors);
}

fn walk_sequence<'a>(
    tree: &Tree<'a>,
    sequence: &[usize],
    finished: &mut Finished<'a>,
    errors: &mut Vec<Problem>,
) {
    for &index in sequence {
        let node = &tree.nodes[index];
        // A loop's `until` is read after each iteration: it sees the body's steps.
        let (until, before): (Vec<_>, Vec<_>) =
            templates(node).into_iter().partition(|(pointer, _)| {
                node.step.step_type == StepType::Loop && pointer.ends_with("/until")
            });
        // A guard that proves a step present lets the step and its nested
        // steps read it freely.
        let guarded = finished.order.len();
        for id in node.step.guard.iter().flat_map(|text| guard_requires(text)) {
            if let Some((&id, _)) = tree.by_id.get_key_value(id.as_str())
                && finished.maybe(id)
            {
                finished.add(id);
            }
        }
        check_step(tree, index, &before, finished, errors);
        let mark = finished.order.len();
        for (name, children) in &node.branches {
            if *name == ON_FAILURE {
                // The handler runs instead of its step: it sees what the step saw.
                walk_sequence(tree, children, finished, errors);
                finished.truncate(mark);
            } else if *name == BODY {
                walk_sequence(tree, children, finished, errors);
                check_step(tree, index, &until, finished, errors);
                finished.truncate(mark);
            } else if node.step.step_type == StepType::Parallel {
                // Each parallel child starts when the container starts: siblings are not finished.
                for &child in children {
                    walk_sequence(tree, &[child], finished, errors);
                    finished.truncate(mark);
                }
            } else {
                walk_sequence(tree, children, finished, errors);
                finished.truncate(mark);
            }
        }
        finished.truncate(guarded);
        add_finished(tree, index, true, finished);
    }
}

/// A finished step: itself, a parallel step's children, and (maybe) the
/// steps in a conditional's or switch's branches. `sure`: the step is sure
/// to have outputs, unless its `if:` may skip it or it may fail with
/// `continue_on_error`.
fn add_finished<'a>(tree: &Tree<'a>, index: usize, sure: bool, finished: &mut Finished<'a>) {
    let node = &tree.nodes[index];
    let sure = sure && node.step.guard.is_none() && !node.step.continue_on_error;
    finished.add_kind(node.step.id.as_str(), sure);
    let branch_sure = match node.step.step_type {
        StepType::Parallel => sure,
        StepType::Conditional | StepType::Switch => false,
        _ => return,
    };
    for (name, children) in &node.branches {
        if *name == ON_FAILURE || *name == BODY {
            continue;
        }
        for &child in children {
            add_finished(tree, child, branch_sure, finished);
        }
    }
}

fn check_step(
    tree: &Tree,
    index: usize,
    templates: &[(String, &str)],
    finished: &Finished,
    errors: &mut Vec<Problem>,
) {
    for (pointer, text) in templates {
        let (pointer, text) = (pointer.as_str(), *text);
        check_locals(tree, index, pointer, text, errors);
        for reference in step_references(text) {
            let step = reference.step.as_str();
            let Some(&target) = tree.by_id.get(step) else {
                // A suggestion compares with every id: only for problems that are listed.
                let suggest = errors.len() < limits::MAX_DIAGNOSTICS;
                errors.push(unknown_step(tree, pointer, step, suggest));
                continue;
            };
            if finished.maybe(step) && !finished.contains(step) {
                // A guard is a test, so it reads a missing step as false.
                let own_guard = pointer == format!("{}/if", tree.nodes[index].pointer);
                if !own_guard && !tolerated_absences(text).iter().any(|id| id == step) {
                    let (message, hint) = explain_maybe(tree, index, target);
                    errors.push(Problem::new(pointer, message, Some(hint)));
                }
            } else if !finished.contains(step) {
                let (message, hint) = explain(tree, index, target);
                errors.push(Problem::new(pointer, message, Some(hint)));
            }
            if let Some(problem) = wrong_output_name(
                tree.nodes[target].step.outputs.as_deref(),
                step,
                &reference.path,
            ) {
                errors.push(Problem::new(pointer, problem.0, Some(problem.1)));
            }
        }
    }
}

/// A local is read only where a construct binds it: `item` and `index` in
/// a for_each body, `loop` in a loop body and its `until`.
fn check_locals(tree: &Tree, index: usize, pointer: &str, text: &str, errors: &mut Vec<Problem>) {
    let this = &tree.nodes[index];
    let own_until = this.step.step_type == StepType::Loop && pointer.ends_with("/until");
    // The containers whose body holds the step: a for_each's or loop's own
    // `on_failure` runs after the iterations, where no item or loop is set.
    let chain = chain(tree, index);
    let around: Vec<StepType> = chain
        .windows(2)
        .filter(|pair| tree.nodes[pair[1]].branch == Some(BODY))
        .map(|pair| tree.nodes[pair[0]].step.step_type)
        .collect();
    for local in locals_read(text) {
        let (bound, hint) = match local.as_str() {
            "item" | "index" => (
                around.contains(&StepType::ForEach),
                "`item` and `index` are set only inside the `steps` of a for_each step: `{{ item }}` is the current item, `{{ index }}` its position from 0",
            ),
            "loop" => (
                own_until || around.contains(&StepType::Loop),
                "`loop` is set only inside the `steps` (and the `until`) of a loop step: `{{ loop.iteration }}` counts from 1, `{{ loop.previous }}` holds the previous iteration's outputs",
            ),
            _ => (
                chain
                    .iter()
                    .any(|&node| tree.nodes[node].branch == Some(ON_FAILURE)),
                "`error` is set only inside an `on_failure` handler: `{{ error.message }}`, `{{ error.step }}`",
            ),
        };
        if !bound {
            errors.push(Problem::new(
                pointer,
                format!(
                    "step `{}` reads `{local}`, which is not set here",
                    this.step.id
                ),
                Some(hint.to_string()),
            ));
        }
    }
}

fn unknown_step(tree: &Tree, pointer: &str, step: &str, with_suggestion: bool) -> Problem {
    let ids = tree.nodes.iter().map(|node| node.step.id.as_str());
    let close = with_suggestion.then(|| suggest(step, ids)).flatten();
    let hint = match close {
        Some(close) => format!("did you mean `{close}`?"),
        None => {
            "a reference names the id of an earlier step: {{ steps.ID.outputs... }}".to_string()
        }
    };
    Problem::new(
        pointer,
        format!("template refers to unknown step `{step}`"),
        Some(hint),
    )
}

/// `steps.plan.outputs.other` when `plan` declares `outputs: result`.
fn wrong_output_name(declared: Option<&str>, step: &str, path: &str) -> Option<(String, String)> {
    let declared = declared?;
    let rest = path.strip_prefix("outputs.")?;
    let name = rest
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if name == declared {
        return None;
    }
    Some((
        format!(
            "template refers to `steps.{step}.outputs.{name}`, but step `{step}` stores its result under `{declared}`"
        ),
        format!("write `steps.{step}.outputs.{declared}`"),
    ))
}

/// The ancestors of a node from the top level down, the node included.
fn chain(tree: &Tree, index: usize) -> Vec<usize> {
    let mut chain = vec![index];
    let mut current = index;
    while let Some(parent) = tree.nodes[current].parent {
        chain.push(parent);
        current = parent;
    }
    chain.reverse();
    chain
}

/// Why a reference to `target`, finished but maybe without outputs, needs
/// to tolerate its absence: message and hint.
fn explain_maybe(tree: &Tree, referrer: usize, target: usize) -> (String, String) {
    let id = |index: usize| tree.nodes[index].step.id.as_str();
    let (name, this) = (id(target), id(referrer));
    let tolerate = format!(
        "read it inside `{{{{#if steps.{name}}}}}…{{{{/if}}}}`, or give `{this}` the guard `if: \"{{{{ steps.{name} }}}}\"`"
    );
    // The nearest step, the target or one around it, that may leave it without outputs.
    // Containers around both steps do not count: the referrer runs only when they do.
    let around_referrer = chain(tree, referrer);
    let why = chain(tree, target).into_iter().rev().find_map(|index| {
        if around_referrer.contains(&index) {
            return None;
        }
        let step = tree.nodes[index].step;
        let whose = if index == target {
            "it".to_string()
        } else {
            format!("`{}`, around it,", step.id)
        };
        if step.guard.is_some() {
            Some(format!("which may be skipped: {whose} has an `if:`"))
        } else if step.continue_on_error {
            Some(format!(
                "which may have failed without outputs: {whose} has `continue_on_error`"
            ))
        } else {
            None
        }
    });
    match why {
        Some(why) => (format!("step `{this}` refers to `{name}`, {why}"), tolerate),
        None => {
            let (message, hint) = explain(tree, referrer, target);
            (message, format!("{hint}; or {tolerate}"))
        }
    }
}

/// Why `target` has not finished when `referrer` runs: message and hint.
fn explain(tree: &Tree, referrer: usize, target: usize) -> (String, String) {
    let id = |index: usize| tree.nodes[index].step.id.as_str();
    let (name, this) = (id(target), id(referrer));
    let earlier = "a step can only use the outputs of steps that finished before it".to_string();
    if target == referrer {
        return (format!("step `{this}` refers to its own output"), earlier);
    }
    let in_handler = |index: usize| {
        let top = chain(tree, index)[0];
        tree.nodes[top].parent.is_none() && tree.nodes[top].branch == Some(ON_FAILURE)
    };
    if in_handler(referrer) && !in_handler(target) {
        return (
            format!(
                "step `{this}` of the workflow's on_failure handler refers to `{name}`, which may not have run when the run failed"
            ),
            "the handler reads what failed as `{{ error.message }}` and `{{ error.step }}`"
                .to_string(),
        );
    }
    let target_chain = chain(tree, target);
    let referrer_chain = chain(tree, referrer);
    if referrer_chain.contains(&target) {
        return (
            format!(
                "step `{this}` refers to `{name}`, which contains it and has not finished when it runs"
            ),
            earlier,
        );
    }
    let common = target_chain
        .iter()
        .zip(&referrer_chain)
        .take_while(|(left, right)| left == right)
        .count();
    let Some(&target_side) = target_chain.get(common) else {
        unreachable!("target is not an ancestor")
    };
    let Some(&referrer_side) = referrer_chain.get(common) else {
        return (
            format!("step `{this}` refers to `{name}`, one of its own nested steps"),
            earlier,
        );
    };
    let (target_node, referrer_node) = (&tree.nodes[target_side], &tree.nodes[referrer_side]);
    let container = common.checked_sub(1).map(|level| target_chain[level]);
    if target_node.branch != referrer_node.branch {
        let container = container.map(id).unwrap_or_default();
        return (
            format!(
                "step `{this}` refers to `{name}`, which is in branch `{}` of `{container}` while `{this}` is in branch `{}`: only one branch runs",
                target_node.branch.unwrap_or_default(),
                referrer_node.branch.unwrap_or_default()
            ),
            "use the output of steps before the container, or of steps in the same branch"
                .to_string(),
        );
    }
    if let Some(container) =
        container.filter(|&index| tree.nodes[index].step.step_type == StepType::Parallel)
    {
        return (
            format!(
                "step `{this}` refers to `{name}`, which runs in parallel with it in `{}`",
                id(container)
            ),
            format!(
                "move the step that needs `{name}` after the parallel step `{}`",
                id(container)
            ),
        );
    }
    if target_node.position > referrer_node.position {
        return (
            format!("step `{this}` refers to `{name}`, which runs after it"),
            earlier,
        );
    }
    optional_branch(tree, &target_chain[common..], name, this)
}

/// `target_chain` starts at an earlier sibling and ends at the target, nested in a
/// conditional or switch somewhere on the way.
fn optional_branch(
    tree: &Tree,
    target_chain: &[usize],
    name: &str,
    this: &str,
) -> (String, String) {
    let choice = target_chain[..target_chain.len() - 1]
        .iter()
        .position(|&index| tree.nodes[index].step.step_type != StepType::Parallel);
    let Some(level) = choice else {
        return (
            format!("step `{this}` refers to `{name}`, which may not have run"),
            format!("refer only to steps that always finish before `{this}` starts"),
        );
    };
    let container: &Node = &tree.nodes[target_chain[level]];
    if tree.nodes[target_chain[level + 1]].branch == Some(ON_FAILURE) {
        let id = &container.step.id;
        return (
            format!(
                "step `{this}` refers to `{name}`, which runs only in the on_failure handler of `{id}`"
            ),
            format!(
                "refer to `steps.{id}.outputs` instead: when the handler ran, it holds the outputs of the handler's last step"
            ),
        );
    }
    if container.step.iterates() {
        let id = &container.step.id;
        let (kind, read) = match container.step.step_type {
            StepType::ForEach => (
                "for_each",
                format!(
                    "`steps.{id}.outputs.results` (each item's outputs by step id, in item order)"
                ),
            ),
            _ => (
                "loop",
                format!("`steps.{id}.outputs.last` (the last iteration's outputs by step id)"),
            ),
        };
        return (
            format!(
                "step `{this}` refers to `{name}`, which is inside the body of {kind} step `{id}`"
            ),
            format!(
                "steps outside the body read its steps through {read}, e.g. `{{{{ steps.{id}.outputs.{} }}}}`",
                if kind == "loop" {
                    format!("last.{name}")
                } else {
                    format!("results.0.{name}")
                }
            ),
        );
    }
    let branch = tree.nodes[target_chain[level + 1]]
        .branch
        .unwrap_or_default();
    (
        format!(
            "step `{this}` refers to `{name}`, which runs only in branch `{branch}` of `{}`, so it may not have run",
            container.step.id
        ),
        format!(
            "refer to `steps.{}.outputs` instead: a {} step's output is the output of the branch that ran",
            container.step.id,
            if container.step.step_type == StepType::Switch {
                "switch"
            } else {
                "conditional"
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::workflow::model::Workflow;
    use crate::workflow::validate::{Tree, check};

    fn errors(steps_yaml: &str) -> Vec<String> {
        let text = format!("metadata: {{id: x, name: X, version: 1.0.0}}\nsteps:\n{steps_yaml}");
        let workflow: Workflow = crate::yaml::from_snippet(&text).expect("test workflow parses");
        check(&workflow)
            .errors
            .into_iter()
            .map(|problem| format!("{}: {}", problem.pointer, problem.message))
            .collect()
    }

    const PARALLEL: &str = "
- id: fan
  step_type: parallel
  branches:
    steps:
      - {id: a, skill: s}
      - {id: b, skill: s, inputs: {x: '{{ steps.SIBLING.outputs }}'}}
- {id: after, skill: s, inputs: {x: '{{ steps.a.outputs }} {{ steps.b.outputs }} {{ steps.fan.outputs }}'}}
";

    const SWITCH: &str = "
- {id: first, skill: s, outputs: kind}
- id: route
  step_type: switch
  condition: '{{ steps.first.outputs.kind }}'
  branches:
    one:
      - {id: in_one, skill: s, inputs: {x: '{{ steps.first.outputs.kind }}'}}
    two:
      - {id: in_two, skill: s, inputs: {x: '{{ steps.OTHER.outputs }}'}}
- {id: after, skill: s, inputs: {x: '{{ steps.TARGET.outputs }}'}}
";

    #[test]
    fn reference_rules() {
        let cases: Vec<(String, Vec<&str>)> = vec![
            (PARALLEL.replace("SIBLING", "fan").to_string(), vec![
                "/steps/0/branches/steps/1/inputs/x: step `b` refers to `fan`, which contains it and has not finished when it runs",
            ]),
            (PARALLEL.replace("SIBLING", "a"), vec![
                "/steps/0/branches/steps/1/inputs/x: step `b` refers to `a`, which runs in parallel with it in `fan`",
            ]),
            (PARALLEL.replace("SIBLING", "after"), vec![
                "/steps/0/branches/steps/1/inputs/x: step `b` refers to `after`, which runs after it",
            ]),
            (SWITCH.replace("OTHER", "first").replace("TARGET", "route"), vec![]),
            (SWITCH.replace("OTHER", "in_one").replace("TARGET", "route"), vec![
                "/steps/1/branches/two/0/inputs/x: step `in_two` refers to `in_one`, which is in branch `one` of `route` while `in_two` is in branch `two`: only one branch runs",
            ]),
            (SWITCH.replace("OTHER", "first").replace("TARGET", "in_two"), vec![
                "/steps/2/inputs/x: step `after` refers to `in_two`, which runs only in branch `two` of `route`, so it may not have run",
            ]),
            (SWITCH.replace("OTHER", "frist").replace("TARGET", "route"), vec![
                "/steps/1/branches/two/0/inputs/x: template refers to unknown step `frist`",
            ]),
            (SWITCH.replace("OTHER", "in_two").replace("TARGET", "after"), vec![
                "/steps/1/branches/two/0/inputs/x: step `in_two` refers to its own output",
                "/steps/2/inputs/x: step `after` refers to its own output",
            ]),
            ("- {id: a, skill: s, outputs: result}\n- {id: b, skill: s, inputs: {x: '{{ steps.a.outputs.other.y }}'}}\n".to_string(), vec![
                "/steps/1/inputs/x: template refers to `steps.a.outputs.other`, but step `a` stores its result under `result`",
            ]),
            ("- {id: a, skill: s, outputs: result}\n- {id: b, skill: s, inputs: {x: '{{ steps.a.outputs.result.y }}', y: '{{ steps.a }}'}}\n".to_string(), vec![]),
        ];
        for (steps, expected) in cases {
            assert_eq!(errors(&steps), expected, "{steps}");
        }
    }

    #[test]
    fn nested_parallel_children_count_after_the_outer_parallel() {
        let steps = "
- id: outer
  step_type: parallel
  branches:
    steps:
      - id: inner
        step_type: parallel
        branches:
          steps:
            - {id: deep, skill: s}
      - id: maybe
        step_type: conditional
        condition: '{{ workflow.input.flag }}'
        branches:
          if_true:
            - {id: hidden, skill: s}
- {id: after, skill: s, inputs: {x: '{{ steps.deep.outputs }} {{ steps.maybe.outputs }} {{ steps.hidden.outputs }}'}}
";
        assert_eq!(
            errors(steps),
            vec![
                "/steps/1/inputs/x: step `after` refers to `hidden`, which runs only in branch `if_true` of `maybe`, so it may not have run",
            ]
        );
    }

    #[test]
    fn references_to_steps_that_may_have_no_outputs_must_tolerate_it() {
        let steps = "
- {id: a, skill: s, if: '{{ workflow.input.go }}'}
- {id: b, skill: s, continue_on_error: true}
- id: pick
  step_type: conditional
  condition: '{{ workflow.input.go }}'
  branches:
    if_true: [{id: c, skill: s}]
- {id: bad, skill: s, inputs: {x: '{{ steps.a.outputs }}', y: '{{ steps.b.outputs }}', z: '{{ steps.c.outputs }}'}}
- {id: fine, skill: s, inputs: {x: '{{#if steps.a}}{{ steps.a.outputs.v }}{{/if}}{{#if steps.b}}{{ steps.b.outputs }}{{/if}}{{#if steps.c}}{{ steps.c.outputs }}{{/if}}'}}
- id: proven
  if: '{{ and steps.a steps.c.outputs.ok }}'
  step_type: parallel
  branches:
    steps: [{id: deep, skill: s, inputs: {x: '{{ steps.a.outputs }} {{ steps.c.outputs }}'}}]
";
        let found = errors(steps);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with(
                "/steps/3/inputs/x: step `bad` refers to `a`, which may be skipped: it has an `if:`"
            ),
            "{found:?}"
        );
        assert!(
            found[1]
                .contains("`b`, which may have failed without outputs: it has `continue_on_error`"),
            "{found:?}"
        );
        assert!(
            found[2].contains("which runs only in branch `if_true` of `pick`"),
            "{found:?}"
        );
    }

    #[test]
    fn iteration_locals_are_not_set_in_the_handler_of_their_own_container() {
        let steps = "
- id: each
  step_type: for_each
  items: '{{ workflow.input.list }}'
  steps:
    - id: scan
      skill: s
      inputs: {x: '{{ item }}'}
      on_failure: [{id: note, skill: s, inputs: {x: '{{ item }} {{ index }} {{ error.message }}'}}]
  on_failure: [{id: cleanup, skill: s, inputs: {x: '{{ item }} {{ error.message }}'}}]
- id: again
  step_type: loop
  max_iterations: 2
  until: '{{ loop.iteration }}'
  steps: [{id: work, skill: s}]
  on_failure: [{id: tidy, skill: s, inputs: {x: '{{ loop.iteration }}'}}]
";
        let found = errors(steps);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("step `cleanup` reads `item`, which is not set here"),
            "{found:?}"
        );
        assert!(
            found[1].contains("step `tidy` reads `loop`, which is not set here"),
            "{found:?}"
        );
    }

    #[test]
    fn every_explanation_has_a_hint() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n- id: fan\n  step_type: parallel\n  branches:\n    steps:\n      - {id: a, skill: s}\n- {id: b, skill: s}\n";
        let workflow: Workflow = crate::yaml::from_snippet(text).expect("test workflow parses");
        let tree = Tree::new(&workflow);
        let chain = [tree.by_id["fan"], tree.by_id["a"]];
        let (message, hint) = super::optional_branch(&tree, &chain, "a", "b");
        assert!(message.contains("may not have run"), "{message}");
        assert!(hint.contains("`b`"), "{hint:?}");
    }
}
