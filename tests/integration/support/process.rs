//! `pallet` child processes that announce a line when ready, killed when
//! their guard drops (also when the test fails).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary isolated under `home` (see [`super::pallet::pallet_in`]).
pub fn pallet(home: &Path) -> Command {
    super::pallet::pallet_in(home)
}

/// A child killed (and reaped) on drop.
pub struct Running {
    pub child: Child,
    /// Stderr lines after the one [`Running::until_line`] waited for.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Spawn with stderr piped, and wait for the stderr line starting with
    /// `marker`; returns the guard and that line's first word after `marker`.
    pub fn until_line(mut command: Command, marker: &str) -> (Running, String) {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
        let mut running = Running {
            child: command.spawn().expect("spawn pallet"),
            stderr: Default::default(),
        };
        let stderr = running.child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let word = line
                .strip_prefix(marker)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            seen.push(line);
            word
        });
        let Some(found) = found else {
            panic!("no line starting with `{marker}`: {seen:#?}");
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        let kept = running.stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        (running, found)
    }

    /// SIGTERM, then wait up to `limit` for the exit; `None` when it did not stop.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: signalling the child this guard started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `command` to completion, killing it past `limit` (then `None`).
pub fn output_within(mut command: Command, limit: Duration) -> Option<std::process::Output> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("spawn pallet");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => Some(output.unwrap()),
        Err(_) => {
            // SAFETY: the child this function started, not reaped yet (its waiter still waits).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            None
        }
    }
}
