//! Fetching an agent's card: where it may be, reading it within the answer
//! limits, and what a configured URL gave (a card, or why not).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{ConfiguredAgent, Found};
use crate::agent::answer::{BodyError, json_values, max_json_values, read_limited};
use crate::agent::card::{AgentCard, CardError};
use crate::agent::client::DEFAULT_MAX_RESPONSE_SIZE;
use crate::agent::credentials::Credentials;

/// An agent that accepts the connection but does not serve its card in this
/// long is left out rather than holding up the run.
const CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The URLs where the card of `url` may be, in the order to try.
fn card_locations(url: &str) -> Vec<String> {
    if url.ends_with(".json") || url.contains("agent-card") {
        return vec![url.to_string()];
    }
    let base = url.trim_end_matches('/');
    vec![
        format!("{base}/.well-known/agent-card.json"),
        format!("{base}/agent-card"),
    ]
}

/// Fetches and reads the card of one configured agent; failures are logged
/// and leave the agent out, since other agents may still serve the run.
pub(super) async fn fetch_card(
    http: &reqwest::Client,
    agent: &ConfiguredAgent,
    credentials: &Credentials,
) -> Found {
    let url = agent.url.as_str();
    let limit = agent.max_response_size.unwrap_or(DEFAULT_MAX_RESPONSE_SIZE);
    // A card that was found but could not be read, for the message at the end.
    let mut unreadable = None;
    for location in card_locations(url) {
        match fetch_json(http, &location, limit).await {
            Ok(json) => match AgentCard::parse(&location, &json) {
                Ok(mut card) => {
                    card.max_response_size = agent.max_response_size;
                    card.auth.authentication = authentication(&card, agent, credentials);
                    return Found::Card(Arc::new(card));
                }
                Err(error @ CardError::CredentialsInUrl { .. }) => {
                    tracing::warn!(agent = url, "{error}; skipping the agent");
                    return Found::Refused {
                        url: url.to_string(),
                        reason: error.to_string(),
                    };
                }
                Err(CardError::NoSupportedInterface {
                    name,
                    offered,
                    skills,
                    ..
                }) => {
                    tracing::warn!(
                        agent = url,
                        "agent `{name}` offers only {offered}, which pallet does not speak; skipping the agent"
                    );
                    return Found::Unsupported {
                        url: url.to_string(),
                        name,
                        offered,
                        skills,
                    };
                }
                Err(error) => {
                    tracing::debug!(card = location, "{error}");
                    unreadable.get_or_insert(error.to_string());
                }
            },
            Err(FetchError::Connect(error)) => {
                tracing::warn!(agent = url, error = %crate::error::chain_of(&error), "agent does not answer; skipping it");
                return Found::Unreachable {
                    url: url.to_string(),
                };
            }
            Err(FetchError::Other(reason)) => tracing::debug!(card = location, "{reason}"),
        }
    }
    match unreadable {
        Some(reason) => {
            tracing::warn!(
                agent = url,
                "unusable agent card: {reason}; skipping the agent"
            );
            Found::Refused {
                url: url.to_string(),
                reason,
            }
        }
        None => {
            tracing::warn!(agent = url, "no agent card found; skipping the agent");
            Found::NoCard {
                url: url.to_string(),
            }
        }
    }
}

enum FetchError {
    Connect(reqwest::Error),
    Other(String),
}

async fn fetch_json(
    http: &reqwest::Client,
    location: &str,
    limit: u64,
) -> Result<Value, FetchError> {
    let request = http.get(location).timeout(CARD_TIMEOUT);
    let response = request.send().await.map_err(|error| {
        if error.is_connect() || error.is_timeout() {
            FetchError::Connect(error)
        } else {
            FetchError::Other(error.to_string())
        }
    })?;
    if !response.status().is_success() {
        return Err(FetchError::Other(format!("HTTP {}", response.status())));
    }
    let body = read_limited(response, limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge { .. } => FetchError::Other(format!(
                "the card is larger than {} (max_response_size)",
                crate::workflow::model::size::display(limit)
            )),
            BodyError::Transport(error) => FetchError::Other(error.to_string()),
        })?;
    let text = String::from_utf8_lossy(&body);
    if json_values(&text) > max_json_values(limit) {
        return Err(FetchError::Other(
            "the card holds more JSON values than max_response_size allows".to_string(),
        ));
    }
    serde_json::from_str(&text)
        .map_err(|error| FetchError::Other(format!("not a JSON card: {error}")))
}

/// The header for `card`, configured at `agent`: the agents file's secret,
/// else the environment's or the credentials file's for the card's name.
/// It may go only to the origin of the URL the user configured.
fn authentication(
    card: &AgentCard,
    agent: &ConfiguredAgent,
    credentials: &Credentials,
) -> Option<crate::agent::auth::Authentication> {
    let origin = url::Url::parse(&agent.url).ok()?.origin();
    let secret = match &agent.secret {
        Some(secret) => secret.clone(),
        None => credentials.secret_for(&card.name, &origin)?,
    };
    let skills: Vec<&[Vec<String>]> = card
        .skills
        .iter()
        .map(|skill| skill.security.as_slice())
        .collect();
    card.auth.security.authenticate(&skills, &secret, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_cards_are_looked_for() {
        let cases: [(&str, &[&str]); 4] = [
            (
                "http://h:1",
                &[
                    "http://h:1/.well-known/agent-card.json",
                    "http://h:1/agent-card",
                ],
            ),
            (
                "http://h:1/",
                &[
                    "http://h:1/.well-known/agent-card.json",
                    "http://h:1/agent-card",
                ],
            ),
            (
                "http://h:1/cards/coder.json",
                &["http://h:1/cards/coder.json"],
            ),
            ("http://h:1/agent-card", &["http://h:1/agent-card"]),
        ];
        for (url, expected) in cases {
            assert_eq!(card_locations(url), expected, "{url}");
        }
    }
}
