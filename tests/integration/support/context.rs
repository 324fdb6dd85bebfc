//! [`TestContext`]: what every integration test that runs `pallet` (or a
//! script or peer program) starts from. A temp directory holds the process's
//! `HOME` and XDG directories (config, data, cache, state), so no test reads
//! or writes the real home; its commands are built by [`super::pallet`], the
//! one place the binary is spawned from; the temp directory goes away when
//! the context drops (after the guards of the processes it started, which the
//! test declares after it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::pallet::{PALLET, command_in, default_database, pallet_in};

/// A test's scratch directory, isolated home and `pallet` command builder.
/// Clones share the directory (to hand it to `spawn_blocking`); it is removed
/// when the last one drops.
#[derive(Clone)]
pub struct TestContext {
    directory: std::sync::Arc<tempfile::TempDir>,
}

impl Default for TestContext {
    fn default() -> Self {
        TestContext::new()
    }
}

impl TestContext {
    pub fn new() -> TestContext {
        TestContext {
            directory: std::sync::Arc::new(tempfile::tempdir().unwrap()),
        }
    }

    /// The scratch directory: the current directory of the commands built
    /// here, and the parent of their home and XDG directories.
    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// `name` inside the scratch directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// Writes `text` to `name` in the scratch directory (creating its parent
    /// directories) and returns the path.
    pub fn write(&self, name: impl AsRef<Path>, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The database pallet uses without `--db`/`--server`.
    pub fn default_database(&self) -> PathBuf {
        default_database(self.path())
    }

    /// `pallet`, isolated, running in the scratch directory.
    pub fn pallet(&self) -> Command {
        pallet_in(self.path())
    }

    /// `pallet`, isolated in this context but running in `directory`.
    pub fn pallet_at(&self, directory: impl AsRef<Path>) -> Command {
        let mut command = self.pallet();
        command.current_dir(directory);
        command
    }

    /// Another program (a script, a peer), isolated the same way as `pallet`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command_in(program, self.path())
    }

    /// `pallet ARGS` to its end, output collected.
    pub fn output(&self, arguments: &[&str]) -> Output {
        self.pallet().args(arguments).output().unwrap()
    }

    /// `bash SCRIPT`, isolated, with `PALLET_BIN` naming the binary under test
    /// (how the repository's scripts find pallet).
    pub fn script(&self, script: impl AsRef<Path>) -> Command {
        let mut command = self.command("bash");
        command.arg(script.as_ref()).env("PALLET_BIN", PALLET);
        command
    }

    /// `pallet ARGS` on a pseudo-terminal (through script(1)), isolated; what
    /// the terminal showed is the output's stdout.
    pub fn pallet_on_terminal(&self, arguments: &[&str]) -> Command {
        let line = std::iter::once(PALLET)
            .chain(arguments.iter().copied())
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = self.command("script");
        command.args(["-qec", &line, "/dev/null"]);
        command
    }
}

/// `word` quoted for sh.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}
