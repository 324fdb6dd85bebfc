//! Reattach instead of re-send: a `pallet run` killed with SIGKILL while a
//! slow task runs on a real A2A agent (`@a2a-js/sdk` 1.3.0), then `pallet
//! resume`: the resume asks the agent for the stored task, and sends the step
//! again only when the agent no longer knows it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pallet::store::{Attempt, RunState, RunStore};
use serde_json::{Value, json};

use crate::support::TestContext;
use crate::support::pallet::Spawned;
use crate::support::sdk_peer::SdkPeer;

/// One slow step on the agent, then one quick one.
const WORKFLOW: &str = "metadata: {id: reattach-test, name: Reattach test, version: 1.0.0}
steps:
  - {id: slow, skill: slow, inputs: {seconds: 2}, timeout: 60s}
  - {id: after, skill: echo, inputs: {done: \"{{ steps.slow.outputs.seconds }}\"}}
";

struct Killed {
    home: TestContext,
    db: PathBuf,
    id: String,
    /// The interrupted attempt of `slow` as stored.
    interrupted: Attempt,
}

/// `pallet run` of [`WORKFLOW`] against `agent`, killed with SIGKILL once the
/// attempt of `slow` holds the agent's task id.
async fn run_and_kill(agent: &SdkPeer) -> Killed {
    let home = TestContext::new();
    let file = home.join("reattach.yaml");
    std::fs::write(&file, WORKFLOW).unwrap();
    let db = home.join("runs.db");
    let mut run = home.pallet();
    run.args(["run", "--quiet", "--file"])
        .arg(&file)
        .arg("--db")
        .arg(&db)
        .args(["--agent", &agent.url(), "--out"])
        .arg(home.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Spawned::spawn(&mut run);
    let (id, _) = wait_for_task(&db).await;
    child.signal(libc::SIGKILL);
    assert!(!child.wait().unwrap().success());
    let store = RunStore::open(&db).unwrap();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    let interrupted = store.attempts(&id).unwrap().remove(0);
    Killed {
        home,
        db,
        id,
        interrupted,
    }
}

/// The run's id and the attempt of `slow` once it holds the agent's task id.
async fn wait_for_task(db: &Path) -> (String, Attempt) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the attempt of `slow` never held a task id"
        );
        if db.exists()
            && let Ok(store) = RunStore::open(db)
            && let Ok(runs) = store.list(None, 1)
            && let Some(run) = runs.first()
            && let Ok(attempts) = store.attempts(&run.id)
            && let Some(attempt) = attempts
                .into_iter()
                .find(|attempt| attempt.step_id == "slow" && attempt.task_id.is_some())
        {
            return (run.id.clone(), attempt);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `pallet resume ID --json` (with `-v`): its JSON view and its log.
async fn resume(killed: &Killed, agent: &SdkPeer) -> (Value, String) {
    let mut command = killed.home.pallet();
    command
        .args([
            "-v",
            "resume",
            &killed.id,
            "--json",
            "--agent",
            &agent.url(),
        ])
        .arg("--db")
        .arg(&killed.db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output =
        tokio::task::spawn_blocking(move || Spawned::spawn(&mut command).wait_with_output())
            .await
            .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    (serde_json::from_slice(&output.stdout).unwrap(), log)
}

fn attempts_of(db: &Path, id: &str, step: &str) -> Vec<Attempt> {
    let store = RunStore::open(db).unwrap();
    store
        .attempts(id)
        .unwrap()
        .into_iter()
        .filter(|attempt| attempt.step_id == step)
        .collect()
}

fn sends_of(sends: &[Value], skill: &str) -> Vec<Value> {
    sends
        .iter()
        .filter(|send| send["skill"] == skill)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_awaits_the_task_still_running_and_sends_nothing_again() {
    let agent = SdkPeer::js_recording("slow-agent", &["JSONRPC"], None).await;
    let killed = run_and_kill(&agent).await;
    let task = killed.interrupted.task_id.clone().unwrap();
    assert_eq!(
        killed.interrupted.task_interface.as_ref().unwrap()["binding"],
        "JSONRPC"
    );
    let key = killed.interrupted.idempotency_key.clone().unwrap();
    assert_eq!(key, format!("{}:slow:1", killed.id));

    let (shown, log) = resume(&killed, &agent).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["result"], json!({"done": 2}));
    let sends = agent.sends().await;
    assert_eq!(
        sends_of(&sends, "slow"),
        [json!({"skill": "slow", "idempotencyKey": key})],
        "the agent saw exactly one SendMessage for the step"
    );
    let attempts = attempts_of(&killed.db, &killed.id, "slow");
    let statuses: Vec<&str> = attempts.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(statuses, ["interrupted", "completed"]);
    assert_eq!(attempts[1].task_id.as_deref(), Some(task.as_str()));
    assert_eq!(attempts[1].reattached_from, Some(1));
    assert!(
        log.contains("reattached to the task of the interrupted attempt"),
        "{log}"
    );

    let shown = killed
        .home
        .pallet()
        .args(["runs", "show", &killed.id, "--db"])
        .arg(&killed.db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(&format!(
            "step slow #2 completed (reattached to task {task} of attempt #1)"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_sends_the_step_again_with_the_same_key_when_the_agent_forgot_the_task() {
    let mut agent = SdkPeer::js_recording("forgetful-agent", &["JSONRPC"], None).await;
    let killed = run_and_kill(&agent).await;
    let key = killed.interrupted.idempotency_key.clone().unwrap();
    // Restarted at the same address: its tasks are gone.
    let port = agent.port;
    agent.stop();
    let agent = SdkPeer::js_recording("forgetful-agent", &["JSONRPC"], Some(port)).await;

    let (shown, log) = resume(&killed, &agent).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(
        sends_of(&agent.sends().await, "slow"),
        [json!({"skill": "slow", "idempotencyKey": key})],
        "sent again once, with the same key"
    );
    let attempts = attempts_of(&killed.db, &killed.id, "slow");
    assert_eq!(attempts[1].status, "completed");
    assert_eq!(attempts[1].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(attempts[1].reattached_from, None);
    assert!(log.contains("no longer knows the task"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_takes_the_output_of_a_task_that_completed_meanwhile() {
    let agent = SdkPeer::js_recording("finishing-agent", &["HTTP+JSON"], None).await;
    let killed = run_and_kill(&agent).await;
    let task = killed.interrupted.task_id.clone().unwrap();
    // pallet is dead while the skill ends (it works for 2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let started = Instant::now();
    let (shown, _) = resume(&killed, &agent).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["result"], json!({"done": 2}));
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "the completed task is not run again: {:?}",
        started.elapsed()
    );
    assert_eq!(
        sends_of(&agent.sends().await, "slow").len(),
        1,
        "no SendMessage at resume"
    );
    let attempts = attempts_of(&killed.db, &killed.id, "slow");
    assert_eq!(attempts[1].task_id.as_deref(), Some(task.as_str()));
    assert_eq!(attempts[1].reattached_from, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_start_up_resume_reattaches_too() {
    let agent = SdkPeer::js_recording("service-agent", &["JSONRPC"], None).await;
    let killed = run_and_kill(&agent).await;
    let task = killed.interrupted.task_id.clone().unwrap();
    let mut serve = killed.home.pallet();
    serve
        .args(["serve", "--addr", "127.0.0.1:0", "--agent", &agent.url()])
        .arg("--db")
        .arg(&killed.db)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _service = Spawned::spawn(&mut serve);
    let store = RunStore::open(&killed.db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get(&killed.id).unwrap().status != RunState::Completed {
        assert!(
            Instant::now() < deadline,
            "the service did not complete the run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sends_of(&agent.sends().await, "slow").len(),
        1,
        "the agent saw exactly one SendMessage for the step"
    );
    let attempts = attempts_of(&killed.db, &killed.id, "slow");
    assert_eq!(attempts[1].task_id.as_deref(), Some(task.as_str()));
    assert_eq!(attempts[1].reattached_from, Some(1));
}
