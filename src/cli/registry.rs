//! `pallet push|pull|list|show` and `pallet agents list|push`, and the
//! registry settings every command shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};

use super::args::{
    AgentsCommand, AgentsPushArgs, ListArgs, PullArgs, PushArgs, RegistryArgs, ShowArgs,
};
use super::render::BadInput;
use super::terminal::terminal_safe;
use crate::agent::AgentCard;
use crate::registry::{
    ArtifactKind, Credentials, DEFAULT_REGISTRY, Listed, Provenance, Pulled, PushOptions, Pushed,
    Reference, Registry, RegistryOptions, Timeouts, default_cache_dir, docker_config_path,
};
use crate::workflow::{LoadedWorkflow, load_file};

/// Hidden: where the registry is looked for when none is configured, instead
/// of localhost:5000 (tests point it at a closed port).
const DEFAULT_REGISTRY_VARIABLE: &str = "PALLET_DEFAULT_REGISTRY";

/// Said when the registry does not answer.
const DOWN_HINT: &str =
    "start one with scripts/bootstrap.sh, or pass --registry HOST:PORT (env PALLET_REGISTRY)";

/// The registry a command uses.
pub struct Connected {
    pub registry: Arc<Registry>,
    /// Chosen by the user (flag or env), as opposed to the default.
    pub configured: bool,
}

pub fn connect(args: &RegistryArgs) -> anyhow::Result<Connected> {
    let configured = args.registry.clone().filter(|address| !address.is_empty());
    let address = configured.clone().unwrap_or_else(|| {
        std::env::var(DEFAULT_REGISTRY_VARIABLE)
            .ok()
            .filter(|address| !address.is_empty())
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
    });
    let credentials = match (&args.username, &args.password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        (Some(_), None) => {
            return Err(BadInput::new("--username needs --password")
                .hint("or set PALLET_REGISTRY_PASSWORD")
                .into());
        }
        (None, Some(_)) => {
            return Err(BadInput::new("--password needs --username")
                .hint("or set PALLET_REGISTRY_USERNAME")
                .into());
        }
        (None, None) => None,
    };
    let cache_dir = default_cache_dir().ok_or_else(|| {
        BadInput::new("no cache directory: neither XDG_CACHE_HOME nor HOME is set")
            .hint("set XDG_CACHE_HOME to a writable directory")
    })?;
    let registry = Registry::new(RegistryOptions {
        address,
        insecure_hosts: args.insecure_registries.clone(),
        credentials,
        // Read only when a request needs credentials: `pallet run --file`
        // never spawns a credential helper.
        docker_config: docker_config_path(),
        cache_dir,
        offline: args.offline,
        timeouts: Timeouts {
            read: args.registry_read_timeout,
            total: args.registry_timeout,
        },
    })
    .map_err(|error| anyhow::Error::new(error).context(BadInput::new("cannot use the registry")))?;
    Ok(Connected {
        registry: Arc::new(registry),
        configured: configured.is_some(),
    })
}

/// Adds what to do when the registry is down to a registry error.
fn explain(error: crate::registry::RegistryError, doing: String) -> anyhow::Error {
    let hint = error.is_not_answering().then_some(DOWN_HINT);
    let error = anyhow::Error::new(error);
    match hint {
        Some(hint) => error.context(format!("{doing} ({hint})")),
        None => error.context(doing),
    }
}

fn parse_reference(kind: ArtifactKind, text: &str) -> anyhow::Result<Reference> {
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

fn print_pushed(
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

fn listed_json(listed: &Listed) -> Value {
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

pub async fn agents(command: AgentsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentsCommand::List(args) => agents_list(args).await,
        AgentsCommand::Push(args) => agents_push(args).await,
    }
}

async fn agents_list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    let registry = &connected.registry;
    let doing = || format!("cannot list agent cards in registry {}", registry.address());
    let listed = registry
        .list(ArtifactKind::AgentCard)
        .await
        .map_err(|error| explain(error, doing()))?;
    let mut entries = Vec::new();
    for repository in &listed {
        entries.push(card_entry(registry, repository, doing).await?);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        errln!("no agent cards in registry {}", registry.address());
    }
    for entry in &entries {
        let latest = entry.get("latest");
        // Every field comes from the registry: the whole line is shown inert.
        let line = format!(
            "{} {} {} {} skills: {}",
            entry["repository"].as_str().unwrap_or_default(),
            latest
                .and_then(|version| version["version"].as_str())
                .unwrap_or("-"),
            latest
                .and_then(|version| version["digest"].as_str())
                .unwrap_or("-"),
            entry["url"].as_str().unwrap_or("-"),
            entry["skills"]
                .as_array()
                .map_or_else(String::new, |skills| {
                    skills
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
        );
        outln!("{}", terminal_safe(&line));
    }
    Ok(ExitCode::SUCCESS)
}

/// One row of `agents list`: the repository's tags, plus the name, URL and
/// skills of its latest card (`latest`): the highest semver version, else
/// (the original project's cards, tagged `v1` only) the card discovery reads.
async fn card_entry(
    registry: &Registry,
    repository: &Listed,
    doing: impl Fn() -> String,
) -> anyhow::Result<Value> {
    let mut entry = listed_json(repository);
    let text = match repository.versions.last() {
        Some(latest) => format!("{}@{}", repository.repository, latest.digest),
        None if !repository.other_tags.is_empty() => repository.repository.clone(),
        None => return Ok(entry),
    };
    let reference = parse_reference(ArtifactKind::AgentCard, &text)?;
    let pulled = match registry.pull(&reference).await {
        Ok(pulled) => pulled,
        // Tags that are not versions (`latest`) may not resolve: still a row.
        Err(error) if repository.versions.is_empty() => {
            tracing::warn!(%error, repository = repository.repository, "agent card not read");
            return Ok(entry);
        }
        Err(error) => return Err(explain(error, doing())),
    };
    let resolved = &pulled.resolved;
    entry["latest"] = json!({
        "version": resolved.version.as_ref().map(ToString::to_string),
        "tag": resolved.tag.clone().or_else(|| repository.versions.last().map(|latest| latest.tag.clone())),
        "digest": resolved.digest,
    });
    let card = serde_json::from_slice::<Value>(&pulled.content)
        .ok()
        .and_then(|json| AgentCard::parse(&text, &json).ok());
    if let Some(card) = card {
        entry["name"] = json!(card.name);
        entry["url"] = json!(card.url());
        entry["skills"] = json!(
            card.skills
                .iter()
                .map(|skill| &skill.id)
                .collect::<Vec<_>>()
        );
    }
    Ok(entry)
}

async fn agents_push(args: AgentsPushArgs) -> anyhow::Result<ExitCode> {
    let connected = connect(&args.registry)?;
    // All cards are read before anything is pushed.
    let mut cards = Vec::new();
    for card in &args.cards {
        cards.push(read_card(card).await?);
    }
    for (source, file_name, bytes) in cards {
        let pushed = connected
            .registry
            .push_agent_card(
                &file_name,
                &bytes,
                Provenance::default(),
                PushOptions {
                    force: args.force,
                    alias: !args.no_alias,
                },
            )
            .await
            .map_err(|error| match error {
                crate::registry::RegistryError::InvalidAgentCard { .. } => {
                    anyhow::Error::new(error)
                        .context(BadInput::new(format!("cannot push agent card {source}")))
                }
                error => explain(error, format!("cannot push agent card {source}")),
            })?;
        let name = pushed.repository.trim_start_matches("agents/").to_string();
        print_pushed(&connected, &name, &pushed, Path::new(&source), args.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// (where from, file name for the title annotation, bytes) of a card file or
/// of the card a running agent serves.
async fn read_card(card: &str) -> anyhow::Result<(String, String, Vec<u8>)> {
    if !(card.starts_with("http://") || card.starts_with("https://")) {
        let path = Path::new(card);
        let bytes = std::fs::read(path).map_err(|error| {
            anyhow::Error::new(error)
                .context(BadInput::new(format!("cannot read agent card {card}")))
        })?;
        let file_name = path.file_name().map_or_else(
            || "agent-card.json".to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        return Ok((card.to_string(), file_name, bytes));
    }
    if card.ends_with(".json") || card.contains("agent-card") {
        let bytes = fetch_card(card).await?;
        return Ok((card.to_string(), "agent-card.json".to_string(), bytes));
    }
    // An A2A agent's card, else the original project's agents' `/agent-card`.
    let base = card.trim_end_matches('/');
    let well_known = format!("{base}/.well-known/agent-card.json");
    let legacy = format!("{base}/agent-card");
    let error = match fetch_card(&well_known).await {
        Ok(bytes) => return Ok((well_known, "agent-card.json".to_string(), bytes)),
        Err(error) => error,
    };
    match fetch_card(&legacy).await {
        Ok(bytes) => Ok((legacy, "agent-card.json".to_string(), bytes)),
        Err(legacy_error) => {
            Err(legacy_error.context(format!("no agent card at {base} ({error:#})")))
        }
    }
}

async fn fetch_card(location: &str) -> anyhow::Result<Vec<u8>> {
    let response = reqwest::get(location)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot fetch the agent card at {location}"))?;
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("cannot read the agent card at {location}"))?;
    Ok(bytes.to_vec())
}
