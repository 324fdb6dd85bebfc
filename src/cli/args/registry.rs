//! What the user typed for `pallet push|pull|list|show` and `pallet agents`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::sources::RegistryArgs;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Workflow files (YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Replace a version that already exists with different content.
    #[arg(long)]
    pub force: bool,

    /// Leave the `v<MAJOR>` tag alone (by default it is moved to what was
    /// pushed when that is the highest release of its major, for the original
    /// project's tools, which read `:v1`).
    #[arg(long)]
    pub no_alias: bool,

    /// The `org.opencontainers.image.source` annotation (default: the git remote of the file).
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,

    /// The `org.opencontainers.image.revision` annotation (default: the git commit of the file).
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// Print one JSON object per pushed file on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The workflow reference: ID, ID@REQUIREMENT, ID@=1.2.3, ID@v1 or ID@sha256:DIGEST.
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Directory to write the file into (created if missing).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The workflow reference: ID, ID@REQUIREMENT, ID@=1.2.3, ID@v1 or ID@sha256:DIGEST.
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List the agent cards in the registry: name, version, digest, URL, skills.
    #[command(after_help = "Examples:\n  pallet agents list\n  pallet agents list --json")]
    List(ListArgs),

    /// Push agent cards: A2A card JSON files, or the URL of a running agent (its card is fetched).
    #[command(
        after_help = "Examples:\n  pallet agents push http://127.0.0.1:8001\n  curl -s http://127.0.0.1:8001/.well-known/agent-card.json > plan.json && pallet agents push plan.json\n\nA card needs `name` and a semver `version`; it goes to agents/<name> tagged with its version.\nAgent definition YAML files (agents/*.yaml) are not cards: serve them with `pallet agent serve`\nand push the served agent's URL, so the card carries the URL the agent answers at."
    )]
    Push(AgentsPushArgs),
}

#[derive(Debug, Args)]
pub struct AgentsPushArgs {
    /// Card JSON files or agent URLs (http://HOST:PORT, or the card's URL).
    #[arg(required = true, value_name = "CARD")]
    pub cards: Vec<String>,

    /// Replace a version that already exists with different content.
    #[arg(long)]
    pub force: bool,

    /// Leave the `v<MAJOR>` tag alone (by default it is moved to what was
    /// pushed when that is the highest release of its major, for the original
    /// project's tools, which read `:v1`).
    #[arg(long)]
    pub no_alias: bool,

    /// Print one JSON object per pushed card on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}
