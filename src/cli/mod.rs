//! Command line: what the user typed (`args/`, clap types only) is resolved
//! into settings (`settings/`: the registry, the workflow-source and agent
//! chains, the run database), which the commands (`commands/`) run on; all
//! terminal output goes through `printer/`. Files of one layer import only
//! the layers after it: commands -> settings -> args, and every layer ->
//! printer, outputs and signals, which import none of them.

/// `println!` through [`printer::terminal::stdout_line`]: a closed pipe exits quietly.
macro_rules! outln {
    ($($argument:tt)*) => {
        $crate::cli::printer::terminal::stdout_line(format_args!($($argument)*))
    };
}

/// `eprintln!` through [`printer::terminal::stderr_line`]: a closed pipe exits quietly.
macro_rules! errln {
    ($($argument:tt)*) => {
        $crate::cli::printer::terminal::stderr_line(format_args!($($argument)*))
    };
}

pub mod args;
mod commands;
mod outputs;
pub mod printer;
mod settings;
mod signals;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use args::{Cli, Command};
use tracing_subscriber::EnvFilter;

use self::commands::{agent, agents, meta, registry, remote, run, runs, serve, validate};
use self::printer::Printer;
use self::settings::RunSettings;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let printer = Printer::new(cli.quiet);
    match cli.command {
        Command::Validate(args) => validate::command(args).await,
        Command::Run(args) if args.help_inputs => {
            let workflow = settings::run_workflow(&args, printer).await?;
            printer::print_inputs(&workflow, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            run::command(RunSettings::resolve(args, printer).await?, printer).await
        }
        Command::Agent(command) => agent::command(command).await,
        Command::Push(args) => registry::push(args).await,
        Command::Pull(args) => registry::pull(args).await,
        Command::List(args) => registry::list(args).await,
        Command::Show(args) => registry::show(args).await,
        Command::Agents(command) => agents::command(command).await,
        Command::Durable(command) => match settings::server::client(command.server())? {
            Some(client) => remote::command(&client, command).await,
            None => runs::command(command, printer).await,
        },
        Command::Serve(args) => serve::command(args, printer).await,
        Command::Completions(args) => meta::completions(args),
        Command::Man(args) => meta::man(args),
        Command::Schema => meta::schema(),
        Command::Init(args) => meta::init(args),
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
