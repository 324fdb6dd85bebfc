//! Commands about pallet itself: shell completions, man pages, the schema,
//! and a project to start from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::args::{Cli, CompletionsArgs, InitArgs, ManArgs};
use crate::cli::printer::BadInput;

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

/// What `pallet init` writes: (path under DIR, content). The workflow's
/// `$schema` line names `workflow.schema.json` beside it.
const SCAFFOLD: [(&str, &str); 4] = [
    (
        "workflows/hello.yaml",
        include_str!("../../../templates/init/workflows/hello.yaml"),
    ),
    (
        "agents/hello.yaml",
        include_str!("../../../templates/init/agents/hello.yaml"),
    ),
    (
        "agents.yaml",
        include_str!("../../../templates/init/agents.yaml"),
    ),
    (
        "workflow.schema.json",
        crate::workflow::schema::WORKFLOW_SCHEMA,
    ),
];

/// `pallet init [DIR]`: a workflow, an agent whose skills are commands, and
/// an agents file naming it, which run as they are. Nothing is written when
/// any of the files exists (unless `--force`).
pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let paths: Vec<PathBuf> = SCAFFOLD
        .iter()
        .map(|(path, _)| args.dir.join(path))
        .collect();
    if !args.force
        && let Some(existing) = paths.iter().find(|path| path.exists())
    {
        return Err(BadInput::new(format!(
            "{} exists; nothing was written",
            existing.display()
        ))
        .hint("pass --force to overwrite the scaffold's files, or give another DIR")
        .into());
    }
    for ((_, content), path) in SCAFFOLD.iter().zip(&paths) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        let files: Vec<String> = paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        outln!(
            "{}",
            serde_json::json!({"dir": args.dir.display().to_string(), "files": files})
        );
        return Ok(ExitCode::SUCCESS);
    }
    for path in &paths {
        outln!("wrote {}", path.display());
    }
    let dir = args.dir.display();
    outln!(
        "\nNext, in {dir}:\n  pallet agent serve agents/hello.yaml --addr 127.0.0.1:8001 &\n  pallet validate --agents-file agents.yaml workflows/hello.yaml\n  pallet run --file workflows/hello.yaml --agents-file agents.yaml Ada"
    );
    Ok(ExitCode::SUCCESS)
}
