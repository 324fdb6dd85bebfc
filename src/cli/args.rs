//! What the user typed. Resolution into settings happens in the commands.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pallet",
    version,
    about = "Run declarative, registry-backed workflows of AI agents",
    after_help = "Examples:\n  pallet validate workflows/*.yaml\n  pallet run --file workflows/code-generation.yaml --agent http://127.0.0.1:8001 \"Create a factorial function\"\n  pallet run --workflow parallel-analysis-v1 --input code='print(1)' --input language=python --json\n\nLogs go to stderr; set RUST_LOG (e.g. RUST_LOG=pallet=debug) or pass -v/-vv for more."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr: no progress view.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files against the schema and the semantic rules.
    #[command(
        after_help = "Examples:\n  pallet validate workflows/*.yaml\n  pallet validate --json my-workflow.yaml | jq '.[].diagnostics'\n\nExit status: 0 all valid, 2 any invalid."
    )]
    Validate(ValidateArgs),

    /// Run a workflow: each step's skill is called on an agent that offers it.
    #[command(
        after_help = "Examples:\n  pallet run --file workflows/code-generation.yaml --agent http://127.0.0.1:8001 \"Create a factorial function\"\n  pallet run --workflow smart-router-v1 --agents-file agents.yaml \"Summarise this CSV\"\n  pallet run --workflow code-generation@=1.0.0 --registry localhost:5000 \"Create a factorial function\"\n  pallet run --offline --workflow code-generation-v1 \"Create a factorial function\"\n  pallet run --file wf.yaml --input name=Ada --input 'limits:={\"max\": 3}' --json > run.json\n  echo '{\"code\": \"x = 1\"}' | pallet run --workflow parallel-analysis-v1 --input-json -\n\nWithout --registry/PALLET_REGISTRY the registry at localhost:5000 is used when it answers;\nelse the workflows directory and the built-in examples (said in one line). Without --agent\nor an agents file, the registry's agent cards are used, else the built-in example agents.\n\nCtrl-C cancels the run; SIGTERM stops it but leaves it resumable (`pallet resume ID`).\n\nExit status: 0 the run completed or waits for approval (`pallet approve ID`), 1 it failed or was cancelled, 2 bad input or usage, 143 stopped by SIGTERM."
    )]
    Run(RunArgs),

    /// Host an agent whose skills are commands.
    #[command(subcommand)]
    Agent(AgentCommand),

    /// Validate workflow files, then push them to the registry as versioned artifacts.
    #[command(
        after_help = "Examples:\n  pallet push workflows/*.yaml\n  pallet push --registry registry.example:5000 --json my-workflow.yaml\n  pallet push --force workflows/code-generation.yaml   # replace an existing version\n\nA version is immutable: pushing different content under an existing version is refused\nunless --force; pushing identical content changes nothing and prints the existing digest.\nExit status: 0 all pushed, 2 an invalid file (nothing of it was pushed), 1 registry errors."
    )]
    Push(PushArgs),

    /// Download a workflow from the registry into a directory.
    #[command(
        after_help = "Examples:\n  pallet pull code-generation-v1 -o ./pulled\n  pallet pull code-generation@1.2 -o .\n  pallet pull code-generation@sha256:<64 hex digits>\n\nREF is ID, ID@REQUIREMENT (cargo rules: @1.2 means ^1.2), ID@=1.2.3 or ID@sha256:DIGEST."
    )]
    Pull(PullArgs),

    /// List the workflows in the registry with their versions and digests.
    #[command(
        after_help = "Examples:\n  pallet list\n  pallet list --json | jq -r '.[].repository'"
    )]
    List(ListArgs),

    /// Show one workflow version: metadata, annotations, digest.
    #[command(
        after_help = "Examples:\n  pallet show code-generation-v1\n  pallet show code-generation@=1.0.0 --json"
    )]
    Show(ShowArgs),

    /// Agent cards in the registry: list them, push them.
    #[command(subcommand)]
    Agents(AgentsCommand),

    /// Serve the orchestrator HTTP API: start runs, follow them, decide approvals.
    #[command(
        after_help = "Examples:\n  pallet serve\n  pallet serve --addr 127.0.0.1:9000 --db runs.db --agent http://127.0.0.1:8001\n  PALLET_API_TOKEN=secret pallet serve --addr 0.0.0.0:8080\n  curl -s localhost:8080/workflows -H 'content-type: application/json' -d '{\"workflow_type\": \"specify\", \"feature_description\": \"Add OAuth2 login\"}'\n\nWorkflows and agents are found as by `pallet run`. Runs left in progress by a stopped\nservice are resumed at start. On Ctrl-C or SIGTERM the service stops accepting requests,\nlets running runs go on for the grace period, and leaves the rest resumable. The routes\nare described at GET /openapi.json; see docs/service.md."
    )]
    Serve(super::serve::ServeArgs),

    /// Durable runs: runs, approve, reject, cancel, resume.
    #[command(flatten)]
    Durable(super::runs::DurableCommand),
}

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

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files (YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Print machine-readable results (one object per file) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Becomes `workflow.input.requirements`, as in the original project.
    #[arg(value_name = "REQUIREMENTS")]
    pub requirements: Option<String>,

    /// Run this workflow file.
    #[arg(short, long, value_name = "FILE", conflicts_with = "workflow")]
    pub file: Option<PathBuf>,

    /// The workflow reference: ID, ID@REQUIREMENT, ID@=1.2.3 or ID@sha256:DIGEST,
    /// resolved in the registry, then --workflows-dir, then the built-in examples.
    #[arg(short, long, value_name = "REF", default_value = "code-generation-v1")]
    pub workflow: String,

    /// One input value: `key=text` sets a string, `key:=JSON` a typed value. Repeatable.
    #[arg(short, long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,

    /// The whole input as a JSON object, from a file or `-` for stdin; --input values go on top.
    #[arg(long, value_name = "FILE|-")]
    pub input_json: Option<String>,

    /// Where results go: run.json, metadata.json, steps/STEP.json, and for the
    /// code-generation pipeline plan.json, the generated code file and review.json.
    #[arg(short, long, value_name = "DIR", default_value = "app")]
    pub out: PathBuf,

    /// Print the run record as JSON on stdout (no progress view).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub sources: SourceArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// The run database (SQLite) that makes the run durable; default
    /// $XDG_DATA_HOME/pallet/pallet.db (else ~/.local/share/pallet/pallet.db).
    #[arg(long, value_name = "PATH", env = "PALLET_DB")]
    pub db: Option<PathBuf>,
}
