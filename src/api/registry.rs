//! The registry as the UI browses it: workflows with their versions and
//! digests, one version's annotations and YAML, agent cards with their
//! skills and protocol versions. The JSON is the CLI's (`pallet list`,
//! `pallet show`, `pallet agents list` with `--json`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::agent::{AgentCard, Endpoint};
use crate::registry::views::{listed_json, shown_json};
use crate::registry::{ArtifactKind, Reference, Registry};

/// Agent card repositories whose latest card one listing reads.
const MAX_CARDS: usize = 200;

fn registry(state: &AppState) -> Result<&Arc<Registry>, ApiError> {
    state.options.registry.as_ref().ok_or(ApiError::NoRegistry)
}

pub async fn workflows(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state)?;
    let listed = registry
        .list_workflows()
        .await
        .map_err(|source| ApiError::Registry {
            doing: format!(
                "cannot list the workflows of registry {}",
                registry.address()
            ),
            source: Box::new(source),
        })?;
    Ok(Json(json!({
        "registry": registry.address(),
        "workflows": listed.iter().map(listed_json).collect::<Vec<_>>(),
    })))
}

/// `GET /registry/workflows/{name}/{tag}`: one version, with its YAML source.
pub async fn workflow(
    State(state): State<Arc<AppState>>,
    Path((name, tag)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state)?;
    // The tag exactly: a version tag as `=VERSION` (not a range), a digest as itself.
    let text = match semver::Version::parse(&tag) {
        Ok(_) => format!("{name}@={tag}"),
        Err(_) => format!("{name}@{tag}"),
    };
    let reference = Reference::parse(ArtifactKind::Workflow, &text)
        .map_err(|error| ApiError::invalid(error.to_string()))?;
    let pulled = registry
        .pull(&reference)
        .await
        .map_err(|source| ApiError::Registry {
            doing: format!(
                "cannot read workflow {text} from registry {}",
                registry.address()
            ),
            source: Box::new(source),
        })?;
    let mut shown = shown_json(registry.address(), &pulled);
    shown["source"] = match std::str::from_utf8(&pulled.content) {
        Ok(yaml) => json!(yaml),
        Err(_) => Value::Null,
    };
    Ok(Json(shown))
}

pub async fn agents(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state)?;
    let failed = |source: crate::registry::RegistryError| ApiError::Registry {
        doing: format!(
            "cannot list the agent cards of registry {}",
            registry.address()
        ),
        source: Box::new(source),
    };
    let listed = registry
        .list(ArtifactKind::AgentCard)
        .await
        .map_err(failed)?;
    let mut agents = Vec::new();
    for repository in listed.iter().take(MAX_CARDS) {
        let mut entry = listed_json(repository);
        let latest = match repository.versions.last() {
            Some(latest) => format!("{}@{}", repository.repository, latest.digest),
            None => repository.repository.clone(),
        };
        let card = match Reference::parse(ArtifactKind::AgentCard, &latest) {
            Ok(reference) => registry.pull(&reference).await.ok(),
            Err(_) => None,
        };
        // A card that cannot be read or parsed is still listed, with what is known.
        if let Some(pulled) = card {
            entry["digest"] = json!(pulled.resolved.digest);
            let parsed = serde_json::from_slice::<Value>(&pulled.content)
                .ok()
                .and_then(|json| AgentCard::parse(&latest, &json).ok());
            if let Some(card) = parsed {
                entry["name"] = json!(card.name);
                entry["url"] = json!(card.url());
                entry["skills"] = json!(
                    card.skills
                        .iter()
                        .map(|skill| json!({"id": skill.id, "description": skill.description}))
                        .collect::<Vec<_>>()
                );
                entry["interfaces"] = match &card.endpoint {
                    Endpoint::A2a { interfaces } => json!(interfaces),
                    Endpoint::Legacy { url } => {
                        json!([{"url": url, "version": "legacy", "binding": "JSON-RPC (legacy)"}])
                    }
                };
            }
        }
        agents.push(entry);
    }
    Ok(Json(json!({
        "registry": registry.address(),
        "agents": agents,
        "truncated": listed.len() > MAX_CARDS,
    })))
}
