//! `pallet rerun ID --from STEP` and `POST /workflows/{id}/rerun` against a
//! real SQLite file and a real legacy agent that counts its calls: the steps
//! before STEP are taken over (their agents are not called again), STEP and
//! the rest run on their outputs, the new run names its origin, a killed
//! rerun resumes, and each refusal says what to do.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pallet::api::ServiceOptions;
use pallet::store::RunStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::Spawned;

const SKILLS: [&str; 3] = ["first", "second", "last"];

/// Three steps, each reading the one before; `two` is `flaky` (HTTP 503 on
/// its first call with the key), so the first run fails there and a rerun
/// from `two` (the agent "fixed") completes.
const THREE_STEPS: &str = "metadata: {id: rerun-test, name: Rerun test, version: 1.0.0}
steps:
  - {id: one, skill: first, inputs: {text: '{{ workflow.input.text }}'}}
  - {id: two, skill: flaky, inputs: {key: '{{ workflow.input.key }}', failures: 1, got: '{{ steps.one.outputs.text }}'}}
  - id: three
    skill: last
    inputs: {from_two: '{{ steps.two.outputs.got }}', text: '{{ steps.one.outputs.text }}'}
  - id: fan
    step_type: parallel
    branches:
      steps:
        - {id: left, skill: second, inputs: {side: left}}
";

/// `pallet ARGS --db DB --agent URL` with HOME under `context`, off the runtime.
async fn pallet(context: &TestContext, agent: &str, args: &[&str]) -> Output {
    let mut command = context.pallet();
    command
        .args(args)
        .arg("--db")
        .arg(context.join("runs.db"))
        .args(["--agent", agent])
        .env_remove("PALLET_AGENTS");
    run_off_runtime(command).await
}

async fn run_off_runtime(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The first run of THREE_STEPS: it fails at `two`; returns its id.
async fn failed_first_run(context: &TestContext, agent: &LegacyAgent) -> String {
    let file = context.write("three.yaml", THREE_STEPS);
    let file = file.to_str().unwrap();
    let output = pallet(
        context,
        &agent.url(),
        &[
            "run",
            "--json",
            "--file",
            file,
            "--input",
            "text=hello",
            "--input",
            "key=k1",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record = stdout_json(&output);
    assert_eq!(record["status"], "failed", "{record}");
    record["run_id"].as_str().unwrap().to_string()
}

fn calls(agent: &LegacyAgent) -> [u32; 4] {
    ["first", "flaky", "last", "second"].map(|skill| agent.calls(skill))
}

/// (step, status, reused_from) of each attempt of `view`, by step id (in
/// the order they started for each step: a container's start and its
/// branches' may be written in either order).
fn attempts(view: &Value) -> Vec<(String, String, Option<String>)> {
    let mut attempts: Vec<_> = view["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| {
            (
                attempt["step_id"].as_str().unwrap().to_string(),
                attempt["status"].as_str().unwrap().to_string(),
                attempt["reused_from"].as_str().map(str::to_string),
            )
        })
        .collect();
    attempts.sort_by(|left, right| left.0.cmp(&right.0));
    attempts
}

fn attempt(
    step: &str,
    status: &str,
    reused_from: Option<&str>,
) -> (String, String, Option<String>) {
    (
        step.to_string(),
        status.to_string(),
        reused_from.map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_from_a_middle_step_calls_only_the_agents_from_that_step_on() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let context = TestContext::new();
    let original = failed_first_run(&context, &agent).await;
    assert_eq!(calls(&agent), [1, 1, 0, 0]);

    // The agent of `two` answers now: rerun from it.
    let out = context.join("rerun-out");
    let output = pallet(
        &context,
        &agent.url(),
        &[
            "rerun",
            &original,
            "--from",
            "two",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let view = stdout_json(&output);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        calls(&agent),
        [1, 2, 1, 1],
        "`one` is not called again; `two` and after are"
    );
    let rerun = view["id"].as_str().unwrap().to_string();
    assert_ne!(rerun, original);
    assert_eq!(
        view["rerun_of"],
        json!({"run_id": original, "from_step": "two"})
    );
    assert_eq!(view["input"], json!({"text": "hello", "key": "k1"}));
    // The reused output fed the later steps.
    assert_eq!(view["context"]["two"]["got"], "hello");
    assert_eq!(
        view["context"]["three"],
        json!({"from_two": "hello", "text": "hello"})
    );
    assert_eq!(view["result"], json!({"left": {"side": "left"}}));
    assert_eq!(
        attempts(&view),
        [
            attempt("fan", "completed", None),
            attempt("left", "completed", None),
            attempt("one", "completed", Some(&original)),
            attempt("three", "completed", None),
            attempt("two", "completed", None),
        ]
    );
    assert_eq!(view["progress"]["steps_completed"], 4);
    // The same workflow text, hence digest, as the original.
    let store = RunStore::open(&context.join("runs.db")).unwrap();
    let first = store.get(&original).unwrap();
    assert_eq!(view["workflow_digest"], first.workflow_digest);
    let history = store.history(&rerun).unwrap();
    assert_eq!(
        history[1].metadata,
        json!({"by": "rerun", "rerun_of": original, "from": "two"})
    );
    // The results directory has every step, the reused one with its outputs.
    let one: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("steps/one.json")).unwrap())
            .unwrap();
    assert_eq!(one["outputs"], json!({"text": "hello"}), "{one}");

    // `runs show` says where the run came from and which step did not run here.
    let mut command = context.pallet();
    command
        .args(["runs", "show", &rerun, "--db"])
        .arg(context.join("runs.db"));
    let shown = run_off_runtime(command).await;
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(&format!(
            "origin    rerun of run {original} from step `two`"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "step one #1 completed (reused from run {original})"
        )),
        "{text}"
    );
    assert!(text.contains("step two #1 completed\n"), "{text}");

    // A rerun of the rerun: what it took over still names the run that made it.
    let output = pallet(
        &context,
        &agent.url(),
        &[
            "rerun",
            &rerun,
            "--from",
            "fan",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let again = stdout_json(&output);
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(calls(&agent), [1, 2, 1, 2]);
    assert_eq!(
        attempts(&again),
        [
            attempt("fan", "completed", None),
            attempt("left", "completed", None),
            attempt("one", "completed", Some(&original)),
            attempt("three", "completed", Some(&rerun)),
            attempt("two", "completed", Some(&rerun)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_that_cannot_start_says_why_and_what_to_do() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let context = TestContext::new();
    let original = failed_first_run(&context, &agent).await;
    let unknown = "00000000-0000-0000-0000-000000000000";
    // (from, run, what stderr says)
    let cases = [
        ("two", unknown, format!("no run with id `{unknown}`")),
        (
            "tree",
            original.as_str(),
            format!(
                "workflow `rerun-test` of run `{original}` has no step `tree` (did you mean `three`?); rerun from one of its top-level steps: one, two, three, fan"
            ),
        ),
        (
            "left",
            original.as_str(),
            format!(
                "step `left` is inside top-level step `fan` of run `{original}`'s workflow; a rerun starts at a top-level step: rerun from `fan` (or an earlier step)"
            ),
        ),
        (
            "three",
            original.as_str(),
            format!(
                "step `two`, before `three`, did not complete in run `{original}` (it failed): it has no outputs to reuse; rerun from `two` or an earlier step"
            ),
        ),
    ];
    for (from, run, message) in cases {
        let output = pallet(&context, &agent.url(), &["rerun", run, "--from", from]).await;
        assert_eq!(output.status.code(), Some(2), "{from}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(&message),
            "{from}: {}",
            stderr(&output)
        );
    }
    assert!(
        stderr(&pallet(&context, &agent.url(), &["rerun", unknown, "--from", "two"]).await)
            .contains("hint: list runs with `pallet runs`")
    );
    // Nothing was called or created by the refusals.
    assert_eq!(calls(&agent), [1, 1, 0, 0]);
    let store = RunStore::open(&context.join("runs.db")).unwrap();
    assert_eq!(store.list(None, 10).unwrap().len(), 1);
}

/// The newest run of `db` once `ready` holds for it (polled, bounded).
async fn newest_run_when(db: &Path, what: &str, ready: fn(&RunStore, &str) -> bool) -> String {
    let (db, what) = (db.to_path_buf(), what.to_string());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(store) = RunStore::open(&db)
                && let Ok(runs) = store.list(None, 10)
                && let Some(run) = runs.first()
                && ready(&store, &run.id)
            {
                return run.id.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rerun_resumes_as_an_ordinary_run() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let context = TestContext::new();
    let file = context.write(
        "slow.yaml",
        "metadata: {id: rerun-slow, name: Rerun slow, version: 1.0.0}
steps:
  - {id: one, skill: first, inputs: {n: 1}}
  - {id: slow, skill: sleep, inputs: {ms: '{{ workflow.input.ms }}', n: '{{ steps.one.outputs.n }}'}}
  - {id: three, skill: last, inputs: {n: '{{ steps.slow.outputs.n }}'}}
",
    );
    let output = pallet(
        &context,
        &agent.url(),
        &[
            "run",
            "--json",
            "--file",
            file.to_str().unwrap(),
            "--input",
            "ms:=1500",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let original = stdout_json(&output)["run_id"].as_str().unwrap().to_string();

    let db = context.join("runs.db");
    let mut child = Spawned::spawn(
        context
            .pallet()
            .args(["rerun", &original, "--from", "slow", "--quiet", "--agent"])
            .arg(agent.url())
            .arg("--db")
            .arg(&db)
            .env_remove("PALLET_AGENTS")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let rerun = newest_run_when(&db, "the rerun's `slow` in flight", |store, id| {
        store
            .attempts(id)
            .unwrap_or_default()
            .iter()
            .any(|attempt| attempt.step_id == "slow" && attempt.status.as_str() == "running")
    })
    .await;
    assert_ne!(rerun, original);
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(!child.wait().unwrap().success());

    let output = pallet(&context, &agent.url(), &["resume", &rerun, "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let view = stdout_json(&output);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["result"], json!({"n": 1}));
    assert_eq!(view["rerun_of"]["from_step"], "slow");
    assert_eq!(agent.calls("first"), 1, "taken over, never called again");
    assert_eq!(
        agent.calls("sleep"),
        3,
        "the original, the killed rerun, the resume"
    );
    assert_eq!(
        attempts(&view),
        [
            attempt("one", "completed", Some(&original)),
            attempt("slow", "interrupted", None),
            attempt("slow", "completed", None),
            attempt("three", "completed", None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reruns_a_run_from_a_step() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = crate::api::start(&agent, dir.path(), ServiceOptions::default()).await;
    std::fs::write(dir.join("workflows/three.yaml"), THREE_STEPS).unwrap();
    let (code, created) = service
        .post(
            "/workflows",
            json!({"workflow": "rerun-test", "input": {"text": "hi", "key": "api"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let original = created["id"].as_str().unwrap().to_string();
    service.wait_for(&original, "failed").await;
    assert_eq!(calls(&agent), [1, 1, 0, 0]);

    let path = format!("/workflows/{original}/rerun");
    let (code, started) = service.post(&path, json!({"from": "two"})).await;
    assert_eq!(code, StatusCode::CREATED, "{started}");
    assert_eq!(
        started["rerun_of"],
        json!({"run_id": original, "from_step": "two"})
    );
    let rerun = started["id"].as_str().unwrap().to_string();
    let view = service.wait_for(&rerun, "completed").await;
    assert_eq!(
        view["context"]["three"],
        json!({"from_two": "hi", "text": "hi"})
    );
    assert_eq!(calls(&agent), [1, 2, 1, 1]);
    assert_eq!(view["attempts"][0]["reused_from"], json!(original));

    // Refusals are problem documents: 404 unknown run, 422 a step it cannot start from.
    let unknown = "/workflows/00000000-0000-0000-0000-000000000000/rerun";
    let cases = [
        (
            unknown,
            json!({"from": "two"}),
            StatusCode::NOT_FOUND,
            "no run with id",
        ),
        (
            path.as_str(),
            json!({"from": "tow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "has no step `tow` (did you mean `two`?); rerun from one of its top-level steps: one, two, three, fan",
        ),
        (
            path.as_str(),
            json!({"from": "three"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "step `two`, before `three`, did not complete",
        ),
        (
            path.as_str(),
            json!({"from": "left"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rerun from `fan`",
        ),
        (
            path.as_str(),
            json!({"from": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid `/from`: is empty",
        ),
        (
            path.as_str(),
            json!({"step": "two"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `step`",
        ),
    ];
    for (route, body, status, detail) in cases {
        let (code, problem) = service.post(route, body.clone()).await;
        assert_eq!(code, status, "{body}: {problem}");
        let found = problem["detail"].as_str().unwrap_or_default();
        assert!(found.contains(detail), "{body}: `{found}` lacks `{detail}`");
    }

    // `pallet rerun --server URL` posts the route and follows the new run.
    let remote = TestContext::new();
    let rerun_remote = |from: &str| {
        let mut command = remote.pallet();
        command.args([
            "rerun",
            &original,
            "--from",
            from,
            "--json",
            "--server",
            &service.base,
        ]);
        run_off_runtime(command)
    };
    let output = rerun_remote("two").await;
    assert!(output.status.success(), "{}", stderr(&output));
    let view = stdout_json(&output);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["rerun_of"]["run_id"], json!(original));
    assert_ne!(view["id"], json!(rerun));
    assert_eq!(calls(&agent), [1, 3, 2, 2]);
    let output = rerun_remote("tow").await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has no step `tow` (did you mean `two`?)"),
        "{}",
        stderr(&output)
    );
    service.shutdown().await;
}
