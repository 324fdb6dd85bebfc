//! `pallet serve`: resolve the workflow and agent sources as `pallet run`
//! does, open the run database, and serve the HTTP API until Ctrl-C/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::agent;
use super::args::RegistryArgs;
use super::render::BadInput;
use crate::api::{self, AdmissionLimits, AppState, ServiceOptions};
use crate::http_server::{ConnectionLimits, raise_open_files_limit};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; other than loopback it needs PALLET_API_TOKEN.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// The run database (SQLite).
    #[arg(long, value_name = "PATH", env = "PALLET_DB")]
    pub db: Option<PathBuf>,

    /// How long running runs may go on after Ctrl-C/SIGTERM (then they are left resumable).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,

    /// Connections open at once; one more is closed at once.
    #[arg(long, value_name = "N", env = "PALLET_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How long a client may take to send a request's headers (also how long a keep-alive connection may stay idle).
    #[arg(long, value_name = "DURATION", env = "PALLET_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How long a client may take to send a request's body.
    #[arg(long, value_name = "DURATION", env = "PALLET_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Runs executing at once; past it POST /workflows answers 429.
    #[arg(long, value_name = "N", env = "PALLET_MAX_ACTIVE_RUNS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_active_runs: u32,

    /// Total bytes of the inputs of executing runs; past it POST /workflows answers 429.
    #[arg(long, value_name = "BYTES", env = "PALLET_MAX_INFLIGHT_INPUT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_inflight_input_bytes: u64,

    /// Largest input of one run (as JSON); a larger one is refused with 413.
    #[arg(long, value_name = "BYTES", env = "PALLET_MAX_INPUT_BYTES", default_value_t = 1024 * 1024)]
    pub max_input_bytes: u64,

    /// Map a seed `workflow_type` to a workflow reference, TYPE=REF; repeatable.
    #[arg(long = "workflow-type", value_name = "TYPE=REF")]
    pub workflow_types: Vec<String>,

    #[command(flatten)]
    pub sources: super::args::SourceArgs,

    /// Bearer token every request but /health must carry.
    #[arg(long, env = "PALLET_API_TOKEN", hide_env_values = true, hide = true)]
    pub token: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub async fn command(args: ServeArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let say = |line: String| {
        if !quiet {
            errln!("{line}");
        }
    };
    let token = args.token.clone().filter(|token| !token.is_empty());
    api::check_exposure(args.addr, token.as_deref())
        .map_err(|error| BadInput::new(error.to_string()).hint(crate::bearer::TOKEN_HINT))?;
    let mut options = ServiceOptions {
        token,
        grace: args.grace,
        connections: ConnectionLimits {
            max_connections: args.max_connections as usize,
            header_timeout: args.header_timeout,
        },
        body_timeout: args.body_timeout,
        admission: AdmissionLimits {
            max_active_runs: args.max_active_runs as usize,
            max_inflight_input_bytes: args.max_inflight_input_bytes,
            max_input_bytes: args.max_input_bytes,
        },
        ..ServiceOptions::default()
    };
    for pair in &args.workflow_types {
        let Some((name, reference)) = pair
            .split_once('=')
            .filter(|(name, reference)| !name.is_empty() && !reference.is_empty())
        else {
            return Err(
                BadInput::new(format!("--workflow-type `{pair}` is not TYPE=REF"))
                    .hint("e.g. --workflow-type specify=spec-writer-v1")
                    .into(),
            );
        };
        options
            .workflow_types
            .insert(name.to_string(), reference.to_string());
    }
    raise_open_files_limit();
    let store = super::runs::open_store(args.db.as_deref())?;
    let (engine, example_agents) =
        super::runs::engine_from_sources(&args.sources, &args.registry, &say).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr().unwrap_or(args.addr);
    say(format!(
        "serving on http://{local} (runs in {}){}",
        store.path().display(),
        if options.token.is_some() {
            "; requests need the bearer token"
        } else {
            ""
        }
    ));
    let state = AppState::new(store, engine, options);
    let served = api::serve(listener, state, agent::shutdown_signal()).await;
    if let Some(agents) = example_agents {
        agents.stop().await;
    }
    served?;
    say("stopped".to_string());
    Ok(ExitCode::SUCCESS)
}
