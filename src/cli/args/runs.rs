//! What the user typed for the durable-run commands (`commands/runs.rs`,
//! `commands/remote.rs` with `--server`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::sources::{RegistryArgs, SourceArgs};

#[derive(Debug, Subcommand)]
pub enum DurableCommand {
    /// List stored runs, newest first; `runs show ID` and `runs history ID` for one run.
    #[command(
        after_help = "Examples:\n  pallet runs --status waiting_approval\n  pallet runs show 0b6f... --json | jq .progress\n  pallet runs history 0b6f...\n  PALLET_SERVER=http://127.0.0.1:8080 pallet runs --status waiting_approval\n\nThe database is $XDG_DATA_HOME/pallet/pallet.db (else ~/.local/share/pallet/pallet.db); --db or PALLET_DB override it.\nWith --server URL (or PALLET_SERVER) runs, approve, reject, cancel and resume work against a running\n`pallet serve` instead; its token is read from PALLET_API_TOKEN."
    )]
    Runs(RunsArgs),

    /// Approve the approval step a run waits at, then continue the run here.
    #[command(
        after_help = "Examples:\n  pallet approve 0b6f... --comment 'looks good' --field ticket=OPS-12\n  pallet approve 0b6f... --server http://127.0.0.1:8080   # the service continues the run\n\nExit status: 0 the run completed or waits for another approval, 1 it failed, 2 bad input (unknown run, missing fields, run not waiting), 143 SIGTERM stopped the continued run (it stays resumable)."
    )]
    Approve(ApproveArgs),

    /// Reject the approval step a run waits at: the run fails, or re-runs from `on_reject.retry_from`.
    Reject(RejectArgs),

    /// Cancel a pending, running or waiting run.
    Cancel(CancelArgs),

    /// Continue a run whose process died (completed steps are not run again),
    /// or apply an expired approval's `on_timeout`.
    #[command(
        after_help = "Ctrl-C cancels the run; SIGTERM stops it but leaves it resumable (exit status 143)."
    )]
    Resume(ResumeArgs),

    /// Start a new run of a run's workflow (the same digest) and input that
    /// reuses the recorded outputs of the steps before STEP and runs STEP and
    /// everything after it.
    #[command(
        after_help = "Examples:\n  pallet rerun 0b6f... --from review            # after fixing the agent of `review`\n  pallet rerun 0b6f... --from review --json | jq .rerun_of\n  pallet rerun 0b6f... --from review --server http://127.0.0.1:8080\n\nThe workflow is the original run's own recorded text, not a newer version; the input is the\noriginal's. STEP is a top-level step; every top-level step before it must have completed in\nthe original (or been skipped by its `if:`): its outputs are copied into the new run, marked\n`reused from RUN`, and its agent is not called. The original may still be running.\nThe new run records `rerun_of: {run_id, from_step}` (`pallet runs show`) and is an ordinary\ndurable run afterwards (resume, approve, cancel).\n\nExit status: 0 the rerun completed or waits for approval, 1 it failed or was cancelled,\n2 bad input (unknown run, STEP not a top-level step, a step before STEP did not complete),\n143 SIGTERM stopped it (it stays resumable)."
    )]
    Rerun(RerunArgs),
}

impl DurableCommand {
    /// The `--server` options of any durable-run command.
    pub fn server(&self) -> &ServerArgs {
        match self {
            DurableCommand::Runs(args) => &args.server,
            DurableCommand::Approve(args) => &args.engine.server,
            DurableCommand::Reject(args) => &args.engine.server,
            DurableCommand::Cancel(args) => &args.server,
            DurableCommand::Resume(args) => &args.engine.server,
            DurableCommand::Rerun(args) => &args.engine.server,
        }
    }
}

/// A running `pallet serve` to work against instead of the local database.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Work against this running `pallet serve` (http://HOST:PORT) instead of the local
    /// database; its own workflows, agents and database are used.
    #[arg(long, value_name = "URL", env = "PALLET_SERVER", global = true)]
    pub server: Option<String>,

    /// The service's bearer token (its PALLET_API_TOKEN).
    #[arg(
        long,
        env = "PALLET_API_TOKEN",
        hide_env_values = true,
        hide = true,
        global = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The run database: a SQLite file, or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "PATH|URL", env = "PALLET_DB", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Only runs in this state: pending, in_progress, waiting_approval, completed, failed, cancelled.
    #[arg(long, value_name = "STATE")]
    pub status: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: status, progress, time in each state, step attempts, pending approval.
    Show { id: String },
    /// Every state transition of a run.
    History { id: String },
}

/// Where the engine finds agents and child workflows when a run continues
/// (as `pallet run` finds them), or the service that continues it.
#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the run as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where the results of what ran go, as with `pallet run` (run.json,
    /// metadata.json, steps/STEP.json, ...); not with --server.
    #[arg(short, long, value_name = "DIR", default_value = "app")]
    pub out: std::path::PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    pub id: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// A decision field, NAME=VALUE; repeatable. Later steps read `steps.ID.outputs.fields.NAME`.
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Who decides (default: $USER).
    #[arg(long)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    pub id: String,
    #[arg(long)]
    pub comment: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    pub id: String,
    #[arg(long)]
    pub actor: Option<String>,
    /// Print the run as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    pub id: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The run to rerun (`pallet runs` lists them).
    pub id: String,
    /// The top-level step to run again from; the steps before it reuse the run's outputs.
    #[arg(long, value_name = "STEP")]
    pub from: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}
