//! `pallet agent serve`: hosts one agent from a definition file. Each skill is a
//! command (JSON in on stdin, JSON out on stdout); the agent speaks A2A 1.0
//! over JSON-RPC (`a2a`) and HTTP+JSON (`rest`), A2A 0.3 over JSON-RPC
//! (`v03`), and the original project's legacy protocol (`legacy`). The
//! operations themselves are binding-neutral (`operations`).
//!
//! A definition file names the agent and its skills:
//!
//! ```yaml
//! name: plan
//! description: Plans software work from requirements
//! skills:
//!   - id: create_plan
//!     run: [pallet, agent, skill, create_plan]   # `pallet` is this executable
//!     timeout: 2m                  # default 5m; then the process group is killed
//!     max_concurrency: 4           # excess calls queue
//!     input_schema: {type: object} # checked before the command starts
//!     output_schema: {type: object}
//! ```
//!
//! Commands run in the definition file's directory, each in its own process
//! group; their stderr goes to the log with the skill and task ids.

mod a2a;
mod card;
mod definition;
mod errors;
mod legacy;
mod message;
mod operations;
mod process;
mod rest;
mod runtime;
mod security;
mod stream;
mod tasks;
mod v03;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::task::TaskTracker;

pub use card::SKILL_SCHEMAS_EXTENSION;
pub use definition::{AgentDefinition, DEFINITION_FILE, SkillDefinition};

use crate::http_server::ConnectionLimits;
use runtime::Runtime;
use tasks::{FINISHED_TASKS_KEPT, TaskStore};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read agent definition {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agent definition {path} at {location}")]
    Parse {
        path: PathBuf,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid agent definition {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read the agent server's listening address")]
    Address(#[source] std::io::Error),
}

/// What the HTTP handlers share.
struct AppState {
    runtime: Runtime,
    tasks: TaskStore,
    /// The running skill jobs, awaited at shutdown so no command outlives the server.
    tracker: TaskTracker,
    /// One permit per open stream (SSE), at most [`ServeOptions::max_streams`].
    streams: Arc<tokio::sync::Semaphore>,
    address: SocketAddr,
    options: ServeOptions,
}

/// How `pallet agent serve` exposes the agent.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// When set, the skill endpoints (A2A and legacy) need `Authorization:
    /// Bearer TOKEN`; the cards stay public, so clients can discover the agent.
    pub token: Option<String>,
    /// The URL the cards advertise; else `http://` + the Host the client used.
    pub public_url: Option<String>,
    /// How many streams may be open at once; `None`: [`DEFAULT_MAX_STREAMS`].
    pub max_streams: Option<u32>,
}

/// Open A2A streams allowed at once unless [`ServeOptions::max_streams`] says otherwise.
pub const DEFAULT_MAX_STREAMS: u32 = stream::DEFAULT_MAX_STREAMS;

/// Serves `definition` on `listener` until `shutdown` completes; then stops
/// the running skills (their process groups) before returning.
pub async fn serve(
    definition: AgentDefinition,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let address = listener.local_addr().map_err(ServerError::Address)?;
    tracing::info!(agent = %definition.name, %address, skills = %definition.skill_list(), "agent serving");
    let state = Arc::new(AppState {
        runtime: Runtime::new(definition),
        tasks: TaskStore::new(FINISHED_TASKS_KEPT),
        tracker: TaskTracker::new(),
        streams: Arc::new(tokio::sync::Semaphore::new(
            options.max_streams.unwrap_or(DEFAULT_MAX_STREAMS).max(1) as usize,
        )),
        address,
        options,
    });
    let skills = Router::new()
        .route("/", post(a2a::rpc))
        .route("/execute", post(legacy::execute))
        .nest(rest::REST_PREFIX, rest::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    let app = Router::new()
        .route("/.well-known/agent-card.json", get(a2a::card))
        .route("/agent-card", get(legacy::card))
        .merge(skills)
        .with_state(state.clone());
    let stopping = state.clone();
    // Cancel first: blocked SendMessage requests end only when their tasks do.
    let shutdown = async move {
        shutdown.await;
        stopping.tasks.cancel_all();
    };
    let drain = std::time::Duration::from_secs(10);
    crate::http_server::serve(listener, app, ConnectionLimits::default(), shutdown, drain).await;
    state.tasks.cancel_all();
    state.tracker.close();
    state.tracker.wait().await;
    Ok(())
}

/// The skill endpoints need the bearer token when one is set.
async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.options.token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if crate::bearer::authorized(given, expected) {
        return next.run(request).await;
    }
    let body = json!({"error": "missing or wrong bearer token (set `Authorization: Bearer <PALLET_AGENT_TOKEN>`)"});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

/// The agent's base URL as cards advertise it: `--public-url`, else
/// `http://HOST` as the client addressed us, else the bound address.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.options.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty())
        .map_or_else(|| state.address.to_string(), str::to_string);
    format!("http://{host}")
}
