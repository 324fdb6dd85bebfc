use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use pallet::cli::printer::{self, EXIT_FAILED, exit_code, render_error};
use pallet::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let args = match Cli::try_parse() {
        Ok(args) => args,
        // Help and version into a pipe go through the one writer, so a closed
        // pipe ends quietly there too; a terminal keeps clap's colours.
        Err(error) if !error.use_stderr() && !std::io::stdout().is_terminal() => {
            printer::stdout_text(&error.render().to_string());
            return ExitCode::SUCCESS;
        }
        Err(error) => error.exit(),
    };
    cli::init_tracing(args.verbose, args.quiet);
    let outcome = if matches!(&args.command, Command::Validate(validate) if !validate.checks_agents())
    {
        // Validation without agents does no I/O that needs tokio: its future completes
        // when first polled, so it skips starting the runtime and its worker threads.
        futures::executor::block_on(cli::run(args))
    } else {
        let runtime = match runtime_for(&args.command) {
            Ok(runtime) => runtime,
            Err(error) => {
                printer::stderr_text(&render_error(
                    &anyhow::Error::new(error).context("cannot start the async runtime"),
                ));
                return ExitCode::from(EXIT_FAILED);
            }
        };
        runtime.block_on(cli::run(args))
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            printer::stderr_text(&render_error(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// `pallet run` drives one workflow whose steps wait on their agents: on one
/// thread, the run and its connections share it and a step costs no wake-up
/// of another thread (the blocking pool still opens the database and the
/// registry client beside it). The service and the other commands keep the
/// multi-thread runtime.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    if matches!(command, Command::Run(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}
