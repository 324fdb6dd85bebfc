//! What the commands use, resolved from what the user typed (`args/`):
//! the registry, the workflow-source chain (`workflows.rs`), the agent chain
//! (`agents.rs`), the run database (`store.rs`), a run's input (`input.rs`),
//! the service of `--server` (`server.rs`), the options of `pallet serve`
//! (`service.rs`). `pallet run`, `pallet serve` and
//! approve/reject/resume find workflows and agents through the same
//! [`Settings`], so all of them find the same things.

mod agents;
pub mod decision;
mod input;
pub mod registry;
pub mod server;
pub mod service;
pub mod store;
mod workflows;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use self::agents::Agents;
pub use self::agents::configured as configured_agents;
use self::registry::Connected;
use crate::cli::args::{RegistryArgs, RunArgs, SourceArgs};
use crate::cli::printer::{Printer, terminal_safe};
use crate::engine::{Engine, EngineBuilder};
use crate::registry::RegistrySource;
use crate::workflow::WorkflowSource;
use crate::workflow::{LoadedWorkflow, load_file};

/// Where a command that runs workflows finds them and their agents.
pub struct Settings {
    pub workflows: Arc<dyn WorkflowSource>,
    agents: Agents,
    /// The registry to browse (the service's registry routes); None offline.
    pub registry: Option<Arc<crate::registry::Registry>>,
}

impl Settings {
    /// The registry, the workflow-source chain and the agent chain of
    /// `sources` and `registry` (for serve, approve, reject and resume).
    pub async fn resolve(
        sources: &SourceArgs,
        registry: &RegistryArgs,
        printer: Printer,
    ) -> anyhow::Result<Settings> {
        let connected = registry::connect(registry)?;
        if registry.offline {
            printer.say(format!(
                "offline: workflows come from the local cache of registry {}, else {} and the built-in examples",
                connected.registry.address(),
                sources.workflows_dir.display()
            ));
        }
        let (registry_source, workflows) = workflows::chain(&connected, &sources.workflows_dir);
        let agents = agents::resolve(
            sources,
            registry.offline,
            &connected,
            &registry_source,
            printer,
        )
        .await?;
        let browse = (!registry.offline).then(|| connected.registry.clone());
        Ok(Settings {
            workflows,
            agents,
            registry: browse,
        })
    }

    /// An engine over these workflows and agents.
    pub fn engine(&self) -> EngineBuilder {
        Engine::builder(self.agents.discovery.clone(), self.workflows.clone())
    }

    /// Stop the example agents started for this command, if any.
    pub async fn stop_agents(self) {
        self.agents.stop().await;
    }
}

/// What `pallet run` uses.
pub struct RunSettings {
    pub settings: Settings,
    pub workflow: Arc<LoadedWorkflow>,
    pub input: Value,
    pub out: PathBuf,
    pub json: bool,
    pub progress: Option<crate::cli::printer::ProgressView>,
    /// Where the run is recorded; `None` when the default database cannot be opened.
    pub store: Option<std::sync::Arc<dyn crate::store::Backend>>,
    /// What the user asked to run, as stored with the run.
    pub reference: String,
}

impl RunSettings {
    /// As [`Settings::resolve`], with the workflow loaded (and where it came
    /// from said) before the agents are looked for, so a wrong reference
    /// starts no example agent.
    pub async fn resolve(args: RunArgs, printer: Printer) -> anyhow::Result<RunSettings> {
        // Opening the database and the registry's clients (TLS roots again) take
        // milliseconds each: they start on other threads, the file loads here, and
        // their errors still come in the order the steps had one after the other.
        let db = args.db.clone();
        let store =
            tokio::task::spawn_blocking(move || store::store_for_run(db.as_deref(), printer));
        let registry_args = args.registry.clone();
        let connecting = tokio::task::spawn_blocking(move || registry::connect(&registry_args));
        let from_file = args.file.as_deref().map(load_file);
        let connected = connecting
            .await
            .context("cannot set up the registry client")??;
        let (registry_source, workflows) =
            workflows::chain(&connected, &args.sources.workflows_dir);
        let workflow = match from_file {
            Some(loaded) => Arc::new(loaded?),
            None => {
                let workflow = workflows::load(&workflows, &args.workflow).await?;
                printer.say(terminal_safe(&origin_line(
                    &args,
                    &workflow,
                    &registry_source,
                    &connected,
                )));
                workflow
            }
        };
        // Checked (and defaulted) before any agent is looked for or step runs.
        let input = input::resolve_input(&args)?;
        let input = input::typed_text_inputs(&args, workflow.workflow.inputs.as_ref(), input);
        let input = workflow.check_input(input)?;
        let agents = agents::resolve(
            &args.sources,
            args.registry.offline,
            &connected,
            &registry_source,
            printer,
        )
        .await?;
        let progress = match (
            printer.quiet() || args.json,
            std::io::stderr().is_terminal(),
        ) {
            (true, _) => None,
            (false, true) => Some(crate::cli::printer::ProgressView::Redraw),
            (false, false) => Some(crate::cli::printer::ProgressView::Lines),
        };
        let store = store.await.context("cannot open the run database")??;
        let reference = match &args.file {
            Some(path) => path.display().to_string(),
            None => args.workflow.clone(),
        };
        Ok(RunSettings {
            settings: Settings {
                workflows,
                agents,
                registry: None,
            },
            workflow,
            input,
            out: args.out,
            json: args.json,
            progress,
            store,
            reference,
        })
    }
}

/// The workflow `pallet run ARGS` would run, found the same way, and said
/// where it came from (for `--help-inputs`, which runs nothing).
pub async fn run_workflow(args: &RunArgs, printer: Printer) -> anyhow::Result<Arc<LoadedWorkflow>> {
    if let Some(path) = &args.file {
        return Ok(Arc::new(load_file(path)?));
    }
    let connected = registry::connect(&args.registry)?;
    let (registry_source, workflows) = workflows::chain(&connected, &args.sources.workflows_dir);
    let workflow = workflows::load(&workflows, &args.workflow).await?;
    printer.say(terminal_safe(&origin_line(
        args,
        &workflow,
        &registry_source,
        &connected,
    )));
    Ok(workflow)
}

fn origin_line(
    args: &RunArgs,
    workflow: &LoadedWorkflow,
    registry_source: &RegistrySource,
    connected: &Connected,
) -> String {
    workflows::origin_line(
        &args.workflow,
        &args.sources.workflows_dir,
        &workflow.origin,
        registry_source,
        connected.registry.address(),
    )
}
