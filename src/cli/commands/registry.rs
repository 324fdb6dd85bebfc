//! `pallet push|pull|list|show`: workflows in the registry (agent cards: `agents.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::args::{ListArgs, PullArgs, PushArgs, ShowArgs};
use crate::cli::printer::{BadInput, terminal_safe};
use crate::cli::settings::registry::{Connected, connect};
use crate::registry::{
    ArtifactKind, Listed, Provenance, Pulled, PushOptions, Pushed, Reference, RegistryError,
};
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
        print_pushed(
            &connected,
            &workflow.workflow.metadata.id,
            &pushed,
            path,
            args.json,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_pushed(
    connected: &Connected,
    name: &str,
    pushed: &Pushed,
    from: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let reference = format!(
        "{}/{}:{}",
        connected.registry.address(),
        pushed.repository,
        pushed.tag
    );
    if json {
        let line = json!({
            "file": from.display().to_string(),
            "name": name,
            "repository": pushed.repository,
            "version": pushed.version.to_string(),
            "tag": pushed.tag,
            "digest": pushed.digest,
            "reference": reference,
            "uploaded": pushed.uploaded,
            "alias": pushed.alias,
        });
        outln!("{}", serde_json::to_string(&line)?);
    } else {
        let state = if pushed.uploaded {
            "pushed"
        } else {
            "unchanged"
        };
        let alias = pushed
            .alias
            .as_ref()
            .map_or_else(String::new, |alias| format!(", alias {alias}"));
        outln!(
            "{} {} {} {} ({state}){alias}",
            terminal_safe(name),
            pushed.version,
            pushed.digest,
            terminal_safe(&reference.to_string())
        );
    }
    Ok(())
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
    outln!(
        "{} {}",
        terminal_safe(&path.display().to_string()),
        pulled.resolved.digest
    );
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
    if args.json {
        let list: Vec<Value> = listed.iter().map(listed_json).collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        errln!("no workflows in registry {}", connected.registry.address());
    }
    for repository in &listed {
        outln!("{}", terminal_safe(&repository.repository));
        for version in &repository.versions {
            outln!("  {} {}", version.version, version.digest);
        }
        if !repository.other_tags.is_empty() {
            outln!(
                "  other tags: {}",
                terminal_safe(&repository.other_tags.join(", "))
            );
        }
        for broken in &repository.unreadable {
            outln!(
                "  warning: tag {} cannot be read: {}",
                terminal_safe(&broken.tag),
                terminal_safe(&broken.problem)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn listed_json(listed: &Listed) -> Value {
    json!({
        "repository": listed.repository,
        "versions": listed.versions.iter().map(|version| json!({
            "version": version.version.to_string(),
            "tag": version.tag,
            "digest": version.digest,
        })).collect::<Vec<_>>(),
        "other_tags": listed.other_tags,
        "unreadable": listed.unreadable.iter().map(|broken| json!({
            "tag": broken.tag,
            "error": broken.problem,
        })).collect::<Vec<_>>(),
    })
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    let reference = parse_reference(ArtifactKind::Workflow, &args.reference)?;
    let pulled = connected
        .registry
        .pull(&reference)
        .await
        .map_err(|error| explain(error, format!("cannot show {}", args.reference)))?;
    let shown = shown_json(&connected, &pulled);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let line = |label: &str, value: &Value| {
        if let Some(text) = value.as_str() {
            outln!("{label:<12} {}", terminal_safe(text));
        }
    };
    line("reference", &shown["reference"]);
    line("digest", &shown["digest"]);
    line("tag", &shown["tag"]);
    line("version", &shown["version"]);
    line("file", &shown["file_name"]);
    line("media type", &shown["media_type"]);
    if let Some(config) = shown["config"].as_object() {
        for (key, value) in config {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), String::from);
            outln!("config.{:<5} {}", terminal_safe(key), terminal_safe(&text));
        }
    }
    if let Some(annotations) = shown["annotations"].as_object() {
        outln!("annotations:");
        for (key, value) in annotations {
            outln!(
                "  {}: {}",
                terminal_safe(key),
                terminal_safe(value.as_str().unwrap_or_default())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn shown_json(connected: &Connected, pulled: &Pulled) -> Value {
    let resolved = &pulled.resolved;
    json!({
        "reference": format!("{}/{}@{}", connected.registry.address(), resolved.repository, resolved.digest),
        "repository": resolved.repository,
        "tag": resolved.tag,
        "version": resolved.version.as_ref().map(ToString::to_string),
        "digest": resolved.digest,
        "artifact_type": pulled.manifest.artifact_type,
        "media_type": pulled.media_type,
        "file_name": pulled.file_name,
        "size": pulled.content.len(),
        "config": pulled.config.as_ref().map(|config| json!({
            "id": config.id,
            "name": config.name,
            "version": config.version,
            "schema_version": config.schema_version,
        })),
        "annotations": pulled.manifest.annotations,
    })
}
