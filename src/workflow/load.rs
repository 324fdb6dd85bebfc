//! YAML -> model, reporting every problem with file:line:column and JSON pointer.
//!
//! Pipeline: index node positions from the YAML events, convert to JSON, check
//! against the embedded schema, deserialize into the model, run the semantic checks.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::model::Workflow;
use super::position::{Position, PositionIndex};
use super::validate::Problem;
use super::{schema, validate};

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

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(formatter, "\n  at {pointer}")?;
        if let Some(hint) = &self.hint {
            write!(formatter, "\n  hint: {hint}")?;
        }
        Ok(())
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
    #[error("{} is not a valid workflow ({} problem{})", .file, .diagnostics.len(), if .diagnostics.len() == 1 { "" } else { "s" })]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

pub fn load_file(path: &Path) -> Result<LoadedWorkflow, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&path.display().to_string(), &text)
}

pub fn load_str(origin: &str, text: &str) -> Result<LoadedWorkflow, LoadError> {
    let invalid = |diagnostics: Vec<Diagnostic>| LoadError::Invalid {
        file: origin.to_string(),
        diagnostics,
    };
    let at =
        |position: Position, pointer: &str, message: String, hint: Option<String>| Diagnostic {
            file: origin.to_string(),
            line: position.line,
            column: position.column,
            pointer: pointer.to_string(),
            message,
            hint,
        };
    let index = PositionIndex::build(text).map_err(|problem| {
        invalid(vec![at(
            problem.position,
            "",
            problem.message,
            problem.hint,
        )])
    })?;
    let value: Value = serde_yaml_ng::from_str(text).map_err(|error| {
        let position = error
            .location()
            .map(|location| Position {
                line: location.line(),
                column: location.column(),
            })
            .unwrap_or(Position { line: 1, column: 1 });
        let message = format!("malformed YAML: {}", strip_location(&error.to_string()));
        invalid(vec![at(position, "", message, None)])
    })?;
    if value.is_null() {
        let hint = Some("a workflow needs `metadata` and `steps`".to_string());
        return Err(invalid(vec![at(
            Position { line: 1, column: 1 },
            "",
            "the workflow file is empty".to_string(),
            hint,
        )]));
    }
    let locate = |problems: Vec<Problem>| -> Vec<Diagnostic> {
        problems
            .into_iter()
            .map(|problem| {
                let position = if problem.at_key {
                    index.key(&problem.pointer)
                } else {
                    index.node(&problem.pointer)
                };
                at(position, &problem.pointer, problem.message, problem.hint)
            })
            .collect()
    };
    let structural = schema::check(&value);
    if !structural.is_empty() {
        return Err(invalid(sorted(locate(structural))));
    }
    let workflow: Workflow = serde_json::from_value(value).map_err(|error| {
        let message = format!("invalid workflow: {error}");
        invalid(vec![at(Position { line: 1, column: 1 }, "", message, None)])
    })?;
    let report = validate::check(&workflow);
    if !report.errors.is_empty() {
        return Err(invalid(sorted(locate(report.errors))));
    }
    Ok(LoadedWorkflow {
        workflow,
        origin: origin.to_string(),
        text: text.to_string(),
        warnings: sorted(locate(report.warnings)),
    })
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
    diagnostics
}

/// serde_yaml_ng appends " at line L column C"; the diagnostic carries the position already.
fn strip_location(message: &str) -> &str {
    message
        .find(" at line ")
        .map(|cut| &message[..cut])
        .unwrap_or(message)
}
