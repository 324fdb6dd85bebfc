//! Finding the agents that offer a skill. The registry adds a second source
//! behind the same trait.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::card::AgentCard;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no agent offers skill `{skill}` (searched: {searched})")]
    UnknownSkill { skill: String, searched: String },
}

/// A source of agent cards, cached for a run.
pub trait Discovery: Send + Sync {
    /// The agents offering `skill`, healthiest first. Empty is not an error here;
    /// callers report an unknown skill with `searched()`.
    fn agents_for<'a>(&'a self, skill: &'a str) -> BoxFuture<'a, Result<Vec<Arc<AgentCard>>, DiscoveryError>>;

    /// A short description of where agents were looked for, for error messages.
    fn searched(&self) -> String;
}

/// Agents from `--agent URL` flags and an agents file; cards fetched once.
pub struct StaticDiscovery {}
