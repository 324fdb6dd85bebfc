//! The one way the tests spawn the pallet binary (and the programs around
//! it): a temp `HOME` and temp XDG directories, nothing from the caller's
//! environment, and a process group of its own, so a [`Spawned`] guard stops
//! it and everything it started. Tests reach it through
//! [`super::TestContext`].

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub const PALLET: &str = env!("CARGO_BIN_EXE_pallet");

/// Where pallet looks for a registry when none is configured (instead of
/// localhost:5000, where the machine may run anything): a port nothing listens on.
const NO_DEFAULT_REGISTRY: &str = "127.0.0.1:1";

/// The database pallet uses under `root` without `--db`/`--server`.
pub fn default_database(root: &Path) -> PathBuf {
    root.join("data/pallet/pallet.db")
}

/// `pallet` with its current directory, `HOME` and XDG directories under `root`.
pub fn pallet_in(root: &Path) -> Command {
    command_in(PALLET, root)
}

/// `program` with its current directory, `HOME` and XDG directories under
/// `root`, no `PALLET_*`/`RUST_LOG`/Docker settings inherited, in a process
/// group of its own.
pub fn command_in(program: impl AsRef<OsStr>, root: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PALLET_") || name.starts_with("XDG_") || name == "RUST_LOG" {
            command.env_remove(name.as_ref());
        }
    }
    command
        .current_dir(root)
        .env("HOME", root.join("home"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env("PALLET_DEFAULT_REGISTRY", NO_DEFAULT_REGISTRY)
        .env("NO_COLOR", "1")
        .process_group(0);
    command
}

/// A spawned process (a process-group leader, as [`command_in`] makes it):
/// when dropped, its whole group is killed, so a failing test leaves no
/// pallet or agent process behind.
pub struct Spawned(pub Child);

impl Spawned {
    pub fn spawn(command: &mut Command) -> Spawned {
        Spawned(command.spawn().unwrap())
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    /// Waits for the end, collecting what was piped (the group is still
    /// killed on drop).
    pub fn wait_with_output(&mut self) -> Output {
        use std::io::Read;
        let stdout = self.0.stdout.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        });
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let stdout = stdout
            .map(|reader| reader.join().unwrap())
            .unwrap_or_default();
        let status = self.0.wait().unwrap();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` to the process itself (not its group).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child this test spawned and still owns.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        kill_group(self.pid());
        let _ = self.0.wait();
    }
}

/// SIGKILL to process group `leader` (no-op when it is gone).
pub fn kill_group(leader: i32) {
    // SAFETY: kill(2) on the process group of a child this test spawned.
    unsafe { libc::kill(-leader, libc::SIGKILL) };
}
