//! `pallet run`: resolve the workflow, its input and its agents, run it, report.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::args::RunArgs;
use super::outputs;
use super::progress;
use super::registry;
use super::render::{BadInput, EXIT_FAILED};
use super::terminal::terminal_safe;
use crate::agent::{AgentClient, Discovery, DiscoveryError, StaticDiscovery};
use crate::builtin::{BUILTIN_ORIGIN, BuiltinWorkflows, ExampleAgents};
use crate::engine::{Engine, RunRecord, RunStatus};
use crate::registry::source::digest_of_origin;
use crate::registry::{CombinedDiscovery, RegistryDiscovery, RegistryError, RegistrySource};
use crate::runs::RunError;
use crate::workflow::{
    DirectorySource, LoadedWorkflow, SourceError, Sources, WorkflowSource, load_file,
};

/// What the run uses, resolved from the arguments.
struct RunSettings {
    workflow: Arc<LoadedWorkflow>,
    input: Value,
    workflows: Arc<dyn WorkflowSource>,
    discovery: Arc<dyn Discovery>,
    /// Started by pallet itself when no agent was configured; stopped after the run.
    example_agents: Option<ExampleAgents>,
    out: PathBuf,
    json: bool,
    show_progress: bool,
    /// Where the run is recorded; `None` when the default database cannot be opened.
    store: Option<crate::store::RunStore>,
    /// What the user asked to run, as stored with the run.
    reference: String,
}

pub async fn command(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let settings = resolve(args, quiet).await?;
    let (events, receiver) = mpsc::unbounded_channel();
    let printer = settings
        .show_progress
        .then(|| tokio::spawn(progress::print(receiver)));
    let engine = Engine {
        discovery: settings.discovery.clone(),
        client: AgentClient::new(),
        workflows: settings.workflows.clone(),
        events: settings.show_progress.then_some(events),
    };
    let cancel = CancellationToken::new();
    let interrupt = CancellationToken::new();
    tokio::spawn(stop_on_signal(cancel.clone(), interrupt.clone()));
    // A store error after the engine ran still brings its record: the outputs
    // are written, then the error is reported.
    let (record, unrecorded) = match &settings.store {
        Some(store) => {
            let stored = super::runs::run_stored(
                store,
                &engine,
                settings.workflow.clone(),
                &settings.reference,
                settings.input.clone(),
                cancel,
                interrupt,
            )
            .await;
            if let Err(error) = &stored
                && let Some(RunError::Interrupted { id }) = error.downcast_ref()
            {
                if let Some(agents) = settings.example_agents {
                    agents.stop().await;
                }
                return Ok(interrupted(id));
            }
            match stored {
                Ok(record) => (record, None),
                Err(error) => match error.downcast_ref::<RunError>().and_then(RunError::record) {
                    Some(record) => (record.clone(), Some(error)),
                    None => return Err(error),
                },
            }
        }
        None => {
            let record = engine
                .run(settings.workflow.clone(), settings.input.clone(), cancel)
                .await;
            (record, None)
        }
    };
    drop(engine);
    // Closing the database's reader connections: on another thread while the
    // output files are written.
    let closing = settings
        .store
        .map(|store| tokio::task::spawn_blocking(move || drop(store)));
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    if let Some(agents) = settings.example_agents {
        agents.stop().await;
    }
    let written = outputs::write(&settings.out, &record)?;
    report(&record, settings.json, quiet, &settings.out, &written)?;
    if let Some(closing) = closing {
        let _ = closing.await;
    }
    if let Some(error) = unrecorded {
        return Err(error);
    }
    Ok(
        if matches!(
            record.status,
            RunStatus::Completed | RunStatus::WaitingApproval
        ) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        },
    )
}

async fn resolve(args: RunArgs, quiet: bool) -> anyhow::Result<RunSettings> {
    let say = |line: String| {
        if !quiet {
            errln!("{line}");
        }
    };
    // Opening the database and the registry's clients (TLS roots again) take
    // milliseconds each: they start on other threads, the file loads here, and
    // their errors still come in the order the steps had one after the other.
    let db = args.db.clone();
    let store =
        tokio::task::spawn_blocking(move || super::runs::store_for_run(db.as_deref(), quiet));
    let registry_args = args.registry.clone();
    let connecting = tokio::task::spawn_blocking(move || registry::connect(&registry_args));
    let from_file = args.file.as_deref().map(load_file);
    let connected = connecting
        .await
        .context("cannot set up the registry client")??;
    let (registry_source, workflows) = workflow_sources(&connected, &args.sources.workflows_dir);
    let workflow = match from_file {
        Some(loaded) => Arc::new(loaded?),
        None => {
            let workflow = load_workflow(&workflows, &args.workflow).await?;
            say(terminal_safe(&origin_line(
                &args,
                &workflow.origin,
                &registry_source,
                connected.registry.address(),
            ))
            .into_owned());
            workflow
        }
    };
    let input = resolve_input(&args)?;
    let (discovery, example_agents) = resolve_agents(
        &args.sources,
        args.registry.offline,
        &connected,
        &registry_source,
        &say,
    )
    .await?;
    let show_progress = !quiet && !args.json && std::io::stderr().is_terminal();
    let store = store.await.context("cannot open the run database")??;
    let reference = match &args.file {
        Some(path) => path.display().to_string(),
        None => args.workflow.clone(),
    };
    Ok(RunSettings {
        workflow,
        input,
        workflows,
        discovery,
        example_agents,
        out: args.out,
        json: args.json,
        show_progress,
        store,
        reference,
    })
}

async fn load_workflow(
    workflows: &Arc<dyn WorkflowSource>,
    reference: &str,
) -> anyhow::Result<Arc<LoadedWorkflow>> {
    workflows.load(reference).await.map_err(|error| match error {
        // The registry could not answer: not the user's input, and no fallback.
        SourceError::Unavailable { ref source, .. } => {
            let down = source
                .downcast_ref::<RegistryError>()
                .is_some_and(RegistryError::is_not_answering);
            let message = format!("cannot resolve workflow `{reference}`");
            let message = match down {
                true => format!("{message} (the configured registry does not answer: start it, e.g. scripts/bootstrap.sh, or leave --registry/PALLET_REGISTRY unset to use the built-in examples)"),
                false => message,
            };
            anyhow::Error::new(error).context(message)
        }
        error => anyhow::Error::new(error).context(
            BadInput::new(format!("cannot find workflow `{reference}`"))
                .hint("pass --file FILE, push it with `pallet push FILE`, or pass --workflows-dir DIR where a file with that metadata.id lives"),
        ),
    })
}

/// The one line saying where the workflow came from.
fn origin_line(
    args: &RunArgs,
    origin: &str,
    registry_source: &RegistrySource,
    registry: &str,
) -> String {
    let used = || {
        if origin.starts_with(BUILTIN_ORIGIN) {
            "the built-in example workflow".to_string()
        } else {
            format!("workflow file {origin}")
        }
    };
    if registry_source.was_not_cached() {
        return format!(
            "offline, `{}` is not in the local cache of registry {registry}: using {}",
            args.workflow,
            used()
        );
    }
    if registry_source.was_not_answering() {
        return format!(
            "no registry configured and none answering at {registry}: using {} `{}`",
            used(),
            args.workflow
        );
    }
    if origin.starts_with(BUILTIN_ORIGIN) {
        return format!(
            "using the built-in example workflow `{}` (not in registry {registry}, no {} directory here)",
            args.workflow,
            args.sources.workflows_dir.display()
        );
    }
    format!("using workflow {origin}")
}

/// The registry, then `workflows_dir` if it exists, then the built-in examples.
pub(super) fn workflow_sources(
    connected: &registry::Connected,
    workflows_dir: &Path,
) -> (Arc<RegistrySource>, Arc<dyn WorkflowSource>) {
    let registry_source = Arc::new(RegistrySource::new(
        connected.registry.clone(),
        !connected.configured,
    ));
    let mut sources: Vec<Arc<dyn WorkflowSource>> = vec![registry_source.clone()];
    if workflows_dir.is_dir() {
        sources.push(Arc::new(DirectorySource::new(workflows_dir.to_path_buf())));
    }
    sources.push(Arc::new(BuiltinWorkflows));
    (registry_source, Arc::new(Sources(sources)))
}

/// `--agent`/agents file first, then the registry's agent cards; with
/// neither configured nor in the registry, the built-in example agents.
/// `offline` (`--offline`): the registry is not asked for agent cards.
pub(super) async fn resolve_agents(
    sources: &super::args::SourceArgs,
    offline: bool,
    connected: &registry::Connected,
    registry_source: &RegistrySource,
    say: &impl Fn(String),
) -> anyhow::Result<(Arc<dyn Discovery>, Option<ExampleAgents>)> {
    let registry_usable = !offline && !registry_source.was_not_answering();
    let urls = &sources.agents;
    if !urls.is_empty() || sources.agents_file.is_some() {
        let configured = StaticDiscovery::configured(urls.to_vec(), sources.agents_file.as_deref())
            .map_err(|error| match (&error, error.hint()) {
                (
                    DiscoveryError::CredentialsInUrl { .. } | DiscoveryError::Credentials(_),
                    Some(hint),
                ) => anyhow::Error::new(BadInput::new(error.to_string()).hint(hint)),
                _ => anyhow::Error::new(error),
            })?;
        let configured: Arc<dyn Discovery> = Arc::new(configured);
        if !registry_usable {
            return Ok((configured, None));
        }
        let from_registry = Arc::new(RegistryDiscovery::new(connected.registry.clone()));
        return Ok((
            Arc::new(CombinedDiscovery(vec![configured, from_registry])),
            None,
        ));
    }
    if registry_usable {
        match RegistryDiscovery::load(connected.registry.clone()).await {
            Ok(discovery) if discovery.card_count().await > 0 => {
                say(format!(
                    "using the {} agent cards in registry {}",
                    discovery.card_count().await,
                    connected.registry.address()
                ));
                return Ok((Arc::new(discovery), None));
            }
            Ok(_) => {}
            Err(error) if error.is_not_answering() && !connected.configured => {}
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "cannot read agent cards from registry {}",
                    connected.registry.address()
                )));
            }
        }
    }
    let agents = ExampleAgents::start()
        .await
        .context("cannot start the example agents")?;
    say(format!(
        "no agents configured: started the {} built-in example agents on 127.0.0.1 (stopped after the run)",
        agents.urls.len()
    ));
    let discovery = StaticDiscovery::new(agents.urls.clone());
    Ok((Arc::new(discovery), Some(agents)))
}

/// `--input-json` first, then each `--input`, then the positional requirements.
fn resolve_input(args: &RunArgs) -> anyhow::Result<Value> {
    let mut input = match &args.input_json {
        Some(source) => read_input_json(source)?,
        None => Map::new(),
    };
    for pair in &args.inputs {
        let (key, value) = parse_input(pair)?;
        input.insert(key, value);
    }
    if let Some(requirements) = &args.requirements {
        input.insert("requirements".into(), Value::String(requirements.clone()));
    }
    Ok(Value::Object(input))
}

fn read_input_json(source: &str) -> anyhow::Result<Map<String, Value>> {
    let (name, text) = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the input JSON from stdin")?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("cannot read input JSON file {source}"))?;
        (source.to_string(), text)
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BadInput::new(format!(
            "input JSON from {name} is not an object (found {})",
            json_kind(&other)
        ))
        .hint("the workflow input is an object, e.g. {\"requirements\": \"...\"}")
        .into()),
        Err(error) => Err(BadInput::new(format!(
            "input JSON from {name} is not valid JSON at line {} column {}: {error}",
            error.line(),
            error.column()
        ))
        .into()),
    }
}

/// `key=text` is a string; `key:=JSON` a typed value.
fn parse_input(pair: &str) -> anyhow::Result<(String, Value)> {
    let bad = || {
        BadInput::new(format!("--input `{pair}` is not KEY=VALUE or KEY:=JSON"))
            .hint("e.g. --input name=Ada or --input 'count:=3'")
    };
    let Some(equals) = pair.find('=') else {
        return Err(bad().into());
    };
    let (key, value) = (&pair[..equals], &pair[equals + 1..]);
    if let Some(key) = key.strip_suffix(':') {
        if key.is_empty() {
            return Err(bad().into());
        }
        let value = serde_json::from_str(value).map_err(|error| {
            BadInput::new(format!(
                "--input `{pair}`: the value after `:=` is not JSON ({error})"
            ))
            .hint("quote strings as JSON (key:='\"text\"') or use key=text")
        })?;
        return Ok((key.to_string(), value));
    }
    if key.is_empty() {
        return Err(bad().into());
    }
    Ok((key.to_string(), Value::String(value.to_string())))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Exit status after SIGTERM left the run resumable (128 + 15, as a shell reports it).
pub const EXIT_TERMINATED: u8 = 143;

/// The first Ctrl-C cancels the run cleanly (agents' tasks are cancelled,
/// skill processes stopped); SIGTERM stops it the same way but leaves it
/// resumable (`interrupt` is cancelled first). A second signal exits at once.
pub(super) async fn stop_on_signal(cancel: CancellationToken, interrupt: CancellationToken) {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match &mut terminate {
            Some(signal) => signal.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            errln!("cancelling the run (press Ctrl-C again to exit at once)");
        }
        _ = terminated => interrupt.cancel(),
    }
    cancel.cancel();
    super::agent::Signals::new().next().await;
    std::process::exit(130);
}

/// Report a run SIGTERM left resumable; its exit status.
pub(super) fn interrupted(id: &str) -> ExitCode {
    errln!("run {id} interrupted by SIGTERM; continue it with: pallet resume {id}");
    ExitCode::from(EXIT_TERMINATED)
}

/// The files a run wrote, with the per-step files counted rather than listed.
pub(super) fn files_written(written: &[String]) -> String {
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

fn report(
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
            if let Some(output) = &record.output {
                outln!("{}", serde_json::to_string_pretty(output)?);
            }
        }
        RunStatus::WaitingApproval => {
            errln!("{summary}; run id {}", record.run_id);
            errln!("{}", super::runs::approval_hint(&record.run_id));
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
