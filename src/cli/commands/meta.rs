//! Commands about pallet itself: shell completions, man pages, the schema.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::args::{Cli, CompletionsArgs, ManArgs};

/// `pallet completions SHELL`: clap's generator over the whole command tree.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "pallet", &mut script);
    print_text(&script);
    Ok(ExitCode::SUCCESS)
}

/// `pallet man [--dir DIR]`.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        print_text(&render(&command)?);
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = write_pages(&command, "pallet", &dir)?;
    outln!("{written} man pages in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `pallet schema`: the embedded schema, as the binary checks with it.
pub fn schema() -> anyhow::Result<ExitCode> {
    print_text(crate::workflow::schema::WORKFLOW_SCHEMA.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn render(command: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .context("cannot render the man page")?;
    Ok(page)
}

/// `NAME.1` for `command`, then `NAME-SUB.1` for each visible subcommand,
/// recursively; how many were written.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let named = command
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "))
        .version(env!("CARGO_PKG_VERSION"));
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, render(&named)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}

/// `text` on stdout as it is, ending in one newline; a closed pipe exits quietly.
fn print_text(text: &[u8]) {
    outln!("{}", String::from_utf8_lossy(text).trim_end());
}
