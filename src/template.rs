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
    let _ = text;
    todo!("template helper")
}

/// Truthiness of a resolved condition: false, null, 0, "", "false", [] and {} are false.
pub fn is_truthy(value: &Value) -> bool {
    let _ = value;
    todo!("template helper")
}
