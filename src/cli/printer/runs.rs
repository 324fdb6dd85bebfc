//! What the durable-run commands print, from the runs' JSON: the local
//! commands serialize what the store gives, the `--server` ones read what the
//! service answers, and both print through these functions, so the two modes
//! show the same thing.

use std::process::ExitCode;

use serde_json::Value;

use super::error::EXIT_FAILED;
use super::terminal::terminal_safe;
use crate::store::RunState;

/// A string field, `-` when absent or null, safe to print (it may come from
/// the database or a service).
fn text<'a>(value: &'a Value, field: &str) -> std::borrow::Cow<'a, str> {
    terminal_safe(value[field].as_str().unwrap_or("-"))
}

/// An optional string field, safe to print.
fn optional_text<'a>(value: &'a Value, field: &str) -> Option<std::borrow::Cow<'a, str>> {
    value[field].as_str().map(terminal_safe)
}

/// How to go on from a run that waits for approval.
pub fn approval_hint(id: &str) -> String {
    format!(
        "hint: approve with `pallet approve {id} [--comment TEXT] [--field NAME=VALUE]`, reject with `pallet reject {id} [--comment TEXT]`, details in `pallet runs show {id}`"
    )
}

pub fn status_of(run: &Value) -> Option<RunState> {
    run["status"].as_str().and_then(RunState::parse)
}

/// 0 the run completed or waits (or goes on), 1 it failed or was cancelled.
pub fn exit_code(run: &Value) -> ExitCode {
    match status_of(run) {
        Some(RunState::Failed | RunState::Cancelled) => ExitCode::from(EXIT_FAILED),
        _ => ExitCode::SUCCESS,
    }
}

pub fn print_json(value: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `pallet runs`: one line per run.
pub fn print_list(runs: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(runs);
    }
    for run in runs.as_array().into_iter().flatten() {
        outln!(
            "{}  {:<16}  {} {}  {}  {}",
            text(run, "id"),
            text(run, "status"),
            text(run, "workflow_id"),
            text(run, "workflow_version"),
            text(run, "current_step"),
            text(run, "created_at")
        );
    }
    Ok(())
}

/// `pallet runs history ID`: one line per transition.
pub fn print_history(transitions: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(transitions);
    }
    for transition in transitions.as_array().into_iter().flatten() {
        outln!(
            "{}  {} -> {}  {}  by {}",
            text(transition, "at"),
            text(transition, "from"),
            text(transition, "to"),
            text(transition, "trigger"),
            text(transition, "actor")
        );
    }
    Ok(())
}

/// After approve, reject, cancel or resume: the run's state, then its result,
/// how to go on, or its error.
pub fn report(view: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    let id = &text(view, "id");
    errln!(
        "run {id} ({} {}) is {}",
        text(view, "workflow_id"),
        text(view, "workflow_version"),
        text(view, "status")
    );
    if let Some(origin) = rerun_origin(view) {
        errln!("{origin}");
    }
    match status_of(view) {
        Some(RunState::Completed) => {
            if !view["result"].is_null() {
                print_json(&view["result"])?;
            }
        }
        Some(RunState::WaitingApproval) => errln!("{}", approval_hint(id)),
        _ => {
            if let Some(error) = optional_text(view, "error") {
                errln!("caused by: {error}");
            }
        }
    }
    Ok(())
}

/// `pallet runs show ID`.
pub fn print_view(view: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    outln!("run       {}", text(view, "id"));
    outln!(
        "workflow  {} {} ({})",
        text(view, "workflow_id"),
        text(view, "workflow_version"),
        text(view, "workflow_source")
    );
    outln!("status    {}", text(view, "status"));
    if let Some(origin) = rerun_origin(view) {
        outln!("origin    {origin}");
    }
    let progress = &view["progress"];
    outln!(
        "progress  {}% ({} of {} steps)",
        progress["percentage"],
        progress["steps_completed"],
        progress["steps_total"]
    );
    for (state, seconds) in view["time_in_state_seconds"]
        .as_object()
        .into_iter()
        .flatten()
    {
        outln!(
            "  {state:<17} {:.1} s",
            seconds.as_f64().unwrap_or_default()
        );
    }
    for attempt in view["attempts"].as_array().into_iter().flatten() {
        let error = optional_text(attempt, "error")
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        // An attempt that took over the agent's task of an interrupted one.
        let reattached = match (
            attempt["reattached_from"].as_u64(),
            optional_text(attempt, "task_id"),
        ) {
            (Some(from), Some(task)) => format!(" (reattached to task {task} of attempt #{from})"),
            _ => String::new(),
        };
        // Taken over by a rerun: the step did not run in this run.
        let reused = optional_text(attempt, "reused_from")
            .map(|run| format!(" (reused from run {run})"))
            .unwrap_or_default();
        outln!(
            "  step {} #{} {}{reused}{reattached}{error}",
            text(attempt, "step_id"),
            attempt["attempt"],
            text(attempt, "status")
        );
    }
    if let Some(error) = optional_text(view, "error") {
        outln!("error     {error}");
    }
    if view["approval"].is_object() {
        print_approval(&view["approval"], &text(view, "id"));
    }
    Ok(())
}

/// `rerun of run R from step `S``, for a rerun.
fn rerun_origin(view: &Value) -> Option<String> {
    let origin = &view["rerun_of"];
    let run = optional_text(origin, "run_id")?;
    Some(format!(
        "rerun of run {run} from step `{}`",
        text(origin, "from_step")
    ))
}

fn print_approval(approval: &Value, id: &str) {
    outln!(
        "waiting   for approval at step `{}`: {}",
        text(approval, "step"),
        optional_text(approval, "title").unwrap_or_default()
    );
    if let Some(instructions) = optional_text(approval, "instructions") {
        outln!("          {instructions}");
    }
    let required: Vec<std::borrow::Cow<str>> = approval["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(terminal_safe)
        .collect();
    if !required.is_empty() {
        outln!("          required fields: {}", required.join(", "));
    }
    if let Some(deadline) = optional_text(approval, "deadline") {
        let state = if approval["expired"] == true {
            "passed; `pallet resume` applies it"
        } else {
            "pending"
        };
        outln!(
            "          deadline {deadline} ({state}), then {}",
            text(approval, "on_timeout")
        );
    }
    outln!("{}", approval_hint(id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_code_follows_the_status() {
        let cases = [
            (json!({"status": "completed"}), ExitCode::SUCCESS),
            (json!({"status": "waiting_approval"}), ExitCode::SUCCESS),
            (json!({"status": "in_progress"}), ExitCode::SUCCESS),
            (json!({"status": "failed"}), ExitCode::from(EXIT_FAILED)),
            (json!({"status": "cancelled"}), ExitCode::from(EXIT_FAILED)),
        ];
        for (run, expected) in cases {
            assert_eq!(exit_code(&run), expected, "{run}");
        }
    }
}
