//! Typed workflow inputs: the `inputs:` block (a JSON Schema per field of
//! `workflow.input`, with pallet's `required: true|false`), and the one check
//! of a run's input against it — defaults filled in, every problem listed by
//! its JSON pointer — that every way of starting a run goes through:
//! `pallet run`, the service's `POST /workflows` and `execute_workflow`
//! (through [`super::LoadedWorkflow::check_input`]). The checks of the block
//! itself at load time live in `input_checks.rs`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::limits;
use super::validate::suggest;
use crate::yaml::escape;

/// The `inputs:` block: input name -> its entry (a JSON Schema, plus pallet's
/// boolean `required`), in the order written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Inputs(pub IndexMap<String, Map<String, Value>>);

/// One declared input as `--help-inputs`, `pallet show` and the JSON views show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputInfo {
    pub name: String,
    /// `string`, `integer | null`, `one of: fast, slow`, `any`.
    #[serde(rename = "type")]
    pub type_name: String,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The field's JSON Schema (the entry without pallet's `required`).
    pub schema: Value,
}

impl Inputs {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The field's JSON Schema: the entry without pallet's boolean `required`
    /// (an array `required` is JSON Schema's own, for object-typed fields).
    pub fn field_schema(&self, name: &str) -> Option<Value> {
        let entry = self.0.get(name)?;
        Some(field_schema(entry))
    }

    /// Required unless `required: false` or it has a `default`.
    pub fn is_required(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|entry| match entry.get("required") {
                Some(Value::Bool(required)) => *required && !entry.contains_key("default"),
                _ => !entry.contains_key("default"),
            })
    }

    /// The whole block as one JSON Schema for `workflow.input` (an object
    /// with exactly these fields). Each field's `$ref`s are relative to its
    /// own schema (runs check each field with its own validator), so here
    /// each field is a schema resource of its own (`$id`).
    pub fn object_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .0
            .iter()
            .map(|(name, entry)| {
                let mut schema = field_schema(entry);
                if let Value::Object(fields) = &mut schema
                    && !fields.contains_key("$id")
                {
                    let id = format!("urn:pallet:input:{}", escape(name));
                    fields.insert("$id".to_string(), Value::String(id));
                }
                (name.clone(), schema)
            })
            .collect();
        let required: Vec<&str> = self.names().filter(|name| self.is_required(name)).collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    pub fn describe(&self) -> Vec<InputInfo> {
        self.0
            .iter()
            .map(|(name, entry)| InputInfo {
                name: name.clone(),
                type_name: type_name(entry),
                required: self.is_required(name),
                default: entry.get("default").cloned(),
                description: entry
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                schema: field_schema(entry),
            })
            .collect()
    }

    /// Each field's compiled validator, or why the first one does not compile.
    pub(crate) fn compile(&self) -> Result<Vec<(String, jsonschema::Validator)>, String> {
        self.0
            .iter()
            .map(|(name, entry)| {
                jsonschema::draft202012::new(&field_schema(entry))
                    .map(|validator| (name.clone(), validator))
                    .map_err(|error| format!("input `{name}`: {error}"))
            })
            .collect()
    }
}

fn field_schema(entry: &Map<String, Value>) -> Value {
    let mut schema = entry.clone();
    // Anything but a list is pallet's key (a wrong type is the workflow schema's problem).
    if schema
        .get("required")
        .is_some_and(|required| !required.is_array())
    {
        schema.remove("required");
    }
    Value::Object(schema)
}

/// A short name of what a field accepts, from its `type`, `enum` or `const`.
fn type_name(entry: &Map<String, Value>) -> String {
    let value_text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if let Some(options) = entry.get("enum").and_then(Value::as_array) {
        let options: Vec<String> = options.iter().map(value_text).collect();
        return format!("one of: {}", options.join(", "));
    }
    if let Some(constant) = entry.get("const") {
        return format!("exactly {}", value_text(constant));
    }
    let of_items = |name: &str| match entry
        .get("items")
        .and_then(|items| items.get("type"))
        .and_then(Value::as_str)
    {
        Some(item) if name == "array" => format!("array of {item}"),
        _ => name.to_string(),
    };
    match entry.get("type") {
        Some(Value::String(name)) => of_items(name),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(of_items)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    }
}

/// One way a run's input does not fit the workflow's inputs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputProblem {
    /// JSON pointer into the run's input: `/requirements`, `/limits/max`.
    pub pointer: String,
    pub message: String,
}

impl InputProblem {
    fn new(pointer: String, message: String) -> InputProblem {
        InputProblem { pointer, message }
    }

    /// `/requirements: required input is missing`.
    pub fn line(&self) -> String {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        format!("{pointer}: {}", self.message)
    }
}

/// A run's input refused before any step: every problem, by JSON pointer.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the input does not match the inputs of workflow `{workflow}` ({})",
    problem_count(.problems.len() + .omitted)
)]
pub struct InputError {
    pub workflow: String,
    /// The first problems, at most [`limits::MAX_DIAGNOSTICS`].
    pub problems: Vec<InputProblem>,
    /// Problems found beyond those listed.
    pub omitted: usize,
    /// The inputs the workflow declares, in order.
    pub declared: Vec<String>,
}

fn problem_count(count: usize) -> String {
    match count {
        1 => "1 problem".to_string(),
        _ => format!("{count} problems"),
    }
}

impl InputError {
    /// Each problem on its line, then how many were left out.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.problems.iter().map(InputProblem::line).collect();
        if self.omitted > 0 {
            lines.push(format!(
                "and {} more (only the first {} are listed)",
                self.omitted,
                limits::MAX_DIAGNOSTICS
            ));
        }
        lines
    }

    /// One line for a step's failure (`execute_workflow`): the message and every problem.
    pub fn summary(&self) -> String {
        format!("{self}: {}", self.lines().join("; "))
    }
}

/// Checks `input` against `inputs` with the fields' `validators` (from
/// [`Inputs::compile`]) and gives it back with the defaults of absent fields.
pub(crate) fn check(
    workflow: &str,
    inputs: &Inputs,
    validators: &[(String, jsonschema::Validator)],
    input: Value,
) -> Result<Value, InputError> {
    let declared: Vec<String> = inputs.names().map(str::to_string).collect();
    let mut problems = Vec::new();
    let mut fields = match input {
        Value::Object(fields) => fields,
        other => {
            let found = json_kind(&other);
            problems.push(InputProblem::new(
                String::new(),
                format!("the input must be an object of named inputs, found {found}"),
            ));
            Map::new()
        }
    };
    for name in fields.keys() {
        if !inputs.0.contains_key(name) {
            problems.push(unknown(name, &declared));
        }
    }
    for (name, validator) in validators {
        let pointer = format!("/{}", escape(name));
        match fields.get(name) {
            Some(value) => {
                for error in validator.iter_errors(value).take(limits::MAX_DIAGNOSTICS) {
                    let at = format!("{pointer}{}", error.instance_path().as_str());
                    problems.push(InputProblem::new(at, error.to_string()));
                }
            }
            None => match inputs.0[name].get("default") {
                Some(default) => {
                    fields.insert(name.clone(), default.clone());
                }
                None if inputs.is_required(name) => {
                    problems.push(missing(name, &inputs.0[name]));
                }
                None => {}
            },
        }
    }
    if problems.is_empty() {
        return Ok(Value::Object(fields));
    }
    let omitted = problems.len().saturating_sub(limits::MAX_DIAGNOSTICS);
    problems.truncate(limits::MAX_DIAGNOSTICS);
    Err(InputError {
        workflow: workflow.to_string(),
        problems,
        omitted,
        declared,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn unknown(name: &str, declared: &[String]) -> InputProblem {
    let listed = match declared.is_empty() {
        true => "this workflow declares no inputs".to_string(),
        false => format!("the declared inputs are: {}", declared.join(", ")),
    };
    let close = suggest(name, declared.iter().map(String::as_str))
        .map(|close| format!("did you mean `{close}`? "))
        .unwrap_or_default();
    InputProblem::new(
        format!("/{}", escape(name)),
        format!("unknown input `{name}`; {close}{listed}"),
    )
}

fn missing(name: &str, entry: &Map<String, Value>) -> InputProblem {
    let what = match entry.get("description").and_then(Value::as_str) {
        Some(description) => format!(" ({}: {description})", type_name(entry)),
        None => format!(" ({})", type_name(entry)),
    };
    InputProblem::new(
        format!("/{}", escape(name)),
        format!("the required input `{name}` is missing{what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(yaml: &str) -> Inputs {
        crate::yaml::from_snippet(yaml).expect("test inputs parse")
    }

    fn checked(block: &Inputs, input: Value) -> Result<Value, Vec<String>> {
        let validators = block.compile().unwrap();
        check("w", block, &validators, input)
            .map_err(|error| error.problems.iter().map(InputProblem::line).collect())
    }

    const BLOCK: &str = "
requirements: {type: string, description: What to build}
count: {type: integer, minimum: 1, default: 3}
language: {enum: [python, rust], required: false}
limits:
  type: object
  required: [max]
  properties: {max: {type: integer}}
";

    #[test]
    fn defaults_fill_absent_fields_and_problems_carry_pointers() {
        let block = inputs(BLOCK);
        let cases = [
            (
                json!({"requirements": "x", "limits": {"max": 1}}),
                Ok(json!({"requirements": "x", "limits": {"max": 1}, "count": 3})),
            ),
            (
                json!({"requirements": "x", "count": 7, "limits": {"max": 1}}),
                Ok(json!({"requirements": "x", "count": 7, "limits": {"max": 1}})),
            ),
            (
                json!({"requirments": 1, "count": "x", "language": "go", "limits": {}}),
                Err(vec![
                    "/requirments: unknown input `requirments`; did you mean `requirements`? the declared inputs are: requirements, count, language, limits".to_string(),
                    "/requirements: the required input `requirements` is missing (string: What to build)".to_string(),
                    "/count: \"x\" is not of type \"integer\"".to_string(),
                    "/language: \"go\" is not one of \"python\" or \"rust\"".to_string(),
                    "/limits: \"max\" is a required property".to_string(),
                ]),
            ),
            (
                json!({"requirements": "x", "limits": {"max": "big"}}),
                Err(vec![
                    "/limits/max: \"big\" is not of type \"integer\"".to_string(),
                ]),
            ),
            (
                json!([1]),
                Err(vec![
                    "/: the input must be an object of named inputs, found an array".to_string(),
                    "/requirements: the required input `requirements` is missing (string: What to build)".to_string(),
                    "/limits: the required input `limits` is missing (object)".to_string(),
                ]),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(checked(&block, input.clone()), expected, "{input}");
        }
    }

    #[test]
    fn required_defaults_and_the_object_schema() {
        let block = inputs(BLOCK);
        let required: Vec<bool> = block.names().map(|name| block.is_required(name)).collect();
        assert_eq!(required, [true, false, false, true]);
        let schema = block.object_schema();
        assert_eq!(schema["required"], json!(["requirements", "limits"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        // An array `required` is JSON Schema's, kept; a boolean one is pallet's, removed.
        assert_eq!(schema["properties"]["limits"]["required"], json!(["max"]));
        assert!(schema["properties"]["language"].get("required").is_none());
        // The whole schema checks as the fields do, `$ref`s inside a field included.
        let referring = inputs(
            "tags: {type: array, items: {$ref: '#/$defs/tag'}, $defs: {tag: {type: string}}}",
        );
        let whole = jsonschema::draft202012::new(&referring.object_schema()).unwrap();
        assert!(whole.is_valid(&json!({"tags": ["a"]})));
        assert!(!whole.is_valid(&json!({"tags": [1]})));
        assert!(checked(&referring, json!({"tags": [1]})).is_err());
        let types: Vec<String> = block
            .describe()
            .into_iter()
            .map(|info| info.type_name)
            .collect();
        assert_eq!(
            types,
            ["string", "integer", "one of: python, rust", "object"]
        );
    }
}
