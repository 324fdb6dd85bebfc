//! `pallet agent serve` and the hidden `pallet agent skill` that example agents run.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::agent::server::{self, AgentDefinition, ServeOptions};
use crate::builtin;
use crate::cli::args::{AgentCommand, AgentServeArgs};
use crate::cli::printer::BadInput;
use crate::cli::signals::shutdown_signal;
use crate::http_server::raise_open_files_limit;

pub async fn command(command: AgentCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentCommand::Serve(args) => serve(args).await,
        AgentCommand::Skill { name } => skill(&name),
    }
}

async fn serve(args: AgentServeArgs) -> anyhow::Result<ExitCode> {
    let definition = AgentDefinition::load(&args.definition)?;
    // Refused before binding when the address says enough (a host name is
    // checked once bound).
    if let Ok(planned) = args.addr.parse::<SocketAddr>() {
        exposure(planned, &args)?;
    }
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let mut options = exposure(address, &args)?;
    options.max_streams = Some(args.max_streams);
    raise_open_files_limit();
    let base = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    errln!(
        "agent `{}` listening on http://{address} (card: {base}/.well-known/agent-card.json){}",
        definition.name,
        if options.token.is_some() {
            "; skill calls need the bearer token"
        } else {
            ""
        }
    );
    server::serve(definition, listener, options, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The same rule as `pallet serve`: beyond loopback only with a strong
/// token. A wildcard address also needs `--public-url`: cards are pushed to
/// registries and read on other machines, and the Host of whoever fetched
/// the card (often `localhost`) is no address for them.
fn exposure(address: SocketAddr, args: &AgentServeArgs) -> anyhow::Result<ServeOptions> {
    let token = args.token.clone().filter(|token| !token.is_empty());
    crate::bearer::check_exposure(address, token.as_deref(), "PALLET_AGENT_TOKEN")
        .map_err(|error| BadInput::new(error.to_string()).hint(crate::bearer::TOKEN_HINT))?;
    let public_url = args
        .public_url
        .as_ref()
        .map(|url| url.as_str().trim_end_matches('/').to_string());
    if address.ip().is_unspecified() && public_url.is_none() {
        return Err(BadInput::new(format!(
            "listening on {address} needs --public-url: the agent's card must name an address other machines can reach, not {}",
            address.ip()
        ))
        .hint("e.g. --public-url http://HOST:PORT with this machine's name or address, or listen on that address itself")
        .into());
    }
    Ok(ServeOptions {
        token,
        public_url,
        ..ServeOptions::default()
    })
}

fn skill(name: &str) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the skill input from stdin")?;
    let output = builtin::run_skill_on_text(name, &text)?;
    outln!("{}", serde_json::to_string(&output)?);
    Ok(ExitCode::SUCCESS)
}
