//! Finding the agents that offer a skill. The registry adds a second source
//! behind the same trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::answer::{BodyError, json_values, max_json_values, read_limited};
use super::card::{AgentCard, CardError, has_credentials};
use super::client::{DEFAULT_MAX_RESPONSE_SIZE, card_http_client, redacted};
use super::credentials::{AuthEntry, CredentialError, Credentials, Secret, how_to_give};

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no agent offers skill `{skill}` (searched: {searched})")]
    UnknownSkill {
        skill: String,
        searched: String,
        offered: Vec<String>,
    },
    #[error("cannot read agents file {}", path.display())]
    ReadAgentsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("agents file {} is neither a list of agent URLs nor `agents: [{{url: ...}}]`", path.display())]
    ParseAgentsFile {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("skill `{skill}` is offered only by agents pallet cannot speak to: {agents}")]
    UnsupportedProtocol {
        skill: String,
        /// Each agent with what its card offers.
        agents: String,
    },
    #[error(
        "skill `{skill}` is offered only by agents that need a credential pallet does not have: {agents}"
    )]
    MissingCredential {
        skill: String,
        /// Each agent with what it asks for.
        agents: String,
        /// How to give the first agent its credential.
        how: String,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("agent url `{url}` carries a user name or password, which pallet does not send")]
    CredentialsInUrl {
        /// The URL without them.
        url: String,
    },
}

impl DiscoveryError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            DiscoveryError::UnknownSkill { offered, .. } if offered.is_empty() => Some("no reachable agent offers any skill; pass agents with --agent URL or an agents file".to_string()),
            DiscoveryError::UnknownSkill { skill, offered, .. } => {
                let listed = offered.join(", ");
                Some(match closest(skill, offered) {
                    Some(close) => format!("did you mean `{close}`? skills offered: {listed}"),
                    None => format!("skills offered: {listed}"),
                })
            }
            DiscoveryError::ParseAgentsFile { .. } => {
                Some("write `agents: [{url: http://host:port}]` or a plain list of URLs".to_string())
            }
            DiscoveryError::CredentialsInUrl { .. } => Some(
                "remove `user:password@` from the URL; credentials in a URL would go to any host it redirects to or names in its card".to_string(),
            ),
            DiscoveryError::UnsupportedProtocol { .. } => Some(
                "pallet speaks A2A 0.3 and 1.0 over JSONRPC and HTTP+JSON: give the agent such an interface (docs/agents.md), or use another agent".to_string(),
            ),
            DiscoveryError::MissingCredential { how, .. } => Some(how.clone()),
            DiscoveryError::Credentials(error) => error.hint(),
            DiscoveryError::ReadAgentsFile { .. } => None,
        }
    }
}

/// The offered skill nearest to `skill` by edit distance, if near enough to be a typo.
fn closest<'a>(skill: &str, offered: &'a [String]) -> Option<&'a str> {
    offered
        .iter()
        .map(|candidate| (edit_distance(skill, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, left_char) in left.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[right.len()]
}

/// A source of agent cards, cached for a run.
pub trait Discovery: Send + Sync {
    /// The agents offering `skill`, in the configured order. A source that
    /// knows all its agents answers `UnknownSkill` when none offers it; an
    /// empty list is possible from sources that cannot tell.
    fn agents_for<'a>(
        &'a self,
        skill: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Arc<AgentCard>>, DiscoveryError>>;

    /// A short description of where agents were looked for, for error messages.
    fn searched(&self) -> String;
}

/// An agent that accepts the connection but does not serve its card in this
/// long is left out rather than holding up the run.
const CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Agents from `--agent URL` flags and an agents file; cards fetched once.
pub struct StaticDiscovery {
    http: reqwest::Client,
    agents: Vec<ConfiguredAgent>,
    /// The credentials file's secrets (the environment is read as well).
    credentials: Credentials,
    found: OnceCell<Vec<Found>>,
}

/// One agent as configured: its URL and, from an agents file, its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredAgent {
    pub url: String,
    /// The largest answer (and card) read from it.
    pub max_response_size: Option<u64>,
    /// Its secret, from the agents file's `auth`.
    pub secret: Option<Secret>,
}

/// What one configured URL gave.
enum Found {
    Card(Arc<AgentCard>),
    Unreachable {
        url: String,
    },
    /// It answered, but with no card pallet can read.
    NoCard {
        url: String,
    },
    /// Its card is one pallet will not use, for `reason`.
    Refused {
        url: String,
        reason: String,
    },
    /// An A2A agent none of whose interfaces pallet speaks.
    Unsupported {
        url: String,
        name: String,
        /// What its card offers, e.g. `GRPC (A2A 1.0) at http://h/`.
        offered: String,
        skills: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AgentsFile {
    Agents { agents: Vec<AgentEntry> },
    List(Vec<AgentEntry>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AgentEntry {
    Url(String),
    Agent {
        url: String,
        #[serde(default, with = "crate::workflow::model::size_opt")]
        max_response_size: Option<u64>,
        #[serde(default)]
        auth: Option<AuthEntry>,
    },
}

impl StaticDiscovery {
    /// Agents at `urls`: base URLs or full card URLs, in order of preference.
    pub fn new(urls: Vec<String>) -> StaticDiscovery {
        let agents = urls
            .into_iter()
            .map(|url| ConfiguredAgent {
                url,
                max_response_size: None,
                secret: None,
            })
            .collect();
        StaticDiscovery {
            http: card_http_client(),
            agents,
            credentials: Credentials::default(),
            found: OnceCell::new(),
        }
    }

    /// `urls` first, then the agents listed in `agents_file` (YAML or JSON);
    /// a URL with credentials in it is refused. The credentials file is read
    /// here, so a bad one fails before any agent is asked.
    pub fn configured(
        urls: Vec<String>,
        agents_file: Option<&Path>,
    ) -> Result<StaticDiscovery, DiscoveryError> {
        let mut discovery = StaticDiscovery::new(urls);
        discovery.credentials = Credentials::load()?;
        if let Some(path) = agents_file {
            discovery.agents.extend(read_agents_file(path)?);
        }
        for agent in &discovery.agents {
            refuse_credentials(&agent.url)?;
        }
        Ok(discovery)
    }

    /// `urls` first, then the agents listed in `agents_file` (YAML or JSON).
    pub fn with_agents_file(
        urls: Vec<String>,
        agents_file: &Path,
    ) -> Result<StaticDiscovery, DiscoveryError> {
        StaticDiscovery::configured(urls, Some(agents_file))
    }

    /// The cards of all agents that answered, fetched on first use.
    pub async fn cards(&self) -> Vec<Arc<AgentCard>> {
        self.found()
            .await
            .iter()
            .filter_map(|found| match found {
                Found::Card(card) => Some(card.clone()),
                Found::Unreachable { .. }
                | Found::NoCard { .. }
                | Found::Refused { .. }
                | Found::Unsupported { .. } => None,
            })
            .collect()
    }

    /// Every skill the reachable agents offer, without repeats, in card order.
    pub async fn offered_skills(&self) -> Vec<String> {
        let mut skills: Vec<String> = Vec::new();
        for card in self.cards().await {
            for skill in &card.skills {
                if !skills.contains(&skill.id) {
                    skills.push(skill.id.clone());
                }
            }
        }
        skills
    }

    /// When only agents pallet cannot speak to offer `skill`: the error naming them.
    async fn unsupported_offering(&self, skill: &str) -> Option<DiscoveryError> {
        let agents: Vec<String> = self
            .found()
            .await
            .iter()
            .filter_map(|found| match found {
                Found::Unsupported {
                    url,
                    name,
                    offered,
                    skills,
                } if skills.iter().any(|offered| offered == skill) => {
                    Some(format!("`{name}` at {url} offers only {offered}"))
                }
                _ => None,
            })
            .collect();
        (!agents.is_empty()).then(|| DiscoveryError::UnsupportedProtocol {
            skill: skill.to_string(),
            agents: agents.join("; "),
        })
    }

    async fn found(&self) -> &Vec<Found> {
        self.found
            .get_or_init(|| async {
                let fetches = self
                    .agents
                    .iter()
                    .map(|agent| fetch_card(&self.http, agent, &self.credentials));
                join_all(fetches).await
            })
            .await
    }
}

impl Discovery for StaticDiscovery {
    fn agents_for<'a>(
        &'a self,
        skill: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Arc<AgentCard>>, DiscoveryError>> {
        Box::pin(async move {
            let (offering, locked): (Vec<Arc<AgentCard>>, Vec<Arc<AgentCard>>) = self
                .cards()
                .await
                .into_iter()
                .filter(|card| card.offers(skill))
                .partition(|card| card.missing_credential(skill).is_none());
            if offering.is_empty() && !locked.is_empty() {
                return Err(missing_credential(skill, &locked, false));
            }
            if offering.is_empty() {
                if let Some(error) = self.unsupported_offering(skill).await {
                    return Err(error);
                }
                return Err(DiscoveryError::UnknownSkill {
                    skill: skill.to_string(),
                    searched: self.searched(),
                    offered: self.offered_skills().await,
                });
            }
            Ok(offering)
        })
    }

    fn searched(&self) -> String {
        let Some(found) = self.found.get() else {
            return if self.agents.is_empty() {
                "no agents configured".to_string()
            } else {
                let urls: Vec<&str> = self.agents.iter().map(|agent| agent.url.as_str()).collect();
                urls.join(", ")
            };
        };
        if found.is_empty() {
            return "no agents configured".to_string();
        }
        let described: Vec<String> = found
            .iter()
            .map(|found| match found {
                Found::Card(card) => format!("`{}` at {}", card.name, card.url()),
                Found::Unreachable { url } => format!("{url} (unreachable)"),
                Found::NoCard { url } => format!("{url} (no usable agent card)"),
                Found::Refused { url, reason } => format!("{url} (refused: {reason})"),
                Found::Unsupported {
                    url, name, offered, ..
                } => format!("`{name}` at {url} (speaks only {offered})"),
            })
            .collect();
        described.join(", ")
    }
}

/// The error for a skill whose agents all need a credential not configured.
/// `from_registry`: the cards came from the registry, where only the
/// credentials file applies.
pub(crate) fn missing_credential(
    skill: &str,
    locked: &[Arc<AgentCard>],
    from_registry: bool,
) -> DiscoveryError {
    let agents: Vec<String> = locked
        .iter()
        .map(|card| {
            let asked = card.missing_credential(skill).unwrap_or_default();
            format!("`{}` at {} asks for {asked}", card.name, card.url())
        })
        .collect();
    let first = &locked[0];
    let (security, requirements) = (&first.auth.security, first.requirements_for(skill));
    let how = if security.only_unsupported(requirements) {
        "pallet answers HTTP bearer, HTTP basic and API keys in a header; give the agent such a scheme (docs/agents.md#authentication), or use another agent".to_string()
    } else if from_registry {
        let secret = if security.asks_for_basic(requirements) {
            "username: ..., password: ..."
        } else {
            "token: ..."
        };
        format!(
            "agents from the registry get credentials only from the credentials file: add `{}: {{url: {}, {secret}}}` under `agents:` in $XDG_CONFIG_HOME/pallet/credentials.yaml (mode 600), or give the agent with --agent; see docs/agents.md#authentication",
            first.name,
            first.url()
        )
    } else {
        how_to_give(&first.name, security.asks_for_basic(requirements))
    };
    DiscoveryError::MissingCredential {
        skill: skill.to_string(),
        agents: agents.join("; "),
        how,
    }
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

/// The header for a card read from the registry: only the credentials
/// file's entry for its name, which names the origin it may go to (the card
/// alone cannot say where a secret belongs).
pub(crate) fn registry_authentication(
    card: &AgentCard,
    credentials: &Credentials,
) -> Option<crate::agent::auth::Authentication> {
    let (origin, secret) = credentials.file_entry(&card.name)?;
    let skills: Vec<&[Vec<String>]> = card
        .skills
        .iter()
        .map(|skill| skill.security.as_slice())
        .collect();
    card.auth
        .security
        .authenticate(&skills, secret, origin.clone())
}

/// Credentials in an agent URL would be sent as Basic authentication to it
/// and to whatever its card names; they are refused, never logged.
fn refuse_credentials(url: &str) -> Result<(), DiscoveryError> {
    match url::Url::parse(url) {
        Ok(parsed) if has_credentials(&parsed) => Err(DiscoveryError::CredentialsInUrl {
            url: redacted(&parsed),
        }),
        _ => Ok(()),
    }
}

fn read_agents_file(path: &Path) -> Result<Vec<ConfiguredAgent>, DiscoveryError> {
    let entries = read_agents_entries(path)?;
    let mut agents = Vec::new();
    for entry in entries {
        agents.push(match entry {
            AgentEntry::Url(url) => ConfiguredAgent {
                url,
                max_response_size: None,
                secret: None,
            },
            AgentEntry::Agent {
                url,
                max_response_size,
                auth,
            } => ConfiguredAgent {
                secret: auth.map(|auth| auth.secret(&url)).transpose()?,
                url,
                max_response_size,
            },
        });
    }
    Ok(agents)
}

fn read_agents_entries(path: &Path) -> Result<Vec<AgentEntry>, DiscoveryError> {
    let text = std::fs::read_to_string(path).map_err(|source| DiscoveryError::ReadAgentsFile {
        path: path.to_path_buf(),
        source,
    })?;
    // JSON is YAML too, so one parser reads both.
    let file: AgentsFile =
        serde_yaml_ng::from_str(&text).map_err(|source| DiscoveryError::ParseAgentsFile {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(match file {
        AgentsFile::Agents { agents } => agents,
        AgentsFile::List(list) => list,
    })
}

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
async fn fetch_card(
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

#[cfg(test)]
mod tests {
    use std::io::Write;

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

    #[test]
    fn agents_files_in_every_accepted_shape() {
        let cases = [
            "agents:\n  - url: http://a\n  - url: http://b\n",
            "- http://a\n- http://b\n",
            r#"{"agents": [{"url": "http://a"}, "http://b"]}"#,
            r#"["http://a", "http://b"]"#,
        ];
        for text in cases {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(text.as_bytes()).unwrap();
            let urls: Vec<String> = read_agents_file(file.path())
                .unwrap()
                .into_iter()
                .map(|agent| agent.url)
                .collect();
            assert_eq!(urls, ["http://a", "http://b"], "{text}");
        }
    }

    #[test]
    fn agents_files_give_each_agent_its_response_limit() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = "agents:\n  - {url: http://a, max_response_size: 1MiB}\n  - {url: http://b, max_response_size: 2048}\n  - url: http://c\n";
        file.write_all(text.as_bytes()).unwrap();
        let limits: Vec<Option<u64>> = read_agents_file(file.path())
            .unwrap()
            .into_iter()
            .map(|agent| agent.max_response_size)
            .collect();
        assert_eq!(limits, [Some(1 << 20), Some(2048), None]);
    }

    #[test]
    fn agent_urls_with_credentials_are_refused_without_showing_them() {
        for url in ["http://user:hunter2@h:1", "http://hunter2@h:1/agent-card"] {
            let error = StaticDiscovery::configured(vec![url.to_string()], None)
                .err()
                .expect("refused");
            let message = error.to_string();
            assert!(
                message.contains("carries a user name or password"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
            assert!(error.hint().unwrap().contains("remove `user:password@`"));
        }
        assert!(StaticDiscovery::configured(vec!["http://h:1".into()], None).is_ok());
    }

    #[test]
    fn bad_agents_files_are_named() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"agents: 3\n").unwrap();
        let error = read_agents_file(file.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&file.path().display().to_string()),
            "{error}"
        );
        assert!(error.hint().is_some());
        let missing = read_agents_file(Path::new("no-such-agents.yaml")).unwrap_err();
        assert!(
            missing.to_string().contains("no-such-agents.yaml"),
            "{missing}"
        );
    }

    #[test]
    fn hints_suggest_close_skills() {
        let offered = vec!["create_plan".to_string(), "generate_code".to_string()];
        let cases = [
            (
                "create_pln",
                Some("did you mean `create_plan`? skills offered: create_plan, generate_code"),
            ),
            ("deploy", Some("skills offered: create_plan, generate_code")),
        ];
        for (skill, expected) in cases {
            let error = DiscoveryError::UnknownSkill {
                skill: skill.into(),
                searched: String::new(),
                offered: offered.clone(),
            };
            assert_eq!(error.hint().as_deref(), expected, "{skill}");
        }
    }

    #[test]
    fn edit_distances() {
        let cases = [
            ("", "", 0),
            ("abc", "abc", 0),
            ("abc", "abd", 1),
            ("kitten", "sitting", 3),
            ("", "ab", 2),
        ];
        for (left, right, expected) in cases {
            assert_eq!(edit_distance(left, right), expected, "{left} {right}");
        }
    }
}
