//! `pallet validate FILE...`

use std::process::ExitCode;

use serde_json::json;

use crate::cli::args::ValidateArgs;
use crate::cli::printer::{self, EXIT_BAD_INPUT, terminal_safe};
use crate::workflow::{LoadError, load_file};

pub fn command(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    let mut all_valid = true;
    for path in &args.files {
        let file = path.display().to_string();
        match load_file(path) {
            Ok(loaded) => {
                let metadata = &loaded.workflow.metadata;
                if !args.json {
                    outln!(
                        "ok: {} ({} {}, {} steps)",
                        terminal_safe(&file),
                        terminal_safe(&metadata.id),
                        metadata.version,
                        loaded.workflow.all_steps().len()
                    );
                    for warning in &loaded.warnings {
                        errln!("warning: {}", terminal_safe(&warning.to_string()));
                    }
                }
                reports.push(json!({
                    "file": file, "valid": true,
                    "workflow": {"id": metadata.id, "version": metadata.version.to_string()},
                    "diagnostics": [], "warnings": loaded.warnings,
                }));
            }
            Err(error) => {
                all_valid = false;
                let diagnostics = match &error {
                    LoadError::Invalid { diagnostics, .. } => json!(diagnostics),
                    LoadError::Read { .. } => json!([{"file": file, "message": error.to_string()}]),
                };
                if !args.json {
                    printer::stderr_text(&printer::render_error(&anyhow::Error::new(error)));
                }
                reports.push(json!({"file": file, "valid": false, "diagnostics": diagnostics}));
            }
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::from(if all_valid { 0 } else { EXIT_BAD_INPUT }))
}
