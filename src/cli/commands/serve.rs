//! `pallet serve`: resolve the workflow and agent sources as `pallet run`
//! does, open the run database, and serve the HTTP API until Ctrl-C/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::cli::args::ServeArgs;
use crate::cli::printer::Printer;
use crate::cli::settings::store::open_store;
use crate::cli::settings::{Settings, service};
use crate::cli::signals::shutdown_signal;
use crate::http_server::raise_open_files_limit;

pub async fn command(args: ServeArgs, printer: Printer) -> anyhow::Result<ExitCode> {
    let options = service::options(&args)?;
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
        store.location(),
        if options.token.is_some() {
            "; requests need the bearer token"
        } else {
            ""
        }
    ));
    let options = crate::api::ServiceOptions {
        registry: settings.registry.clone(),
        ..options
    };
    let state = AppState::new(store, engine, options);
    let served = api::serve(listener, state, shutdown_signal()).await;
    settings.stop_agents().await;
    served?;
    printer.say("stopped");
    Ok(ExitCode::SUCCESS)
}
