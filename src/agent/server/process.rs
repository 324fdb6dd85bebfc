//! Runs one skill command: JSON input on stdin, JSON output from stdout, stderr
//! into the agent's log. The command leads its own process group, so a cancel or
//! a timeout can stop everything it started, not just the first process.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::definition::SkillDefinition;
use super::runtime::Failure;

/// How long a command may take to exit after SIGTERM before SIGKILL.
const TERMINATION_GRACE: Duration = Duration::from_secs(2);
/// How many stderr lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 5;

type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// Runs `skill`'s command once with `input`; stops it on `cancel` or timeout.
pub(super) async fn run_command(
    skill: &SkillDefinition,
    directory: &Path,
    task_id: &str,
    input: &Value,
    cancel: &CancellationToken,
) -> Result<Value, Failure> {
    let mut child = spawn(skill, directory)?;
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let mut guard = GroupGuard { group };
    feed_stdin(&mut child, input);
    let tail = StderrTail::default();
    let stderr_logger = child.stderr.take().map(|stderr| {
        tokio::spawn(log_stderr(
            stderr,
            skill.id.clone(),
            task_id.to_string(),
            tail.clone(),
        ))
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let finished = async {
        let mut output = Vec::new();
        let (read, status) = tokio::join!(stdout.read_to_end(&mut output), child.wait());
        (read.map(|_| output), status)
    };
    let outcome = tokio::select! {
        outcome = finished => Some(outcome),
        () = tokio::time::sleep(skill.timeout) => None,
        () = cancel.cancelled() => None,
    };
    let Some((output, status)) = outcome else {
        terminate(group, &mut child).await;
        guard.disarm();
        return Err(if cancel.is_cancelled() {
            Failure::Canceled
        } else {
            Failure::Failed(format!(
                "skill `{}` timed out after {}",
                skill.id,
                humantime::format_duration(skill.timeout)
            ))
        });
    };
    guard.disarm();
    if let Some(logger) = stderr_logger {
        // The tail is complete once stderr closes; a leftover grandchild may keep it open.
        let _ = tokio::time::timeout(Duration::from_secs(1), logger).await;
    }
    let status = status.map_err(|error| {
        Failure::Failed(format!(
            "skill `{}`: waiting for the command failed: {error}",
            skill.id
        ))
    })?;
    let output = output.map_err(|error| {
        Failure::Failed(format!(
            "skill `{}`: reading the command's output failed: {error}",
            skill.id
        ))
    })?;
    check_exit(&skill.id, status, &tail, &output)?;
    serde_json::from_slice(&output).map_err(|error| {
        Failure::Failed(format!(
            "skill `{}` printed output that is not JSON ({error}): {}",
            skill.id,
            excerpt(&output)
        ))
    })
}

fn spawn(skill: &SkillDefinition, directory: &Path) -> Result<Child, Failure> {
    let mut command = Command::new(&skill.run[0]);
    command
        .args(&skill.run[1..])
        .current_dir(directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|error| {
        Failure::Failed(format!(
            "skill `{}`: cannot start command `{}`: {error}",
            skill.id, skill.run[0]
        ))
    })
}

/// Writes the input from its own task so a command that prints before reading
/// all its input cannot deadlock against us.
fn feed_stdin(child: &mut Child, input: &Value) {
    let Some(mut stdin) = child.stdin.take() else {
        return;
    };
    let body = input.to_string().into_bytes();
    tokio::spawn(async move {
        // A command that ignores its input closes stdin early; that is fine.
        let _ = stdin.write_all(&body).await;
    });
}

async fn log_stderr(stderr: impl AsyncRead + Unpin, skill: String, task: String, tail: StderrTail) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(skill = %skill, task = %task, "{line}");
        let mut tail = tail.lock().expect("stderr tail lock");
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn check_exit(
    skill: &str,
    status: ExitStatus,
    tail: &StderrTail,
    output: &[u8],
) -> Result<(), Failure> {
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail
        .lock()
        .expect("stderr tail lock")
        .iter()
        .cloned()
        .collect();
    // Some commands report errors on stdout; quote it when stderr is silent.
    let detail = if tail.is_empty() {
        excerpt(output)
    } else {
        tail.join("\n")
    };
    Err(Failure::Failed(format!(
        "skill `{skill}` failed ({status}): {detail}"
    )))
}

/// Kills the command's process group when `run_command` is dropped before
/// the command finished (e.g. a legacy `/execute` client went away):
/// `kill_on_drop` alone would kill only the first process, not what it started.
struct GroupGuard {
    group: Option<i32>,
}

impl GroupGuard {
    fn disarm(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            // Nobody waits any more, so no grace period: a drop cannot await one.
            signal_group(group, libc::SIGKILL);
        }
    }
}

/// SIGTERM to the whole group, SIGKILL to whatever is left after a grace period.
async fn terminate(group: Option<i32>, child: &mut Child) {
    let Some(group) = group else {
        let _ = child.kill().await;
        return;
    };
    signal_group(group, libc::SIGTERM);
    let _ = tokio::time::timeout(TERMINATION_GRACE, child.wait()).await;
    signal_group(group, libc::SIGKILL);
    let _ = child.wait().await;
}

fn signal_group(group: i32, signal: libc::c_int) {
    // SAFETY: killpg only sends a signal; the group is the one our child leads.
    // An error (the group is already gone) needs no handling.
    unsafe {
        libc::killpg(group, signal);
    }
}

fn excerpt(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.is_empty() {
        return "(nothing)".to_string();
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_trimmed_and_short() {
        let long = "x".repeat(300);
        let cases = [
            ("", "(nothing)".to_string()),
            ("  \n", "(nothing)".to_string()),
            (" not json \n", "not json".to_string()),
            (long.as_str(), format!("{}…", "x".repeat(200))),
        ];
        for (output, expected) in cases {
            assert_eq!(excerpt(output.as_bytes()), expected, "for {output:?}");
        }
    }
}
