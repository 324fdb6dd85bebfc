//! `pallet agents list|push`: agent cards in the registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use super::registry::{explain, parse_reference};
use crate::agent::AgentCard;
use crate::cli::args::{AgentsCommand, AgentsPushArgs, ListArgs};
use crate::cli::printer::{self, BadInput};
use crate::cli::settings::registry::connect;
use crate::registry::views::listed_json;
use crate::registry::{ArtifactKind, Listed, Provenance, PushOptions, Registry, RegistryError};

pub async fn command(command: AgentsCommand) -> anyhow::Result<ExitCode> {
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
    printer::print_cards(registry.address(), &entries, args.json)?;
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
                RegistryError::InvalidAgentCard { .. } => anyhow::Error::new(error)
                    .context(BadInput::new(format!("cannot push agent card {source}"))),
                error => explain(error, format!("cannot push agent card {source}")),
            })?;
        let name = pushed.repository.trim_start_matches("agents/").to_string();
        printer::print_pushed(
            connected.registry.address(),
            &name,
            &pushed,
            Path::new(&source),
            args.json,
        )?;
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
