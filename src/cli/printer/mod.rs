//! Everything the CLI shows the user: the writing of lines (a closed pipe
//! ends quietly; text from outside goes through [`terminal_safe`], the one
//! escaping rule), the error renderer and exit codes, the live progress
//! view, the reports of runs and durable runs, and what the registry
//! commands show.

mod error;
mod inputs;
mod progress;
mod registry;
mod run;
mod runs;
pub mod terminal;

pub use error::{BadInput, EXIT_BAD_INPUT, EXIT_FAILED, exit_code, render_error};
pub use inputs::{inputs_json, inputs_lines, print_inputs};
pub use progress::{ProgressView, print_progress};
pub use registry::{print_cards, print_pulled, print_pushed, print_shown, print_workflows};
pub use run::{EXIT_TERMINATED, files_written, interrupted, report_run};
pub use runs::{
    approval_hint, exit_code as run_exit_code, print_history, print_json, print_list, print_view,
    report as report_run_state,
};
pub use terminal::{stderr_text, stdout_text, terminal_safe};

/// Status lines on stderr (where things come from, what was started), left
/// out with `--quiet`; results and errors are printed whatever it says.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        Printer { quiet }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// One status line on stderr, unless quiet.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            terminal::stderr_line(format_args!("{line}"));
        }
    }
}
