//! Compiling templates: parsing with handlebars, checking for forbidden
//! constructs (see `allowed`) and unknown names, choosing how each template is
//! resolved, and the registry with pallet's helpers.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, Path, PathSeg, RenderContext,
    RenderError, RenderErrorReason, Template,
};
use serde_json::Value;

use super::allowed::{HELPER_NAMES, disallowed, too_deep};
use super::lookup::{Missing, ROOTS, describe_roots};
use super::meter::{TICK_HELPER, TickHelper};
use super::tolerance::{Read, collect, merge};
use super::{Location, TemplateError, value_to_text};

/// Helpers whose result is a boolean, so a template made of one call to them
/// resolves to a JSON bool.
const BOOLEAN_HELPERS: [&str; 9] = ["eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not"];

/// Name of the internal helper every plain `{{ path }}` of a rendered template is
/// rewritten to, so objects and arrays render as JSON. Not writable in a template.
const VALUE_HELPER: &str = "pallet:value";

/// How one template string is resolved.
#[derive(Debug)]
pub(super) enum Compiled {
    /// Exactly one `{{ path }}`: looked up directly, keeping the JSON type.
    Lookup(Vec<String>),
    /// Text and `{{ path }}`s only: joined directly into a string.
    Interpolate(Vec<Part>),
    /// Anything else (helpers, blocks): rendered by handlebars into a string.
    Render {
        name: String,
        /// Every path the template reads, none a prefix of another, with
        /// whether a missing value is tolerated (see `tolerance`).
        references: Vec<Read>,
        /// The template is one call to a boolean helper.
        boolean: bool,
    },
}

#[derive(Debug)]
pub(super) enum Part {
    Text(String),
    Path(Vec<String>),
}

/// A step input (or condition) with its templates compiled.
#[derive(Debug)]
pub(super) enum Node {
    /// No template inside: copied as is.
    Literal(Value),
    Template {
        location: Location,
        compiled: Compiled,
    },
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

#[derive(Debug, Default)]
pub(super) struct StepTemplates {
    pub(super) inputs: Vec<(String, Node)>,
    pub(super) condition: Option<Node>,
    /// The `if:` guard.
    pub(super) guard: Option<Node>,
}

/// Builds compiled templates and registers the rendered ones.
pub(super) struct Compiler {
    registry: Handlebars<'static>,
    count: usize,
}

impl Compiler {
    pub(super) fn new() -> Compiler {
        Compiler {
            registry: new_registry(),
            count: 0,
        }
    }

    /// The registry holding every template compiled for rendering.
    pub(super) fn into_registry(self) -> Handlebars<'static> {
        self.registry
    }

    /// Compiles a step's condition; text without `{{` is kept as a literal case name.
    pub(super) fn condition(&mut self, step: &str, text: &str) -> Result<Node, TemplateError> {
        if !text.contains("{{") {
            return Ok(Node::Literal(Value::String(text.to_string())));
        }
        let compiled = self.template(step, &Location::Condition, text)?;
        Ok(Node::Template {
            location: Location::Condition,
            compiled,
        })
    }

    /// Compiles a step's `if:` guard; text without `{{` is a literal value.
    pub(super) fn guard(&mut self, step: &str, text: &str) -> Result<Node, TemplateError> {
        if !text.contains("{{") {
            return Ok(Node::Literal(Value::String(text.to_string())));
        }
        let compiled = self.template(step, &Location::Guard, text)?;
        Ok(Node::Template {
            location: Location::Guard,
            compiled,
        })
    }

    /// Compiles an input value; `key` names it in errors (`config.items[0]`).
    pub(super) fn node(
        &mut self,
        step: &str,
        key: &str,
        value: &Value,
    ) -> Result<Node, TemplateError> {
        if !contains_template(value) {
            return Ok(Node::Literal(value.clone()));
        }
        let node = match value {
            Value::String(text) => {
                let location = Location::Input(key.to_string());
                Node::Template {
                    compiled: self.template(step, &location, text)?,
                    location,
                }
            }
            Value::Object(fields) => Node::Object(
                fields
                    .iter()
                    .map(|(name, field)| {
                        Ok((
                            name.clone(),
                            self.node(step, &format!("{key}.{name}"), field)?,
                        ))
                    })
                    .collect::<Result<_, TemplateError>>()?,
            ),
            Value::Array(items) => Node::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.node(step, &format!("{key}[{index}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            other => Node::Literal(other.clone()),
        };
        Ok(node)
    }

    pub(super) fn template(
        &mut self,
        step: &str,
        location: &Location,
        text: &str,
    ) -> Result<Compiled, TemplateError> {
        if too_deep(text) {
            return Err(TemplateError::TooDeep {
                step: step.to_string(),
                location: location.clone(),
            });
        }
        let mut template = Template::compile(text).map_err(|source| TemplateError::Syntax {
            step: step.to_string(),
            location: location.clone(),
            source: Box::new(source),
        })?;
        if let Some(construct) = disallowed(&template.elements) {
            return Err(TemplateError::Forbidden {
                step: step.to_string(),
                location: location.clone(),
                construct,
            });
        }
        if let Some(path) = unknown_root(&template.elements) {
            return Err(Missing {
                at: 0,
                found: describe_roots(None),
            }
            .error(step, location, &path));
        }
        let single = single_expression(&template);
        if let Some(path) = single.and_then(lookup_path) {
            return Ok(Compiled::Lookup(path));
        }
        if let Some(parts) = interpolation(&template) {
            return Ok(Compiled::Interpolate(parts));
        }
        let boolean = single.is_some_and(|expression| {
            matches!(&expression.name, Parameter::Name(name) if BOOLEAN_HELPERS.contains(&name.as_str()))
        });
        let mut references = Vec::new();
        collect(&template.elements, &mut Vec::new(), &mut references);
        if *location == Location::Guard {
            // A guard is a test: whatever is missing reads as false.
            for read in &mut references {
                read.tolerates_absence = true;
            }
        }
        rewrite_values(&mut template.elements);
        self.count += 1;
        let name = format!("{step}:{location}:{}", self.count);
        self.registry.register_template(&name, template);
        Ok(Compiled::Render {
            name,
            references: merge(references),
            boolean,
        })
    }
}

fn contains_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("{{"),
        Value::Array(items) => items.iter().any(contains_template),
        Value::Object(fields) => fields.values().any(contains_template),
        _ => false,
    }
}

fn new_registry() -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    // Values go to agents, not to a browser.
    registry.register_escape_fn(handlebars::no_escape);
    // The built-in eq/ne compare `1.0` and `1` as different; agents send doubles.
    registry.register_helper("eq", Box::new(helpers::Equal));
    registry.register_helper("ne", Box::new(helpers::NotEqual));
    // Same truthiness as a plain condition (`"false"` is false).
    registry.register_helper("and", Box::new(helpers::All));
    registry.register_helper("or", Box::new(helpers::Any));
    registry.register_helper("not", Box::new(helpers::Not));
    registry.register_helper(VALUE_HELPER, Box::new(ValueHelper));
    registry.register_helper(TICK_HELPER, Box::new(TickHelper));
    registry
}

/// The one expression of a template that holds nothing else but whitespace.
pub(super) fn single_expression(template: &Template) -> Option<&HelperTemplate> {
    let mut found = None;
    for element in &template.elements {
        match element {
            TemplateElement::RawString(text) if text.trim().is_empty() => {}
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper)
                if found.is_none() =>
            {
                found = Some(helper.as_ref());
            }
            _ => return None,
        }
    }
    found
}

/// The path a template reads when it is exactly one `{{ path }}` (with
/// blanks around), which resolves to the value there with its JSON type.
pub(super) fn whole_value(text: &str) -> Option<Vec<String>> {
    let template = Template::compile(text).ok()?;
    single_expression(&template).and_then(lookup_path)
}

/// The parts of a template made only of text and `{{ path }}`s.
fn interpolation(template: &Template) -> Option<Vec<Part>> {
    let parts = template
        .elements
        .iter()
        .filter_map(|element| match element {
            TemplateElement::RawString(text) => Some(Some(Part::Text(text.clone()))),
            TemplateElement::Comment(_) => None,
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                Some(lookup_path(helper).map(Part::Path))
            }
            _ => Some(None),
        });
    parts.collect()
}

/// The scope path of an expression that only reads a value: `{{ steps.plan.outputs.result }}`.
pub(super) fn lookup_path(expression: &HelperTemplate) -> Option<Vec<String>> {
    if !expression.params.is_empty() || !expression.hash.is_empty() || expression.block {
        return None;
    }
    scope_path(&expression.name)
}

/// The names along a path parameter: `@root.steps.plan` gives `steps`, `plan`.
fn path_names(parameter: &Parameter) -> Option<Vec<String>> {
    let Parameter::Path(Path::Relative((segments, _))) = parameter else {
        return None;
    };
    let names = segments.iter().filter_map(|segment| match segment {
        PathSeg::Named(name) => Some(name.clone()),
        // `@root` and `../` lead back to the root, where workflow and steps are.
        _ => None,
    });
    Some(names.collect())
}

/// The segments of a parameter that reads `workflow...` or `steps...`.
pub(super) fn scope_path(parameter: &Parameter) -> Option<Vec<String>> {
    path_names(parameter).filter(|names| {
        names
            .first()
            .is_some_and(|root| ROOTS.contains(&root.as_str()))
    })
}

/// The first path read from the root context (outside `each`/`with` bodies) whose
/// root is neither `workflow` nor `steps`: `{{ requirements }}`.
fn unknown_root(elements: &[TemplateElement]) -> Option<Vec<String>> {
    elements.iter().find_map(|element| match element {
        TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper)
        | TemplateElement::HelperBlock(helper) => unknown_root_in_helper(helper),
        _ => None,
    })
}

fn unknown_root_in_helper(helper: &HelperTemplate) -> Option<Vec<String>> {
    let calls_helper = !helper.params.is_empty()
        || !helper.hash.is_empty()
        || helper.block
        || helper
            .name
            .as_name()
            .is_some_and(|name| HELPER_NAMES.contains(&name));
    let name = (!calls_helper).then_some(&helper.name);
    let parameters = name
        .into_iter()
        .chain(&helper.params)
        .chain(helper.hash.values());
    let in_parameters = parameters
        .into_iter()
        .find_map(|parameter| match parameter {
            Parameter::Subexpression(inner) => {
                unknown_root(std::slice::from_ref(inner.as_element()))
            }
            other => path_names(other).filter(|names| {
                names
                    .first()
                    .is_some_and(|root| !ROOTS.contains(&root.as_str()))
            }),
        });
    // Only `if` and `unless` keep the root context in their bodies.
    let keeps_context = matches!(helper.name.as_name(), Some("if" | "unless"));
    let blocks = [&helper.template, &helper.inverse].into_iter().flatten();
    in_parameters.or_else(|| {
        blocks
            .filter(|_| keeps_context)
            .find_map(|block| unknown_root(&block.elements))
    })
}

fn collect_references(elements: &[TemplateElement], found: &mut Vec<Vec<String>>) {
    for element in elements {
        if let TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper)
        | TemplateElement::HelperBlock(helper) = element
        {
            let parameters = std::iter::once(&helper.name)
                .chain(&helper.params)
                .chain(helper.hash.values());
            for parameter in parameters {
                match parameter {
                    Parameter::Subexpression(inner) => {
                        collect_references(std::slice::from_ref(inner.as_element()), found)
                    }
                    other => found.extend(scope_path(other)),
                }
            }
            for block in [&helper.template, &helper.inverse].into_iter().flatten() {
                collect_references(&block.elements, found);
            }
        }
    }
}

/// The locals ([`super::LOCAL_ROOTS`]) a template reads, each once, in
/// order; none for a template that does not parse (its own error says why).
pub(super) fn locals_read(text: &str) -> Vec<String> {
    // A template that reads a local names it: most name none, and are not
    // parsed again here (a workflow's validation parses each template often).
    if !super::LOCAL_ROOTS.iter().any(|root| text.contains(root)) {
        return Vec::new();
    }
    let Ok(template) = Template::compile(text) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    collect_references(&template.elements, &mut paths);
    let mut roots: Vec<String> = Vec::new();
    for root in paths.into_iter().filter_map(|path| path.into_iter().next()) {
        if super::LOCAL_ROOTS.contains(&root.as_str()) && !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots
}

/// The paths a template reads under `workflow.input`, as the names after
/// `input` (`{{ workflow.input.user.name }}` gives `user`, `name`); none for
/// a template that does not parse (its own error says why).
pub(super) fn input_paths(text: &str) -> Vec<Vec<String>> {
    // As in `locals_read`: no parse for a template that cannot read one.
    if !text.contains("input") {
        return Vec::new();
    }
    let Ok(template) = Template::compile(text) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    collect_references(&template.elements, &mut paths);
    let mut found: Vec<Vec<String>> = Vec::new();
    for path in paths {
        if let [root, input, rest @ ..] = path.as_slice()
            && root == "workflow"
            && input == "input"
            && !rest.is_empty()
            && !found.iter().any(|known| known.as_slice() == rest)
        {
            found.push(rest.to_vec());
        }
    }
    found
}

/// Keeps each path once and drops paths inside another kept path (its value covers them).
pub(super) fn without_extensions(mut paths: Vec<Vec<String>>) -> Vec<Vec<String>> {
    paths.sort();
    paths.dedup();
    let covered = |path: &Vec<String>| {
        paths
            .iter()
            .any(|other| other.len() < path.len() && path.starts_with(other))
    };
    paths
        .iter()
        .filter(|path| !covered(path))
        .cloned()
        .collect()
}

/// Turns every `{{ path }}` into `{{ pallet:value path }}` so objects and arrays
/// render as JSON instead of handlebars' `[object]`.
fn rewrite_values(elements: &mut [TemplateElement]) {
    for element in elements {
        match element {
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                let reads_value = helper.params.is_empty()
                    && helper.hash.is_empty()
                    && matches!(&helper.name, Parameter::Path(path) if !HELPER_NAMES.contains(&path_text(path)));
                if reads_value {
                    let path = std::mem::replace(
                        &mut helper.name,
                        Parameter::Name(VALUE_HELPER.to_string()),
                    );
                    helper.params.push(path);
                }
            }
            TemplateElement::HelperBlock(helper) => {
                // `raw` prints its body as written: no tick there.
                let counted = helper.name.as_name() != Some("raw");
                for block in [&mut helper.template, &mut helper.inverse]
                    .into_iter()
                    .flatten()
                {
                    rewrite_values(&mut block.elements);
                    if counted {
                        block.elements.insert(0, tick());
                    }
                }
            }
            _ => {}
        }
    }
}

/// `{{ pallet:tick 0 }}`: counts a block body rendered (see [`super::meter`]).
fn tick() -> TemplateElement {
    let mut template = Template::compile("{{tick 0}}").expect("a valid template");
    let mut element = template.elements.remove(0);
    if let TemplateElement::Expression(helper) = &mut element {
        helper.name = Parameter::Name(TICK_HELPER.to_string());
    }
    element
}

pub(super) fn path_text(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

/// JSON equality where numbers compare by value (`1.0` equals `1`).
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => match (left.as_i64(), right.as_i64()) {
            (Some(left), Some(right)) => left == right,
            _ => match (left.as_u64(), right.as_u64()) {
                (Some(left), Some(right)) => left == right,
                _ => left.as_f64() == right.as_f64(),
            },
        },
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| json_equal(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left.iter().all(|(key, value)| {
                    right.get(key).is_some_and(|other| json_equal(value, other))
                })
        }
        _ => left == right,
    }
}

/// Renders the value of its one parameter with [`value_to_text`].
struct ValueHelper;

impl HelperDef for ValueHelper {
    fn call<'registry: 'context, 'context>(
        &self,
        helper: &Helper<'context>,
        _: &'registry Handlebars<'registry>,
        _: &'context Context,
        _: &mut RenderContext<'registry, 'context>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let parameter = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(VALUE_HELPER, 0))?;
        if parameter.is_value_missing() {
            return Err(RenderError::strict_error(parameter.relative_path()));
        }
        out.write(&value_to_text(parameter.value()))?;
        Ok(())
    }
}

mod helpers {
    use handlebars::handlebars_helper;

    use super::json_equal;
    use crate::template::is_truthy;

    handlebars_helper!(Equal: |left: Json, right: Json| json_equal(left, right));
    handlebars_helper!(NotEqual: |left: Json, right: Json| !json_equal(left, right));
    handlebars_helper!(All: |*values| values.iter().all(|value| is_truthy(value)));
    handlebars_helper!(Any: |*values| values.iter().any(|value| is_truthy(value)));
    handlebars_helper!(Not: |value: Json| !is_truthy(value));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_are_equal_by_value() {
        let cases = [
            (json!(1), json!(1.0), true),
            (json!(-2), json!(-2.0), true),
            (json!(1), json!(1.5), false),
            (json!(u64::MAX), json!(u64::MAX), true),
            (json!([1, {"a": 2.0}]), json!([1.0, {"a": 2}]), true),
            (json!({"a": 1}), json!({"a": 1, "b": 2}), false),
            (json!("1"), json!(1), false),
            (json!(null), json!(null), true),
        ];
        for (left, right, expected) in cases {
            assert_eq!(json_equal(&left, &right), expected, "{left} == {right}");
        }
    }

    #[test]
    fn covered_paths_are_dropped() {
        let paths = |texts: &[&str]| -> Vec<Vec<String>> {
            texts
                .iter()
                .map(|text| text.split('.').map(str::to_string).collect())
                .collect()
        };
        let cases = [
            (
                vec!["steps.a.outputs.x", "steps.a.outputs"],
                vec!["steps.a.outputs"],
            ),
            (
                vec!["workflow.input.b", "workflow.input.a", "workflow.input.b"],
                vec!["workflow.input.a", "workflow.input.b"],
            ),
            (
                vec!["steps.a.outputs.xy", "steps.a.outputs.x"],
                vec!["steps.a.outputs.x", "steps.a.outputs.xy"],
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                without_extensions(paths(&given)),
                paths(&expected),
                "{given:?}"
            );
        }
    }

    #[test]
    fn templates_are_resolved_the_cheapest_way_they_can() {
        let cases = [
            ("{{ steps.a.outputs.x }}", "lookup"),
            (" {{{ workflow.input }}} ", "lookup"),
            ("a {{ steps.a.outputs.x }} b {{! note }}", "interpolate"),
            ("{{ eq steps.a.outputs.x 1 }}", "render boolean"),
            ("{{ len steps.a.outputs.x }}", "render"),
            ("{{#if workflow.input.x}}y{{/if}}", "render"),
            (
                "{{ steps.a.outputs.x }}{{ lookup workflow.input \"y\" }}",
                "render",
            ),
        ];
        let mut compiler = Compiler::new();
        for (text, expected) in cases {
            let compiled = compiler.template("s", &Location::Condition, text).unwrap();
            let kind = match compiled {
                Compiled::Lookup(_) => "lookup",
                Compiled::Interpolate(_) => "interpolate",
                Compiled::Render { boolean: true, .. } => "render boolean",
                Compiled::Render { .. } => "render",
            };
            assert_eq!(kind, expected, "{text}");
            // `whole_value` tells the lookups apart the same way.
            assert_eq!(whole_value(text).is_some(), kind == "lookup", "{text}");
        }
    }
}
