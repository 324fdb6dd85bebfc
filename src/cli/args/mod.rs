//! What the user typed: the clap types, and nothing else. `settings/`
//! resolves them into what the commands use.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

mod agent;
mod registry;
mod runs;
mod serve;
mod sources;

pub use agent::{AgentCommand, AgentServeArgs};
pub use registry::{AgentsCommand, AgentsPushArgs, ListArgs, PullArgs, PushArgs, ShowArgs};
pub use runs::{
    ApproveArgs, CancelArgs, DatabaseArgs, DurableCommand, EngineArgs, RejectArgs, RerunArgs,
    ResumeArgs, RunsArgs, RunsCommand, ServerArgs,
};
pub use serve::ServeArgs;
pub use sources::{RegistryArgs, SourceArgs};

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
    /// Check workflow files against the schema and the semantic rules (with --agent, the agents' schemas too).
    #[command(
        after_help = "Examples:\n  pallet validate workflows/*.yaml\n  pallet validate --json my-workflow.yaml | jq '.[].diagnostics'\n  pallet validate --agent http://127.0.0.1:8001,http://127.0.0.1:8002 workflows/code-generation.yaml\n  pallet validate --agents-file agents.yaml my-workflow.yaml\n\nWith --agent or --agents-file, each step is also checked against the JSON Schemas its\nskill's agents publish (the card extension urn:pallet:skill-schemas:v1, or the original\nproject's input_schema/output_schema), as every run checks before its first step: its\ninputs against the input schema, its reads of other steps' outputs against their output\nschemas. Skills whose agents publish no schemas are not checked. A skill no agent offers\nis a problem too.\n\nExit status: 0 all valid, 2 any invalid."
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
    Serve(ServeArgs),

    /// Durable runs: runs, approve, reject, cancel, resume, rerun.
    #[command(flatten)]
    Durable(DurableCommand),

    /// Print the shell completion script for SHELL on stdout.
    #[command(
        after_help = "Examples:\n  pallet completions bash > ~/.local/share/bash-completion/completions/pallet\n  pallet completions zsh > \"${fpath[1]}/_pallet\"\n  pallet completions fish > ~/.config/fish/completions/pallet.fish"
    )]
    Completions(CompletionsArgs),

    /// Print pallet's man page (roff) on stdout, or write one page per command into a directory.
    #[command(
        after_help = "Examples:\n  pallet man | man -l -\n  pallet man --dir ~/.local/share/man/man1   # pallet.1, pallet-run.1, pallet-runs-show.1, ..."
    )]
    Man(ManArgs),

    /// Start a project: a workflow, an agent whose skills are commands, and an agents file, which run as they are.
    #[command(
        after_help = "Examples:\n  pallet init my-agents && cd my-agents\n  pallet init . --force\n\nWrites workflows/hello.yaml (with a $schema line for editors), workflow.schema.json,\nagents/hello.yaml (served by `pallet agent serve`) and agents.yaml, then prints the\ncommands that serve the agent and run the workflow. Nothing is written when one of\nthese files exists, unless --force.\n\nExit status: 0 written, 2 a file exists."
    )]
    Init(InitArgs),

    /// Print the JSON Schema workflow files are checked against (for editors: the `$schema` line).
    #[command(
        after_help = "Examples:\n  pallet schema > workflow.schema.json\n  pallet schema | jq '.properties | keys'"
    )]
    Schema,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's directory (created if missing).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Overwrite the scaffold's files where they exist.
    #[arg(long)]
    pub force: bool,

    /// Print the files written as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write pallet.1 and a page per subcommand (pallet-run.1, ...) into DIR instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files (YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Print machine-readable results (one object per file) on stdout.
    #[arg(long)]
    pub json: bool,

    /// Also check the steps against the schemas this agent publishes: its base
    /// URL or the URL of its card, as for `pallet run`. Repeatable; comma-separated.
    #[arg(
        short,
        long = "agent",
        visible_alias = "agents",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub agents: Vec<String>,

    /// A file listing agents to check against (YAML or JSON: `agents: [{url: ...}]`), as for `pallet run`.
    #[arg(long, value_name = "FILE")]
    pub agents_file: Option<PathBuf>,
}

impl ValidateArgs {
    /// Whether agents are asked for their schemas (which needs the network).
    pub fn checks_agents(&self) -> bool {
        !self.agents.is_empty() || self.agents_file.is_some()
    }
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

    /// One input value: `key=text` sets a string (a number or boolean where the
    /// workflow's `inputs` type it so), `key:=JSON` a typed value. Repeatable.
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

    /// Print the workflow's inputs (name, type, required or default,
    /// description) and run nothing; with --json as JSON.
    #[arg(long)]
    pub help_inputs: bool,

    #[command(flatten)]
    pub sources: SourceArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// The run database that makes the run durable: a SQLite file, or
    /// postgres://USER@HOST:PORT/DB; default $XDG_DATA_HOME/pallet/pallet.db
    /// (else ~/.local/share/pallet/pallet.db).
    #[arg(long, value_name = "PATH|URL", env = "PALLET_DB")]
    pub db: Option<PathBuf>,
}
