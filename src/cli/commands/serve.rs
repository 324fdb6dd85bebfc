//! `pallet serve`: resolve the workflow and agent sources as `pallet run`
//! does, open the run database, and serve the HTTP API until Ctrl-C/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::api::{self, AdmissionLimits, AppState, ServiceOptions};
use crate::cli::args::ServeArgs;
use crate::cli::printer::{BadInput, Printer};
use crate::cli::settings::Settings;
use crate::cli::settings::store::open_store;
use crate::cli::signals::shutdown_signal;
use crate::http_server::{ConnectionLimits, raise_open_files_limit};

pub async fn command(args: ServeArgs, printer: Printer) -> anyhow::Result<ExitCode> {
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
    let store = open_store(args.db.as_deref())?;
    let settings = Settings::resolve(&args.sources, &args.registry, printer).await?;
    let engine = settings.engine().build();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr().unwrap_or(args.addr);
    printer.say(format!(
        "serving on http://{local} (runs in {}){}",
        store.path().display(),
        if options.token.is_some() {
            "; requests need the bearer token"
        } else {
            ""
        }
    ));
    let state = AppState::new(store, engine, options);
    let served = api::serve(listener, state, shutdown_signal()).await;
    settings.stop_agents().await;
    served?;
    printer.say("stopped");
    Ok(ExitCode::SUCCESS)
}
