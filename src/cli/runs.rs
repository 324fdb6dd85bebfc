//! Durable runs from the command line: `pallet runs [show|history]`,
//! `approve`, `reject`, `cancel` and `resume`, against the local run database
//! (with `--server URL` against a running service: `remote.rs`).
//!
//! Exit status: 0 the run completed or waits for approval, 1 it failed or was
//! cancelled (or the database failed), 2 bad input: unknown run id, missing
//! approval fields, or a change the run's state does not allow.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::args::{RegistryArgs, SourceArgs};
use super::render::BadInput;
use super::run::{resolve_agents, workflow_sources};
pub use super::runs_args::{DurableCommand, ServerArgs};
use super::runs_args::{EngineArgs, RunsArgs, RunsCommand};
use super::runs_render;
use crate::agent::{AgentClient, StaticDiscovery};
use crate::builtin::{BuiltinWorkflows, ExampleAgents};
use crate::engine::Engine;
use crate::runs::{Decision, RunError, Runner};
use crate::store::{RunState, RunStore, StoreError};

pub async fn command(command: DurableCommand, quiet: bool) -> anyhow::Result<ExitCode> {
    if let Some(remote) = super::remote::Remote::from_args(command.server())? {
        return super::remote::command(&remote, command).await;
    }
    match command {
        DurableCommand::Runs(args) => list_or_show(args),
        DurableCommand::Cancel(args) => {
            let store = open_store(args.database.db.as_deref())?;
            let engine = offline_engine();
            let runner = runner(&store, &engine, args.actor)?;
            let run = runner.cancel(&args.id).map_err(user_error)?;
            if args.json {
                runs_render::print_json(&view_json(&runner, &run.id)?)?;
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
            drive(&args.engine, &args.id, Action::Approve(decision), quiet).await
        }
        DurableCommand::Reject(args) => {
            let decision = Decision {
                actor: actor(args.actor)?,
                comment: args.comment,
                fields: Map::new(),
            };
            drive(&args.engine, &args.id, Action::Reject(decision), quiet).await
        }
        DurableCommand::Resume(args) => drive(&args.engine, &args.id, Action::Resume, quiet).await,
    }
}

/// The database named by `--db` / `PALLET_DB`, else the default one.
pub fn open_store(db: Option<&std::path::Path>) -> anyhow::Result<RunStore> {
    Ok(RunStore::open(&database_path(db)?)?)
}

/// The database for a command that only reads: opened (and migrated) as
/// usual when it can be written, else read-only (a shared or backed-up file).
fn open_store_to_read(db: Option<&std::path::Path>) -> anyhow::Result<RunStore> {
    let path = database_path(db)?;
    let writable = match RunStore::open(&path) {
        Ok(store) => return Ok(store),
        Err(error) => error,
    };
    if !path.is_file() {
        return Err(writable.into());
    }
    RunStore::open_read_only(&path).map_err(|error| {
        BadInput::new(crate::error::chain_of(&error))
            .hint(format!(
                "check that you may read {0}; else copy it (with its -wal file, if any) to a directory you can write and pass --db COPY",
                path.display()
            ))
            .into()
    })
}

fn database_path(db: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    Ok(match db {
        Some(path) => path.to_path_buf(),
        None => RunStore::default_path().ok_or_else(|| {
            BadInput::new(
                "cannot find a place for the run database: neither XDG_DATA_HOME nor HOME is set",
            )
            .hint("pass --db PATH or set PALLET_DB")
        })?,
    })
}

/// Longest `--actor` accepted (characters).
pub const ACTOR_MAX_CHARS: usize = 128;

/// `--actor`, else `$USER`, else `unknown`. An actor is recorded with the
/// run and shown later: a given one with control characters, or longer than
/// [`ACTOR_MAX_CHARS`], is refused.
pub fn actor(given: Option<String>) -> anyhow::Result<String> {
    let acceptable =
        |name: &str| name.chars().count() <= ACTOR_MAX_CHARS && !name.chars().any(char::is_control);
    if let Some(name) = &given
        && (name.is_empty() || !acceptable(name))
    {
        return Err(BadInput::new(format!(
            "--actor `{}` is not a name: it is empty, has control characters or is longer than {ACTOR_MAX_CHARS} characters",
            super::terminal::terminal_safe(name)
        ))
        .hint("e.g. --actor ada")
        .into());
    }
    Ok(given
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.is_empty() && acceptable(name))
        .unwrap_or_else(|| "unknown".to_string()))
}

fn runner<'a>(
    store: &'a RunStore,
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

/// The engine a continued run uses: its workflows and agents are found from
/// the same arguments, by the same code, as `pallet run` and `pallet serve`
/// find them (registry, workflows directory, built-in examples; `--agent` or
/// the agents file, the registry's agent cards, else the example agents).
pub(super) async fn engine_from_sources(
    sources: &SourceArgs,
    registry: &RegistryArgs,
    say: &impl Fn(String),
) -> anyhow::Result<(Engine, Option<ExampleAgents>)> {
    let connected = super::registry::connect(registry)?;
    if registry.offline {
        say(format!(
            "offline: workflows come from the local cache of registry {}, else {} and the built-in examples",
            connected.registry.address(),
            sources.workflows_dir.display()
        ));
    }
    let (registry_source, workflows) = workflow_sources(&connected, &sources.workflows_dir);
    let (discovery, example_agents) =
        resolve_agents(sources, registry.offline, &connected, &registry_source, say).await?;
    let engine = Engine {
        discovery,
        client: AgentClient::new(),
        workflows,
        events: None,
    };
    Ok((engine, example_agents))
}

/// Build an engine from the source arguments (as `serve` does), apply `action` to run `id`, report it.
async fn drive(
    args: &EngineArgs,
    id: &str,
    action: Action,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(args.database.db.as_deref())?;
    let say = |line: String| {
        if !quiet {
            errln!("{line}");
        }
    };
    let (engine, example_agents) = engine_from_sources(&args.sources, &args.registry, &say).await?;
    let cancel = CancellationToken::new();
    let runner = runner(&store, &engine, None)?;
    tokio::spawn(super::run::stop_on_signal(
        cancel.clone(),
        runner.interrupt.clone(),
    ));
    let outcome = match action {
        Action::Approve(decision) => runner.approve(id, decision, cancel).await,
        Action::Reject(decision) => runner.reject(id, decision, cancel).await,
        Action::Resume => runner.resume(id, cancel).await,
    };
    if let Some(agents) = example_agents {
        agents.stop().await;
    }
    if let Err(RunError::Interrupted { id }) = &outcome {
        return Ok(super::run::interrupted(id));
    }
    let outcome = outcome.map_err(user_error)?;
    if let Some(record) = &outcome.record {
        let written = super::outputs::write(&args.out, record)?;
        if !quiet && !args.json {
            errln!(
                "results in {}/ ({})",
                args.out.display(),
                super::run::files_written(&written)
            );
        }
    }
    let view = view_json(&runner, &outcome.run.id)?;
    runs_render::report(&view, args.json)?;
    Ok(runs_render::exit_code(&view))
}

/// The run as `pallet runs show --json` and the service show it.
fn view_json(runner: &Runner<'_>, id: &str) -> anyhow::Result<Value> {
    let view = runner.view(id).map_err(user_error)?;
    Ok(serde_json::to_value(view)?)
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
    let mut bad = BadInput::new(crate::error::chain_of(&error));
    bad.hint = hint;
    bad.into()
}

pub(super) fn parse_fields(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
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

/// `--status` as a run state.
pub(super) fn parse_status(status: Option<&str>) -> anyhow::Result<Option<RunState>> {
    let Some(text) = status else {
        return Ok(None);
    };
    let state = RunState::parse(text).ok_or_else(|| {
        BadInput::new(format!("--status `{text}` is not a run state")).hint(format!(
            "one of {}",
            RunState::ALL.map(RunState::as_str).join(", ")
        ))
    })?;
    Ok(Some(state))
}

fn list_or_show(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store_to_read(args.database.db.as_deref())?;
    let engine = offline_engine();
    let runner = runner(&store, &engine, None)?;
    match args.command {
        None => {
            let status = parse_status(args.status.as_deref())?;
            let runs = store.list(status, args.limit)?;
            runs_render::print_list(&serde_json::to_value(runs)?, args.json)?;
        }
        Some(RunsCommand::Show { id }) => {
            runs_render::print_view(&view_json(&runner, &id)?, args.json)?;
        }
        Some(RunsCommand::History { id }) => {
            let history = store
                .history(&id)
                .map_err(|error| user_error(error.into()))?;
            runs_render::print_history(&serde_json::to_value(history)?, args.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
                errln!(
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
    interrupt: CancellationToken,
) -> anyhow::Result<crate::engine::RunRecord> {
    let mut runner = runner(store, engine, None)?;
    runner.interrupt = interrupt;
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
