//! What the user typed for `pallet serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::sources::{RegistryArgs, SourceArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; other than loopback it needs PALLET_API_TOKEN.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// The run database: a SQLite file, or postgres://USER@HOST:PORT/DB, which
    /// several `pallet serve` workers may share as one service (docs/service.md).
    #[arg(long, value_name = "PATH|URL", env = "PALLET_DB")]
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

    /// With a shared PostgreSQL database: runs waiting there for a worker
    /// with room, past which a worker without room answers 429.
    #[arg(
        long,
        value_name = "N",
        env = "PALLET_MAX_QUEUED_RUNS",
        default_value_t = 10_000
    )]
    pub max_queued_runs: u32,

    /// Event streams (GET /events, /workflows/{id}/events) open at once; past it they answer 429.
    #[arg(long, value_name = "N", env = "PALLET_MAX_EVENT_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_event_streams: u32,

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
    pub sources: SourceArgs,

    /// Bearer token every request but /health must carry.
    #[arg(long, env = "PALLET_API_TOKEN", hide_env_values = true, hide = true)]
    pub token: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}
