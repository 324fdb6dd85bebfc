//! The registry a command uses: `--registry`/`PALLET_REGISTRY`, else the
//! default address, with credentials, cache and timeouts.

use std::sync::Arc;

use crate::cli::args::RegistryArgs;
use crate::cli::printer::BadInput;
use crate::registry::{
    Credentials, DEFAULT_REGISTRY, Registry, RegistryOptions, Timeouts, default_cache_dir,
    docker_config_path,
};

/// Hidden: where the registry is looked for when none is configured, instead
/// of localhost:5000 (tests point it at a closed port).
const DEFAULT_REGISTRY_VARIABLE: &str = "PALLET_DEFAULT_REGISTRY";

/// The registry a command uses.
pub struct Connected {
    pub registry: Arc<Registry>,
    /// Chosen by the user (flag or env), as opposed to the default.
    pub configured: bool,
}

pub fn connect(args: &RegistryArgs) -> anyhow::Result<Connected> {
    let configured = args.registry.clone().filter(|address| !address.is_empty());
    let address = configured.clone().unwrap_or_else(|| {
        std::env::var(DEFAULT_REGISTRY_VARIABLE)
            .ok()
            .filter(|address| !address.is_empty())
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
    });
    let credentials = match (&args.username, &args.password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        (Some(_), None) => {
            return Err(BadInput::new("--username needs --password")
                .hint("or set PALLET_REGISTRY_PASSWORD")
                .into());
        }
        (None, Some(_)) => {
            return Err(BadInput::new("--password needs --username")
                .hint("or set PALLET_REGISTRY_USERNAME")
                .into());
        }
        (None, None) => None,
    };
    let cache_dir = default_cache_dir().ok_or_else(|| {
        BadInput::new("no cache directory: neither XDG_CACHE_HOME nor HOME is set")
            .hint("set XDG_CACHE_HOME to a writable directory")
    })?;
    let registry = Registry::new(RegistryOptions {
        address,
        insecure_hosts: args.insecure_registries.clone(),
        credentials,
        // Read only when a request needs credentials: `pallet run --file`
        // never spawns a credential helper.
        docker_config: docker_config_path(),
        cache_dir,
        offline: args.offline,
        timeouts: Timeouts {
            read: args.registry_read_timeout,
            total: args.registry_timeout,
        },
    })
    .map_err(|error| anyhow::Error::new(error).context(BadInput::new("cannot use the registry")))?;
    Ok(Connected {
        registry: Arc::new(registry),
        configured: configured.is_some(),
    })
}
