//! scripts/bootstrap.sh trusts a pidfile only when the PID still names the
//! process it started (same start time): `status` and `stop` never take an
//! unrelated process that reused the PID for theirs, and never signal it.

use std::path::PathBuf;
use std::process::Output;

use crate::support::TestContext;
use crate::support::pallet::Spawned;

/// `scripts/bootstrap.sh COMMAND` with its state in `state`.
fn bootstrap(state: &TestContext, command: &str) -> Output {
    state
        .script(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bootstrap.sh"))
        .arg(command)
        .env("PALLET_BOOTSTRAP_DIR", state.path())
        .output()
        .unwrap()
}

/// Field 22 of /proc/PID/stat: the process's start time.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_command = &stat[stat.rfind(')').unwrap() + 1..];
    after_command
        .split_whitespace()
        .nth(22 - 3)
        .unwrap()
        .to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn status_and_stop_leave_a_process_that_reused_the_pid_alone() {
    let state = TestContext::new();
    // A process standing in for one bootstrap started, killed when dropped.
    let mut unrelated = Spawned::spawn(state.command("sleep").arg("30"));
    let pid = unrelated.0.id();
    let pidfile = state.join("agent-plan.pid");
    let cases = [
        (format!("{pid} 1"), "another process now"),
        (format!("{pid}"), "another process now"),
    ];
    for (content, expected) in cases {
        std::fs::write(&pidfile, &content).unwrap();
        let status = bootstrap(&state, "status");
        assert!(status.status.success(), "{}", text(&status));
        assert!(
            text(&status).contains("agent-plan: not running") && text(&status).contains(expected),
            "{content}: {}",
            text(&status)
        );
        let stop = bootstrap(&state, "stop");
        assert!(stop.status.success(), "{}", text(&stop));
        assert!(
            unrelated.0.try_wait().unwrap().is_none(),
            "{content}: the unrelated process was signalled"
        );
        assert!(!pidfile.exists(), "the stale pidfile is removed");
    }

    // With the right start time it is taken for ours: shown and stopped.
    std::fs::write(&pidfile, format!("{pid} {}", start_time(pid))).unwrap();
    let status = bootstrap(&state, "status");
    assert!(
        text(&status).contains(&format!("agent-plan: running (pid {pid})")),
        "{}",
        text(&status)
    );
    let stop = bootstrap(&state, "stop");
    assert!(
        text(&stop).contains(&format!("stopped agent-plan (pid {pid})")),
        "{}",
        text(&stop)
    );
    let ended = unrelated.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&ended),
        Some(libc::SIGTERM)
    );
}
