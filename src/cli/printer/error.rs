//! The one renderer for user-facing errors: `error:`, then `caused by:` lines,
//! then `hint:` — and the exit code class of an error.

use std::fmt::Write;

use super::terminal::terminal_safe;

use crate::workflow::{InputError, LoadError};

/// What to do about a run's input that does not fit the workflow's `inputs`.
const INPUT_HINT: &str = "`pallet run --help-inputs` (with the same --workflow or --file) lists the inputs; give them with --input NAME=VALUE (read as a number or boolean where the input is one), --input NAME:=JSON or --input-json FILE";
use crate::workflow::SourceError;

/// Exit status for a failed run (or a failure while running).
pub const EXIT_FAILED: u8 = 1;
/// Exit status for bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;

/// An error in what the user gave us (arguments, input files): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BadInput {
    pub message: String,
    pub hint: Option<String>,
}

impl BadInput {
    pub fn new(message: impl Into<String>) -> BadInput {
        BadInput {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> BadInput {
        self.hint = Some(hint.into());
        self
    }
}

pub fn exit_code(error: &anyhow::Error) -> u8 {
    // `downcast_ref` on the anyhow error also sees `.context(BadInput)` layers,
    // which `chain()` hides behind anyhow's own context type.
    let bad_input = error.downcast_ref::<BadInput>().is_some()
        || error.chain().any(|cause| {
            cause.is::<BadInput>() || cause.is::<InputError>() || load_error(cause).is_some()
        });
    if bad_input {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILED
    }
}

pub fn render_error(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut hint = error
        .downcast_ref::<BadInput>()
        .and_then(|bad| bad.hint.clone());
    for (depth, cause) in error.chain().enumerate() {
        let label = if depth == 0 { "error" } else { "caused by" };
        // A cause can quote an agent, a registry or a file: shown inert.
        let _ = writeln!(out, "{label}: {}", terminal_safe(&cause.to_string()));
        if let Some(load @ LoadError::Invalid { diagnostics, .. }) = load_error(cause) {
            for line in diagnostics.iter().flat_map(|diagnostic| diagnostic.lines()) {
                let _ = writeln!(out, "{}", terminal_safe(&line));
            }
            if let Some(omitted) = load.omitted_line() {
                let _ = writeln!(out, "{omitted}");
            }
        }
        if let Some(input) = cause.downcast_ref::<InputError>() {
            for line in input.lines() {
                let _ = writeln!(out, "  {}", terminal_safe(&line));
            }
            hint = hint.or_else(|| Some(INPUT_HINT.to_string()));
        }
        if let Some(bad_input) = cause.downcast_ref::<BadInput>() {
            hint = hint.or(bad_input.hint.clone());
        }
    }
    if let Some(hint) = hint {
        let _ = writeln!(out, "hint: {}", terminal_safe(&hint));
    }
    out
}

/// A workflow load error, also when a workflow source wraps it transparently.
fn load_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a LoadError> {
    match cause.downcast_ref::<SourceError>() {
        Some(SourceError::Load(load)) => Some(load),
        _ => cause.downcast_ref::<LoadError>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::Diagnostic;

    #[test]
    fn a_diagnostic_is_shown_on_its_lines_with_outside_text_inert() {
        let invalid = LoadError::Invalid {
            file: "w.yaml".into(),
            diagnostics: vec![Diagnostic {
                file: "w.yaml".into(),
                line: 3,
                column: 5,
                pointer: "/steps/0/sk\nil".into(),
                message: "unknown key `sk\u{1b}]0;x\u{7}\nerror: forged`".into(),
                hint: Some("did you mean `skill`?".into()),
            }],
            omitted: 0,
        };
        let shown = render_error(&anyhow::Error::new(invalid));
        assert_eq!(
            shown,
            "error: w.yaml is not a valid workflow (1 problem)\n\
             w.yaml:3:5: unknown key `sk\\u{1b}]0;x\\u{7}\\nerror: forged`\n\
             \x20 at /steps/0/sk\\nil\n\
             \x20 hint: did you mean `skill`?\n"
        );
    }
}
