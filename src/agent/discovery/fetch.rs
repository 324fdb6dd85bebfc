//! Fetching an agent's card: where it may be, reading it within the answer
//! limits, and what a configured URL gave (a card, or why not).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::{ConfiguredAgent, Found};
use crate::agent::answer::{BodyError, drain, json_values, max_json_values, read_limited};
use crate::agent::card::{AgentCard, CardError};
use crate::agent::client::DEFAULT_MAX_RESPONSE_SIZE;
use crate::agent::credentials::Credentials;

/// An agent that accepts the connection but does not serve its card in this
/// long is left out rather than holding up the run.
const CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a card answer that is not 2xx (a 404 page) is read and
/// dropped so that its connection is reused for the next location.
const ERROR_BODY_DRAIN: u64 = 64 * 1024;

/// The URLs where the card of `url` may be, in the order to try: the one
/// that answered last for this base URL (in this process) first, so that a
/// legacy agent is not asked for an A2A card it never has at every fetch.
fn card_locations(url: &str) -> Vec<String> {
    if url.ends_with(".json") || url.contains("agent-card") {
        return vec![url.to_string()];
    }
    let base = url.trim_end_matches('/');
    let mut locations = vec![
        format!("{base}/.well-known/agent-card.json"),
        format!("{base}/agent-card"),
    ];
    if let Some(answered) = answered_locations()
        .lock()
        .ok()
        .and_then(|map| map.get(base).cloned())
        && let Some(index) = locations.iter().position(|location| *location == answered)
    {
        locations[..=index].rotate_right(1);
    }
    locations
}

/// Per agent base URL, the card location that answered last.
fn answered_locations() -> &'static Mutex<HashMap<String, String>> {
    static ANSWERED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    ANSWERED.get_or_init(Mutex::default)
}

/// Remembers that `location` served the card of `url` (a base URL).
fn remember_location(url: &str, location: &str) {
    let base = url.trim_end_matches('/');
    if base != location
        && let Ok(mut map) = answered_locations().lock()
    {
        map.insert(base.to_string(), location.to_string());
    }
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
                    remember_location(url, &location);
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
        let status = response.status();
        drain(response, ERROR_BODY_DRAIN).await;
        return Err(FetchError::Other(format!("HTTP {status}")));
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A legacy agent on loopback: 404 with a page at the A2A card's place,
    /// its card at `/agent-card`; it counts the connections it accepted.
    async fn legacy_agent() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let (status, body) = if request.uri().path() == "/agent-card" {
                        (200, r#"{"name": "old", "skills": [{"id": "plan", "description": "plans"}]}"#.to_string())
                    } else {
                        (404, "not found ".repeat(5000))
                    };
                    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn a_legacy_card_comes_on_the_connection_of_the_404() {
        let (url, connections) = legacy_agent().await;
        let agent = ConfiguredAgent {
            url: url.clone(),
            max_response_size: None,
            secret: None,
        };
        // A client of its own: the shared one may hold connections of other tests.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::config())
            .build()
            .unwrap();
        let found = fetch_card(&http, &agent, &Credentials::default()).await;
        assert!(matches!(found, Found::Card(_)));
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(card_locations(&url)[0], format!("{url}/agent-card"));
    }

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

    #[test]
    fn the_location_that_answered_is_tried_first() {
        let base = "http://remembered.invalid:7";
        remember_location(&format!("{base}/"), &format!("{base}/agent-card"));
        assert_eq!(
            card_locations(base),
            [
                format!("{base}/agent-card"),
                format!("{base}/.well-known/agent-card.json"),
            ]
        );
        remember_location(base, &format!("{base}/.well-known/agent-card.json"));
        assert_eq!(
            card_locations(base),
            [
                format!("{base}/.well-known/agent-card.json"),
                format!("{base}/agent-card"),
            ]
        );
    }
}
