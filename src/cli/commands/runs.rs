//! Durable runs from the command line: `pallet runs [show|history]`,
//! `approve`, `reject`, `cancel`, `resume` and `rerun`, against the local run database
//! (with `--server URL` against a running service: `remote.rs`).
//!
//! Exit status: 0 the run completed or waits for approval, 1 it failed or was
//! cancelled (or the database failed), 2 bad input: unknown run id, missing
//! approval fields, a change the run's state does not allow, or an `--out`
//! another pallet process is writing into.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::agent::StaticDiscovery;
use crate::builtin::BuiltinWorkflows;
use crate::cli::args::{DurableCommand, EngineArgs, RunsArgs, RunsCommand};
use crate::cli::outputs;
use crate::cli::printer::{self, BadInput, Printer};
use crate::cli::settings::Settings;
use crate::cli::settings::decision::{actor, parse_fields, parse_status};
use crate::cli::settings::store::{open_store, open_store_for_one_run, open_store_to_read};
use crate::cli::signals::stop_on_signal;
use crate::engine::Engine;
use crate::runs::{Decision, RunError, Runner};
use crate::store::{Backend, StoreError};

pub async fn command(command: DurableCommand, printer: Printer) -> anyhow::Result<ExitCode> {
    match command {
        DurableCommand::Runs(args) => list_or_show(args),
        DurableCommand::Cancel(args) => {
            let store = open_store(args.database.db.as_deref())?;
            let engine = offline_engine();
            let runner = runner(store.as_ref(), &engine, args.actor)?;
            let run = runner.cancel(&args.id).map_err(user_error)?;
            if args.json {
                printer::print_json(&view_json(&runner, &run.id)?)?;
            } else {
                errln!("run {} cancelled", run.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Approve(args) => {
            let decision = Decision {
                actor: actor(args.actor)?,
                comment: args.comment,
                fields: parse_fields(&args.fields)?,
            };
            drive(&args.engine, &args.id, Action::Approve(decision), printer).await
        }
        DurableCommand::Reject(args) => {
            let decision = Decision {
                actor: actor(args.actor)?,
                comment: args.comment,
                fields: Map::new(),
            };
            drive(&args.engine, &args.id, Action::Reject(decision), printer).await
        }
        DurableCommand::Resume(args) => {
            drive(&args.engine, &args.id, Action::Resume, printer).await
        }
        DurableCommand::Rerun(args) => {
            drive(&args.engine, &args.id, Action::Rerun(args.from), printer).await
        }
    }
}

fn runner<'a>(
    store: &'a dyn Backend,
    engine: &'a Engine,
    given: Option<String>,
) -> anyhow::Result<Runner<'a>> {
    Ok(Runner {
        store,
        engine,
        actor: actor(given)?,
        interrupt: CancellationToken::new(),
    })
}

/// An engine that calls no agent (for commands that only change state).
fn offline_engine() -> Engine {
    Engine::builder(
        Arc::new(StaticDiscovery::new(Vec::new())),
        Arc::new(BuiltinWorkflows),
    )
    .build()
}

/// What continues a stored run.
enum Action {
    Approve(Decision),
    Reject(Decision),
    Resume,
    /// A new run from this step on (the id driven is the original's).
    Rerun(String),
}

/// Apply `action` to run `id` with an engine whose workflows and agents are
/// found as `pallet run` and `pallet serve` find them, then report the run.
async fn drive(
    args: &EngineArgs,
    id: &str,
    action: Action,
    printer: Printer,
) -> anyhow::Result<ExitCode> {
    let store = open_store_for_one_run(args.database.db.as_deref())?;
    // Before the run moves on, so a busy --out stops nothing half-way; an
    // unknown run gets its own error from the runner, and no directory.
    let held = match store.get(id) {
        Ok(_) => Some(outputs::lock(&args.out)?),
        Err(_) => None,
    };
    let settings = Settings::resolve(&args.sources, &args.registry, printer).await?;
    let engine = settings.engine().build();
    let cancel = CancellationToken::new();
    let runner = runner(store.as_ref(), &engine, None)?;
    tokio::spawn(stop_on_signal(cancel.clone(), runner.interrupt.clone()));
    let outcome = match action {
        Action::Approve(decision) => runner.approve(id, decision, cancel).await,
        Action::Reject(decision) => runner.reject(id, decision, cancel).await,
        Action::Resume => runner.resume(id, cancel).await,
        Action::Rerun(from) => runner.rerun(id, &from, cancel).await,
    };
    settings.stop_agents().await;
    if let Err(RunError::Interrupted { id }) = &outcome {
        return Ok(printer::interrupted(id));
    }
    let outcome = outcome.map_err(user_error)?;
    if let Some(record) = &outcome.record {
        let held = match held {
            Some(held) => held,
            None => outputs::lock(&args.out)?,
        };
        let written = outputs::write(&args.out, record, None, &held)?;
        if !printer.quiet() && !args.json {
            errln!(
                "results in {}/ ({})",
                args.out.display(),
                printer::files_written(&written)
            );
        }
    }
    let view = view_json(&runner, &outcome.run.id)?;
    printer::report_run_state(&view, args.json)?;
    Ok(printer::run_exit_code(&view))
}

/// The run as `pallet runs show --json` and the service show it.
fn view_json(runner: &Runner<'_>, id: &str) -> anyhow::Result<Value> {
    let view = runner.view(id).map_err(user_error)?;
    Ok(serde_json::to_value(view)?)
}

/// Unknown runs and refused changes are the user's input problem (exit 2).
fn user_error(error: RunError) -> anyhow::Error {
    let hint = match &error {
        RunError::Store(StoreError::NotFound { .. }) => {
            Some("list runs with `pallet runs`".to_string())
        }
        RunError::MissingFields { missing, .. } => Some(format!(
            "pass {}",
            missing
                .iter()
                .map(|field| format!("--field {field}=VALUE"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        RunError::Waiting { id, .. } => Some(
            printer::approval_hint(id)
                .trim_start_matches("hint: ")
                .to_string(),
        ),
        _ if error.is_conflict() => {
            Some("see the run's state with `pallet runs show ID`".to_string())
        }
        _ => None,
    };
    // Another process executing the run is not a mistake in the input: exit 1.
    let leased = matches!(error, RunError::Leased { .. } | RunError::LeaseLost { .. });
    let user = (error.is_conflict() && !leased)
        || error.is_invalid_request()
        || matches!(error, RunError::Store(StoreError::NotFound { .. }));
    if !user {
        return error.into();
    }
    let mut bad = BadInput::new(crate::error::chain_of(&error));
    bad.hint = hint;
    bad.into()
}

fn list_or_show(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store_to_read(args.database.db.as_deref())?;
    let engine = offline_engine();
    let runner = runner(store.as_ref(), &engine, None)?;
    match args.command {
        None => {
            let status = parse_status(args.status.as_deref())?;
            let runs = store.list(status, args.limit)?;
            printer::print_list(&serde_json::to_value(runs)?, args.json)?;
        }
        Some(RunsCommand::Show { id }) => {
            printer::print_view(&view_json(&runner, &id)?, args.json)?;
        }
        Some(RunsCommand::History { id }) => {
            let history = store
                .history(&id)
                .map_err(|error| user_error(error.into()))?;
            printer::print_history(&serde_json::to_value(history)?, args.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
