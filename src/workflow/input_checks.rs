//! The checks of an `inputs:` block when a workflow loads: its bounds, each
//! entry a valid JSON Schema (draft 2020-12) whose `default` fits it, and
//! every `{{ workflow.input.X... }}` naming a declared input (and, as far as
//! the input's schema closes its objects, a field it can have).

use serde_json::{Map, Value};

use super::inputs::Inputs;
use super::limits;
use super::model::Workflow;
use super::validate::{Problem, Report, Tree, suggest, templates};
use crate::template::input_paths;
use crate::yaml::escape;

const TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "array", "object", "null",
];

pub(crate) fn check(workflow: &Workflow, tree: &Tree, report: &mut Report) {
    let Some(inputs) = &workflow.inputs else {
        return;
    };
    if !within_bounds(inputs, &mut report.errors) {
        return;
    }
    for (name, entry) in &inputs.0 {
        check_entry(inputs, name, entry, report);
    }
    check_references(inputs, tree, report);
}

/// The block's bounds ([`limits::MAX_INPUTS`] and the others); past them nothing else is checked.
fn within_bounds(inputs: &Inputs, errors: &mut Vec<Problem>) -> bool {
    if inputs.0.len() > limits::MAX_INPUTS {
        errors.push(Problem::new(
            "/inputs",
            format!(
                "`inputs` declares {} inputs, more than the limit of {}",
                inputs.0.len(),
                limits::MAX_INPUTS
            ),
            Some("group related inputs into one object-typed input with `properties`".to_string()),
        ));
        return false;
    }
    let bytes = serde_json::to_vec(inputs).map_or(0, |bytes| bytes.len());
    if bytes > limits::MAX_INPUTS_BYTES {
        errors.push(Problem::new(
            "/inputs",
            format!(
                "`inputs` is {} as JSON, more than the limit of {}",
                crate::error::describe_bytes(bytes),
                crate::error::describe_bytes(limits::MAX_INPUTS_BYTES)
            ),
            Some(
                "shorten the schemas: long `enum` lists and examples belong in the agents"
                    .to_string(),
            ),
        ));
        return false;
    }
    let mut within = true;
    for (name, entry) in &inputs.0 {
        let entry = Value::Object(entry.clone());
        if let Some(pointer) = too_deep(&entry, &format!("/inputs/{}", escape(name)), 0) {
            errors.push(Problem::new(
                &pointer,
                format!(
                    "the schema of input `{name}` nests more than {} levels deep",
                    limits::MAX_INPUT_SCHEMA_DEPTH
                ),
                Some(
                    "flatten it, or name the inner parts in `$defs` and refer to them with `$ref`"
                        .to_string(),
                ),
            ));
            within = false;
        }
    }
    within
}

/// The pointer of the first node deeper than [`limits::MAX_INPUT_SCHEMA_DEPTH`].
fn too_deep(value: &Value, pointer: &str, depth: usize) -> Option<String> {
    if depth > limits::MAX_INPUT_SCHEMA_DEPTH {
        return Some(pointer.to_string());
    }
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, child)| {
            too_deep(child, &format!("{pointer}/{}", escape(key)), depth + 1)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, child)| too_deep(child, &format!("{pointer}/{index}"), depth + 1)),
        _ => None,
    }
}

fn check_entry(inputs: &Inputs, name: &str, entry: &Map<String, Value>, report: &mut Report) {
    let pointer = format!("/inputs/{}", escape(name));
    let Some(schema) = inputs.field_schema(name) else {
        return;
    };
    let meta = jsonschema::draft202012::meta::validator();
    let mut valid = true;
    for error in meta.iter_errors(&schema).take(limits::MAX_DIAGNOSTICS) {
        valid = false;
        let at = format!("{pointer}{}", error.instance_path().as_str());
        report.errors.push(schema_problem(
            name,
            &at,
            error.instance(),
            &error.to_string(),
        ));
    }
    if !valid {
        return;
    }
    let validator = match jsonschema::draft202012::new(&schema) {
        Ok(validator) => validator,
        Err(error) => {
            let at = format!("{pointer}{}", error.instance_path().as_str());
            let at = match at.ends_with('/') {
                true => pointer.clone(),
                false => at,
            };
            report.errors.push(Problem::new(
                &at,
                format!("the schema of input `{name}` does not compile: {error}"),
                Some("a `pattern` is a regular expression, a `$ref` points inside the input's own schema (`#/$defs/NAME`); pallet reads draft 2020-12".to_string()),
            ));
            return;
        }
    };
    if let Some(default) = entry.get("default") {
        let reasons: Vec<String> = validator
            .iter_errors(default)
            .take(5)
            .map(|error| {
                let at = error.instance_path().as_str();
                match at.is_empty() {
                    true => error.to_string(),
                    false => format!("{at}: {error}"),
                }
            })
            .collect();
        if !reasons.is_empty() {
            report.errors.push(Problem::new(
                &format!("{pointer}/default"),
                format!(
                    "the default of input `{name}` does not match its schema: {}",
                    reasons.join("; ")
                ),
                Some("change the default or the schema: the default is what a run without the input gets".to_string()),
            ));
        }
        if entry.get("required") == Some(&Value::Bool(true)) {
            let mut warning = Problem::new(
                &format!("{pointer}/required"),
                format!("`required: true` has no effect on input `{name}`, which has a `default`"),
                Some(
                    "a run without the input gets the default; remove `required` or the `default`"
                        .to_string(),
                ),
            );
            warning.at_key = true;
            report.warnings.push(warning);
        }
    }
}

fn schema_problem(name: &str, pointer: &str, value: &Value, reason: &str) -> Problem {
    let (message, hint) = if pointer.ends_with("/type") {
        let found = match value {
            Value::String(text) => format!(" `{text}`"),
            _ => String::new(),
        };
        let close = value
            .as_str()
            .and_then(|text| suggest(text, TYPES))
            .map(|close| format!("did you mean `{close}`? "))
            .unwrap_or_default();
        (
            format!("invalid `type`{found} in the schema of input `{name}`"),
            format!("{close}use one of: {}", TYPES.join(", ")),
        )
    } else {
        (
            format!("the schema of input `{name}` is not a valid JSON Schema: {reason}"),
            "each input is a JSON Schema (draft 2020-12) for that field, plus `required: true|false`".to_string(),
        )
    };
    Problem::new(pointer, message, Some(hint))
}

/// Every `{{ workflow.input.X... }}` of every step names a declared input;
/// reading an optional input without a default is a warning (templates are
/// strict: a run without it fails there).
fn check_references(inputs: &Inputs, tree: &Tree, report: &mut Report) {
    for node in &tree.nodes {
        for (pointer, text) in templates(node) {
            for path in input_paths(text) {
                if let Some((message, hint)) = unknown_path(inputs, &path) {
                    report
                        .errors
                        .push(Problem::new(&pointer, message, Some(hint)));
                    continue;
                }
                let name = &path[0];
                let absent_fails = !inputs.is_required(name)
                    && inputs
                        .0
                        .get(name)
                        .is_some_and(|entry| !entry.contains_key("default"));
                let known = report.warnings.iter().any(|warning| {
                    warning.pointer == pointer && warning.message.contains(&format!("`{name}`"))
                });
                if absent_fails && !known {
                    report.warnings.push(Problem::new(
                        &pointer,
                        format!("input `{name}` is optional and has no `default`: a run without it fails at this template"),
                        Some("give it a `default` (the value a run without it gets), or drop `required: false`".to_string()),
                    ));
                }
            }
        }
    }
}

impl Workflow {
    /// The first-level input names the templates read (`workflow.input.NAME`),
    /// once each, in step order: what a workflow without `inputs` expects.
    pub fn inputs_read(&self) -> Vec<String> {
        let tree = Tree::new(self);
        let mut names: Vec<String> = Vec::new();
        for node in &tree.nodes {
            for (_, text) in templates(node) {
                for path in input_paths(text) {
                    if !names.contains(&path[0]) {
                        names.push(path[0].clone());
                    }
                }
            }
        }
        names
    }
}

/// Why `workflow.input.PATH` cannot exist under `inputs`, if it cannot.
fn unknown_path(inputs: &Inputs, path: &[String]) -> Option<(String, String)> {
    let (first, rest) = path.split_first()?;
    let Some(schema) = inputs.field_schema(first) else {
        let declared: Vec<&str> = inputs.names().collect();
        let close = suggest(first, declared.iter().copied())
            .map(|close| format!("did you mean `{close}`? "))
            .unwrap_or_default();
        let listed = match declared.is_empty() {
            true => "`inputs` is empty (the workflow takes no input)".to_string(),
            false => format!("declared: {}", declared.join(", ")),
        };
        return Some((
            format!(
                "template reads `workflow.input.{first}`, but `inputs` declares no input `{first}`"
            ),
            format!("{close}{listed}; or add `{first}` under `inputs:`"),
        ));
    };
    let mut current = schema;
    let mut walked = format!("workflow.input.{first}");
    for segment in rest {
        let next = match field_of(&current, segment) {
            Field::Known(next) => next,
            Field::Unknown => return None,
            Field::Refused(why) => {
                return Some((
                    format!("template reads `{walked}.{segment}`, but {why}"),
                    format!(
                        "read a field the schema of input `{first}` declares, or add `{segment}` to it"
                    ),
                ));
            }
        };
        walked = format!("{walked}.{segment}");
        current = next;
    }
    None
}

enum Field {
    /// The schema of the field.
    Known(Value),
    /// The schema does not say (open objects, `$ref`, combinators): not checked.
    Unknown,
    /// The schema rules the field out, and why.
    Refused(String),
}

/// What `schema` says of its field or item `segment`.
fn field_of(schema: &Value, segment: &str) -> Field {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let scalar = |name: &&str| !matches!(*name, "object" | "array");
    if !types.is_empty() && types.iter().all(scalar) {
        return Field::Refused(format!(
            "that value is {}, which has no fields",
            types.join(" or ")
        ));
    }
    if types == ["array"] {
        return match (segment.parse::<usize>(), schema.get("items")) {
            (Ok(_), Some(items)) => Field::Known(items.clone()),
            (Ok(_), None) => Field::Unknown,
            (Err(_), _) => Field::Refused(
                "that value is an array: read an item by its index, e.g. `.0`".to_string(),
            ),
        };
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(field) = properties.and_then(|properties| properties.get(segment)) {
        return Field::Known(field.clone());
    }
    let closed = [
        schema.get("additionalProperties"),
        schema.get("unevaluatedProperties"),
    ]
    .into_iter()
    .flatten()
    .any(|rule| rule == &Value::Bool(false));
    let open_by_pattern = schema.get("patternProperties").is_some();
    if closed && !open_by_pattern {
        let names: Vec<&str> = properties
            .into_iter()
            .flat_map(|properties| properties.keys().map(String::as_str))
            .collect();
        let close = suggest(segment, names.iter().copied())
            .map(|close| format!(" (did you mean `{close}`?)"))
            .unwrap_or_default();
        return Field::Refused(format!(
            "its schema allows only: {}{close}",
            names.join(", ")
        ));
    }
    Field::Unknown
}

#[cfg(test)]
mod tests {
    use crate::workflow::model::Workflow;
    use crate::workflow::validate::check;

    fn problems(inputs: &str, input_text: &str) -> (Vec<String>, Vec<String>) {
        let text = format!(
            "metadata: {{id: x, name: X, version: 1.0.0}}\ninputs:\n{inputs}\nsteps:\n  - {{id: a, skill: s, inputs: {{t: '{input_text}'}}}}\n"
        );
        let workflow: Workflow = crate::yaml::from_snippet(&text).expect("test workflow parses");
        let report = check(&workflow);
        let show = |problems: Vec<crate::workflow::validate::Problem>| {
            problems
                .into_iter()
                .map(|problem| format!("{}: {}", problem.pointer, problem.message))
                .collect()
        };
        (show(report.errors), show(report.warnings))
    }

    const BLOCK: &str = "  name: {type: string}
  user:
    type: object
    additionalProperties: false
    properties:
      id: {type: integer}
      tags: {type: array, items: {type: string}}
  open: {type: object}
";

    #[test]
    fn references_name_declared_inputs_and_closed_fields() {
        let cases: [(&str, Vec<&str>); 8] = [
            (
                "{{ workflow.input.name }} {{ workflow.input.user.id }} {{ workflow.input }}",
                vec![],
            ),
            ("{{ workflow.input.open.anything.deeper }}", vec![]),
            ("{{ workflow.input.user.tags.0 }}", vec![]),
            (
                "{{ workflow.input.nmae }}",
                vec![
                    "/steps/0/inputs/t: template reads `workflow.input.nmae`, but `inputs` declares no input `nmae`",
                ],
            ),
            (
                "{{ workflow.input.user.login }}",
                vec![
                    "/steps/0/inputs/t: template reads `workflow.input.user.login`, but its schema allows only: id, tags",
                ],
            ),
            (
                "{{ workflow.input.name.first }}",
                vec![
                    "/steps/0/inputs/t: template reads `workflow.input.name.first`, but that value is string, which has no fields",
                ],
            ),
            (
                "{{ workflow.input.user.tags.first }}",
                vec![
                    "/steps/0/inputs/t: template reads `workflow.input.user.tags.first`, but that value is an array: read an item by its index, e.g. `.0`",
                ],
            ),
            (
                "{{#if workflow.input.missing}}x{{/if}}",
                vec![
                    "/steps/0/inputs/t: template reads `workflow.input.missing`, but `inputs` declares no input `missing`",
                ],
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(problems(BLOCK, template).0, expected, "{template}");
        }
    }

    #[test]
    fn reading_an_optional_input_without_default_is_a_warning() {
        let block =
            "  mode: {type: string, required: false}\n  level: {type: integer, default: 1}\n";
        let (errors, warnings) = problems(
            block,
            "{{ workflow.input.mode }} {{ workflow.input.mode }} {{ workflow.input.level }}",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            warnings,
            [
                "/steps/0/inputs/t: input `mode` is optional and has no `default`: a run without it fails at this template"
            ]
        );
    }

    #[test]
    fn entries_are_valid_schemas_with_fitting_defaults() {
        let block = "  a: {type: strin}\n  b: {type: integer, default: many}\n  c: {type: string, pattern: '(', required: false}\n  d: {default: 1, required: true}\n";
        let (errors, warnings) = problems(block, "{{ workflow.input.a }}");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("/inputs/a/type: invalid `type`"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("/inputs/b/default: the default of input `b` does not match its schema: \"many\" is not of type \"integer\""),
            "{errors:?}"
        );
        assert!(errors[2].starts_with("/inputs/c"), "{errors:?}");
        assert_eq!(
            warnings,
            [
                "/inputs/d/required: `required: true` has no effect on input `d`, which has a `default`"
            ]
        );
    }

    #[test]
    fn the_block_is_bounded() {
        let many: String = (0..=crate::workflow::limits::MAX_INPUTS)
            .map(|index| format!("  i{index}: {{}}\n"))
            .collect();
        let (errors, _) = problems(&many, "x");
        assert_eq!(
            errors,
            ["/inputs: `inputs` declares 101 inputs, more than the limit of 100"]
        );
        let deep = format!(
            "  d: {}{}\n",
            "{items: ".repeat(20),
            "{}".to_string() + &"}".repeat(20)
        );
        let (errors, _) = problems(&deep, "x");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("nests more than 16 levels deep"),
            "{errors:?}"
        );
    }
}
