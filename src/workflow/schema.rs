//! The embedded JSON Schema (`schemas/workflow.schema.json`), the single source of
//! truth for structure, and the translation of its errors into clear problems.
//! Over 500 lines: one translation from each jsonschema error kind to a message
//! and hint, which reads best in one place.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::validate::{Problem, suggest};

pub const WORKFLOW_SCHEMA: &str = include_str!("../../schemas/workflow.schema.json");

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(WORKFLOW_SCHEMA).expect("the embedded workflow schema is valid JSON")
});

// Compiled into the binary: compiling at runtime (and checking the schema against
// the draft 2020-12 meta-schema first) cost about 5 ms per process.
#[jsonschema::validator(path = "schemas/workflow.schema.json", draft = Draft202012)]
struct WorkflowValidator;

/// The parsed embedded schema.
pub fn schema() -> &'static Value {
    &SCHEMA
}

/// Every structural problem of `instance`, one per location, in document order.
pub fn check(instance: &Value) -> Vec<Problem> {
    // (rank, problem): a value breaking several rules gets only its most telling problem.
    let mut ranked: Vec<(u8, Problem)> = Vec::new();
    // pointer -> indices in `ranked` of the problems there (a lookup, not a scan).
    let mut by_pointer: HashMap<String, Vec<usize>> = HashMap::new();
    for error in WorkflowValidator::iter_errors(instance) {
        let rank = rank(error.kind());
        for problem in describe(&error, instance) {
            let value_level = problem.missing.is_none() && !problem.at_key;
            let here = by_pointer.entry(problem.pointer.clone()).or_default();
            let same_place = here.iter().copied().find(|&index| {
                let known = &ranked[index].1;
                known.message == problem.message || (value_level && known.missing.is_none())
            });
            match same_place {
                Some(index) if ranked[index].0 > rank => ranked[index] = (rank, problem),
                Some(_) => {}
                None => {
                    here.push(ranked.len());
                    ranked.push((rank, problem));
                }
            }
        }
    }
    let mut problems: Vec<Problem> = ranked.into_iter().map(|(_, problem)| problem).collect();
    // The generated validator reports in schema order; users read in document order.
    problems.sort_by_cached_key(|problem| document_order(&problem.pointer, instance));
    drop_required_explained_by_typos(&mut problems);
    problems
}

/// Where `pointer` is in `instance`: the index of each key or item on the way
/// (keys keep their file order), so sorting by it sorts by place in the file.
fn document_order(pointer: &str, instance: &Value) -> Vec<usize> {
    let mut order = Vec::new();
    let mut current = Some(instance);
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let (index, next) = match current {
            Some(Value::Object(fields)) => fields
                .iter()
                .enumerate()
                .find(|(_, (key, _))| **key == segment)
                .map_or((usize::MAX, None), |(index, (_, value))| {
                    (index, Some(value))
                }),
            Some(Value::Array(items)) => match segment.parse::<usize>() {
                Ok(index) => (index, items.get(index)),
                Err(_) => (usize::MAX, None),
            },
            _ => (usize::MAX, None),
        };
        order.push(index);
        current = next;
    }
    order
}

/// Lower is more telling: "not allowed here" says more than "wrong type" about the same value.
fn rank(kind: &ValidationErrorKind) -> u8 {
    match kind {
        ValidationErrorKind::FalseSchema => 0,
        ValidationErrorKind::Type { .. } => 1,
        ValidationErrorKind::Enum { .. } => 2,
        _ => 3,
    }
}

/// A typo such as `skil` shows up twice (unknown key, missing `skill`); the first says it all.
fn drop_required_explained_by_typos(problems: &mut Vec<Problem>) {
    let suggested: HashSet<(String, String)> = problems
        .iter()
        .filter_map(|problem| {
            let field = problem.suggestion.as_ref()?;
            let parent = &problem.pointer[..problem.pointer.rfind('/')?];
            Some((parent.to_string(), field.clone()))
        })
        .collect();
    problems.retain(|problem| match &problem.missing {
        Some(field) => !suggested.contains(&(problem.pointer.clone(), field.clone())),
        None => true,
    });
}

fn describe(error: &ValidationError, instance: &Value) -> Vec<Problem> {
    let pointer = error.instance_path().as_str().to_string();
    let value = error.instance();
    let subject = Subject::at(&pointer, instance);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| unknown_key(&pointer, name, &subject, instance))
            .collect(),
        ValidationErrorKind::Required { property } => {
            let field = property.as_str().unwrap_or_default().to_string();
            let mut problem = Problem::new(
                &pointer,
                format!(
                    "{} is missing the required field `{field}`",
                    subject.describe()
                ),
                missing_hint(&field, &subject),
            );
            problem.missing = Some(field);
            vec![problem]
        }
        ValidationErrorKind::Type { kind } => vec![wrong_type(&pointer, kind, value)],
        ValidationErrorKind::Enum { options } => vec![bad_choice(&pointer, options, value)],
        // An input name (`propertyNames`) is reported at its key.
        ValidationErrorKind::Pattern { .. } if pointer == "/inputs" => {
            let mut problem = bad_pattern(&pointer, value);
            let name = value.as_str().unwrap_or_default();
            problem.pointer = format!("/inputs/{}", crate::yaml::escape(name));
            problem.at_key = true;
            vec![problem]
        }
        ValidationErrorKind::Pattern { .. } => vec![bad_pattern(&pointer, value)],
        ValidationErrorKind::FalseSchema => vec![not_allowed_here(&pointer, &subject, instance)],
        ValidationErrorKind::MinItems { .. } => vec![Problem::new(
            &pointer,
            format!("`{}` has no steps", last_segment(&pointer)),
            Some("list at least one step".to_string()),
        )],
        ValidationErrorKind::MinProperties { .. } => vec![Problem::new(
            &pointer,
            format!(
                "{} has no branches",
                Subject::at(parent(&pointer), instance).describe()
            ),
            Some(branches_hint(parent(&pointer), instance).to_string()),
        )],
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            let hint = is_duration_field(&pointer).then(|| duration_hint().to_string());
            let field = last_segment(&pointer);
            let message = format!("`{field}` must be at least {limit}, found {value}");
            vec![Problem::new(&pointer, message, hint)]
        }
        ValidationErrorKind::Maximum { limit } => {
            let hint = is_duration_field(&pointer).then(|| duration_hint().to_string());
            let field = last_segment(&pointer);
            let message = format!("`{field}` must be at most {limit}, found {value}");
            vec![Problem::new(&pointer, message, hint)]
        }
        ValidationErrorKind::MaxLength { limit } => {
            let field = last_segment(&pointer);
            let length = value.as_str().map_or(0, |text| text.chars().count());
            let message =
                format!("`{field}` is {length} characters long, more than the limit of {limit}");
            let hint = "ids and output names become file names and keys: shorten it";
            vec![Problem::new(&pointer, message, Some(hint.to_string()))]
        }
        ValidationErrorKind::MinLength { .. } => vec![Problem::new(
            &pointer,
            format!("`{}` must not be empty", last_segment(&pointer)),
            None,
        )],
        _ => vec![Problem::new(
            &pointer,
            lowercase_first(&error.to_string()),
            None,
        )],
    }
}

/// What object a pointer is inside, for messages ("step `plan`", "metadata").
struct Subject {
    kind: ObjectKind,
    step_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum ObjectKind {
    Workflow,
    Metadata,
    Step,
    Branches,
    Retry,
    Backoff,
    Other,
}

impl Subject {
    fn at(pointer: &str, instance: &Value) -> Subject {
        let segments: Vec<&str> = pointer.split('/').skip(1).collect();
        let kind = match segments.as_slice() {
            [] => ObjectKind::Workflow,
            ["metadata"] => ObjectKind::Metadata,
            ["steps", _] | [.., "branches", _, _] => ObjectKind::Step,
            [.., "branches"] => ObjectKind::Branches,
            [.., "retry"] => ObjectKind::Retry,
            [.., "backoff"] => ObjectKind::Backoff,
            _ => ObjectKind::Other,
        };
        let step_pointer = match kind {
            ObjectKind::Step => pointer,
            ObjectKind::Branches | ObjectKind::Retry => parent(pointer),
            ObjectKind::Backoff => parent(parent(pointer)),
            _ => "",
        };
        let step_id = instance
            .pointer(step_pointer)
            .filter(|_| !step_pointer.is_empty())
            .and_then(|step| step.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Subject { kind, step_id }
    }

    fn step_name(&self) -> String {
        match &self.step_id {
            Some(id) => format!("step `{id}`"),
            None => "the step".to_string(),
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            ObjectKind::Workflow => "the workflow".to_string(),
            ObjectKind::Metadata => "`metadata`".to_string(),
            ObjectKind::Step => self.step_name(),
            ObjectKind::Branches => format!("`branches` of {}", self.step_name()),
            ObjectKind::Retry => format!("`retry` of {}", self.step_name()),
            ObjectKind::Backoff => format!("`backoff` of {}", self.step_name()),
            ObjectKind::Other => "this object".to_string(),
        }
    }

    /// The keys the schema allows in this kind of object.
    fn allowed_keys(&self, pointer: &str, instance: &Value) -> Vec<String> {
        let definition = match self.kind {
            ObjectKind::Workflow => return keys_of(schema().get("properties")),
            ObjectKind::Metadata => "metadata",
            ObjectKind::Step => "step",
            ObjectKind::Retry => "retry",
            ObjectKind::Backoff => "backoff",
            ObjectKind::Branches => {
                return match step_type_at(parent(pointer), instance) {
                    "parallel" => vec!["steps".to_string()],
                    _ => vec!["if_true".to_string(), "if_false".to_string()],
                };
            }
            ObjectKind::Other => return Vec::new(),
        };
        keys_of(schema()["$defs"][definition].get("properties"))
    }
}

fn keys_of(properties: Option<&Value>) -> Vec<String> {
    properties
        .and_then(Value::as_object)
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

fn step_type_at<'a>(step_pointer: &str, instance: &'a Value) -> &'a str {
    instance
        .pointer(step_pointer)
        .and_then(|step| step.get("step_type"))
        .and_then(Value::as_str)
        .unwrap_or("sequential")
}

fn unknown_key(pointer: &str, name: &str, subject: &Subject, instance: &Value) -> Problem {
    let allowed = subject.allowed_keys(pointer, instance);
    let key_pointer = format!("{pointer}/{}", crate::yaml::escape(name));
    let suggestion = suggest(name, allowed.iter().map(String::as_str)).map(str::to_string);
    let hint = match (&suggestion, subject.kind) {
        (Some(close), _) => format!("did you mean `{close}`?"),
        (None, ObjectKind::Branches) => branches_hint(parent(pointer), instance).to_string(),
        (None, _) => format!("allowed keys: {}", allowed.join(", ")),
    };
    let what = if subject.kind == ObjectKind::Branches {
        "branch"
    } else {
        "key"
    };
    let mut problem = Problem::new(
        &key_pointer,
        format!("unknown {what} `{name}` in {}", subject.describe()),
        Some(hint),
    );
    problem.at_key = true;
    problem.suggestion = suggestion;
    problem
}

fn missing_hint(field: &str, subject: &Subject) -> Option<String> {
    let hint = match (subject.kind, field) {
        (ObjectKind::Step, "skill") => {
            "a sequential step calls a skill: add `skill: NAME`, or set `step_type` to parallel, conditional, switch, for_each or loop"
        }
        (ObjectKind::Step, "condition") => {
            "conditional and switch steps need a `condition` template, e.g. \"{{ steps.ID.outputs.NAME }}\""
        }
        (ObjectKind::Step, "branches") => {
            "parallel: `branches: {steps: [...]}`; conditional: `branches: {if_true: [...], if_false: [...]}`; switch: `branches: {CASE: [...], default: [...]}`"
        }
        (ObjectKind::Branches, "steps") => {
            "a parallel step lists its concurrent steps under `branches: {steps: [...]}`"
        }
        (ObjectKind::Step, "items") => {
            "a for_each step needs the list to iterate over: `items: \"{{ steps.ID.outputs.NAME }}\"`"
        }
        (ObjectKind::Step, "steps") => {
            "for_each and loop steps run a body: list it under `steps:`, one `- id: ...` per step"
        }
        (ObjectKind::Step, "max_iterations") => {
            "a loop step must bound itself: add `max_iterations: N` (at most 1000)"
        }
        (ObjectKind::Metadata, "version") => "add a semantic version, e.g. `version: \"1.0.0\"`",
        (ObjectKind::Step, "id") => {
            "give every step a unique `id`; later steps read its output as {{ steps.ID.outputs }}"
        }
        (ObjectKind::Workflow, "steps") => {
            "list the steps under `steps:`, one `- id: ...` per step"
        }
        (ObjectKind::Retry, "max_attempts") => {
            "set how many attempts to make in total, e.g. `max_attempts: 3`"
        }
        _ => return Some(format!("add `{field}: ...` to {}", subject.describe())),
    };
    Some(hint.to_string())
}

fn branches_hint(step_pointer: &str, instance: &Value) -> &'static str {
    match step_type_at(step_pointer, instance) {
        "parallel" => "a parallel step lists its concurrent steps under `branches: {steps: [...]}`",
        "conditional" => {
            "a conditional step has `branches: {if_true: [...], if_false: [...]}` (at least one)"
        }
        _ => "a switch step has `branches: {CASE: [...], default: [...]}` with at least one case",
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn expected_name(kind: &TypeKind) -> String {
    let name = |json_type: &dyn std::fmt::Display| match json_type.to_string().as_str() {
        "string" => "a string".to_string(),
        "integer" => "an integer".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "a boolean".to_string(),
        "array" => "a list".to_string(),
        "object" => "a mapping".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(single) => name(single),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|single| name(&single))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn wrong_type(pointer: &str, kind: &TypeKind, value: &Value) -> Problem {
    let expected = expected_name(kind);
    if pointer.is_empty() {
        let message = format!("a workflow is a mapping, found {}", type_name(value));
        let hint = "start the file with `metadata:` and `steps:` at the left margin";
        return Problem::new(pointer, message, Some(hint.to_string()));
    }
    let field = last_segment(pointer);
    let message = format!(
        "wrong type for `{field}`: expected {expected}, found {}",
        type_name(value)
    );
    let hint = if field == "required" && pointer.starts_with("/inputs/") {
        Some("write `required: true` or `required: false`; a list of names is JSON Schema's `required` of an object-typed input".to_string())
    } else if field == "version" && value.is_number() {
        Some(format!(
            "YAML reads {value} as a number; quote it and give all three parts: `version: \"1.0.0\"`"
        ))
    } else if expected == "a string" && (value.is_number() || value.is_boolean()) {
        Some(format!(
            "quote the value so YAML keeps it as text: `{field}: \"{value}\"`"
        ))
    } else if is_duration_field(pointer) {
        Some(duration_hint().to_string())
    } else if expected == "a list" {
        Some(format!(
            "write a list: `{field}: [a, b]`, or one `- item` per line"
        ))
    } else if expected == "a mapping" && parent(pointer) == "/inputs" {
        Some(format!(
            "an input is a JSON Schema mapping, e.g. `{field}: {{type: string, description: ...}}`"
        ))
    } else if expected == "a mapping" {
        Some(format!(
            "write `NAME: value` pairs indented under `{field}:`"
        ))
    } else {
        None
    };
    Problem::new(pointer, message, hint)
}

fn bad_choice(pointer: &str, options: &Value, value: &Value) -> Problem {
    let choices: Vec<&str> = options
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let found = value
        .as_str()
        .map(|text| format!("`{text}`"))
        .unwrap_or_else(|| value.to_string());
    let mut hint = format!("use one of: {}", choices.join(", "));
    if let Some(close) = value
        .as_str()
        .and_then(|text| suggest(text, choices.iter().copied()))
    {
        hint = format!("did you mean `{close}`? ({hint})");
    }
    Problem::new(
        pointer,
        format!("invalid `{}` {found}", last_segment(pointer)),
        Some(hint),
    )
}

fn bad_pattern(pointer: &str, value: &Value) -> Problem {
    let text = value.as_str().unwrap_or_default();
    let (message, hint) = if is_duration_field(pointer) {
        (
            format!("invalid duration `{text}` for `{}`", last_segment(pointer)),
            duration_hint().to_string(),
        )
    } else if pointer == "/metadata/version" {
        (
            format!("`{text}` is not a semantic version"),
            "write MAJOR.MINOR.PATCH with an optional -prerelease or +build, e.g. \"1.0.0\" or \"2.1.0-beta.1\"".to_string(),
        )
    } else if pointer == "/metadata/id" {
        (
            format!("invalid workflow id `{text}`"),
            "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. \"code-generation-v1\"".to_string(),
        )
    } else if pointer == "/inputs" {
        (
            format!("invalid input name `{text}`"),
            "use letters, digits, '_' and '-', starting with a letter or '_', so templates can read it as {{ workflow.input.NAME }}".to_string(),
        )
    } else if pointer.ends_with("/id") {
        (
            format!("invalid step id `{text}`"),
            "use letters, digits, '_' and '-', starting with a letter or '_', so templates can name it: {{ steps.ID.outputs }}".to_string(),
        )
    } else {
        (
            format!("invalid value `{text}` for `{}`", last_segment(pointer)),
            String::new(),
        )
    };
    Problem::new(pointer, message, Some(hint).filter(|hint| !hint.is_empty()))
}

fn not_allowed_here(pointer: &str, subject: &Subject, instance: &Value) -> Problem {
    let field = last_segment(pointer);
    let step_pointer = parent(pointer);
    let step_type = step_type_at(step_pointer, instance);
    let step = Subject::at(step_pointer, instance).step_name();
    let _ = subject;
    let (message, hint) = match field {
        "max_concurrency" | "fail_fast" => (
            format!(
                "`{field}` is only allowed on parallel and for_each steps, and {step} is {step_type}"
            ),
            "remove it, or set `step_type: parallel` or `step_type: for_each`",
        ),
        "items" | "max_items" => (
            format!("`{field}` is only allowed on for_each steps, and {step} is {step_type}"),
            "remove it, or set `step_type: for_each`",
        ),
        "until" | "max_iterations" => (
            format!("`{field}` is only allowed on loop steps, and {step} is {step_type}"),
            "remove it, or set `step_type: loop`",
        ),
        "steps" => (
            format!(
                "`steps` (a body) is only allowed on for_each and loop steps, and {step} is {step_type}"
            ),
            "a parallel step lists its steps under `branches: {steps: [...]}`; for a body run per item or iteration set `step_type: for_each` or `step_type: loop`",
        ),
        "condition" => (
            format!(
                "`condition` is only used by conditional and switch steps, and {step} is {step_type}"
            ),
            "remove it, or set `step_type: conditional` or `step_type: switch`",
        ),
        _ => (
            format!("`{field}` is only allowed on container steps, and {step} is {step_type}"),
            "set `step_type` to parallel, conditional or switch",
        ),
    };
    Problem::new(pointer, message, Some(hint.to_string()))
}

fn is_duration_field(pointer: &str) -> bool {
    pointer.ends_with("/timeout")
        || pointer.ends_with("/backoff/initial")
        || pointer.ends_with("/backoff/max")
}

fn duration_hint() -> &'static str {
    "write seconds as a number (300, 0.5) or a string with units (\"30s\", \"5m\", \"1h 30m\")"
}

fn parent(pointer: &str) -> &str {
    pointer.rfind('/').map(|cut| &pointer[..cut]).unwrap_or("")
}

fn last_segment(pointer: &str) -> &str {
    pointer.rsplit('/').next().unwrap_or_default()
}

fn lowercase_first(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(instance: Value) -> Vec<String> {
        check(&instance)
            .into_iter()
            .map(|problem| format!("{} {}", problem.pointer, problem.message))
            .collect()
    }

    fn minimal(step: Value) -> Value {
        json!({"metadata": {"id": "x", "name": "X", "version": "1.0.0"}, "steps": [step]})
    }

    #[test]
    fn typo_of_a_required_key_is_reported_once() {
        let instance =
            json!({"metadata": {"id": "x", "name": "X", "version": "1.0.0"}, "step": []});
        assert_eq!(
            messages(instance),
            ["/step unknown key `step` in the workflow"]
        );
        let suggestion =
            check(&json!({"metadata": {"id": "x", "name": "X", "version": "1.0.0"}, "step": []}));
        assert_eq!(suggestion[0].hint.as_deref(), Some("did you mean `steps`?"));
    }

    /// The schema's `maxLength` of ids and output names is the documented limit.
    #[test]
    fn id_lengths_follow_the_limit() {
        let limit = Some(super::super::limits::MAX_ID_LENGTH as u64);
        for pointer in [
            "/$defs/metadata/properties/id",
            "/$defs/step/properties/id",
            "/$defs/step/properties/outputs",
        ] {
            let node = schema().pointer(pointer).expect(pointer);
            assert_eq!(node["maxLength"].as_u64(), limit, "{pointer}");
        }
    }

    #[test]
    fn root_must_be_a_mapping() {
        assert_eq!(
            messages(json!(["a"])),
            [" a workflow is a mapping, found a list"]
        );
    }

    /// Editors show titles and descriptions: every property has one, directly or through its `$ref`.
    #[test]
    fn every_property_is_documented() {
        fn walk(node: &Value, path: &str, undocumented: &mut Vec<String>) {
            if let Some(properties) = node.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    let target = property
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|reference| schema().pointer(reference.trim_start_matches('#')));
                    let documented = |node: Option<&Value>| {
                        node.is_some_and(|node| {
                            node.get("description").is_some() && node.get("title").is_some()
                        })
                    };
                    let is_rule = property.is_boolean() || path.contains("allOf");
                    if !is_rule && !documented(Some(property)) && !documented(target) {
                        undocumented.push(format!("{path}/{name}"));
                    }
                }
            }
            if let Some(object) = node.as_object() {
                for (key, child) in object {
                    walk(child, &format!("{path}/{key}"), undocumented);
                }
            }
            if let Some(items) = node.as_array() {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}/{index}"), undocumented);
                }
            }
        }
        let mut undocumented = Vec::new();
        walk(schema(), "", &mut undocumented);
        assert!(undocumented.is_empty(), "{undocumented:?}");
        assert_eq!(
            schema()["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    #[test]
    fn schema_errors_become_clear_messages() {
        let cases = [
            (minimal(json!({"id": "a", "skill": "s"})), vec![]),
            (
                minimal(json!({"id": "a", "skil": "s"})),
                vec!["/steps/0/skil unknown key `skil` in step `a`"],
            ),
            (
                minimal(json!({"id": "a", "step_type": "paralel"})),
                vec!["/steps/0/step_type invalid `step_type` `paralel`"],
            ),
            (
                minimal(json!({"id": "a", "skill": "s", "max_concurrency": 2})),
                vec![
                    "/steps/0/max_concurrency `max_concurrency` is only allowed on parallel and for_each steps, and step `a` is sequential",
                ],
            ),
            (
                minimal(json!({"id": "a", "skill": "s", "max_concurrency": "2", "fail_fast": 1})),
                vec![
                    "/steps/0/max_concurrency `max_concurrency` is only allowed on parallel and for_each steps, and step `a` is sequential",
                    "/steps/0/fail_fast `fail_fast` is only allowed on parallel and for_each steps, and step `a` is sequential",
                ],
            ),
            (
                minimal(json!({"id": "a", "skill": "s", "timeout": "soon"})),
                vec!["/steps/0/timeout invalid duration `soon` for `timeout`"],
            ),
            (
                minimal(
                    json!({"id": "a", "step_type": "conditional", "branches": {"if_true": [{"id": "b", "skill": "s"}]}}),
                ),
                vec!["/steps/0 step `a` is missing the required field `condition`"],
            ),
            (
                json!({"metadata": {"id": "x", "name": "X", "version": 1.0}, "steps": [{"id": "a", "skill": "s"}]}),
                vec![
                    "/metadata/version wrong type for `version`: expected a string, found a number",
                ],
            ),
        ];
        for (instance, expected) in cases {
            assert_eq!(messages(instance.clone()), expected, "{instance}");
        }
    }

    /// The schema is compiled into the binary, so nothing checks it at runtime any more.
    #[test]
    fn the_embedded_schema_is_a_valid_draft_2020_12_schema() {
        let checked = jsonschema::draft202012::meta::validate(schema());
        assert!(checked.is_ok(), "{checked:?}");
    }

    /// The compiled-in validator finds what a validator compiled at runtime finds.
    #[test]
    fn compiled_in_validator_agrees_with_a_runtime_one() {
        let runtime = jsonschema::draft202012::new(schema()).unwrap();
        let errors = |found: jsonschema::ErrorIterator<'_>| {
            let mut found: Vec<String> = found
                .map(|error| format!("{} {error}", error.instance_path().as_str()))
                .collect();
            found.sort();
            found
        };
        let cases = [
            minimal(json!({"id": "a", "skill": "s"})),
            minimal(json!({"id": "a", "skil": "s", "max_concurrency": "2", "fail_fast": 1})),
            minimal(json!({"id": "a", "step_type": "parallel", "branches": {}})),
            minimal(json!({"id": "A b", "skill": "s", "retry": {"max_attempts": 0}})),
            json!({"metadata": {"id": "x", "version": 1.0}, "steps": []}),
            json!(["a"]),
        ];
        for instance in cases {
            assert_eq!(
                errors(WorkflowValidator::iter_errors(&instance)),
                errors(runtime.iter_errors(&instance)),
                "{instance}"
            );
        }
    }

    #[test]
    fn document_order_follows_keys_and_items_as_written() {
        let instance = json!({"b": [{"y": 1, "x": 2}], "a~/": {"c": 3}});
        let cases: [(&str, Vec<usize>); 6] = [
            ("", vec![]),
            ("/b", vec![0]),
            ("/b/0/x", vec![0, 0, 1]),
            ("/a~0~1/c", vec![1, 0]),
            ("/b/9", vec![0, 9]),
            ("/missing/deeper", vec![usize::MAX, usize::MAX]),
        ];
        for (pointer, expected) in cases {
            assert_eq!(document_order(pointer, &instance), expected, "{pointer}");
        }
    }
}
