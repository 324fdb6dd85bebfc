//! Finding the agents that offer a skill. The registry adds a second source
//! behind the same trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::{BoxFuture, join_all};
use tokio::sync::OnceCell;

use super::card::{AgentCard, has_credentials};
use super::client::{card_http_client, redacted};
use super::credentials::{CredentialError, Credentials, Secret, how_to_give};

mod agents_file;
mod fetch;

use agents_file::read_agents_file;
use fetch::fetch_card;

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
        /// Boxed: a located problem is large and rare.
        source: Box<crate::yaml::YamlError>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
