//! YAML -> model, reporting every problem with file:line:column and JSON pointer.
//!
//! Pipeline: index node positions from the YAML events, convert to JSON, check
//! against the embedded schema, deserialize into the model, run the semantic checks.

use std::collections::HashSet;
use std::fmt;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use super::inputs::{InputError, InputProblem};
use super::model::Workflow;
use super::validate::Problem;
use super::{limits, schema, validate};
use crate::template::Renderer;
use crate::yaml::{FileKind, Position, PositionIndex, escape};

/// How YAML problems about the whole file name a workflow file.
const WORKFLOW: FileKind = FileKind {
    article: "a",
    name: "workflow",
    contents: "a workflow needs `metadata` and `steps`",
};

/// A workflow parsed and checked (schema + semantic), with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    pub workflow: Workflow,
    /// File path or reference the text came from, as shown in diagnostics.
    pub origin: String,
    /// The exact bytes loaded (kept for digests and for pushing byte for byte).
    pub text: String,
    /// Problems that do not stop the workflow (e.g. a `skill` ignored on a container).
    pub warnings: Vec<Diagnostic>,
    /// Its templates, compiled at the first run and shared by every later run
    /// of this value (a service's runs of one workflow share one).
    templates: OnceLock<Result<Arc<Renderer>, String>>,
    /// The validators of its `inputs`, compiled at the first run, as the templates.
    input_validators: OnceLock<Result<Arc<InputValidators>, String>>,
}

type InputValidators = Vec<(String, jsonschema::Validator)>;

impl LoadedWorkflow {
    /// The compiled templates of the workflow, or why they do not compile.
    pub fn renderer(&self) -> Result<Arc<Renderer>, String> {
        self.templates
            .get_or_init(|| {
                Renderer::new(self.workflow.template_sites())
                    .map(Arc::new)
                    .map_err(|error| crate::error::chain_of(&error))
            })
            .clone()
    }

    /// The input a run of this workflow starts with: `input` checked against
    /// the `inputs` block, with the defaults of absent fields filled in.
    /// Every way of starting a run calls this before any step (`pallet run`,
    /// the service, `execute_workflow`); without an `inputs` block any input
    /// is taken as it is.
    pub fn check_input(&self, input: Value) -> Result<Value, InputError> {
        let Some(inputs) = &self.workflow.inputs else {
            return Ok(input);
        };
        let id = &self.workflow.metadata.id;
        let validators = self
            .input_validators
            .get_or_init(|| inputs.compile().map(Arc::new))
            .clone()
            // Loading compiled them once already: only a broken build gets here.
            .map_err(|reason| InputError {
                workflow: id.clone(),
                problems: vec![InputProblem {
                    pointer: String::new(),
                    message: reason,
                }],
                omitted: 0,
                declared: inputs.names().map(str::to_string).collect(),
            })?;
        super::inputs::check(id, inputs, &validators, input)
    }

    /// Problems found in this workflow after it loaded (against the schemas
    /// of its agents, say) as diagnostics at their file:line:column, in file order.
    pub fn diagnostics(&self, problems: Vec<Problem>) -> Vec<Diagnostic> {
        if problems.is_empty() {
            return Vec::new();
        }
        // It parsed when it loaded; the index of positions is not kept for the rare problem.
        let index = PositionIndex::parse(&self.text, WORKFLOW)
            .ok()
            .map(|(_, index)| index);
        let locator = Locator {
            origin: &self.origin,
            index: index.as_ref(),
        };
        match index {
            Some(_) => locator.locate(problems),
            None => problems
                .into_iter()
                .map(|problem| {
                    let start = Position { line: 1, column: 1 };
                    locator.at(start, &problem.pointer, problem.message, problem.hint)
                })
                .collect(),
        }
    }
}

/// One problem found in a workflow file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// JSON pointer of the offending node, e.g. `/steps/1/timeout`.
    pub pointer: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// The lines a diagnostic is shown as: where and what, then the JSON
    /// pointer, then the hint. Its line breaks are these, never the input's,
    /// so a printer can make each line inert on its own.
    pub fn lines(&self) -> Vec<String> {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        let mut lines = vec![
            format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            ),
            format!("  at {pointer}"),
        ];
        if let Some(hint) = &self.hint {
            lines.push(format!("  hint: {hint}"));
        }
        lines
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.lines().join("\n"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read workflow file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid workflow ({})", .file, problem_count(.diagnostics.len() + .omitted))]
    Invalid {
        file: String,
        /// The first problems in file order, at most [`limits::MAX_DIAGNOSTICS`].
        diagnostics: Vec<Diagnostic>,
        /// Problems found beyond those listed.
        omitted: usize,
    },
}

fn problem_count(count: usize) -> String {
    match count {
        1 => "1 problem".to_string(),
        _ => format!("{count} problems"),
    }
}

impl LoadError {
    /// `file` is invalid: the first [`limits::MAX_DIAGNOSTICS`] of `diagnostics`
    /// in file order, and how many more.
    pub fn invalid(file: &str, mut diagnostics: Vec<Diagnostic>) -> LoadError {
        diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
        let omitted = diagnostics.len().saturating_sub(limits::MAX_DIAGNOSTICS);
        diagnostics.truncate(limits::MAX_DIAGNOSTICS);
        LoadError::Invalid {
            file: file.to_string(),
            diagnostics,
            omitted,
        }
    }

    /// `and N more problems` when problems beyond the listed ones were left out.
    pub fn omitted_line(&self) -> Option<String> {
        match self {
            LoadError::Invalid { omitted, .. } if *omitted > 0 => Some(format!(
                "and {omitted} more problem{} (only the first {} are listed)",
                if *omitted == 1 { "" } else { "s" },
                limits::MAX_DIAGNOSTICS
            )),
            _ => None,
        }
    }
}

pub fn load_file(path: &Path) -> Result<LoadedWorkflow, LoadError> {
    let origin = path.display().to_string();
    let read_error = |source| LoadError::Read {
        path: origin.clone(),
        source,
    };
    // Read one byte past the limit, not a whole oversized file.
    let limit = limits::max_workflow_bytes();
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > limit {
        return Err(too_large(&origin, limit));
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(std::io::Error::new(ErrorKind::InvalidData, error)))?;
    load_str(&origin, &text)
}

/// Loads workflow text (at most [`limits::max_workflow_bytes`]), checked
/// against the schema and by the semantic checks.
pub fn load_str(origin: &str, text: &str) -> Result<LoadedWorkflow, LoadError> {
    let locator = Locator {
        origin,
        index: None,
    };
    let limit = limits::max_workflow_bytes();
    if text.len() > limit {
        return Err(too_large(origin, limit));
    }
    let (value, index) = PositionIndex::parse(text, WORKFLOW).map_err(|problem| {
        let diagnostic = locator.at(
            problem.position,
            &problem.pointer,
            problem.message,
            problem.hint,
        );
        locator.invalid(vec![diagnostic])
    })?;
    let locator = Locator {
        origin,
        index: Some(&index),
    };
    let mut diagnostics: Vec<Diagnostic> = index
        .duplicate_keys()
        .iter()
        .map(|(pointer, position)| {
            let (message, hint) = crate::yaml::duplicate_key(pointer);
            locator.at(*position, pointer, message, Some(hint))
        })
        .collect();
    let mut structural = schema::check(&value);
    check_durations(&value, "", &mut structural);
    diagnostics.extend(locator.locate(structural));
    // Some schema problems (a bad id pattern, say) still deserialize: then the semantic
    // problems are reported in the same pass, so the user sees everything at once.
    let workflow = match serde_json::from_value::<Workflow>(value) {
        Ok(workflow) => workflow,
        Err(error) if diagnostics.is_empty() => {
            let message = format!("invalid workflow: {error}");
            let position = Position { line: 1, column: 1 };
            return Err(locator.invalid(vec![locator.at(position, "", message, None)]));
        }
        Err(_) => return Err(locator.invalid(diagnostics)),
    };
    let report = validate::check(&workflow);
    diagnostics.extend(locator.locate(report.errors));
    if !diagnostics.is_empty() {
        return Err(locator.invalid(diagnostics));
    }
    Ok(LoadedWorkflow {
        workflow,
        origin: origin.to_string(),
        text: text.to_string(),
        warnings: locator.locate(report.warnings),
        templates: OnceLock::new(),
        input_validators: OnceLock::new(),
    })
}

fn too_large(origin: &str, limit: usize) -> LoadError {
    let message = format!(
        "the workflow is larger than {} (the limit)",
        crate::error::describe_bytes(limit)
    );
    let hint = format!(
        "split it into workflows run with `execute_workflow`, or raise the limit with {}=BYTES",
        limits::MAX_WORKFLOW_BYTES_ENV
    );
    let locator = Locator {
        origin,
        index: None,
    };
    let position = Position { line: 1, column: 1 };
    locator.invalid(vec![locator.at(position, "", message, Some(hint))])
}

/// Turns problems found on JSON pointers into diagnostics with file:line:column.
struct Locator<'a> {
    origin: &'a str,
    index: Option<&'a PositionIndex>,
}

impl Locator<'_> {
    fn at(
        &self,
        position: Position,
        pointer: &str,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.origin.to_string(),
            line: position.line,
            column: position.column,
            pointer: pointer.to_string(),
            message,
            hint,
        }
    }

    fn locate(&self, problems: Vec<Problem>) -> Vec<Diagnostic> {
        let Some(index) = self.index else {
            return Vec::new();
        };
        let mut diagnostics: Vec<Diagnostic> = problems
            .into_iter()
            .map(|problem| {
                let position = if problem.at_key {
                    index.key(&problem.pointer)
                } else {
                    index.node(&problem.pointer)
                };
                self.at(position, &problem.pointer, problem.message, problem.hint)
            })
            .collect();
        diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
        diagnostics
    }

    fn invalid(&self, diagnostics: Vec<Diagnostic>) -> LoadError {
        LoadError::invalid(self.origin, diagnostics)
    }
}

/// Why humantime rejects a duration string, or that it is longer than the maximum.
fn duration_error(text: &str) -> Option<String> {
    match humantime::parse_duration(text.trim()) {
        Err(error) => Some(error.to_string()),
        Ok(duration) if duration > super::model::duration::MAX => {
            Some("longer than the maximum of 30 days".to_string())
        }
        Ok(_) => None,
    }
}

/// Duration strings the schema's pattern accepts but humantime rejects (e.g. overflow)
/// or that are longer than the maximum,
/// reported here with their location rather than by the model's deserializer.
fn check_durations(value: &Value, pointer: &str, problems: &mut Vec<Problem>) {
    let known: HashSet<String> = problems.iter().map(|known| known.pointer.clone()).collect();
    walk_durations(value, pointer, &known, problems);
}

fn walk_durations(
    value: &Value,
    pointer: &str,
    known: &HashSet<String>,
    problems: &mut Vec<Problem>,
) {
    let mut check = |field: &Value, field_pointer: String| {
        // Only strings the schema accepted: others already have a clearer problem.
        if let Some(text) = field.as_str()
            && !known.contains(&field_pointer)
            && let Some(error) = duration_error(text)
        {
            let name = field_pointer.rsplit('/').next().unwrap_or_default();
            let hint = "write seconds as a number (300, 0.5) or a string with units (\"30s\", \"5m\", \"1h 30m\")";
            let message = format!("invalid duration `{text}` for `{name}`: {error}");
            problems.push(Problem::new(
                &field_pointer,
                message,
                Some(hint.to_string()),
            ));
        }
    };
    if let Some(timeout) = value.get("timeout") {
        check(timeout, format!("{pointer}/timeout"));
    }
    if let Some(backoff) = value.get("retry").and_then(|retry| retry.get("backoff")) {
        for name in ["initial", "max"] {
            if let Some(field) = backoff.get(name) {
                check(field, format!("{pointer}/retry/backoff/{name}"));
            }
        }
    }
    if let Some(steps) = value.get("steps").and_then(Value::as_array) {
        for (index, step) in steps.iter().enumerate() {
            walk_durations(step, &format!("{pointer}/steps/{index}"), known, problems);
        }
    }
    if let Some(branches) = value.get("branches").and_then(Value::as_object) {
        for (name, steps) in branches {
            for (index, step) in steps.as_array().into_iter().flatten().enumerate() {
                let step_pointer = format!("{pointer}/branches/{}/{index}", escape(name));
                walk_durations(step, &step_pointer, known, problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_once_for_every_run_of_a_loaded_workflow() {
        let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: a, skill: s, inputs: {t: '{{ workflow.input.x }}'}}\n";
        let loaded = load_str("x.yaml", text).unwrap();
        let first = loaded.renderer().unwrap();
        assert!(Arc::ptr_eq(&first, &loaded.renderer().unwrap()));
        // A fresh load compiles its own.
        let again = load_str("x.yaml", text).unwrap();
        assert!(!Arc::ptr_eq(&first, &again.renderer().unwrap()));
    }

    #[test]
    fn text_over_the_size_limit_is_refused_before_parsing() {
        let text = format!(
            "metadata: {{id: x, name: X, version: 1.0.0}}\nsteps:\n  - {{id: a, skill: s}}\n# {}\n",
            "x".repeat(limits::DEFAULT_MAX_WORKFLOW_BYTES)
        );
        let error = load_str("big.yaml", &text).unwrap_err();
        let LoadError::Invalid { diagnostics, .. } = &error else {
            panic!("{error}")
        };
        assert_eq!(
            diagnostics[0].to_string(),
            "big.yaml:1:1: the workflow is larger than 1 MiB (the limit)\n  at /\n  \
             hint: split it into workflows run with `execute_workflow`, or raise the limit with PALLET_MAX_WORKFLOW_BYTES=BYTES"
        );
    }

    #[test]
    fn diagnostics_render_location_pointer_and_hint() {
        let diagnostic = |pointer: &str, hint: Option<&str>| Diagnostic {
            file: "flow.yaml".to_string(),
            line: 3,
            column: 7,
            pointer: pointer.to_string(),
            message: "unknown key `skil` in step `plan`".to_string(),
            hint: hint.map(str::to_string),
        };
        let cases = [
            (
                diagnostic("/steps/0/skil", Some("did you mean `skill`?")),
                "flow.yaml:3:7: unknown key `skil` in step `plan`\n  at /steps/0/skil\n  hint: did you mean `skill`?",
            ),
            (
                diagnostic("", None),
                "flow.yaml:3:7: unknown key `skil` in step `plan`\n  at /",
            ),
        ];
        for (diagnostic, expected) in cases {
            assert_eq!(diagnostic.to_string(), expected);
        }
    }

    #[test]
    fn valid_text_loads_with_its_origin_and_bytes() {
        let text = "metadata: {id: a, name: A, version: 1.0.0}\nsteps:\n  - {id: one, skill: s}\n";
        let loaded = load_str("a.yaml", text).expect("valid workflow");
        assert_eq!(
            (loaded.origin.as_str(), loaded.text.as_str()),
            ("a.yaml", text)
        );
        assert_eq!(loaded.workflow.steps[0].skill.as_deref(), Some("s"));
    }

    #[test]
    fn errors_carry_the_origin_and_every_problem() {
        let text = "metadata: {id: a, name: A, version: 1.0.0}\nsteps:\n  - {id: one, skill: s, inputs: {x: '{{ steps.two.outputs }}'}}\n  - {id: two, skill: s, inputs: {x: '{{ steps.nine.outputs }}'}}\n";
        let Err(LoadError::Invalid {
            file, diagnostics, ..
        }) = load_str("a.yaml", text)
        else {
            panic!("invalid workflow loaded")
        };
        assert_eq!(file, "a.yaml");
        let places: Vec<(usize, usize, &str)> = diagnostics
            .iter()
            .map(|d| (d.line, d.column, d.pointer.as_str()))
            .collect();
        assert_eq!(
            places,
            [(3, 37, "/steps/0/inputs/x"), (4, 37, "/steps/1/inputs/x")]
        );
    }
}
