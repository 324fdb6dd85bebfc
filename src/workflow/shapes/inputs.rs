//! A call step's `inputs` against its skill's input schema: a required
//! property not given (and without a default) and a key the schema does not
//! allow are errors; a value without a template is validated against the
//! schema; a value that is exactly one `{{ steps.X.outputs... }}` must be
//! able to have a type the property allows. Other templates render to text
//! and are not checked.

use serde_json::{Map, Value};

use super::paths::{Types, conjuncts, show, types_at};
use super::{Checker, Publisher};
use crate::workflow::validate::{Node, Problem, suggest};
use crate::yaml::escape;

/// How many validation errors of one step's literal inputs are listed.
const MAX_LITERAL_ERRORS: usize = 20;

/// Keywords whose outcome depends on other properties: the literal inputs
/// are not validated alone under a schema that has them at its top.
const CONDITIONAL_KEYWORDS: [&str; 4] = ["if", "dependentSchemas", "dependencies", "not"];

pub(super) fn check(
    checker: &Checker,
    node: &Node,
    publisher: &Publisher,
    problems: &mut Vec<Problem>,
) {
    let schema = publisher.schema;
    let whose = publisher.describe("input");
    missing_required(node, schema, &whose, problems);
    for (key, value) in &node.step.inputs {
        let pointer = format!("{}/inputs/{}", node.pointer, escape(key));
        let allowed = match types_at(schema, std::slice::from_ref(key), Types::ALL) {
            Ok(allowed) => allowed,
            Err(impossible) => {
                let mut problem = Problem::new(
                    &pointer,
                    format!(
                        "step `{}` gives the input `{key}`, which {whose} does not allow: at {}, {}",
                        node.step.id,
                        show(&impossible.pointer),
                        impossible.reason
                    ),
                    Some(
                        match suggest(key, impossible.known.iter().map(String::as_str)) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => "remove the input, or give it under a name the schema has"
                                .to_string(),
                        },
                    ),
                );
                problem.at_key = true;
                problems.push(problem);
                continue;
            }
        };
        let Some(text) = value.as_str() else {
            continue;
        };
        let Some(path) = crate::template::whole_value(text) else {
            continue;
        };
        let Some(read) = checker.read_types(&path) else {
            continue;
        };
        if read.has(allowed) {
            continue;
        }
        let at = property_pointer(schema, key)
            .map(|pointer| format!(" (at {pointer})"))
            .unwrap_or_default();
        problems.push(Problem::new(
            &pointer,
            format!(
                "step `{}` passes `{}` as the input `{key}`: by its output schema that is {}, but {whose} wants {}{at}",
                node.step.id,
                path.join("."),
                read.describe(),
                allowed.describe()
            ),
            Some(format!(
                "pass a field that is {} (a value that is exactly one `{{{{ }}}}` keeps its JSON type)",
                allowed.describe()
            )),
        ));
    }
    literal_values(checker, node, schema, &whose, problems);
}

/// Required properties the step does not give, unless the schema gives a default.
fn missing_required(node: &Node, schema: &Value, whose: &str, problems: &mut Vec<Problem>) {
    let all = conjuncts(schema);
    let pointer = match node.step.inputs.is_empty() {
        true => node.pointer.clone(),
        false => format!("{}/inputs", node.pointer),
    };
    let mut listed: Vec<&str> = Vec::new();
    for (map, at) in &all {
        let required = map.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if node.step.inputs.contains_key(name) || listed.contains(&name) {
                continue;
            }
            let property = all.iter().find_map(|(map, _)| {
                map.get("properties")
                    .and_then(|properties| properties.get(name))
            });
            if property.is_some_and(|property| property.get("default").is_some()) {
                continue;
            }
            listed.push(name);
            let about = property
                .and_then(|property| property.get("description"))
                .and_then(Value::as_str)
                .map(|description| format!(" ({description})"))
                .unwrap_or_default();
            problems.push(Problem::new(
                &pointer,
                format!(
                    "step `{}` does not give the input `{name}`, which {whose} requires (at {}/required)",
                    node.step.id,
                    show(at).trim_end_matches('/')
                ),
                Some(format!("add `{name}` to the step's inputs{about}")),
            ));
        }
    }
}

/// The values without a template, validated together under the schema;
/// only errors inside them count (the others are about inputs given by
/// templates, or the checks above).
fn literal_values(
    checker: &Checker,
    node: &Node,
    schema: &Value,
    whose: &str,
    problems: &mut Vec<Problem>,
) {
    let literals: Map<String, Value> = node
        .step
        .inputs
        .iter()
        .filter(|(_, value)| !holds_template(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let conditional = conjuncts(schema).iter().any(|(map, _)| {
        CONDITIONAL_KEYWORDS
            .iter()
            .any(|keyword| map.contains_key(*keyword))
    });
    if literals.is_empty() || conditional {
        return;
    }
    // The card's schemas compiled when the card was read; one that does not is unknown.
    let Some(validator) = checker.validator(schema) else {
        return;
    };
    let probe = Value::Object(literals);
    let errors = validator
        .iter_errors(&probe)
        .filter(|error| !error.instance_path().as_str().is_empty())
        .take(MAX_LITERAL_ERRORS);
    for error in errors {
        let instance = error.instance_path().as_str().to_string();
        let key = instance
            .trim_start_matches('/')
            .split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".");
        let at = error.schema_path().as_str().to_string();
        problems.push(Problem::new(
            &format!("{}/inputs{instance}", node.pointer),
            format!(
                "step `{}`, input `{key}`: {error}, which {whose} does not accept (at {})",
                node.step.id,
                show(&at)
            ),
            Some("give a value the input schema accepts, or a template that gives one".to_string()),
        ));
    }
}

/// The schema pointer of property `key` in the first part of `schema` that declares it.
fn property_pointer(schema: &Value, key: &str) -> Option<String> {
    conjuncts(schema).into_iter().find_map(|(map, at)| {
        map.get("properties")?.get(key)?;
        Some(format!("{at}/properties/{}", escape(key)))
    })
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("{{"),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(fields) => fields.values().any(holds_template),
        _ => false,
    }
}
