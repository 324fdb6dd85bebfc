//! Where workflows, agents and the registry are: the arguments that run,
//! serve and the commands that continue a run share.

use std::path::PathBuf;

use clap::Args;

/// Where local workflows and agents come from; shared by run, serve and the
/// commands that continue a run, so all of them find the same things.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Where workflows are looked up by id (also for `execute_workflow` sub-workflows),
    /// after the registry.
    #[arg(
        long,
        value_name = "DIR",
        env = "PALLET_WORKFLOWS_DIR",
        default_value = "workflows"
    )]
    pub workflows_dir: PathBuf,

    /// An agent: its base URL or the URL of its card. Repeatable; comma-separated in the
    /// env var. Without agents: the registry's agent cards, else the built-in
    /// example agents.
    #[arg(
        short,
        long = "agent",
        value_name = "URL",
        env = "PALLET_AGENTS",
        value_delimiter = ','
    )]
    pub agents: Vec<String>,

    /// A file listing agents (YAML or JSON: `agents: [{url: ...}]`).
    #[arg(long, value_name = "FILE", env = "PALLET_AGENTS_FILE")]
    pub agents_file: Option<PathBuf>,
}

/// Which registry to use and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Registry address `HOST:PORT` (default localhost:5000).
    #[arg(long, value_name = "HOST:PORT", env = "PALLET_REGISTRY")]
    pub registry: Option<String>,

    /// Reach this host (or HOST:PORT) over plain HTTP; loopback hosts always are. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// Registry user name (else Docker's config.json credentials, else anonymous).
    #[arg(long, env = "PALLET_REGISTRY_USERNAME")]
    pub username: Option<String>,

    /// Registry password, with --username.
    #[arg(long, env = "PALLET_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Never contact the registry: its local cache, else the workflows directory and built-in examples.
    #[arg(long)]
    pub offline: bool,

    /// Longest a registry answer may stall before the request fails.
    #[arg(long, value_name = "DURATION", env = "PALLET_REGISTRY_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub registry_read_timeout: std::time::Duration,

    /// Longest one registry request may take in all.
    #[arg(long, value_name = "DURATION", env = "PALLET_REGISTRY_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub registry_timeout: std::time::Duration,
}
