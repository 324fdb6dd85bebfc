//! `pallet agent serve` and the hidden `pallet agent skill` that example agents run.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;

use super::args::{AgentCommand, AgentServeArgs};
use crate::agent::examples;
use crate::agent::server::{self, AgentDefinition};

pub async fn command(command: AgentCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentCommand::Serve(args) => serve(args).await,
        AgentCommand::Skill { name } => skill(&name),
    }
}

async fn serve(args: AgentServeArgs) -> anyhow::Result<ExitCode> {
    let definition = AgentDefinition::load(&args.definition)?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    errln!(
        "agent `{}` listening on http://{address} (card: http://{address}/.well-known/agent-card.json)",
        definition.name
    );
    server::serve(definition, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    Signals::new().next().await;
}

/// Ctrl-C and SIGTERM as one stream of interruptions.
pub struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        let terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        Signals { terminate }
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    pub async fn next(&mut self) {
        let terminate = async {
            match &mut self.terminate {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
    }
}

fn skill(name: &str) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the skill input from stdin")?;
    let output = examples::run_skill_on_text(name, &text)?;
    outln!("{}", serde_json::to_string(&output)?);
    Ok(ExitCode::SUCCESS)
}
