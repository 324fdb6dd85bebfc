//! Guards over spawned children beyond [`Spawned`]: one that waits for the
//! line a service announces when ready, and a bounded run to completion. Both
//! kill the child's process group when they give up or drop (also when the
//! test fails), like [`Spawned`].

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::pallet::{Spawned, kill_group};

/// A child killed (with its process group) and reaped on drop.
pub struct Running {
    pub child: Spawned,
    /// Stderr lines after the one [`Running::until_line`] waited for.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Spawn with stderr piped, and wait for the stderr line starting with
    /// `marker`; returns the guard and that line's first word after `marker`.
    pub fn until_line(mut command: Command, marker: &str) -> (Running, String) {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
        let mut running = Running {
            child: Spawned::spawn(&mut command),
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
        self.child.signal(libc::SIGTERM);
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

/// Run `command` to completion, killing its process group past `limit` (then `None`).
pub fn output_within(mut command: Command, limit: Duration) -> Option<std::process::Output> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("spawn pallet");
    let pid = i32::try_from(child.id()).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => Some(output.unwrap()),
        Err(_) => {
            // Not reaped yet (its waiter still waits), so the group id is still ours.
            kill_group(pid);
            None
        }
    }
}
