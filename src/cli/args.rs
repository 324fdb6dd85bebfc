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
        after_help = "Examples:\n  pallet run --file workflows/code-generation.yaml --agent http://127.0.0.1:8001 \"Create a factorial function\"\n  pallet run --workflow smart-router-v1 --agents-file agents.yaml \"Summarise this CSV\"\n  pallet run --file wf.yaml --input name=Ada --input 'limits:={\"max\": 3}' --json > run.json\n  echo '{\"code\": \"x = 1\"}' | pallet run --workflow parallel-analysis-v1 --input-json -\n\nExit status: 0 the run completed or waits for approval (`pallet approve ID`), 1 it failed or was cancelled, 2 bad input or usage."
    )]
    Run(RunArgs),

    /// Host an agent whose skills are commands.
    #[command(subcommand)]
    Agent(AgentCommand),

    /// Durable runs: runs, approve, reject, cancel, resume.
    #[command(flatten)]
    Durable(super::runs::DurableCommand),
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
    #[arg(value_name = "CARD")]
    pub definition: PathBuf,

    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8001")]
    pub addr: String,
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

    /// Run the workflow with this `metadata.id` from --workflows-dir.
    #[arg(short, long, value_name = "ID", default_value = "code-generation-v1")]
    pub workflow: String,

    /// Where workflows are looked up by id (also for `execute_workflow` sub-workflows).
    #[arg(
        long,
        value_name = "DIR",
        env = "PALLET_WORKFLOWS_DIR",
        default_value = "workflows"
    )]
    pub workflows_dir: PathBuf,

    /// One input value: `key=text` sets a string, `key:=JSON` a typed value. Repeatable.
    #[arg(short, long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,

    /// The whole input as a JSON object, from a file or `-` for stdin; --input values go on top.
    #[arg(long, value_name = "FILE|-")]
    pub input_json: Option<String>,

    /// An agent: its base URL or the URL of its card. Repeatable; comma-separated in the env var.
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

    /// Where results go: run.json, metadata.json, steps/STEP.json, and for the
    /// code-generation pipeline plan.json, the generated code file and review.json.
    #[arg(short, long, value_name = "DIR", default_value = "app")]
    pub out: PathBuf,

    /// Print the run record as JSON on stdout (no progress view).
    #[arg(long)]
    pub json: bool,

    /// The run database (SQLite) that makes the run durable; default
    /// $XDG_DATA_HOME/pallet/pallet.db (else ~/.local/share/pallet/pallet.db).
    #[arg(long, value_name = "PATH", env = "PALLET_DB")]
    pub db: Option<PathBuf>,
}
