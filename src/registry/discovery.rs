//! Agents discovered from the agent cards pushed under `agents/*`, and a
//! discovery that combines several sources behind the one trait.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use tokio::sync::OnceCell;

use super::reference::{ArtifactKind, Reference};
use super::{Registry, RegistryError};
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

/// The highest version of every `agents/*` repository, parsed as a card:
/// warm, one catalog request and one tag list per repository.
/// A card pallet cannot read is logged and left out.
async fn read_cards(registry: &Registry) -> Result<Vec<RegistryCard>, RegistryError> {
    let mut cards = Vec::new();
    for repository in registry.repositories(ArtifactKind::AgentCard).await? {
        let reference = Reference::parse(ArtifactKind::AgentCard, &repository)?;
        let pulled = match registry.pull(&reference).await {
            Ok(pulled) => pulled,
            Err(error @ RegistryError::NoMatchingVersion { .. }) => {
                tracing::warn!(%error, "agent card skipped");
                continue;
            }
            Err(error) => return Err(error),
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
            Ok(card) => cards.push(RegistryCard {
                card: Arc::new(card),
                answers: OnceCell::new(),
            }),
            Err(problem) => tracing::warn!(card = location, "agent card skipped: {problem}"),
        }
    }
    Ok(cards)
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

/// Several discovery sources asked in order; agents of all sources offering a
/// skill are returned, earlier sources first. A later source is only asked
/// when the earlier ones offer none, so explicit agents spare registry reads.
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
