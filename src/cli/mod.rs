//! Command line: clap args -> settings -> commands. All terminal output is here.

/// `println!` through [`terminal::stdout_line`]: a closed pipe exits quietly.
macro_rules! outln {
    ($($argument:tt)*) => {
        $crate::cli::terminal::stdout_line(format_args!($($argument)*))
    };
}

/// `eprintln!` through [`terminal::stderr_line`]: a closed pipe exits quietly.
macro_rules! errln {
    ($($argument:tt)*) => {
        $crate::cli::terminal::stderr_line(format_args!($($argument)*))
    };
}

mod agent;
mod args;
mod outputs;
mod progress;
mod registry;
mod remote;
pub mod render;
mod run;
mod runs;
mod runs_args;
mod runs_render;
mod serve;
pub mod terminal;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use args::{Cli, Command};
use tracing_subscriber::EnvFilter;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::command(args),
        Command::Run(args) => run::command(args, cli.quiet).await,
        Command::Agent(command) => agent::command(command).await,
        Command::Push(args) => registry::push(args).await,
        Command::Pull(args) => registry::pull(args).await,
        Command::List(args) => registry::list(args).await,
        Command::Show(args) => registry::show(args).await,
        Command::Agents(command) => registry::agents(command).await,
        Command::Durable(command) => runs::command(command, cli.quiet).await,
        Command::Serve(args) => serve::command(args, cli.quiet).await,
    }
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`.
pub fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "pallet=info",
        (false, 2) => "pallet=debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
