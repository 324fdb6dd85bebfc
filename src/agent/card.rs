//! Agent cards: A2A 1.0 (`/.well-known/agent-card.json`), A2A 0.3 (top-level
//! `url`) and legacy (`/agent-card`), all read into one [`AgentCard`].

use serde::Serialize;
use serde_json::Value;
use url::Url;

/// What pallet needs of an agent card, whatever protocol it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentCard {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub endpoint: Endpoint,
    pub skills: Vec<SkillInfo>,
    /// The cap on one answer of this agent, from the agents file.
    #[serde(skip)]
    pub max_response_size: Option<u64>,
}

/// Where and how to call an agent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Endpoint {
    /// A2A 1.0 JSON-RPC binding: POST JSON-RPC to `url`.
    A2a { url: String },
    /// The original project's agents: POST `{url}/execute`.
    Legacy { url: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkillInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("agent card from {url} is not a JSON object")]
    NotAnObject { url: String },
    #[error("agent card from {url} has no `{field}`")]
    MissingField { url: String, field: &'static str },
    #[error(
        "agent card from {url} offers no JSON-RPC interface (pallet speaks the JSONRPC binding)"
    )]
    NoJsonRpcInterface { url: String },
    #[error(
        "agent card from {url} gives the url `{value}` with a user name or password, which pallet does not send"
    )]
    CredentialsInUrl { url: String, value: String },
    #[error("agent card from {url} has an invalid url `{value}`")]
    InvalidUrl {
        url: String,
        value: String,
        #[source]
        source: url::ParseError,
    },
}

impl AgentCard {
    pub fn offers(&self, skill: &str) -> bool {
        self.skills.iter().any(|offered| offered.id == skill)
    }

    /// The URL the agent is called at, whatever its protocol.
    pub fn url(&self) -> &str {
        match &self.endpoint {
            Endpoint::A2a { url } | Endpoint::Legacy { url } => url,
        }
    }

    /// Reads a card fetched from `card_url`. The kind is told by its shape:
    /// `supportedInterfaces` is A2A 1.0, A2A 0.3 fields mean A2A with the
    /// top-level `url`, anything else is a legacy card.
    pub fn parse(card_url: &str, card: &Value) -> Result<AgentCard, CardError> {
        let object = card.as_object().ok_or_else(|| CardError::NotAnObject {
            url: card_url.to_string(),
        })?;
        let name =
            object
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| CardError::MissingField {
                    url: card_url.to_string(),
                    field: "name",
                })?;
        let endpoint = if let Some(interfaces) = object.get("supportedInterfaces") {
            Endpoint::A2a {
                url: json_rpc_interface(card_url, interfaces)?,
            }
        } else if A2A_03_FIELDS
            .iter()
            .any(|field| object.contains_key(*field))
        {
            let url = object.get("url").and_then(Value::as_str).ok_or_else(|| {
                CardError::MissingField {
                    url: card_url.to_string(),
                    field: "url",
                }
            })?;
            Endpoint::A2a {
                url: resolve(card_url, url)?,
            }
        } else {
            Endpoint::Legacy {
                url: legacy_url(card_url, object.get("url").and_then(Value::as_str))?,
            }
        };
        let skills = object
            .get("skills")
            .and_then(Value::as_array)
            .map(|skills| skills.iter().filter_map(skill_info).collect())
            .unwrap_or_default();
        Ok(AgentCard {
            name: name.to_string(),
            description: object
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            endpoint,
            skills,
            max_response_size: None,
        })
    }
}

/// Fields only A2A 0.3 cards have (legacy cards are `{name, url, skills}`).
const A2A_03_FIELDS: [&str; 5] = [
    "protocolVersion",
    "capabilities",
    "defaultInputModes",
    "preferredTransport",
    "additionalInterfaces",
];

/// The JSON-RPC interface of an A2A 1.0 card, protocol version 1.0 preferred.
fn json_rpc_interface(card_url: &str, interfaces: &Value) -> Result<String, CardError> {
    let json_rpc: Vec<&Value> = interfaces
        .as_array()
        .into_iter()
        .flatten()
        .filter(|interface| {
            interface["protocolBinding"]
                .as_str()
                .is_some_and(|binding| binding.eq_ignore_ascii_case("JSONRPC"))
        })
        .collect();
    let chosen = json_rpc
        .iter()
        .find(|interface| interface["protocolVersion"].as_str() == Some("1.0"))
        .or(json_rpc.first())
        .and_then(|interface| interface["url"].as_str())
        .ok_or_else(|| CardError::NoJsonRpcInterface {
            url: card_url.to_string(),
        })?;
    resolve(card_url, chosen)
}

/// A legacy agent's base URL: its card's `url`, else where the card was served.
fn legacy_url(card_url: &str, declared: Option<&str>) -> Result<String, CardError> {
    match declared {
        Some(url) => Ok(resolve(card_url, url)?.trim_end_matches('/').to_string()),
        None => {
            let base = card_url.trim_end_matches('/');
            Ok(base.strip_suffix("/agent-card").unwrap_or(base).to_string())
        }
    }
}

/// Cards may give a path relative to where they were served.
fn resolve(card_url: &str, url: &str) -> Result<String, CardError> {
    let invalid = |source| CardError::InvalidUrl {
        url: card_url.to_string(),
        value: url.to_string(),
        source,
    };
    let resolved = match Url::parse(url) {
        Ok(absolute) => absolute,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let base = Url::parse(card_url).map_err(invalid)?;
            base.join(url).map_err(invalid)?
        }
        Err(source) => return Err(invalid(source)),
    };
    // reqwest would send them as Basic credentials to whatever host the card names.
    if has_credentials(&resolved) {
        return Err(CardError::CredentialsInUrl {
            url: card_url.to_string(),
            value: super::client::redacted(&resolved),
        });
    }
    Ok(resolved.to_string())
}

/// Whether `url` carries a user name or a password.
pub(crate) fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

fn skill_info(skill: &Value) -> Option<SkillInfo> {
    let id = skill["id"].as_str().or_else(|| skill["name"].as_str())?;
    Some(SkillInfo {
        id: id.to_string(),
        description: skill["description"].as_str().map(str::to_string),
        input_schema: skill.get("input_schema").cloned(),
        output_schema: skill.get("output_schema").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CARD_URL: &str = "http://127.0.0.1:9000/.well-known/agent-card.json";

    #[test]
    fn endpoints_by_card_shape() {
        let cases = [
            (
                json!({"name": "a", "supportedInterfaces": [
                    {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
                    {"url": "http://h/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                    {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]}),
                Endpoint::A2a {
                    url: "http://h/rpc".into(),
                },
            ),
            (
                json!({"name": "a", "supportedInterfaces": [{"url": "/rpc", "protocolBinding": "JSONRPC"}]}),
                Endpoint::A2a {
                    url: "http://127.0.0.1:9000/rpc".into(),
                },
            ),
            (
                json!({"name": "a", "url": "http://h:1/a2a", "protocolVersion": "0.3.0", "skills": []}),
                Endpoint::A2a {
                    url: "http://h:1/a2a".into(),
                },
            ),
            (
                json!({"name": "a", "url": "http://h:2/", "skills": [{"id": "x", "input_schema": {}}]}),
                Endpoint::Legacy {
                    url: "http://h:2".into(),
                },
            ),
        ];
        for (card, expected) in cases {
            let parsed = AgentCard::parse(CARD_URL, &card).unwrap();
            assert_eq!(parsed.endpoint, expected, "card {card}");
        }
    }

    #[test]
    fn legacy_card_without_url_uses_where_it_was_served() {
        let card = json!({"name": "old", "skills": [{"id": "plan", "description": "plans"}]});
        let parsed = AgentCard::parse("http://h:3/agent-card", &card).unwrap();
        assert_eq!(
            parsed.endpoint,
            Endpoint::Legacy {
                url: "http://h:3".into()
            }
        );
        assert!(parsed.offers("plan"));
        assert!(!parsed.offers("build"));
    }

    #[test]
    fn bad_cards_are_named() {
        let cases = [
            (json!([1]), "is not a JSON object"),
            (json!({"url": "http://h"}), "has no `name`"),
            (
                json!({"name": "a", "supportedInterfaces": [{"url": "http://h", "protocolBinding": "GRPC"}]}),
                "offers no JSON-RPC interface",
            ),
            (json!({"name": "a", "capabilities": {}}), "has no `url`"),
            (
                json!({"name": "a", "supportedInterfaces": [{"url": "http://user:secret@h/rpc", "protocolBinding": "JSONRPC"}]}),
                "gives the url `http://h/rpc` with a user name or password",
            ),
            (
                json!({"name": "a", "url": "http://token@h/", "skills": []}),
                "with a user name or password",
            ),
        ];
        for (card, expected) in cases {
            let message = AgentCard::parse(CARD_URL, &card).unwrap_err().to_string();
            assert!(
                message.contains(expected) && message.contains(CARD_URL),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
