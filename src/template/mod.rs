//! `{{ }}` templates in step inputs and conditions, resolved with handlebars in
//! strict mode. Pure: no IO, no code execution (no script helpers, no partials,
//! no decorators).
//!
//! A leaf module: the workflow hands over its template sites ([`StepSites`]:
//! each step's input values and condition), so nothing here knows the model.
//!
//! Every template of a workflow is compiled once by [`Renderer::new`]. A string
//! that is exactly one `{{ path }}` is looked up directly in the [`Scope`] and
//! keeps its JSON type; text with plain `{{ path }}`s is joined directly; only
//! templates with helpers or blocks are rendered by handlebars, from a context
//! holding just the values they reference.

mod allowed;
mod compile;
mod lookup;
mod meter;
mod tolerance;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use handlebars::{Context, Handlebars, RenderError};
use serde_json::{Map, Value};

pub use self::allowed::{
    Disallowed, MAX_TEMPLATE_NESTING, allowed_helpers_hint, disallowed, too_deep,
};
use self::compile::{Compiled, Compiler, Node, Part, StepTemplates};
pub use self::lookup::LOCAL_ROOTS;
use self::lookup::{ROOT_NAME, insert, lookup};
use self::meter::Stopped;
pub use self::meter::{MAX_RENDER_WORK, MAX_RENDERED_BYTES, RenderLimit};
pub use self::tolerance::{Read, guard_requires, reads, tolerated_absences};

/// What templates can see: `workflow.input`, `steps.ID.outputs` and the locals.
pub struct Scope<'a> {
    pub input: &'a Value,
    /// step id -> that step's outputs object (`{"result": ...}` when `outputs: result`).
    pub steps: &'a HashMap<String, Value>,
    /// The roots bound by an enclosing construct ([`LOCAL_ROOTS`]: `item` and
    /// `index` in a `for_each` body, `loop` in a loop body, `error` in an
    /// `on_failure` handler); `None` outside any.
    pub locals: Option<&'a Map<String, Value>>,
    /// The step outputs of the runs around an iteration, innermost first:
    /// read when `steps` has no such step.
    pub outer: &'a [&'a HashMap<String, Value>],
}

impl<'a> Scope<'a> {
    /// The outputs of step `id`: this run's, else the innermost outer run's.
    pub fn step(&self, id: &str) -> Option<&'a Value> {
        self.steps
            .get(id)
            .or_else(|| self.outer.iter().find_map(|outputs| outputs.get(id)))
    }
}

/// Where one step's templates sit: its input values (strings anywhere inside
/// them may hold templates) and its condition, as the workflow holds them.
#[derive(Debug, Clone, Copy)]
pub struct StepSites<'a> {
    pub step: &'a str,
    pub inputs: &'a Map<String, Value>,
    pub condition: Option<&'a str>,
    /// The `if:` guard.
    pub guard: Option<&'a str>,
}

/// A reference to another step found in a template: `{{ steps.plan.outputs.result.code }}`
/// gives step `plan`, path `outputs.result.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReference {
    pub step: String,
    pub path: String,
}

/// Where in a step a template sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An input, named by its key path: `code`, `config.items[0]`.
    Input(String),
    Condition,
    /// The `if:` guard.
    Guard,
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Input(key) => write!(formatter, "input `{key}`"),
            Location::Condition => formatter.write_str("condition"),
            Location::Guard => formatter.write_str("`if`"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("step `{step}`, {location}: invalid template")]
    Syntax {
        step: String,
        location: Location,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("step `{step}`, {location}: {construct}")]
    Forbidden {
        step: String,
        location: Location,
        construct: Disallowed,
    },
    #[error(
        "step `{step}`, {location}: blocks or `( )` nest more than {MAX_TEMPLATE_NESTING} deep"
    )]
    TooDeep { step: String, location: Location },
    #[error("step `{step}`, {location}: `{path}` does not exist ({parent} {found})")]
    MissingPath {
        step: String,
        location: Location,
        /// The path as written, `steps.build.outputs.result.cod`.
        path: String,
        /// The longest part of the path that exists, `steps.build.outputs.result`.
        parent: String,
        /// What the parent holds: `has: code, language`, `is a string`, ...
        found: String,
    },
    #[error("step `{step}`, {location}: cannot render template")]
    Render {
        step: String,
        location: Location,
        #[source]
        source: Box<RenderError>,
    },
    #[error("step `{step}`, {location}: {limit}")]
    Limit {
        step: String,
        location: Location,
        limit: RenderLimit,
    },
    #[error("step `{step}` is not part of the workflow this renderer was built for")]
    UnknownStep { step: String },
}

impl TemplateError {
    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            TemplateError::Syntax { .. } => Some(
                "write `{{ workflow.input.NAME }}` or `{{ steps.ID.outputs.NAME }}`; `\\{{` gives literal braces"
                    .into(),
            ),
            TemplateError::Forbidden { .. } => Some(allowed_helpers_hint()),
            TemplateError::TooDeep { .. } => {
                Some("split the template into several inputs, or compute the value in a step".into())
            }
            TemplateError::MissingPath { path, parent, .. } if parent == ROOT_NAME => Some(format!(
                "templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`; an input is `workflow.input.{path}`"
            )),
            TemplateError::MissingPath { path, parent, .. } if parent == "steps" => {
                let step = path.trim_start_matches("steps.").split('.').next().unwrap_or_default();
                Some(format!(
                    "step `{step}` has no output here: a template can only read steps that ran before it"
                ))
            }
            TemplateError::MissingPath { .. } => Some(
                "templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`; check the name against what is there"
                    .into(),
            ),
            TemplateError::Render { .. } => Some(
                "inside `each` and `with`, paths are relative to the current item; \
                 `@root.workflow.input.NAME` reads from the top"
                    .into(),
            ),
            TemplateError::Limit { limit: RenderLimit::Deadline, .. } => Some(
                "`each` blocks nested over long lists multiply the work; raise the timeout or render less".into(),
            ),
            TemplateError::Limit { .. } => Some(
                "`each` blocks nested over long lists multiply the text and the work; render less, or let a step build the value".into(),
            ),
            TemplateError::UnknownStep { .. } => None,
        }
    }

    /// The step whose template failed.
    pub fn step(&self) -> &str {
        match self {
            TemplateError::Syntax { step, .. }
            | TemplateError::Forbidden { step, .. }
            | TemplateError::TooDeep { step, .. }
            | TemplateError::MissingPath { step, .. }
            | TemplateError::Render { step, .. }
            | TemplateError::Limit { step, .. }
            | TemplateError::UnknownStep { step } => step,
        }
    }

    /// Where in the step the failing template sits.
    pub fn location(&self) -> Option<&Location> {
        match self {
            TemplateError::Syntax { location, .. }
            | TemplateError::Forbidden { location, .. }
            | TemplateError::TooDeep { location, .. }
            | TemplateError::MissingPath { location, .. }
            | TemplateError::Render { location, .. }
            | TemplateError::Limit { location, .. } => Some(location),
            TemplateError::UnknownStep { .. } => None,
        }
    }
}

/// Every template problem of a workflow (syntax, partials or decorators, names
/// other than `workflow` and `steps`), one per input or condition, so validation
/// can report them all before anything runs.
pub fn check<'a>(steps: impl IntoIterator<Item = StepSites<'a>>) -> Vec<TemplateError> {
    let mut compiler = Compiler::new();
    let mut problems = Vec::new();
    for step in steps {
        for (key, value) in step.inputs {
            problems.extend(compiler.node(step.step, key, value).err());
        }
        if let Some(text) = step.condition {
            problems.extend(compiler.condition(step.step, text).err());
        }
        if let Some(text) = step.guard {
            problems.extend(compiler.guard(step.step, text).err());
        }
    }
    problems
}

/// All templates of one workflow, compiled once.
pub struct Renderer {
    registry: Handlebars<'static>,
    steps: HashMap<String, StepTemplates>,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Renderer")
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Compiles the templates of every step (a workflow's, nested ones included).
    pub fn new<'a>(
        sites: impl IntoIterator<Item = StepSites<'a>>,
    ) -> Result<Renderer, TemplateError> {
        let mut compiler = Compiler::new();
        let mut steps = HashMap::new();
        for step in sites {
            let mut templates = StepTemplates::default();
            for (key, value) in step.inputs {
                templates
                    .inputs
                    .push((key.clone(), compiler.node(step.step, key, value)?));
            }
            if let Some(text) = step.condition {
                templates.condition = Some(compiler.condition(step.step, text)?);
            }
            if let Some(text) = step.guard {
                templates.guard = Some(compiler.guard(step.step, text)?);
            }
            steps.insert(step.step.to_string(), templates);
        }
        Ok(Renderer {
            registry: compiler.into_registry(),
            steps,
        })
    }

    /// The step's inputs with every template resolved.
    pub fn inputs(&self, step: &str, scope: &Scope) -> Result<Map<String, Value>, TemplateError> {
        self.inputs_until(step, scope, None)
    }

    /// [`Renderer::inputs`], a render stopping with [`RenderLimit::Deadline`] once `deadline` passes.
    pub fn inputs_until(
        &self,
        step: &str,
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<Map<String, Value>, TemplateError> {
        let templates = self.templates(step)?;
        let mut resolved = Map::with_capacity(templates.inputs.len());
        for (key, node) in &templates.inputs {
            resolved.insert(key.clone(), self.resolve(step, node, scope, deadline)?);
        }
        Ok(resolved)
    }

    /// The step's `condition` resolved to a value (bool for conditional, case name for switch).
    ///
    /// One `{{ path }}` gives the value itself; anything else gives the rendered
    /// string, or a bool when it reads `true` / `false`. No condition gives null.
    pub fn condition(&self, step: &str, scope: &Scope) -> Result<Value, TemplateError> {
        self.condition_until(step, scope, None)
    }

    /// [`Renderer::condition`], a render stopping once `deadline` passes.
    pub fn condition_until(
        &self,
        step: &str,
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<Value, TemplateError> {
        let templates = self.templates(step)?;
        let value = match &templates.condition {
            None => Value::Null,
            Some(Node::Template {
                compiled: Compiled::Lookup(path),
                location,
            }) => lookup(scope, path)
                .map_err(|missing| missing.error(step, location, path))?
                .into_owned(),
            Some(node) => match self.resolve(step, node, scope, deadline)? {
                Value::String(text) => {
                    parse_boolean(&text).map_or(Value::String(text), Value::Bool)
                }
                other => other,
            },
        };
        Ok(value)
    }

    /// The step's `if:` guard resolved like a condition, except that a
    /// missing value reads as null (false); `None` for a step without one.
    pub fn guard_until(
        &self,
        step: &str,
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<Option<Value>, TemplateError> {
        let templates = self.templates(step)?;
        let value = match &templates.guard {
            None => return Ok(None),
            Some(Node::Template {
                compiled: Compiled::Lookup(path),
                ..
            }) => lookup(scope, path).map_or(Value::Null, Cow::into_owned),
            Some(Node::Template {
                compiled: Compiled::Interpolate(parts),
                ..
            }) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(raw) => text.push_str(raw),
                        Part::Path(path) => {
                            if let Ok(value) = lookup(scope, path) {
                                text.push_str(&value_to_text(&value));
                            }
                        }
                    }
                }
                parse_boolean(&text).map_or(Value::String(text), Value::Bool)
            }
            Some(node) => match self.resolve(step, node, scope, deadline)? {
                Value::String(text) => {
                    parse_boolean(&text).map_or(Value::String(text), Value::Bool)
                }
                other => other,
            },
        };
        Ok(Some(value))
    }

    fn templates(&self, step: &str) -> Result<&StepTemplates, TemplateError> {
        self.steps
            .get(step)
            .ok_or_else(|| TemplateError::UnknownStep {
                step: step.to_string(),
            })
    }

    fn resolve(
        &self,
        step: &str,
        node: &Node,
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<Value, TemplateError> {
        match node {
            Node::Literal(value) => Ok(value.clone()),
            Node::Template { location, compiled } => {
                self.evaluate(step, location, compiled, scope, deadline)
            }
            Node::Object(fields) => {
                let mut resolved = Map::with_capacity(fields.len());
                for (key, field) in fields {
                    resolved.insert(key.clone(), self.resolve(step, field, scope, deadline)?);
                }
                Ok(Value::Object(resolved))
            }
            Node::Array(items) => items
                .iter()
                .map(|item| self.resolve(step, item, scope, deadline))
                .collect::<Result<_, _>>()
                .map(Value::Array),
        }
    }

    fn evaluate(
        &self,
        step: &str,
        location: &Location,
        compiled: &Compiled,
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<Value, TemplateError> {
        match compiled {
            Compiled::Lookup(path) => Ok(lookup(scope, path)
                .map_err(|missing| missing.error(step, location, path))?
                .into_owned()),
            Compiled::Interpolate(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(raw) => text.push_str(raw),
                        Part::Path(path) => {
                            let value = lookup(scope, path)
                                .map_err(|missing| missing.error(step, location, path))?;
                            text.push_str(&value_to_text(&value));
                        }
                    }
                    if text.len() > MAX_RENDERED_BYTES {
                        return Err(TemplateError::Limit {
                            step: step.to_string(),
                            location: location.clone(),
                            limit: RenderLimit::Output,
                        });
                    }
                }
                Ok(Value::String(text))
            }
            Compiled::Render {
                name,
                references,
                boolean,
            } => {
                let text = self.render(step, location, name, references, scope, deadline)?;
                match (boolean, parse_boolean(&text)) {
                    (true, Some(flag)) => Ok(Value::Bool(flag)),
                    _ => Ok(Value::String(text)),
                }
            }
        }
    }

    /// Renders a registered template from a context holding only `references`.
    fn render(
        &self,
        step: &str,
        location: &Location,
        name: &str,
        references: &[Read],
        scope: &Scope,
        deadline: Option<Instant>,
    ) -> Result<String, TemplateError> {
        let mut root = Value::Object(Map::new());
        for Read {
            path,
            tolerates_absence,
        } in references
        {
            match lookup(scope, path) {
                Ok(value) => insert(&mut root, path, value.into_owned()),
                // Left out: handlebars sees it missing, which `if` reads as false.
                Err(_) if *tolerates_absence => {}
                Err(missing) => return Err(missing.error(step, location, path)),
            }
        }
        let context = Context::from(root);
        meter::render(&self.registry, name, &context, deadline).map_err(|stopped| match stopped {
            Stopped::Limit(limit) => TemplateError::Limit {
                step: step.to_string(),
                location: location.clone(),
                limit,
            },
            Stopped::Error(source) => TemplateError::Render {
                step: step.to_string(),
                location: location.clone(),
                source,
            },
        })
    }
}

fn parse_boolean(text: &str) -> Option<bool> {
    match text.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The text of a value inside a larger string: strings as they are, whole
/// numbers without a fraction (agents send `1.0` for `1`), the rest as compact JSON.
pub fn value_to_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                Cow::Owned(format!("{}", float as i64))
            }
            _ => Cow::Owned(number.to_string()),
        },
        other => Cow::Owned(other.to_string()),
    }
}

/// The step references in a template string, in order of appearance.
pub fn step_references(text: &str) -> Vec<StepReference> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let expression = &after[..close];
        let tokens = expression.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
        for token in tokens {
            let token = token.trim_start_matches(['#', '/', '~', '^']);
            let Some(path) = token.strip_prefix("steps.") else {
                continue;
            };
            let (step, path) = path.split_once('.').unwrap_or((path, ""));
            let step = step.trim_start_matches('[').trim_end_matches(']');
            if !step.is_empty() {
                found.push(StepReference {
                    step: step.to_string(),
                    path: path.to_string(),
                });
            }
        }
        rest = &after[close + 2..];
    }
    found
}

/// The locals (`item`, `index`, `loop`, `error`) a template string reads.
pub fn locals_read(text: &str) -> Vec<String> {
    compile::locals_read(text)
}

/// The path a template string reads when it is exactly one `{{ path }}`:
/// the input then gets the value there, with its JSON type (an object stays
/// an object); any other template renders to a string.
pub fn whole_value(text: &str) -> Option<Vec<String>> {
    compile::whole_value(text)
}

/// The paths a template string reads under `workflow.input`, each as the
/// names after `input`, once each, in order.
pub fn input_paths(text: &str) -> Vec<Vec<String>> {
    compile::input_paths(text)
}

/// Truthiness of a resolved condition: false, null, 0, "", "false", "0", "null", [] and {} are false.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => {
            !matches!(text.trim(), "" | "false" | "False" | "FALSE" | "0" | "null")
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input() -> Value {
        json!({"name": "Ada", "flag": true, "count": 3, "off": "false"})
    }

    fn step_outputs() -> HashMap<String, Value> {
        HashMap::from([
            (
                "plan".to_string(),
                json!({"result": {
                    "code": "fn main() {}",
                    "language": "rust",
                    "items": [1, 2, 3],
                    "nested": {"deep": [{"name": "first"}]},
                    "score": 1.0,
                    "ok": true,
                    "nothing": null,
                    "html": "<a href=\"x\">&'</a>",
                }}),
            ),
            (
                "analyze".to_string(),
                json!({"request_type": "code_generation", "count": 2.0}),
            ),
        ])
    }

    /// The templates of one step `target`: `value` as input `value`, and `condition`.
    pub(crate) struct OneStep {
        inputs: Map<String, Value>,
        condition: Option<String>,
    }

    impl OneStep {
        pub(crate) fn sites(&self) -> [StepSites<'_>; 1] {
            [StepSites {
                step: "target",
                inputs: &self.inputs,
                condition: self.condition.as_deref(),
                guard: None,
            }]
        }
    }

    pub(crate) fn one_step_workflow(value: Value, condition: Option<&str>) -> OneStep {
        OneStep {
            inputs: Map::from_iter([("value".to_string(), value)]),
            condition: condition.map(str::to_string),
        }
    }

    fn resolve_input(value: Value) -> Result<Value, TemplateError> {
        let workflow = one_step_workflow(value, None);
        let (input, steps) = (input(), step_outputs());
        let scope = Scope {
            input: &input,
            steps: &steps,
            locals: None,
            outer: &[],
        };
        let mut inputs = Renderer::new(workflow.sites())?.inputs("target", &scope)?;
        Ok(inputs.remove("value").unwrap())
    }

    fn resolve_condition(condition: &str) -> Result<Value, TemplateError> {
        let workflow = one_step_workflow(Value::Null, Some(condition));
        let (input, steps) = (input(), step_outputs());
        let scope = Scope {
            input: &input,
            steps: &steps,
            locals: None,
            outer: &[],
        };
        Renderer::new(workflow.sites())?.condition("target", &scope)
    }

    #[test]
    fn inputs_resolve_to_typed_values_or_strings() {
        let plan = step_outputs()["plan"]["result"].clone();
        let cases = [
            (json!("{{ steps.plan.outputs.result }}"), plan.clone()),
            (
                json!("{{ steps.plan.outputs.result.items }}"),
                json!([1, 2, 3]),
            ),
            (json!("{{ steps.plan.outputs.result.items.[0] }}"), json!(1)),
            (json!("{{ steps.plan.outputs.result.items.1 }}"), json!(2)),
            (json!("{{ workflow.input.count }}"), json!(3)),
            (json!("{{ steps.plan.outputs.result.score }}"), json!(1.0)),
            (json!("{{ steps.plan.outputs.result.ok }}"), json!(true)),
            (
                json!("{{ steps.plan.outputs.result.nothing }}"),
                Value::Null,
            ),
            (json!("  {{workflow.input.name}}\n"), json!("Ada")),
            (
                json!("{{{ steps.plan.outputs.result.html }}}"),
                plan["html"].clone(),
            ),
            (json!("{{ workflow.input }}"), input()),
            (
                json!("{{ steps.plan }}"),
                json!({"outputs": {"result": plan}}),
            ),
            (
                json!("Hello {{ workflow.input.name }}!"),
                json!("Hello Ada!"),
            ),
            (
                json!("items: {{ steps.plan.outputs.result.items }}"),
                json!("items: [1,2,3]"),
            ),
            (
                json!("{{ steps.plan.outputs.result.nested }}."),
                json!(r#"{"deep":[{"name":"first"}]}."#),
            ),
            (
                json!("score {{ steps.plan.outputs.result.score }}"),
                json!("score 1"),
            ),
            (
                json!("null={{ steps.plan.outputs.result.nothing }}"),
                json!("null=null"),
            ),
            (
                json!("{{ steps.plan.outputs.result.html }} & <b>\"'"),
                json!("<a href=\"x\">&'</a> & <b>\"'"),
            ),
            (
                json!(
                    "{{ steps.plan.outputs.result.nested.deep.[0].name }}-{{ workflow.input.name }}"
                ),
                json!("first-Ada"),
            ),
            (
                json!("{{#each steps.plan.outputs.result.items}}{{this}},{{/each}}"),
                json!("1,2,3,"),
            ),
            (
                json!(
                    "{{#each steps.plan.outputs.result.nested.deep}}{{name}} {{@root.workflow.input.name}}{{/each}}"
                ),
                json!("first Ada"),
            ),
            (
                json!("{{#if workflow.input.flag}}yes{{else}}no{{/if}}"),
                json!("yes"),
            ),
            (json!("{{ eq workflow.input.count 3 }}"), json!(true)),
            (
                json!("{{ len steps.plan.outputs.result.items }}"),
                json!("3"),
            ),
            (json!("no template here {}"), json!("no template here {}")),
            (json!("a {{~ workflow.input.name ~}} b"), json!("aAdab")),
            (
                json!("x{{! a comment }}y {{ workflow.input.name }}"),
                json!("xy Ada"),
            ),
            (
                json!("\\{{ workflow.input.name }}"),
                json!("{{ workflow.input.name }}"),
            ),
            (json!("<b>&amp;</b>"), json!("<b>&amp;</b>")),
            (json!(42), json!(42)),
            (json!(null), Value::Null),
            (
                json!({"a": ["{{ workflow.input.count }}", "x {{ workflow.input.name }}", {"b": "{{ steps.analyze.outputs.request_type }}"}], "c": false, "d": "plain"}),
                json!({"a": [3, "x Ada", {"b": "code_generation"}], "c": false, "d": "plain"}),
            ),
        ];
        for (template, expected) in cases {
            let resolved = resolve_input(template.clone())
                .unwrap_or_else(|error| panic!("{template}: {error:?}"));
            assert_eq!(resolved, expected, "template {template}");
        }
    }

    #[test]
    fn missing_paths_name_the_step_the_input_and_what_is_there() {
        let cases = [
            (
                json!("{{ steps.plan.outputs.result.cod }}"),
                "step `target`, input `value`: `steps.plan.outputs.result.cod` does not exist \
                 (steps.plan.outputs.result has: code, language, items, nested, score, ok, nothing, html)",
            ),
            (
                json!("Hello {{ workflow.input.nam }}!"),
                "step `target`, input `value`: `workflow.input.nam` does not exist \
                 (workflow.input has: name, flag, count, off)",
            ),
            (
                json!("{{ steps.later.outputs.result }}"),
                "step `target`, input `value`: `steps.later.outputs.result` does not exist \
                 (steps has: analyze, plan)",
            ),
            (
                json!("{{ steps.plan.result }}"),
                "step `target`, input `value`: `steps.plan.result` does not exist (steps.plan has: outputs)",
            ),
            (
                json!("{{ workflow.name }}"),
                "step `target`, input `value`: `workflow.name` does not exist (workflow has: input)",
            ),
            (
                json!("{{ steps.plan.outputs.result.items.7 }}"),
                "step `target`, input `value`: `steps.plan.outputs.result.items.7` does not exist \
                 (steps.plan.outputs.result.items is an array of 3 items)",
            ),
            (
                json!("{{ steps.plan.outputs.result.code.first }}"),
                "step `target`, input `value`: `steps.plan.outputs.result.code.first` does not exist \
                 (steps.plan.outputs.result.code is a string)",
            ),
            (
                json!({"a": [1, "{{#each workflow.input.list}}{{this}}{{/each}}"]}),
                "step `target`, input `value.a[1]`: `workflow.input.list` does not exist \
                 (workflow.input has: name, flag, count, off)",
            ),
        ];
        for (template, expected) in cases {
            let error = resolve_input(template.clone()).expect_err(&template.to_string());
            assert!(
                matches!(error, TemplateError::MissingPath { .. }),
                "{template}: {error:?}"
            );
            assert_eq!(error.to_string(), expected);
            assert!(error.hint().is_some());
        }
        let error = resolve_condition("{{ eq steps.analyze.outputs.kind \"x\" }}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "step `target`, condition: `steps.analyze.outputs.kind` does not exist \
             (steps.analyze.outputs has: request_type, count)"
        );
    }

    #[test]
    fn unknown_names_and_forbidden_constructs_fail_when_compiled() {
        let unknown = |name: &str| {
            format!(
                "step `target`, input `value`: `{name}` does not exist \
                 (the template context has: workflow, steps)"
            )
        };
        let cases = [
            ("{{ requirements }}", unknown("requirements")),
            ("Hello {{ input.name }}", unknown("input.name")),
            ("{{ eq name \"x\" }}", unknown("name")),
            ("{{ not (eq @root.name 1) }}", unknown("name")),
            ("{{#if flag}}yes{{/if}}", unknown("flag")),
            (
                "{{#if workflow.input.flag}}{{else}}{{ nope }}{{/if}}",
                unknown("nope"),
            ),
            (
                "{{> other }}",
                "step `target`, input `value`: partials are not allowed in templates".into(),
            ),
            (
                "{{#> layout }}x{{/layout}}",
                "step `target`, input `value`: partials are not allowed in templates".into(),
            ),
            (
                "{{#if workflow.input.flag}}{{#*inline \"x\"}}y{{/inline}}{{/if}}",
                "step `target`, input `value`: inline partials and decorators are not allowed in templates".into(),
            ),
            (
                "{{ steps.plan",
                "step `target`, input `value`: invalid template".into(),
            ),
            (
                "{{ frobnicate workflow.input.name }}",
                "step `target`, input `value`: unknown helper `frobnicate`".into(),
            ),
            (
                "{{#shout workflow.input.name}}x{{/shout}}",
                "step `target`, input `value`: unknown helper `shout`".into(),
            ),
            (
                "{{ eq (upper workflow.input.name) \"A\" }}",
                "step `target`, input `value`: unknown helper `upper`".into(),
            ),
            (
                &"{{#if workflow.input.flag}}".repeat(33),
                "step `target`, input `value`: blocks or `( )` nest more than 32 deep".into(),
            ),
            (
                &format!("{{{{ not {}1{} }}}}", "(not ".repeat(33), ")".repeat(33)),
                "step `target`, input `value`: blocks or `( )` nest more than 32 deep".into(),
            ),
        ];
        for (template, expected) in cases {
            let error =
                Renderer::new(one_step_workflow(json!(template), None).sites()).unwrap_err();
            assert_eq!(error.to_string(), expected, "{template}");
            assert!(error.hint().is_some(), "{template}");
        }
        let error = Renderer::new(one_step_workflow(json!("{{ requirements }}"), None).sites())
            .unwrap_err();
        assert_eq!(
            error.hint().unwrap(),
            "templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`; \
             an input is `workflow.input.requirements`"
        );
    }

    /// Paths inside `each` and `with` bodies are relative to the current item.
    #[test]
    fn block_bodies_read_relative_paths() {
        let cases = [
            (
                "{{#each steps.plan.outputs.result.nested.deep}}{{name}}{{/each}}",
                json!("first"),
            ),
            (
                "{{#with steps.plan.outputs.result}}{{language}}: {{items}}{{/with}}",
                json!("rust: [1,2,3]"),
            ),
            (
                "{{#each workflow.input}}{{@key}}={{this}};{{/each}}",
                json!("name=Ada;flag=true;count=3;off=false;"),
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(
                resolve_input(json!(template)).unwrap(),
                expected,
                "{template}"
            );
        }
        let error = resolve_input(json!("{{#with workflow.input}}{{nam}}{{/with}}")).unwrap_err();
        assert!(matches!(error, TemplateError::Render { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "step `target`, input `value`: cannot render template"
        );
    }

    #[test]
    fn conditions_compare_combine_and_give_switch_values() {
        let cases = [
            (
                "{{ eq steps.analyze.outputs.request_type \"code_generation\" }}",
                json!(true),
            ),
            (
                "{{ eq steps.analyze.outputs.request_type \"data_analysis\" }}",
                json!(false),
            ),
            (
                "{{ ne steps.analyze.outputs.request_type \"data_analysis\" }}",
                json!(true),
            ),
            ("{{ eq steps.analyze.outputs.count 2 }}", json!(true)),
            ("{{ eq steps.plan.outputs.result.score 1 }}", json!(true)),
            (
                "{{ eq steps.plan.outputs.result.items (lookup steps.plan.outputs \"result\") }}",
                json!(false),
            ),
            ("{{ ne steps.analyze.outputs.count 2 }}", json!(false)),
            (
                "{{ eq (lookup steps.plan.outputs \"result\") steps.plan.outputs.result }}",
                json!(true),
            ),
            ("{{ gt steps.analyze.outputs.count 1 }}", json!(true)),
            ("{{ gt steps.analyze.outputs.count 2 }}", json!(false)),
            ("{{ gte steps.analyze.outputs.count 2 }}", json!(true)),
            ("{{ lt steps.analyze.outputs.count 2 }}", json!(false)),
            ("{{ lt workflow.input.count 3.5 }}", json!(true)),
            ("{{ lte steps.analyze.outputs.count 2 }}", json!(true)),
            (
                "{{ and workflow.input.flag (eq workflow.input.count 3) }}",
                json!(true),
            ),
            (
                "{{ and workflow.input.flag workflow.input.off }}",
                json!(false),
            ),
            (
                "{{ or workflow.input.off (gt workflow.input.count 10) }}",
                json!(false),
            ),
            (
                "{{ or workflow.input.off workflow.input.flag }}",
                json!(true),
            ),
            ("{{ not workflow.input.off }}", json!(true)),
            ("{{ not (eq workflow.input.name \"Ada\") }}", json!(false)),
            (
                "{{#if (gt workflow.input.count 2)}}big{{else}}small{{/if}}",
                json!("big"),
            ),
            ("{{ workflow.input.flag }}", json!(true)),
            ("{{ workflow.input.off }}", json!("false")),
            (
                "{{ steps.analyze.outputs.request_type }}",
                json!("code_generation"),
            ),
            ("{{ steps.analyze.outputs.count }}", json!(2.0)),
            ("mode-{{ workflow.input.count }}", json!("mode-3")),
            ("{{ workflow.input.flag }} ", json!(true)),
            (
                "{{workflow.input.flag}}{{workflow.input.off}}",
                json!("truefalse"),
            ),
            ("code_generation", json!("code_generation")),
            ("true", json!(true)),
        ];
        for (condition, expected) in cases {
            let resolved = resolve_condition(condition)
                .unwrap_or_else(|error| panic!("{condition}: {error:?}"));
            assert_eq!(resolved, expected, "condition {condition}");
        }
    }

    #[test]
    fn truthiness() {
        let cases = [
            (json!(true), true),
            (json!(false), false),
            (json!(null), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(2.5), true),
            (json!(""), false),
            (json!(" false "), false),
            (json!("0"), false),
            (json!("null"), false),
            (json!("no"), true),
            (json!([]), false),
            (json!([0]), true),
            (json!({}), false),
            (json!({"a": 1}), true),
        ];
        for (value, expected) in cases {
            assert_eq!(is_truthy(&value), expected, "{value}");
        }
    }

    #[test]
    fn step_references_are_found_in_order() {
        let cases = [
            ("no template", vec![]),
            ("{{ workflow.input.x }}", vec![]),
            (
                "{{ steps.plan.outputs.result.code }}",
                vec![("plan", "outputs.result.code")],
            ),
            (
                "{{ eq steps.a.outputs.x (not steps.b.outputs.y) }} {{steps.c}}",
                vec![("a", "outputs.x"), ("b", "outputs.y"), ("c", "")],
            ),
            (
                "{{#each steps.list.outputs.items}}{{this}}{{/each}}",
                vec![("list", "outputs.items")],
            ),
        ];
        for (text, expected) in cases {
            let expected: Vec<StepReference> = expected
                .into_iter()
                .map(|(step, path)| StepReference {
                    step: step.into(),
                    path: path.into(),
                })
                .collect();
            assert_eq!(step_references(text), expected, "{text}");
        }
    }

    #[test]
    fn value_text_drops_fractions_of_whole_numbers() {
        let cases = [
            (json!("text"), "text"),
            (json!(1.0), "1"),
            (json!(-3.0), "-3"),
            (json!(1.5), "1.5"),
            (json!(7), "7"),
            (json!({"a": [1, null]}), r#"{"a":[1,null]}"#),
            (json!(true), "true"),
        ];
        for (value, expected) in cases {
            assert_eq!(value_to_text(&value), expected, "{value}");
        }
    }

    /// The engine shares one renderer between concurrent branches.
    #[test]
    fn renderer_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Renderer>();
        shareable::<TemplateError>();
    }
}
