//! `pallet push|pull|list|show`: workflows in the registry (agent cards: `agents.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::args::{ListArgs, PullArgs, PushArgs, ShowArgs};
use crate::cli::printer::{self, BadInput};
use crate::cli::settings::registry::connect;
use crate::registry::{ArtifactKind, Provenance, PushOptions, Reference, RegistryError};
use crate::workflow::{LoadedWorkflow, load_file};

/// Said when the registry does not answer.
const DOWN_HINT: &str =
    "start one with scripts/bootstrap.sh, or pass --registry HOST:PORT (env PALLET_REGISTRY)";

/// Adds what to do when the registry is down to a registry error.
pub fn explain(error: RegistryError, doing: String) -> anyhow::Error {
    let hint = error.is_not_answering().then_some(DOWN_HINT);
    let error = anyhow::Error::new(error);
    match hint {
        Some(hint) => error.context(format!("{doing} ({hint})")),
        None => error.context(doing),
    }
}

pub fn parse_reference(kind: ArtifactKind, text: &str) -> anyhow::Result<Reference> {
    Reference::parse(kind, text).map_err(|error| BadInput::new(error.to_string()).into())
}

pub async fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    // Every file is checked before anything is pushed: one invalid file pushes nothing.
    let mut loaded: Vec<(PathBuf, LoadedWorkflow)> = Vec::new();
    for path in &args.files {
        let workflow = load_file(path).map_err(|error| {
            anyhow::Error::new(error).context(format!(
                "workflow {} is invalid; nothing was pushed",
                path.display()
            ))
        })?;
        loaded.push((path.clone(), workflow));
    }
    let provenance = Provenance {
        source: args.source.clone(),
        revision: args.revision.clone(),
    };
    for (path, workflow) in &loaded {
        let file_name = path.file_name().map_or_else(
            || workflow.origin.clone(),
            |name| name.to_string_lossy().into_owned(),
        );
        let pushed = connected
            .registry
            .push_workflow(
                workflow,
                &file_name,
                provenance.clone().or_from_git(path),
                PushOptions {
                    force: args.force,
                    alias: !args.no_alias,
                },
            )
            .await
            .map_err(|error| explain(error, format!("cannot push {}", path.display())))?;
        printer::print_pushed(
            connected.registry.address(),
            &workflow.workflow.metadata.id,
            &pushed,
            path,
            args.json,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    let reference = parse_reference(ArtifactKind::Workflow, &args.reference)?;
    let pulled = connected
        .registry
        .pull(&reference)
        .await
        .map_err(|error| explain(error, format!("cannot pull {}", args.reference)))?;
    // The title annotation comes from whoever pushed: keep only a plain name.
    let file_name = Path::new(&pulled.file_name).file_name().map_or_else(
        || format!("{}.yaml", reference.name),
        |name| name.to_string_lossy().into_owned(),
    );
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let path = args.output.join(file_name);
    std::fs::write(&path, &pulled.content)
        .with_context(|| format!("cannot write {}", path.display()))?;
    printer::print_pulled(&path, &pulled.resolved.digest);
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    let listed = connected.registry.list_workflows().await.map_err(|error| {
        explain(
            error,
            format!(
                "cannot list workflows in registry {}",
                connected.registry.address()
            ),
        )
    })?;
    printer::print_workflows(connected.registry.address(), &listed, args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    let reference = parse_reference(ArtifactKind::Workflow, &args.reference)?;
    let pulled = connected
        .registry
        .pull(&reference)
        .await
        .map_err(|error| explain(error, format!("cannot show {}", args.reference)))?;
    // Its inputs are read from the workflow itself; one that does not load shows none.
    let workflow = std::str::from_utf8(&pulled.content)
        .ok()
        .and_then(|text| crate::workflow::load_str(&pulled.file_name, text).ok());
    printer::print_shown(
        connected.registry.address(),
        &pulled,
        workflow.as_ref(),
        args.json,
    )?;
    Ok(ExitCode::SUCCESS)
}
