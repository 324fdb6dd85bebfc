//! What `pallet run` and the commands that continue a run say about it.

use std::path::Path;
use std::process::ExitCode;

use super::runs::approval_hint;
use super::terminal::terminal_safe;
use crate::engine::{RunRecord, RunStatus};
use crate::registry::source::digest_of_origin;

/// Exit status after SIGTERM left the run resumable (128 + 15, as a shell reports it).
pub const EXIT_TERMINATED: u8 = 143;

/// Report a run SIGTERM left resumable; its exit status.
pub fn interrupted(id: &str) -> ExitCode {
    errln!("run {id} interrupted by SIGTERM; continue it with: pallet resume {id}");
    ExitCode::from(EXIT_TERMINATED)
}

/// The files a run wrote, with the per-step files counted rather than listed.
pub fn files_written(written: &[String]) -> String {
    let steps = written
        .iter()
        .filter(|name| name.starts_with("steps/"))
        .count();
    let mut names: Vec<String> = written
        .iter()
        .filter(|name| !name.starts_with("steps/"))
        .cloned()
        .collect();
    names.push(format!(
        "steps/ with {steps} step file{}",
        if steps == 1 { "" } else { "s" }
    ));
    names.join(", ")
}

/// The end of `pallet run`: the record as JSON, or its summary on stderr and
/// its output on stdout.
pub fn report_run(
    record: &RunRecord,
    json: bool,
    quiet: bool,
    out: &Path,
    written: &[String],
) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let ran = match digest_of_origin(&record.workflow_source) {
        Some(_) => format!(" ({})", terminal_safe(&record.workflow_source)),
        None => String::new(),
    };
    let steps = record.steps.len();
    let summary = format!(
        "run {}: {} {}{ran} {} in {:.0} ms ({steps} step{})",
        record.run_id,
        terminal_safe(&record.workflow_id),
        record.workflow_version,
        match record.status {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "was cancelled",
            RunStatus::WaitingApproval => "waits for approval",
        },
        record.duration_ms,
        if steps == 1 { "" } else { "s" }
    );
    match record.status {
        RunStatus::Completed => {
            if !quiet {
                errln!(
                    "{summary}; results in {}/ ({})",
                    out.display(),
                    files_written(written)
                );
            }
            if !record.continued_failures.is_empty() {
                let names: Vec<String> = record
                    .continued_failures
                    .iter()
                    .map(|step| format!("`{}`", terminal_safe(step)))
                    .collect();
                errln!(
                    "warning: failed and continued (continue_on_error): {}",
                    names.join(", ")
                );
            }
            if let Some(output) = &record.output {
                outln!("{}", serde_json::to_string_pretty(output)?);
            }
        }
        RunStatus::WaitingApproval => {
            errln!("{summary}; run id {}", record.run_id);
            errln!("{}", approval_hint(&record.run_id));
        }
        _ => {
            errln!("error: {summary}");
            if let Some(error) = &record.error {
                errln!("caused by: {}", terminal_safe(error));
            }
            errln!("hint: the run record is in {}/run.json", out.display());
        }
    }
    Ok(())
}
