//! Agents discovered from the agent cards pushed under `agents/*`, and a
//! discovery that combines several sources behind the one trait.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

use super::reference::{ArtifactKind, Reference};
use super::{Registry, RegistryError};
use crate::agent::credentials::Credentials;
use crate::agent::discovery::{missing_credential, registry_authentication};
use crate::agent::{AgentCard, Discovery, DiscoveryError};

/// An agent that does not accept a connection in this long is skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The agent cards in one registry, read once per run (through the cache).
pub struct RegistryDiscovery {
    registry: Arc<Registry>,
    cards: OnceCell<Loaded>,
}

struct Loaded {
    cards: Vec<RegistryCard>,
    /// Why the registry's cards could not be read, for `searched`.
    problem: Option<String>,
}

struct RegistryCard {
    card: Arc<AgentCard>,
    /// Whether the agent accepts connections, checked once when first needed.
    answers: OnceCell<bool>,
}

impl RegistryDiscovery {
    /// Cards are read on first use; a registry that cannot be read then
    /// contributes no agents (and says why in `searched`).
    pub fn new(registry: Arc<Registry>) -> RegistryDiscovery {
        RegistryDiscovery {
            registry,
            cards: OnceCell::new(),
        }
    }

    /// Reads the cards now, failing when the registry cannot be read.
    pub async fn load(registry: Arc<Registry>) -> Result<RegistryDiscovery, RegistryError> {
        let cards = read_cards(&registry).await?;
        let discovery = RegistryDiscovery::new(registry);
        let _ = discovery.cards.set(Loaded {
            cards,
            problem: None,
        });
        Ok(discovery)
    }

    /// How many agent cards the registry holds (reading them if needed).
    pub async fn card_count(&self) -> usize {
        self.loaded().await.cards.len()
    }

    async fn loaded(&self) -> &Loaded {
        self.cards
            .get_or_init(|| async {
                match read_cards(&self.registry).await {
                    Ok(cards) => Loaded {
                        cards,
                        problem: None,
                    },
                    Err(error) => {
                        tracing::warn!(%error, "cannot read agent cards from the registry");
                        Loaded {
                            cards: Vec::new(),
                            problem: Some(error.to_string()),
                        }
                    }
                }
            })
            .await
    }
}

/// Cards read from the registry at once (each is a tag list, and a manifest
/// and blobs when not cached).
const CARD_READS_AT_ONCE: usize = 8;

/// The highest version of every `agents/*` repository, parsed as a card:
/// warm, one catalog request and one tag list per repository, concurrently.
/// A repository pallet cannot read is logged and left out; a registry that
/// hides its catalog (401, 403, 404) has no cards, with a warning.
async fn read_cards(registry: &Registry) -> Result<Vec<RegistryCard>, RegistryError> {
    let repositories = match registry.repositories(ArtifactKind::AgentCard).await {
        Ok(repositories) => repositories,
        Err(error) if catalog_hidden(&error) => {
            tracing::warn!(%error, "the registry does not list its repositories: no agent cards from it");
            return Ok(Vec::new());
        }
        Err(error) => return Err(error),
    };
    // A bad credentials file fails `--agent` runs with its reason; here the
    // registry's agents are called without credentials instead.
    let credentials = Credentials::load().unwrap_or_else(|error| {
        tracing::warn!(error = %crate::error::chain_of(&error), "credentials file not used for the registry's agents");
        Credentials::default()
    });
    let credentials = &credentials;
    let cards: Vec<Option<RegistryCard>> = stream::iter(repositories)
        .map(|repository| read_card(registry, repository, credentials))
        .buffered(CARD_READS_AT_ONCE)
        .collect()
        .await;
    Ok(cards.into_iter().flatten().collect())
}

/// Whether a catalog error means "not offered here" rather than "broken".
fn catalog_hidden(error: &RegistryError) -> bool {
    match error {
        RegistryError::Unauthorized { .. } => true,
        RegistryError::Status { status, .. } => matches!(status, 401 | 403 | 404),
        _ => false,
    }
}

/// One repository's card; `None` (logged) when it cannot be read.
async fn read_card(
    registry: &Registry,
    repository: String,
    credentials: &Credentials,
) -> Option<RegistryCard> {
    let pulled = Reference::parse(ArtifactKind::AgentCard, &repository);
    let pulled = match pulled {
        Ok(reference) => registry.pull(&reference).await,
        Err(error) => Err(error),
    };
    let pulled = match pulled {
        Ok(pulled) => pulled,
        Err(error) => {
            tracing::warn!(%error, repository, "agent card skipped");
            return None;
        }
    };
    let location = format!(
        "{}/{}@{}",
        registry.address(),
        pulled.resolved.repository,
        pulled.resolved.digest
    );
    let parsed = serde_json::from_slice(&pulled.content)
        .map_err(|error| error.to_string())
        .and_then(|json| AgentCard::parse(&location, &json).map_err(|error| error.to_string()));
    match parsed {
        Ok(mut card) => Some(RegistryCard {
            card: {
                card.auth.authentication = registry_authentication(&card, credentials);
                Arc::new(card)
            },
            answers: OnceCell::new(),
        }),
        Err(problem) => {
            tracing::warn!(card = location, "agent card skipped: {problem}");
            None
        }
    }
}

/// Whether something accepts connections at the host and port of `url`.
async fn answers(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

impl RegistryCard {
    async fn answers(&self) -> bool {
        *self
            .answers
            .get_or_init(|| async {
                let up = answers(self.card.url()).await;
                if !up {
                    tracing::warn!(agent = %self.card.name, url = %self.card.url(), "agent from the registry does not answer; skipping it");
                }
                up
            })
            .await
    }
}

impl Discovery for RegistryDiscovery {
    fn agents_for<'a>(
        &'a self,
        skill: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Arc<AgentCard>>, DiscoveryError>> {
        Box::pin(async move {
            let loaded = self.loaded().await;
            let offering: Vec<&RegistryCard> = loaded
                .cards
                .iter()
                .filter(|entry| entry.card.offers(skill))
                .collect();
            let checks = join_all(offering.iter().map(|entry| entry.answers())).await;
            let alive: Vec<Arc<AgentCard>> = offering
                .into_iter()
                .zip(checks)
                .filter(|(_, up)| *up)
                .map(|(entry, _)| entry.card.clone())
                .collect();
            let (alive, locked): (Vec<Arc<AgentCard>>, Vec<Arc<AgentCard>>) = alive
                .into_iter()
                .partition(|card| card.missing_credential(skill).is_none());
            if alive.is_empty() && !locked.is_empty() {
                return Err(missing_credential(skill, &locked, true));
            }
            if alive.is_empty() {
                let mut offered: Vec<String> = Vec::new();
                for entry in &loaded.cards {
                    for skill in &entry.card.skills {
                        if !offered.contains(&skill.id) {
                            offered.push(skill.id.clone());
                        }
                    }
                }
                return Err(DiscoveryError::UnknownSkill {
                    skill: skill.to_string(),
                    searched: self.searched(),
                    offered,
                });
            }
            Ok(alive)
        })
    }

    fn searched(&self) -> String {
        let registry = format!("registry {}", self.registry.address());
        let Some(loaded) = self.cards.get() else {
            return format!("{registry} agent cards");
        };
        if let Some(problem) = &loaded.problem {
            return format!("{registry} (agent cards unreadable: {problem})");
        }
        if loaded.cards.is_empty() {
            return format!("{registry} (no agent cards)");
        }
        let described: Vec<String> = loaded
            .cards
            .iter()
            .map(|entry| {
                let state = match entry.answers.get() {
                    Some(false) => " (not answering)",
                    _ => "",
                };
                format!("`{}` at {}{state}", entry.card.name, entry.card.url())
            })
            .collect();
        format!("{registry}: {}", described.join(", "))
    }
}

/// Several discovery sources asked in order; the agents of the first source
/// offering a skill are returned, and later sources are not asked then, so
/// explicit agents spare registry reads.
pub struct CombinedDiscovery(pub Vec<Arc<dyn Discovery>>);

impl Discovery for CombinedDiscovery {
    fn agents_for<'a>(
        &'a self,
        skill: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Arc<AgentCard>>, DiscoveryError>> {
        Box::pin(async move {
            let mut offered: Vec<String> = Vec::new();
            for source in &self.0 {
                match source.agents_for(skill).await {
                    Ok(cards) if !cards.is_empty() => return Ok(cards),
                    Ok(_) => {}
                    Err(DiscoveryError::UnknownSkill { offered: more, .. }) => {
                        for skill in more {
                            if !offered.contains(&skill) {
                                offered.push(skill);
                            }
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
            Err(DiscoveryError::UnknownSkill {
                skill: skill.to_string(),
                searched: self.searched(),
                offered,
            })
        })
    }

    fn searched(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|source| source.searched()).collect();
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_catalogs_are_no_cards_other_errors_are_not() {
        let status = |status| RegistryError::Status {
            registry: "h:1".into(),
            path: "/v2/_catalog".into(),
            status,
            detail: String::new(),
        };
        let unauthorized = RegistryError::Unauthorized {
            registry: "h:1".into(),
            path: "/v2/_catalog".into(),
            detail: String::new(),
        };
        let cases = [
            (unauthorized, true),
            (status(401), true),
            (status(403), true),
            (status(404), true),
            (status(500), false),
            (
                RegistryError::InvalidAddress {
                    address: "x".into(),
                    problem: "y".into(),
                },
                false,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(catalog_hidden(&error), expected, "{error}");
        }
    }

    #[tokio::test]
    async fn answers_only_where_something_listens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = format!("http://{}/a2a", listener.local_addr().unwrap());
        let closed_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", closed_listener.local_addr().unwrap());
        drop(closed_listener);
        let cases = [
            (open.as_str(), true),
            (closed.as_str(), false),
            ("not a url", false),
        ];
        for (url, expected) in cases {
            assert_eq!(answers(url).await, expected, "{url}");
        }
    }
}
