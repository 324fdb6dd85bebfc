//! `{{ }}` templates in step inputs and conditions, resolved with handlebars in
//! strict mode. Pure: no IO, no code execution. OWNER: template helper.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::workflow::{Step, Workflow};

/// What templates can see: `workflow.input` and `steps.ID.outputs`.
pub struct Scope<'a> {
    pub input: &'a Value,
    /// step id -> that step's outputs object (`{"result": ...}` when `outputs: result`).
    pub steps: &'a HashMap<String, Value>,
}

/// A reference to another step found in a template: `{{ steps.plan.outputs.result.code }}`
/// gives step `plan`, path `outputs.result.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReference {
    pub step: String,
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("todo")]
    Todo,
}

/// All templates of one workflow, compiled once.
pub struct Renderer {}

impl Renderer {
    pub fn new(workflow: &Workflow) -> Result<Renderer, TemplateError> {
        let _ = workflow;
        todo!("template helper")
    }

    /// The step's inputs with every template resolved.
    pub fn inputs(&self, step: &Step, scope: &Scope) -> Result<Map<String, Value>, TemplateError> {
        let _ = (step, scope);
        todo!("template helper")
    }

    /// The step's `condition` resolved to a value (bool for conditional, case name for switch).
    pub fn condition(&self, step: &Step, scope: &Scope) -> Result<Value, TemplateError> {
        let _ = (step, scope);
        todo!("template helper")
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
            let Some(path) = token.strip_prefix("steps.") else { continue };
            let (step, path) = path.split_once('.').unwrap_or((path, ""));
            let step = step.trim_start_matches('[').trim_end_matches(']');
            if !step.is_empty() {
                found.push(StepReference { step: step.to_string(), path: path.to_string() });
            }
        }
        rest = &after[close + 2..];
    }
    found
}

/// Truthiness of a resolved condition: false, null, 0, "", "false", "0", "null", [] and {} are false.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !matches!(text.trim(), "" | "false" | "False" | "FALSE" | "0" | "null"),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}
