//! What the user typed for `pallet agent serve|skill`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serve one agent from its definition file, over A2A 1.0 and the legacy protocol.
    #[command(
        after_help = "Examples:\n  pallet agent serve agents/plan.yaml --addr 127.0.0.1:8001\n  curl -s http://127.0.0.1:8001/.well-known/agent-card.json\n\nStops on Ctrl-C or SIGTERM; running skill commands are stopped first."
    )]
    Serve(AgentServeArgs),

    /// Run one built-in example skill: JSON input on stdin, JSON output on stdout.
    #[command(hide = true)]
    Skill {
        /// The skill id, e.g. create_plan.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AgentServeArgs {
    /// The agent definition file (YAML or JSON) listing its skills.
    #[arg(value_name = "DEFINITION")]
    pub definition: PathBuf,

    /// Address to listen on; port 0 picks a free port (printed on start).
    /// Other than loopback it needs PALLET_AGENT_TOKEN; a wildcard address
    /// (0.0.0.0, [::]) also needs --public-url.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8001")]
    pub addr: String,

    /// The URL the agent's cards advertise, as other machines reach it
    /// (e.g. http://agents.example:8001); default: the Host each client used.
    #[arg(long, value_name = "URL", env = "PALLET_AGENT_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// Bearer token the skill endpoints need (the cards stay public).
    #[arg(long, env = "PALLET_AGENT_TOKEN", hide_env_values = true, hide = true)]
    pub token: Option<String>,

    /// How many A2A streams (SendStreamingMessage, SubscribeToTask) may be
    /// open at once; more are refused until one ends.
    #[arg(long, value_name = "N", env = "PALLET_AGENT_MAX_STREAMS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
}
