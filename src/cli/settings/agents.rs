//! The agent chain: `--agent`/the agents file first, then the registry's
//! agent cards; with neither configured nor in the registry, the built-in
//! example agents, started here.

use std::sync::Arc;

use anyhow::Context;

use super::registry::Connected;
use crate::agent::{Discovery, DiscoveryError, StaticDiscovery};
use crate::builtin::ExampleAgents;
use crate::cli::args::SourceArgs;
use crate::cli::printer::{BadInput, Printer};
use crate::registry::{CombinedDiscovery, RegistryDiscovery, RegistrySource};

/// Where the engine finds agents, and the example agents it started (if any).
pub struct Agents {
    pub discovery: Arc<dyn Discovery>,
    /// Started by pallet itself when no agent was configured; stopped after the run.
    pub example_agents: Option<ExampleAgents>,
}

impl Agents {
    /// Stop the example agents this started, if any.
    pub async fn stop(self) {
        if let Some(agents) = self.example_agents {
            agents.stop().await;
        }
    }
}

/// The agents of `--agent URL` and `--agents-file FILE` (for `pallet run`
/// and `pallet validate --agent` alike); credentials in a URL are bad input.
pub fn configured(
    urls: &[String],
    agents_file: Option<&std::path::Path>,
) -> anyhow::Result<Arc<dyn Discovery>> {
    let configured =
        StaticDiscovery::configured(urls.to_vec(), agents_file).map_err(|error| {
            match (&error, error.hint()) {
                (
                    DiscoveryError::CredentialsInUrl { .. } | DiscoveryError::Credentials(_),
                    Some(hint),
                ) => anyhow::Error::new(BadInput::new(error.to_string()).hint(hint)),
                _ => anyhow::Error::new(error),
            }
        })?;
    Ok(Arc::new(configured))
}

/// `offline` (`--offline`): the registry is not asked for agent cards.
pub async fn resolve(
    sources: &SourceArgs,
    offline: bool,
    connected: &Connected,
    registry_source: &RegistrySource,
    printer: Printer,
) -> anyhow::Result<Agents> {
    let registry_usable = !offline && !registry_source.was_not_answering();
    let urls = &sources.agents;
    let found = |discovery: Arc<dyn Discovery>| Agents {
        discovery,
        example_agents: None,
    };
    if !urls.is_empty() || sources.agents_file.is_some() {
        let configured = configured(urls, sources.agents_file.as_deref())?;
        if !registry_usable {
            return Ok(found(configured));
        }
        let from_registry = Arc::new(RegistryDiscovery::new(connected.registry.clone()));
        return Ok(found(Arc::new(CombinedDiscovery(vec![
            configured,
            from_registry,
        ]))));
    }
    if registry_usable {
        match RegistryDiscovery::load(connected.registry.clone()).await {
            Ok(discovery) if discovery.card_count().await > 0 => {
                printer.say(format!(
                    "using the {} agent cards in registry {}",
                    discovery.card_count().await,
                    connected.registry.address()
                ));
                return Ok(found(Arc::new(discovery)));
            }
            Ok(_) => {}
            Err(error) if error.is_not_answering() && !connected.configured => {}
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "cannot read agent cards from registry {}",
                    connected.registry.address()
                )));
            }
        }
    }
    let agents = ExampleAgents::start()
        .await
        .context("cannot start the example agents")?;
    printer.say(format!(
        "no agents configured: started the {} built-in example agents on 127.0.0.1 (stopped after the run)",
        agents.urls.len()
    ));
    let discovery = StaticDiscovery::new(agents.urls.clone());
    Ok(Agents {
        discovery: Arc::new(discovery),
        example_agents: Some(agents),
    })
}
