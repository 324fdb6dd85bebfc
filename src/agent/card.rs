//! Agent cards: A2A 1.0 (`supportedInterfaces`), A2A 0.3 (`url`,
//! `preferredTransport`, `additionalInterfaces`) and legacy (`/agent-card`),
//! all read into one [`AgentCard`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::auth::{Auth, Security};

mod schemas;

pub use schemas::{
    IgnoredSchema, MAX_SKILL_SCHEMA_BYTES, MAX_SKILL_SCHEMA_DEPTH, SKILL_SCHEMAS_EXTENSION,
};

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
    /// What the card asks for and the credential configured for it.
    #[serde(skip)]
    pub auth: Auth,
    /// The card declares `capabilities.streaming: true` (A2A cards only):
    /// calls follow the task's event stream instead of polling it.
    #[serde(skip)]
    pub streaming: bool,
}

/// Where and how to call an agent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Endpoint {
    /// A2A: the interfaces pallet speaks, in the card's order of preference
    /// (never empty); a call goes to the first that accepts a connection.
    A2a { interfaces: Vec<Interface> },
    /// The original project's agents: POST `{url}/execute`.
    Legacy { url: String },
}

/// One A2A interface: a URL, the protocol version spoken there and the binding.
/// Read back from the run database, where a step attempt keeps the interface
/// that accepted its task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interface {
    pub url: String,
    pub version: Version,
    pub binding: Binding,
}

/// The A2A versions pallet speaks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Version {
    #[serde(rename = "0.3")]
    V0_3,
    #[serde(rename = "1.0")]
    V1_0,
}

/// The A2A bindings pallet speaks (the card names them `JSONRPC` and `HTTP+JSON`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Binding {
    #[serde(rename = "JSONRPC")]
    JsonRpc,
    #[serde(rename = "HTTP+JSON")]
    HttpJson,
}

impl Interface {
    /// `http://h/ (A2A 1.0, HTTP+JSON)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.url, self.kind())
    }

    /// `A2A 1.0 HTTP+JSON`, for messages.
    pub fn kind(&self) -> String {
        let version = match self.version {
            Version::V0_3 => "0.3",
            Version::V1_0 => "1.0",
        };
        let binding = match self.binding {
            Binding::JsonRpc => "JSONRPC",
            Binding::HttpJson => "HTTP+JSON",
        };
        format!("A2A {version} {binding}")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkillInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the skill's input, when the card publishes a usable
    /// one (see `card/schemas.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// The JSON Schema of the skill's output, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The skill's own security requirements, which replace the card's.
    #[serde(skip)]
    pub security: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("agent card from {url} is not a JSON object")]
    NotAnObject { url: String },
    #[error("agent card from {url} has no `{field}`")]
    MissingField { url: String, field: &'static str },
    #[error(
        "agent `{name}` (card {url}) offers only {offered}, none of which pallet speaks (A2A 0.3 or 1.0 over JSONRPC or HTTP+JSON)"
    )]
    NoSupportedInterface {
        url: String,
        name: String,
        /// What the card offers, e.g. `GRPC (A2A 1.0) at http://h/`.
        offered: String,
        /// The skills it would have offered.
        skills: Vec<String>,
    },
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

    /// What the card says of `skill`, when it offers it.
    pub fn skill(&self, skill: &str) -> Option<&SkillInfo> {
        self.skills.iter().find(|offered| offered.id == skill)
    }

    /// What is missing to call `skill` (the schemes asked for, described),
    /// when the card requires a credential that is not configured.
    pub fn missing_credential(&self, skill: &str) -> Option<String> {
        self.auth.security.missing(
            self.skill_requirements(skill),
            self.auth.authentication.as_ref(),
        )
    }

    /// The requirements that hold for `skill`: its own, else the card's.
    pub fn requirements_for(&self, skill: &str) -> &[Vec<String>] {
        match self.skill_requirements(skill) {
            [] => &self.auth.security.requirements,
            own => own,
        }
    }

    fn skill_requirements(&self, skill: &str) -> &[Vec<String>] {
        self.skills
            .iter()
            .find(|offered| offered.id == skill)
            .map_or(&[][..], |offered| offered.security.as_slice())
    }

    /// The URL the agent is called at first, whatever its protocol.
    pub fn url(&self) -> &str {
        match &self.endpoint {
            Endpoint::A2a { interfaces } => interfaces.first().map_or("", |first| &first.url),
            Endpoint::Legacy { url } => url,
        }
    }

    /// Reads a card fetched from `card_url`. The kind is told by its shape:
    /// `supportedInterfaces` is A2A 1.0, A2A 0.3 fields mean A2A 0.3, anything
    /// else is a legacy card. An A2A card none of whose interfaces pallet
    /// speaks is an error naming what it offers.
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
        let extension = schemas::extension(object);
        let skills: Vec<SkillInfo> = object
            .get("skills")
            .and_then(Value::as_array)
            .map(|skills| {
                skills
                    .iter()
                    .filter_map(|skill| skill_info(name, skill, extension))
                    .collect()
            })
            .unwrap_or_default();
        let endpoint = if let Some(interfaces) = object.get("supportedInterfaces") {
            a2a_endpoint(card_url, name, &skills, version_1_interfaces(interfaces))?
        } else if A2A_03_FIELDS
            .iter()
            .any(|field| object.contains_key(*field))
        {
            a2a_endpoint(
                card_url,
                name,
                &skills,
                version_03_interfaces(card_url, object)?,
            )?
        } else {
            Endpoint::Legacy {
                url: legacy_url(card_url, object.get("url").and_then(Value::as_str))?,
            }
        };
        Ok(AgentCard {
            name: name.to_string(),
            description: object
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            streaming: matches!(endpoint, Endpoint::A2a { .. })
                && object
                    .get("capabilities")
                    .and_then(|capabilities| capabilities.get("streaming"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            endpoint,
            skills,
            max_response_size: None,
            auth: Auth {
                security: Security::parse(object),
                authentication: None,
            },
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

/// An interface as the card declares it, before pallet decides whether it speaks it.
struct Declared<'a> {
    url: Option<&'a str>,
    binding: &'a str,
    version: Option<Version>,
    /// The version as written, for messages.
    version_text: &'a str,
}

/// A 1.0 card's `supportedInterfaces`, in its order. An interface without
/// `protocolVersion` is taken as 1.0, the version that introduced the list.
fn version_1_interfaces(interfaces: &Value) -> Vec<Declared<'_>> {
    let declared = interfaces.as_array().into_iter().flatten();
    declared
        .map(|interface| {
            let version_text = interface["protocolVersion"].as_str().unwrap_or("1.0");
            Declared {
                url: interface["url"].as_str(),
                binding: interface["protocolBinding"].as_str().unwrap_or("(none)"),
                version: version(version_text),
                version_text,
            }
        })
        .collect()
}

/// A 0.3 card's main `url` with its `preferredTransport` (JSON-RPC when
/// absent), then its `additionalInterfaces` in order.
fn version_03_interfaces<'a>(
    card_url: &str,
    object: &'a Map<String, Value>,
) -> Result<Vec<Declared<'a>>, CardError> {
    let main_url =
        object
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| CardError::MissingField {
                url: card_url.to_string(),
                field: "url",
            })?;
    let version_text = object
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.3.0");
    let declared = |url: Option<&'a str>, binding: &'a str| Declared {
        url,
        binding,
        version: version(version_text).filter(|version| *version == Version::V0_3),
        version_text,
    };
    let preferred = object
        .get("preferredTransport")
        .and_then(Value::as_str)
        .unwrap_or("JSONRPC");
    let mut interfaces = vec![declared(Some(main_url), preferred)];
    for additional in object
        .get("additionalInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let url = additional["url"].as_str();
        let binding = additional["transport"].as_str().unwrap_or("(none)");
        // 0.3 cards usually repeat their main interface among the others.
        if url != Some(main_url) || !binding.eq_ignore_ascii_case(preferred) {
            interfaces.push(declared(url, binding));
        }
    }
    Ok(interfaces)
}

/// `1.0`, `1.0.1` are 1.0; `0.3`, `0.3.0` (and 0.2, whose JSON-RPC methods 0.3 kept) are 0.3.
fn version(text: &str) -> Option<Version> {
    let mut numbers = text.trim().split('.');
    match (numbers.next(), numbers.next()) {
        (Some("1"), Some("0") | None) => Some(Version::V1_0),
        (Some("0"), Some("2" | "3")) => Some(Version::V0_3),
        _ => None,
    }
}

fn binding(text: &str) -> Option<Binding> {
    match text.to_ascii_uppercase().as_str() {
        "JSONRPC" | "JSON-RPC" => Some(Binding::JsonRpc),
        "HTTP+JSON" | "REST" => Some(Binding::HttpJson),
        _ => None,
    }
}

/// The interfaces pallet speaks, in the card's order; none is an error naming
/// what the card offers, so discovery can say why the agent is left out.
fn a2a_endpoint(
    card_url: &str,
    name: &str,
    skills: &[SkillInfo],
    declared: Vec<Declared<'_>>,
) -> Result<Endpoint, CardError> {
    let mut interfaces = Vec::new();
    for interface in &declared {
        if let (Some(url), Some(version), Some(binding)) =
            (interface.url, interface.version, binding(interface.binding))
        {
            let url = resolve(card_url, url)?;
            interfaces.push(Interface {
                url,
                version,
                binding,
            });
        }
    }
    if !interfaces.is_empty() {
        return Ok(Endpoint::A2a { interfaces });
    }
    let offered: Vec<String> = declared
        .iter()
        .map(|interface| {
            format!(
                "{} (A2A {}) at {}",
                interface.binding,
                interface.version_text,
                interface.url.unwrap_or("(no url)")
            )
        })
        .collect();
    Err(CardError::NoSupportedInterface {
        url: card_url.to_string(),
        name: name.to_string(),
        offered: if offered.is_empty() {
            "no interface".to_string()
        } else {
            offered.join(", ")
        },
        skills: skills.iter().map(|skill| skill.id.clone()).collect(),
    })
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

fn skill_info(
    agent: &str,
    skill: &Value,
    extension: Option<&Map<String, Value>>,
) -> Option<SkillInfo> {
    let id = skill["id"].as_str().or_else(|| skill["name"].as_str())?;
    let schema = |field| schemas::published(agent, id, field, extension, skill);
    Some(SkillInfo {
        id: id.to_string(),
        description: skill["description"].as_str().map(str::to_string),
        input_schema: schema("input_schema"),
        output_schema: schema("output_schema"),
        security: skill
            .as_object()
            .map(super::auth::requirements)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CARD_URL: &str = "http://127.0.0.1:9000/.well-known/agent-card.json";

    fn interface(url: &str, version: Version, binding: Binding) -> Interface {
        Interface {
            url: url.into(),
            version,
            binding,
        }
    }

    #[test]
    fn endpoints_by_card_shape() {
        use Binding::{HttpJson, JsonRpc};
        use Version::{V0_3, V1_0};
        let a2a = |interfaces: Vec<Interface>| Endpoint::A2a { interfaces };
        let cases = [
            (
                json!({"name": "a", "supportedInterfaces": [
                    {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
                    {"url": "http://h/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
                    {"url": "http://h/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                    {"url": "http://h/next", "protocolBinding": "JSONRPC", "protocolVersion": "2.0"},
                    {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]}),
                a2a(vec![
                    interface("http://h/rest", V1_0, HttpJson),
                    interface("http://h/old", V0_3, JsonRpc),
                    interface("http://h/rpc", V1_0, JsonRpc),
                ]),
            ),
            (
                json!({"name": "a", "supportedInterfaces": [{"url": "/rpc", "protocolBinding": "JSONRPC"}]}),
                a2a(vec![interface("http://127.0.0.1:9000/rpc", V1_0, JsonRpc)]),
            ),
            (
                json!({"name": "a", "url": "http://h:1/a2a", "protocolVersion": "0.3.0", "skills": []}),
                a2a(vec![interface("http://h:1/a2a", V0_3, JsonRpc)]),
            ),
            (
                json!({"name": "a", "url": "http://h:1/rest", "protocolVersion": "0.3.0",
                       "preferredTransport": "HTTP+JSON", "additionalInterfaces": [
                           {"url": "http://h:1/rest", "transport": "HTTP+JSON"},
                           {"url": "http://h:1/grpc", "transport": "GRPC"},
                           {"url": "http://h:1/rpc", "transport": "JSONRPC"}]}),
                a2a(vec![
                    interface("http://h:1/rest", V0_3, HttpJson),
                    interface("http://h:1/rpc", V0_3, JsonRpc),
                ]),
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
    fn cards_pallet_cannot_speak_name_the_agent_and_what_it_offers() {
        let cases = [
            (
                json!({"name": "grpc-only", "skills": [{"id": "plan"}], "supportedInterfaces": [
                    {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]}),
                "agent `grpc-only` (card http://127.0.0.1:9000/.well-known/agent-card.json) offers only GRPC (A2A 1.0) at http://h/grpc, none of which pallet speaks",
            ),
            (
                json!({"name": "future", "skills": [{"id": "plan"}], "supportedInterfaces": [
                    {"url": "http://h/", "protocolBinding": "JSONRPC", "protocolVersion": "2.0"}]}),
                "offers only JSONRPC (A2A 2.0) at http://h/",
            ),
            (
                json!({"name": "old-grpc", "skills": [{"id": "plan"}], "url": "http://h/",
                       "protocolVersion": "0.3.0", "preferredTransport": "GRPC"}),
                "offers only GRPC (A2A 0.3.0) at http://h/",
            ),
            (
                json!({"name": "ancient", "skills": [{"id": "plan"}], "url": "http://h/",
                       "protocolVersion": "0.1.0"}),
                "offers only JSONRPC (A2A 0.1.0) at http://h/",
            ),
        ];
        for (card, expected) in cases {
            let error = AgentCard::parse(CARD_URL, &card).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            let CardError::NoSupportedInterface { skills, .. } = error else {
                panic!("{error}");
            };
            assert_eq!(skills, ["plan"]);
        }
    }

    #[test]
    fn skill_schemas_from_the_extension_of_both_versions_and_from_legacy_skills() {
        let input = json!({"type": "object", "required": ["code"]});
        let output = json!({"type": "string"});
        let extension = json!([{"uri": SKILL_SCHEMAS_EXTENSION, "params": {"skills": {
            "review": {"input_schema": input, "output_schema": output},
            "other": {"input_schema": {"type": 12}},
        }}}]);
        let skills = json!([{"id": "review"}, {"id": "other"}, {"id": "plain"}]);
        let cards = [
            json!({"name": "a", "skills": skills, "capabilities": {"extensions": extension},
                   "supportedInterfaces": [{"url": "http://h/", "protocolBinding": "JSONRPC"}]}),
            json!({"name": "a", "skills": skills, "capabilities": {"extensions": extension},
                   "url": "http://h/", "protocolVersion": "0.3.0"}),
            json!({"name": "a", "url": "http://h/", "skills": [
                {"id": "review", "input_schema": input, "output_schema": output},
                {"id": "other", "input_schema": {"type": 12}},
                {"id": "plain"}]}),
        ];
        for card in cards {
            let parsed = AgentCard::parse(CARD_URL, &card).unwrap();
            let review = parsed.skill("review").unwrap();
            assert_eq!(review.input_schema.as_ref(), Some(&input), "{card}");
            assert_eq!(review.output_schema.as_ref(), Some(&output), "{card}");
            // One that does not compile is none (with a warning), as is one not given.
            let other = parsed.skill("other").unwrap();
            assert_eq!((&other.input_schema, &other.output_schema), (&None, &None));
            assert_eq!(parsed.skill("plain").unwrap().input_schema, None);
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
                "offers only GRPC (A2A 1.0) at http://h",
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
