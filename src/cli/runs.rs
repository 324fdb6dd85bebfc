//! Durable runs from the command line: `pallet runs [show|history]`,
//! `approve`, `reject`, `cancel` and `resume`, against the local run database.
//!
//! Exit status: 0 the run completed or waits for approval, 1 it failed or was
//! cancelled (or the database failed), 2 bad input: unknown run id, missing
//! approval fields, or a change the run's state does not allow.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::render::{BadInput, EXIT_FAILED};
pub use super::runs_args::DurableCommand;
use super::runs_args::{EngineArgs, RunsArgs, RunsCommand};
use crate::agent::{AgentClient, StaticDiscovery};
use crate::builtin::{BuiltinWorkflows, ExampleAgents};
use crate::engine::{DirectorySource, Engine, Sources, WorkflowSource};
use crate::store::durable::{Decision, Outcome, RunError, Runner};
use crate::store::{RunState, RunStore, StoreError};

pub async fn command(command: DurableCommand) -> anyhow::Result<ExitCode> {
    match command {
        DurableCommand::Runs(args) => list_or_show(args),
        DurableCommand::Cancel(args) => {
            let store = open_store(args.database.db.as_deref())?;
            let engine = offline_engine();
            let runner = runner(&store, &engine, args.actor);
            let run = runner.cancel(&args.id).map_err(user_error)?;
            eprintln!("run {} cancelled", run.id);
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Approve(args) => {
            let decision = Decision {
                actor: actor(args.actor),
                comment: args.comment,
                fields: parse_fields(&args.fields)?,
            };
            drive(&args.engine, &args.id, Action::Approve(decision)).await
        }
        DurableCommand::Reject(args) => {
            let decision = Decision {
                actor: actor(args.actor),
                comment: args.comment,
                fields: Map::new(),
            };
            drive(&args.engine, &args.id, Action::Reject(decision)).await
        }
        DurableCommand::Resume(args) => drive(&args.engine, &args.id, Action::Resume).await,
    }
}

/// The database named by `--db` / `PALLET_DB`, else the default one.
pub fn open_store(db: Option<&std::path::Path>) -> anyhow::Result<RunStore> {
    let path = match db {
        Some(path) => path.to_path_buf(),
        None => RunStore::default_path().ok_or_else(|| {
            BadInput::new(
                "cannot find a place for the run database: neither XDG_DATA_HOME nor HOME is set",
            )
            .hint("pass --db PATH or set PALLET_DB")
        })?,
    };
    Ok(RunStore::open(&path)?)
}

/// `$USER`, else `unknown`.
pub fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn runner<'a>(store: &'a RunStore, engine: &'a Engine, given: Option<String>) -> Runner<'a> {
    Runner {
        store,
        engine,
        actor: actor(given),
    }
}

/// An engine that calls no agent (for commands that only change state).
fn offline_engine() -> Engine {
    Engine {
        discovery: Arc::new(StaticDiscovery::new(Vec::new())),
        client: AgentClient::new(),
        workflows: Arc::new(BuiltinWorkflows),
        events: None,
    }
}

/// What continues a stored run.
enum Action {
    Approve(Decision),
    Reject(Decision),
    Resume,
}

/// Build an engine from the agent arguments, apply `action` to run `id`, report it.
async fn drive(args: &EngineArgs, id: &str, action: Action) -> anyhow::Result<ExitCode> {
    let store = open_store(args.database.db.as_deref())?;
    let mut urls = args.sources.agents.clone();
    let example_agents = if urls.is_empty() && args.sources.agents_file.is_none() {
        let agents = ExampleAgents::start()
            .await
            .context("cannot start the example agents")?;
        urls = agents.urls.clone();
        Some(agents)
    } else {
        None
    };
    let discovery = match &args.sources.agents_file {
        Some(path) => StaticDiscovery::with_agents_file(urls, path)?,
        None => StaticDiscovery::new(urls),
    };
    let mut sources: Vec<Arc<dyn WorkflowSource>> = Vec::new();
    if args.sources.workflows_dir.is_dir() {
        sources.push(Arc::new(DirectorySource::new(
            args.sources.workflows_dir.clone(),
        )));
    }
    sources.push(Arc::new(BuiltinWorkflows));
    let engine = Engine {
        discovery: Arc::new(discovery),
        client: AgentClient::new(),
        workflows: Arc::new(Sources(sources)),
        events: None,
    };
    let cancel = CancellationToken::new();
    tokio::spawn(super::run::cancel_on_ctrl_c(cancel.clone()));
    let runner = runner(&store, &engine, None);
    let outcome = match action {
        Action::Approve(decision) => runner.approve(id, decision, cancel).await,
        Action::Reject(decision) => runner.reject(id, decision, cancel).await,
        Action::Resume => runner.resume(id, cancel).await,
    };
    if let Some(agents) = example_agents {
        agents.stop().await;
    }
    let outcome = outcome.map_err(user_error)?;
    report(&outcome, args.json)?;
    Ok(exit_code(outcome.run.status))
}

pub fn exit_code(status: RunState) -> ExitCode {
    match status {
        RunState::Completed
        | RunState::WaitingApproval
        | RunState::Pending
        | RunState::InProgress => ExitCode::SUCCESS,
        RunState::Failed | RunState::Cancelled => ExitCode::from(EXIT_FAILED),
    }
}

fn report(outcome: &Outcome, json: bool) -> anyhow::Result<()> {
    let run = &outcome.run;
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
        return Ok(());
    }
    eprintln!(
        "run {} ({} {}) is {}",
        run.id, run.workflow_id, run.workflow_version, run.status
    );
    match run.status {
        RunState::Completed => {
            if let Some(result) = &run.result {
                println!("{}", serde_json::to_string_pretty(result)?);
            }
        }
        RunState::WaitingApproval => eprintln!("{}", approval_hint(&run.id)),
        _ => {
            if let Some(error) = &run.error {
                eprintln!("caused by: {error}");
            }
        }
    }
    Ok(())
}

/// How to go on from a run that waits for approval.
pub fn approval_hint(id: &str) -> String {
    format!(
        "hint: approve with `pallet approve {id} [--comment TEXT] [--field NAME=VALUE]`, reject with `pallet reject {id} [--comment TEXT]`, details in `pallet runs show {id}`"
    )
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
        RunError::Waiting { id, .. } => {
            Some(approval_hint(id).trim_start_matches("hint: ").to_string())
        }
        _ if error.is_conflict() => {
            Some("see the run's state with `pallet runs show ID`".to_string())
        }
        _ => None,
    };
    // Another process executing the run is not a mistake in the input: exit 1.
    let leased = matches!(error, RunError::Leased { .. } | RunError::LeaseLost { .. });
    let user = (error.is_conflict() && !leased)
        || matches!(
            error,
            RunError::Store(StoreError::NotFound { .. }) | RunError::MissingFields { .. }
        );
    if !user {
        return error.into();
    }
    let mut bad = BadInput::new(crate::engine::chain_of(&error));
    bad.hint = hint;
    bad.into()
}

fn parse_fields(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut fields = Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            return Err(BadInput::new(format!("--field `{pair}` is not NAME=VALUE"))
                .hint("e.g. --field ticket=OPS-12")
                .into());
        };
        fields.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(fields)
}

fn list_or_show(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(args.database.db.as_deref())?;
    let engine = offline_engine();
    let runner = runner(&store, &engine, None);
    match args.command {
        None => {
            let status = match &args.status {
                None => None,
                Some(text) => Some(RunState::parse(text).ok_or_else(|| {
                    BadInput::new(format!("--status `{text}` is not a run state"))
                        .hint("one of pending, in_progress, waiting_approval, completed, failed, cancelled")
                })?),
            };
            let runs = store.list(status, args.limit)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                for run in runs {
                    println!(
                        "{}  {:<16}  {} {}  {}  {}",
                        run.id,
                        run.status,
                        run.workflow_id,
                        run.workflow_version,
                        run.current_step.as_deref().unwrap_or("-"),
                        run.created_at
                    );
                }
            }
        }
        Some(RunsCommand::Show { id }) => {
            let view = runner.view(&id).map_err(user_error)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_view(&view);
            }
        }
        Some(RunsCommand::History { id }) => {
            let history = store
                .history(&id)
                .map_err(|error| user_error(error.into()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                for transition in history {
                    println!(
                        "{}  {} -> {}  {}  by {}",
                        transition.at,
                        transition.from.map_or("-", RunState::as_str),
                        transition.to,
                        transition.trigger,
                        transition.actor
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_view(view: &crate::store::view::RunView) {
    let run = &view.run;
    println!("run       {}", run.id);
    println!(
        "workflow  {} {} ({})",
        run.workflow_id, run.workflow_version, run.workflow_source
    );
    println!("status    {}", run.status);
    println!(
        "progress  {}% ({} of {} steps)",
        view.progress.percentage, view.progress.steps_completed, view.progress.steps_total
    );
    for (state, seconds) in &view.time_in_state_seconds {
        println!("  {state:<17} {seconds:.1} s");
    }
    for attempt in &view.attempts {
        println!(
            "  step {} #{} {}{}",
            attempt.step_id,
            attempt.attempt,
            attempt.status,
            attempt
                .error
                .as_deref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default()
        );
    }
    if let Some(error) = &run.error {
        println!("error     {error}");
    }
    if let Some(approval) = &view.approval {
        println!(
            "waiting   for approval at step `{}`: {}",
            approval.step,
            approval.title.as_deref().unwrap_or("")
        );
        if let Some(instructions) = &approval.instructions {
            println!("          {instructions}");
        }
        if !approval.required.is_empty() {
            println!(
                "          required fields: {}",
                approval.required.join(", ")
            );
        }
        if let Some(deadline) = &approval.deadline {
            let state = if approval.expired {
                "passed; `pallet resume` applies it"
            } else {
                "pending"
            };
            let decision = match approval.on_timeout {
                crate::workflow::TimeoutDecision::Approve => "approve",
                crate::workflow::TimeoutDecision::Reject => "reject",
            };
            println!("          deadline {deadline} ({state}), then {decision}");
        }
        println!("{}", approval_hint(&run.id));
    }
}

/// The store `pallet run` records in: `--db` must open; the default database
/// may be unusable (read-only home), then the run is not durable and says so.
pub fn store_for_run(
    db: Option<&std::path::Path>,
    quiet: bool,
) -> anyhow::Result<Option<RunStore>> {
    if db.is_some() {
        return open_store(db).map(Some);
    }
    match open_store(None) {
        Ok(store) => Ok(Some(store)),
        Err(error) => {
            if !quiet {
                eprintln!(
                    "warning: the run is not recorded: {}",
                    error
                        .chain()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ")
                );
            }
            Ok(None)
        }
    }
}

/// `pallet run` with a store: a durable run, the engine's record of this process returned.
pub async fn run_stored(
    store: &RunStore,
    engine: &Engine,
    workflow: Arc<crate::workflow::LoadedWorkflow>,
    reference: &str,
    input: Value,
    cancel: CancellationToken,
) -> anyhow::Result<crate::engine::RunRecord> {
    let runner = runner(store, engine, None);
    let outcome = runner.start(workflow, reference, input, cancel).await?;
    outcome.record.context("the run ended before any step ran")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_name_value_pairs() {
        let cases: [(&[&str], Option<Value>); 4] = [
            (&[], Some(serde_json::json!({}))),
            (
                &["ticket=OPS-1", "note=a=b"],
                Some(serde_json::json!({"ticket": "OPS-1", "note": "a=b"})),
            ),
            (&["=value"], None),
            (&["novalue"], None),
        ];
        for (pairs, expected) in cases {
            let pairs: Vec<String> = pairs.iter().map(|pair| pair.to_string()).collect();
            let found = parse_fields(&pairs).ok().map(Value::Object);
            assert_eq!(found, expected, "{pairs:?}");
        }
    }
}
