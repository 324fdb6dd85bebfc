//! Steps against the JSON Schemas their agents publish: each call step's
//! inputs against its skill's input schema (`inputs.rs`), and every
//! `{{ steps.X.outputs... }}` a template reads against the output schema of
//! X's skill (the path must be possible, see `paths.rs`). The schemas are
//! handed in (by the run's preflight, by `pallet validate --agent`), so this
//! module knows no agent; a skill without schemas is not checked.
//!
//! When several agents offer a skill with different schemas, the step must
//! fit each of them: a call may go to any of them (failover).

mod inputs;
mod paths;
mod types;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use self::paths::{Impossible, Types, show, types_at};
use super::model::{Step, StepKind, Workflow};
use super::validate::{Node, Problem, Tree, suggest, templates};

/// The schemas one agent publishes for one skill.
#[derive(Debug, Clone, Copy)]
pub struct SkillSchemas<'a> {
    pub agent: &'a str,
    pub input: Option<&'a Value>,
    pub output: Option<&'a Value>,
}

/// Skill id -> the schemas of the agents that offer it, in the order they are tried.
pub type Published<'a> = HashMap<&'a str, Vec<SkillSchemas<'a>>>;

/// Every problem of `workflow`'s steps against the `published` schemas.
pub fn check(workflow: &Workflow, published: &Published) -> Vec<Problem> {
    let any_schema = published
        .values()
        .flatten()
        .any(|schemas| schemas.input.is_some() || schemas.output.is_some());
    if !any_schema {
        return Vec::new();
    }
    let tree = Tree::new(workflow);
    let checker = Checker {
        tree: &tree,
        published,
        validators: Default::default(),
    };
    let mut problems = Vec::new();
    for node in &tree.nodes {
        if let StepKind::Call { skill } = node.step.kind() {
            for publisher in checker.publishers(skill, |schemas| schemas.input) {
                inputs::check(&checker, node, &publisher, &mut problems);
            }
        }
        for (pointer, text) in templates(node) {
            for read in crate::template::reads(text) {
                checker.check_read(node, &pointer, &read.path, &mut problems);
            }
        }
    }
    // A path read twice in one template is one problem.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|problem| seen.insert((problem.pointer.clone(), problem.message.clone())));
    problems
}

/// The skill of every call step with the pointer of its `skill` key, in
/// file order (`pallet validate --agent` names the steps of a skill no agent offers).
pub fn skill_sites(workflow: &Workflow) -> Vec<(&str, String)> {
    let tree = Tree::new(workflow);
    let mut sites = Vec::new();
    for node in &tree.nodes {
        if let StepKind::Call { skill } = node.step.kind() {
            sites.push((skill, format!("{}/skill", node.pointer)));
        }
    }
    sites
}

/// One schema and the agents that publish it for a skill.
pub(crate) struct Publisher<'a> {
    skill: &'a str,
    agents: Vec<&'a str>,
    schema: &'a Value,
}

impl Publisher<'_> {
    /// `the input schema of skill `create_plan` (agent `plan`)`.
    fn describe(&self, which: &str) -> String {
        let agents: Vec<String> = self
            .agents
            .iter()
            .map(|agent| format!("`{agent}`"))
            .collect();
        let noun = if agents.len() == 1 { "agent" } else { "agents" };
        format!(
            "the {which} schema of skill `{}` ({noun} {})",
            self.skill,
            agents.join(", ")
        )
    }
}

pub(crate) struct Checker<'a> {
    tree: &'a Tree<'a>,
    published: &'a Published<'a>,
    /// Each input schema compiled once (by its address), for the literal inputs.
    validators: RefCell<HashMap<usize, Option<Rc<jsonschema::Validator>>>>,
}

impl<'a> Checker<'a> {
    /// `schema` compiled; `None` when it does not compile (then it is not used).
    fn validator(&self, schema: &Value) -> Option<Rc<jsonschema::Validator>> {
        let key = std::ptr::from_ref(schema) as usize;
        let mut validators = self.validators.borrow_mut();
        validators
            .entry(key)
            .or_insert_with(|| jsonschema::validator_for(schema).ok().map(Rc::new))
            .clone()
    }

    /// The distinct schemas `pick` takes from the agents of `skill`, each with its agents.
    fn publishers(
        &self,
        skill: &'a str,
        pick: impl Fn(&SkillSchemas<'a>) -> Option<&'a Value>,
    ) -> Vec<Publisher<'a>> {
        let mut publishers: Vec<Publisher<'a>> = Vec::new();
        for schemas in self.published.get(skill).into_iter().flatten() {
            let Some(schema) = pick(schemas) else {
                continue;
            };
            match publishers
                .iter_mut()
                .find(|publisher| publisher.schema == schema)
            {
                Some(same) => same.agents.push(schemas.agent),
                None => publishers.push(Publisher {
                    skill,
                    agents: vec![schemas.agent],
                    schema,
                }),
            }
        }
        publishers
    }

    /// The call step `id` and the output schemas of its skill, when it has
    /// any and its outputs are its skill's answer.
    fn producer(&self, id: &str) -> Option<(&'a Step, Vec<Publisher<'a>>)> {
        let step = self.tree.nodes[*self.tree.by_id.get(id)?].step;
        let StepKind::Call { skill } = step.kind() else {
            return None;
        };
        // When its handler ran, the step's outputs are the handler's last step's.
        if !step.on_failure.is_empty() {
            return None;
        }
        let publishers = self.publishers(skill, |schemas| schemas.output);
        (!publishers.is_empty()).then_some((step, publishers))
    }

    /// The types `path` (`steps.X.outputs...`) may have by every output
    /// schema of X's skill that allows it; `None` when nothing is known.
    fn read_types(&self, path: &[String]) -> Option<Types> {
        let [root, id, outputs, rest @ ..] = path else {
            return None;
        };
        if root != "steps" || outputs != "outputs" {
            return None;
        }
        let (step, publishers) = self.producer(id)?;
        let types = publishers
            .iter()
            .filter_map(|publisher| output_types(step, publisher.schema, rest).ok())
            .fold(Types::NONE, Types::or);
        (!types.is_empty()).then_some(types)
    }

    /// A read of `steps.X.outputs.NAME...` must be possible under the output
    /// schemas of X's skill.
    fn check_read(&self, node: &Node, pointer: &str, path: &[String], problems: &mut Vec<Problem>) {
        let [root, id, outputs, rest @ ..] = path else {
            return;
        };
        if root != "steps" || outputs != "outputs" {
            return;
        }
        let Some((step, publishers)) = self.producer(id) else {
            return;
        };
        for publisher in publishers {
            let Err(impossible) = output_types(step, publisher.schema, rest) else {
                continue;
            };
            let shown = path.join(".");
            let message = format!(
                "step `{}` reads `{shown}`, which {} rules out: at {}, {}",
                node.step.id,
                publisher.describe("output"),
                show(&impossible.pointer),
                impossible.reason
            );
            let close = impossible
                .segment
                .as_deref()
                .and_then(|segment| suggest(segment, impossible.known.iter().map(String::as_str)));
            let hint = match close {
                Some(close) => {
                    let mut fixed = path.to_vec();
                    let refused = impossible.segment.as_ref();
                    if let Some(at) = fixed.iter().rposition(|segment| Some(segment) == refused) {
                        fixed[at] = close.to_string();
                    }
                    format!("did you mean `{}`?", fixed.join("."))
                }
                None => format!(
                    "read only what the output schema of `{}` allows (the agent's card publishes it)",
                    publisher.skill
                ),
            };
            problems.push(Problem::new(pointer, message, Some(hint)));
        }
    }
}

/// The types `steps.X.outputs.REST` may have when X's skill answers by
/// `schema`. With `outputs: NAME` the answer is `outputs.NAME`; without, an
/// object answer is the outputs object itself and any other is `outputs.result`.
fn output_types(step: &Step, schema: &Value, rest: &[String]) -> Result<Types, Impossible> {
    let Some((first, after)) = rest.split_first() else {
        return Ok(Types::OBJECT);
    };
    if let Some(name) = &step.outputs {
        // Another name is the reference checks' problem.
        return match first == name {
            true => types_at(schema, after, Types::ALL),
            false => Ok(Types::ALL),
        };
    }
    let not_object = Types::ALL.without(Types::OBJECT);
    let as_object = types_at(schema, rest, Types::OBJECT);
    let as_result = (first == "result").then(|| types_at(schema, after, not_object));
    match (as_object, as_result) {
        (Ok(object), Some(Ok(other))) => Ok(object.or(other)),
        (Ok(object), _) => Ok(object),
        (Err(_), Some(Ok(other))) => Ok(other),
        (Err(object), as_result) => {
            if types_at(schema, &[], Types::OBJECT).is_ok() {
                return Err(object);
            }
            match as_result {
                Some(Err(other)) => Err(other),
                _ => {
                    let answer = types_at(schema, &[], Types::ALL).unwrap_or(not_object);
                    Err(Impossible {
                        pointer: String::new(),
                        reason: format!(
                            "the answer is {}, never an object, so the step's outputs hold it as `steps.{}.outputs.result`",
                            answer.describe(),
                            step.id
                        ),
                        segment: None,
                        known: Vec::new(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
