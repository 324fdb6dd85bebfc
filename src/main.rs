use std::process::ExitCode;

use clap::Parser;

use pallet::cli::{self, Cli, render};

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_tracing(args.verbose, args.quiet);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprint!(
                "{}",
                render::error(&anyhow::Error::new(error).context("cannot start the async runtime"))
            );
            return ExitCode::from(render::EXIT_FAILED);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprint!("{}", render::error(&error));
            ExitCode::from(render::exit_code(&error))
        }
    }
}
