//! Durable runs against real SQLite files and real legacy agents: the state
//! machine at the store, approvals (approve, reject, rework, timeout), and a
//! `pallet run` process killed with SIGKILL mid-run, then resumed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pallet::agent::StaticDiscovery;
use pallet::builtin::BuiltinWorkflows;
use pallet::engine::Engine;
use pallet::runs::{Decision, RunError, Runner};
use pallet::store::{
    AttemptStatus, ManualClock, NewRun, RunChange, RunState, RunStore, StoreError,
};
use pallet::workflow::{LoadedWorkflow, load_str};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::{Spawned, pallet_in};

const SKILLS: [&str; 3] = ["first", "second", "last"];

fn engine(agent: &LegacyAgent) -> Engine {
    Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url()])),
        Arc::new(BuiltinWorkflows),
    )
    .build()
}

fn workflow_text(steps: &str) -> String {
    format!("metadata: {{id: durable-test, name: Durable test, version: 1.2.3}}\nsteps:\n{steps}")
}

fn workflow(steps: &str) -> Arc<LoadedWorkflow> {
    let text = workflow_text(steps);
    Arc::new(load_str("durable-test.yaml", &text).unwrap_or_else(|error| panic!("{error:?}")))
}

/// A runner whose runs are started (and resumed) by "starter".
fn starter<'a>(store: &'a RunStore, engine: &'a Engine) -> Runner<'a> {
    Runner {
        store,
        engine,
        actor: "starter".to_string(),
        interrupt: tokio_util::sync::CancellationToken::new(),
    }
}

fn decision(actor: &str, comment: Option<&str>, fields: &[(&str, &str)]) -> Decision {
    Decision {
        actor: actor.to_string(),
        comment: comment.map(str::to_string),
        fields: fields
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value)))
            .collect::<Map<_, _>>(),
    }
}

fn triggers(store: &RunStore, id: &str) -> Vec<String> {
    store
        .history(id)
        .unwrap()
        .into_iter()
        .map(|transition| format!("{}:{}", transition.trigger, transition.to))
        .collect()
}

const APPROVAL_FLOW: &str =
    "  - {id: draft, skill: first, inputs: {text: '{{ workflow.input.text }}'}}
  - id: review
    step_type: approval
    title: Ship the draft?
    instructions: Read the draft first.
    required: [ticket]
    on_reject: {retry_from: draft}
  - id: publish
    skill: last
    inputs:
      approved: '{{ steps.review.outputs.approved }}'
      ticket: '{{ steps.review.outputs.fields.ticket }}'
      actor: '{{ steps.review.outputs.actor }}'
      comment: '{{ steps.review.outputs.comment }}'
      draft: '{{ steps.draft.outputs.text }}'
";

#[test]
fn the_store_refuses_invalid_transitions_and_writes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("nested/dir/runs.db")).unwrap();
    let run = store
        .create_run(&NewRun {
            workflow_ref: "durable-test".to_string(),
            workflow_id: "durable-test".to_string(),
            workflow_version: "1.2.3".to_string(),
            workflow_source: "durable-test.yaml".to_string(),
            workflow_yaml: workflow_text("  - {id: a, skill: first}\n"),
            input: json!({"x": 1}),
            actor: "tester".to_string(),
        })
        .unwrap();
    assert_eq!(run.status, RunState::Pending);
    assert!(run.workflow_digest.starts_with("sha256:"));
    let steps: [(RunState, bool); 6] = [
        (RunState::Completed, false),
        (RunState::WaitingApproval, false),
        (RunState::InProgress, true),
        (RunState::WaitingApproval, true),
        (RunState::Completed, true),
        (RunState::Failed, false),
    ];
    let mut expected_history = 1;
    for (to, allowed) in steps {
        let result = store
            .transition(&run.id, RunChange::new(to, "test", "tester"))
            .wait();
        match (allowed, result) {
            (true, Ok(_)) => expected_history += 1,
            (false, Err(StoreError::Transition(refused))) => assert_eq!(refused.to, to),
            (allowed, other) => panic!("-> {to}: expected allowed={allowed}, got {other:?}"),
        }
        assert_eq!(store.history(&run.id).unwrap().len(), expected_history);
    }
    let ended = store.get(&run.id).unwrap();
    assert_eq!(ended.status, RunState::Completed);
    assert!(ended.completed_at.is_some());
    // Another handle on the same file (another process, say) sees the same state.
    let reopened = RunStore::open(store.path()).unwrap();
    assert_eq!(reopened.get(&run.id).unwrap().status, RunState::Completed);
    assert!(matches!(
        reopened.get("no-such-run"),
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn an_approved_run_continues_with_the_decision() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    let outcome = runner
        .start(
            workflow(APPROVAL_FLOW),
            "durable-test",
            json!({"text": "hello"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = outcome.run.id.clone();
    assert_eq!(outcome.run.status, RunState::WaitingApproval);
    assert_eq!(
        outcome.record.unwrap().run_id,
        id,
        "the engine runs under the stored id"
    );
    assert_eq!(agent.calls("first"), 1);
    assert_eq!(agent.calls("last"), 0);

    let view = runner.view(&id).unwrap();
    let approval = view.approval.as_ref().expect("a pending approval");
    assert_eq!(approval.step, "review");
    assert_eq!(approval.required, vec!["ticket".to_string()]);
    assert_eq!(view.progress.steps_completed, 1);
    assert_eq!(view.progress.percentage, 33);
    let view_json = serde_json::to_value(&view).unwrap();
    assert!(
        view_json["time_in_state_seconds"]["in_progress"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    assert!(view_json["time_in_state_seconds"]["waiting_approval"].is_number());

    let missing = runner
        .approve(&id, decision("ada", None, &[]), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RunError::MissingFields { .. }),
        "{missing}"
    );
    assert_eq!(store.get(&id).unwrap().status, RunState::WaitingApproval);

    let outcome = runner
        .approve(
            &id,
            decision("ada", Some("ship it"), &[("ticket", "OPS-12")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.run.status,
        RunState::Completed,
        "{:?}",
        outcome.run.error
    );
    assert_eq!(agent.calls("first"), 1, "the draft step is not run again");
    assert_eq!(agent.calls("last"), 1);
    assert_eq!(
        outcome.run.result.unwrap(),
        json!({"approved": true, "ticket": "OPS-12", "actor": "ada", "comment": "ship it", "draft": "hello"})
    );
    assert_eq!(
        triggers(&store, &id),
        [
            "created:pending",
            "start:in_progress",
            "agent_complete:waiting_approval",
            "human_approved:in_progress",
            "steps_completed:completed"
        ]
    );
    let history = store.history(&id).unwrap();
    assert_eq!(history[3].actor, "ada");
    assert_eq!(history[3].metadata["comment"], "ship it");
    assert_eq!(runner.view(&id).unwrap().progress.percentage, 100);
    // A decided run cannot be decided again.
    let again = runner
        .reject(&id, decision("bob", None, &[]), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(again.is_conflict(), "{again}");
}

/// The run view (CLI and service) names the failures the run went on
/// without, also inside a map's iterations.
#[tokio::test]
async fn the_run_view_lists_continued_failures() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    let steps = "  - {id: broken, skill: fail, continue_on_error: true}
  - id: each
    step_type: for_each
    items: '{{ workflow.input.items }}'
    steps:
      - {id: scan, skill: fail, continue_on_error: true, if: '{{ item }}'}
  - {id: fine, skill: first}
";
    let outcome = runner
        .start(
            workflow(steps),
            "durable-test",
            json!({"items": [true, false, true]}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.run.status, RunState::Completed);
    let view = runner.view(&outcome.run.id).unwrap();
    assert_eq!(
        view.continued_failures,
        ["broken", "each[0]/scan", "each[2]/scan"]
    );
    let shown = serde_json::to_value(&view).unwrap();
    assert_eq!(shown["continued_failures"][1], "each[0]/scan", "{shown}");
}

#[tokio::test]
async fn a_rejection_fails_the_run_or_sends_it_back_for_rework() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    // Without on_reject, a rejection fails the run.
    let plain = APPROVAL_FLOW.replace("    on_reject: {retry_from: draft}\n", "");
    let outcome = runner
        .start(
            workflow(&plain),
            "durable-test",
            json!({"text": "v1"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let failed = runner
        .reject(
            &outcome.run.id,
            decision("bob", Some("too long"), &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(failed.run.status, RunState::Failed);
    assert_eq!(
        failed.run.error.as_deref(),
        Some("approval step `review` was rejected by bob: too long")
    );
    assert_eq!(agent.calls("last"), 0);
    assert_eq!(
        triggers(&store, &failed.run.id).last().unwrap(),
        "human_rejected:failed"
    );

    // With retry_from, the draft runs again and the run waits for a new decision.
    let outcome = runner
        .start(
            workflow(APPROVAL_FLOW),
            "durable-test",
            json!({"text": "v1"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = outcome.run.id;
    assert_eq!(agent.calls("first"), 2);
    let reworked = runner
        .reject(
            &id,
            decision("bob", Some("redo"), &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(reworked.run.status, RunState::WaitingApproval);
    assert_eq!(agent.calls("first"), 3, "the draft is made again");
    let attempts = store.attempts(&id).unwrap();
    let draft: Vec<(u32, &str)> = attempts
        .iter()
        .filter(|attempt| attempt.step_id == "draft")
        .map(|attempt| (attempt.attempt, attempt.status.as_str()))
        .collect();
    assert_eq!(draft, [(1, "superseded"), (2, "completed")]);
    let done = runner
        .approve(
            &id,
            decision("bob", None, &[("ticket", "T-1")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.run.status, RunState::Completed);
    assert_eq!(done.run.result.unwrap()["approved"], true);
    assert_eq!(agent.calls("first"), 3);
    assert_eq!(
        triggers(&store, &id)[2..],
        [
            "agent_complete:waiting_approval",
            "human_rejected:in_progress",
            "agent_complete:waiting_approval",
            "human_approved:in_progress",
            "steps_completed:completed"
        ]
    );
}

#[tokio::test]
async fn an_expired_approval_applies_its_timeout_decision() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = RunStore::open(&directory.path().join("runs.db"))
        .unwrap()
        .with_clock(clock.clone());
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    let steps = |on_timeout: &str| {
        format!(
            "  - {{id: gate, step_type: approval, title: Go?, timeout: 0.2, on_timeout: {on_timeout}}}\n  - {{id: after, skill: last, inputs: {{approved: '{{{{ steps.gate.outputs.approved }}}}', actor: '{{{{ steps.gate.outputs.actor }}}}'}}}}\n"
        )
    };
    let approving = runner
        .start(
            workflow(&steps("approve")),
            "durable-test",
            json!({}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let rejecting = runner
        .start(
            workflow(&steps("reject")),
            "durable-test",
            json!({}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    // Before the deadline, resuming is refused: the run waits for a human.
    let early = runner
        .resume(&approving.run.id, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(early, RunError::Waiting { .. }), "{early}");
    clock.advance(Duration::from_millis(300));

    let resumed = runner
        .resume(&approving.run.id, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(resumed.run.status, RunState::Completed);
    assert_eq!(
        resumed.run.result.unwrap(),
        json!({"approved": true, "actor": "timeout"})
    );

    // Looking at a run past a rejecting deadline fails it.
    let view = runner.view(&rejecting.run.id).unwrap();
    assert_eq!(view.run.status, RunState::Failed);
    assert!(view.run.error.unwrap().contains("rejected by timeout"));
    assert_eq!(agent.calls("last"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_elsewhere_starts_no_further_step() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let store = RunStore::open(&db).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    let steps = "  - {id: slow, skill: sleep, inputs: {ms: 600}}\n  - {id: after, skill: last}\n";
    let run = runner.start(
        workflow(steps),
        "durable-test",
        json!({}),
        CancellationToken::new(),
    );
    let cancel_elsewhere = async {
        let id = tokio::task::spawn_blocking(move || {
            wait_for(&db, "step `slow` in flight", |store, id| {
                store
                    .attempts(id)
                    .unwrap_or_default()
                    .iter()
                    .any(|attempt| attempt.step_id == "slow" && attempt.status == "running")
            })
        })
        .await
        .unwrap();
        let other = RunStore::open(&directory.path().join("runs.db")).unwrap();
        other
            .transition(
                &id,
                RunChange::new(RunState::Cancelled, "cancelled", "operator"),
            )
            .wait()
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(run, cancel_elsewhere);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.run.status, RunState::Cancelled);
    assert_eq!(agent.calls("sleep"), 1);
    assert_eq!(
        agent.calls("last"),
        0,
        "no step starts after the cancellation"
    );
    assert_eq!(
        triggers(&store, &outcome.run.id).last().unwrap(),
        "cancelled:cancelled"
    );
}

/// Poll the run database until `ready` holds for the run's attempts.
fn wait_for(db: &Path, what: &str, ready: impl Fn(&RunStore, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(store) = RunStore::open(db)
            && let Ok(runs) = store.list(None, 10)
            && let Some(run) = runs.first()
            && ready(&store, &run.id)
        {
            return run.id.clone();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_run_resumable_and_resume_completes_it() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("stop.yaml");
    std::fs::write(
        &file,
        workflow_text(
            "  - {id: one, skill: first, inputs: {n: 1}}\n  - {id: slow, skill: sleep, inputs: {ms: 3000}}\n  - {id: three, skill: last, inputs: {one: '{{ steps.one.outputs.n }}'}}\n",
        ),
    )
    .unwrap();
    let root = directory.path().to_path_buf();
    let mut child = Spawned::spawn(
        pallet_in(&root)
            .args(["run", "--quiet", "--file"])
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .args(["--agent", &agent.url(), "--out"])
            .arg(directory.path().join("out"))
            .env_remove("PALLET_AGENTS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let db_for_wait = db.clone();
    let id = tokio::task::spawn_blocking(move || {
        wait_for(&db_for_wait, "step `slow` in flight", |store, id| {
            attempt_statuses(store, id, "one") == ["completed"]
                && attempt_statuses(store, id, "slow") == ["running"]
        })
    })
    .await
    .unwrap();
    while agent.calls("sleep") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.signal(libc::SIGTERM);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {id} interrupted by SIGTERM; continue it with: pallet resume {id}"
        )),
        "{stderr}"
    );
    let store = RunStore::open(&db).unwrap();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    assert_eq!(store.executor_starts(&id).unwrap(), 0, "a graceful stop");
    assert_eq!(agent.calls("last"), 0, "no further step started");

    let resume = tokio::task::spawn_blocking({
        let (db, url, id, root) = (db.clone(), agent.url(), id.clone(), root.clone());
        move || {
            pallet_in(&root)
                .args(["resume", &id, "--json", "--agent", &url])
                .arg("--db")
                .arg(&db)
                .env_remove("PALLET_AGENTS")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let shown: Value = serde_json::from_slice(&resume.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&resume.stderr));
    });
    assert_eq!(shown["status"], "completed");
    assert_eq!(
        agent.calls("first"),
        1,
        "the completed step is not run again"
    );
    assert_eq!(agent.calls("sleep"), 2, "the stopped step runs again");
    assert_eq!(agent.calls("last"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_without_running_completed_steps_again() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("crash.yaml");
    std::fs::write(
        &file,
        workflow_text(
            "  - {id: one, skill: first, inputs: {n: 1}}\n  - {id: slow, skill: sleep, inputs: {ms: 1500, from: '{{ steps.one.outputs.n }}'}}\n  - {id: three, skill: last, inputs: {one: '{{ steps.one.outputs.n }}', slow: '{{ steps.slow.outputs.ms }}'}}\n",
        ),
    )
    .unwrap();
    let root = directory.path().to_path_buf();
    let mut child = spawn_run(&root, &file, &db, &agent.url());
    let in_flight = [("one", "completed"), ("slow", "running")];
    let id = wait_for_statuses(&db, "step `slow` in flight", &in_flight).await;
    // SIGKILL: the process gets no chance to record anything more.
    kill_and_check_failed(&mut child);
    let store = RunStore::open(&db).unwrap();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    assert_eq!(agent.calls("first"), 1);

    let shown = resume_json(&root, &id, &db, &agent.url()).await;
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["result"], json!({"one": 1, "slow": 1500}));
    assert_eq!(
        agent.calls("first"),
        1,
        "the completed step is not run again"
    );
    // Resume writes the results as run does: `app/` by default.
    let app = directory.path().join("app");
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(app.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    for step in ["one", "slow", "three"] {
        assert!(app.join(format!("steps/{step}.json")).is_file(), "{step}");
    }
    assert_eq!(agent.calls("last"), 1);
    assert_attempts(&store, &id, "slow", &[(1, "interrupted"), (2, "completed")]);
    // A completed run cannot be resumed: bad input, exit status 2.
    let again = pallet_in(&root)
        .args(["resume", &id, "--agent", &agent.url()])
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("has ended (completed)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_killed_mid_way_resumes_without_running_completed_items_again() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("map.yaml");
    // One item at a time; item 2 sleeps long enough to be killed in flight.
    let steps = "  - {id: one, skill: first, inputs: {n: 1}}
  - id: each
    step_type: for_each
    max_concurrency: 1
    items: '{{ workflow.input.items }}'
    steps:
      - {id: nap, skill: sleep, inputs: {ms: '{{ item }}', from: '{{ steps.one.outputs.n }}'}}
      - {id: mark, skill: second, inputs: {at: '{{ index }}'}}
  - {id: three, skill: last, inputs: {count: '{{ steps.each.outputs.count }}'}}
";
    let text = workflow_text(steps);
    std::fs::write(&file, text).unwrap();
    let root = directory.path().to_path_buf();
    let mut child = Spawned::spawn(
        pallet_in(&root)
            .args(["run", "--quiet", "--file"])
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .args([
                "--agent",
                &agent.url(),
                "--input",
                "items:=[10, 10, 4000, 10]",
                "--out",
            ])
            .arg(root.join("out"))
            .env_remove("PALLET_AGENTS")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let in_flight = [("each[1]/mark", "completed"), ("each[2]/nap", "running")];
    let id = wait_for_statuses(&db, "item 2 in flight", &in_flight).await;
    kill_and_check_failed(&mut child);
    assert_eq!((agent.calls("sleep"), agent.calls("second")), (3, 2));

    let shown = resume_json(&root, &id, &db, &agent.url()).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["result"], json!({"count": 4}));
    // Items 0 and 1 are not run again; item 2 runs again, then item 3.
    assert_eq!(agent.calls("first"), 1);
    assert_eq!((agent.calls("sleep"), agent.calls("second")), (5, 4));
    let store = RunStore::open(&db).unwrap();
    assert_attempts(&store, &id, "each[0]/nap", &[(1, "completed")]);
    assert_attempts(
        &store,
        &id,
        "each[2]/nap",
        &[(1, "interrupted"), (2, "completed")],
    );
    assert_attempts(&store, &id, "each[3]/mark", &[(1, "completed")]);
}

/// Killed while a failed step's on_failure handler runs: the resume runs
/// the handler on (its finished steps not again) and never calls the failed
/// step's agent a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_killed_inside_its_handler_is_not_called_again_on_resume() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("handled.yaml");
    let steps = "  - id: bad
    skill: fail
    inputs: {message: the scan broke}
    on_failure:
      - {id: note, skill: first, inputs: {about: '{{ error.message }}'}}
      - {id: nap, skill: sleep, inputs: {ms: 4000}}
      - {id: mark, skill: second, inputs: {at: '{{ error.step }}'}}
  - {id: three, skill: last, inputs: {got: '{{ steps.bad.outputs }}'}}
";
    std::fs::write(&file, workflow_text(steps)).unwrap();
    let root = directory.path().to_path_buf();
    let mut child = spawn_run(&root, &file, &db, &agent.url());
    let in_flight = [
        ("bad/on_failure/note", "completed"),
        ("bad/on_failure/nap", "running"),
    ];
    let id = wait_for_statuses(&db, "the handler in flight", &in_flight).await;
    kill_and_check_failed(&mut child);
    assert_eq!((agent.calls("fail"), agent.calls("first")), (1, 1));

    let shown = resume_json(&root, &id, &db, &agent.url()).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(agent.calls("fail"), 1, "the failed step was called again");
    assert_eq!(
        agent.calls("first"),
        1,
        "the handler's finished step ran again"
    );
    assert_eq!((agent.calls("sleep"), agent.calls("second")), (2, 1));
    assert_eq!(agent.calls("last"), 1);
    let store = RunStore::open(&db).unwrap();
    assert_attempts(&store, &id, "bad", &[(1, "failed"), (2, "completed")]);
    assert_attempts(
        &store,
        &id,
        "bad/on_failure/nap",
        &[(1, "interrupted"), (2, "completed")],
    );
}

/// `pallet run --quiet --file FILE --db DB --agent URL --out ROOT/out`, its
/// HOME in `root` and its output discarded, killed when the guard drops.
fn spawn_run(root: &Path, file: &Path, db: &Path, agent: &str) -> Spawned {
    Spawned::spawn(
        pallet_in(root)
            .args(["run", "--quiet", "--file"])
            .arg(file)
            .arg("--db")
            .arg(db)
            .args(["--agent", agent, "--out"])
            .arg(root.join("out"))
            .env_remove("PALLET_AGENTS")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Waits (off the async runtime) until the latest attempt of each step of the
/// run in `db` has the given status; returns the run's id.
async fn wait_for_statuses(db: &Path, what: &str, expected: &[(&str, &str)]) -> String {
    let (db, what) = (db.to_path_buf(), what.to_string());
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(step, status)| (step.to_string(), status.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        wait_for(&db, &what, |store, id| {
            let attempts = store.attempts(id).unwrap_or_default();
            expected.iter().all(|(step, status)| {
                attempts
                    .iter()
                    .rev()
                    .find(|attempt| attempt.step_id == *step)
                    .is_some_and(|attempt| attempt.status.as_str() == status)
            })
        })
    })
    .await
    .unwrap()
}

/// SIGKILL `child` (it gets no chance to record anything more) and check
/// that it did not succeed.
fn kill_and_check_failed(child: &mut Spawned) {
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(!child.wait().unwrap().success());
}

/// `command` run to its end off the async runtime.
async fn output_off_runtime(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `command` run to its end off the async runtime; checks that it succeeded
/// and returns its stdout as JSON.
async fn succeeded_json(command: Command) -> Value {
    let output = output_off_runtime(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `pallet resume ID --json --agent URL --db DB` (HOME in `root`) to its end;
/// checks that it succeeded and returns the JSON it printed.
async fn resume_json(root: &Path, id: &str, db: &Path, agent: &str) -> Value {
    let mut command = pallet_in(root);
    command
        .args(["resume", id, "--json", "--agent", agent])
        .arg("--db")
        .arg(db)
        .env_remove("PALLET_AGENTS");
    succeeded_json(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_pauses_at_an_approval_and_approve_finishes_the_run() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("approve.yaml");
    std::fs::write(&file, workflow_text(APPROVAL_FLOW)).unwrap();
    let root = directory.path().to_path_buf();
    let url = agent.url();
    let pallet = {
        let root = root.clone();
        move |args: Vec<String>| {
            let db = db.clone();
            let url = url.clone();
            let root = root.clone();
            tokio::task::spawn_blocking(move || {
                pallet_in(&root)
                    .args(&args)
                    .arg("--db")
                    .arg(&db)
                    .args(["--agent", &url])
                    .env_remove("PALLET_AGENTS")
                    .output()
                    .unwrap()
            })
        }
    };
    let out = directory.path().join("out").display().to_string();
    let file = file.display().to_string();
    let run = pallet(vec![
        "run".into(),
        "--file".into(),
        file,
        "--json".into(),
        "--out".into(),
        out,
        "--input".into(),
        "text=hi".into(),
    ])
    .await
    .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(record["status"], "waiting_approval");
    let id = record["run_id"].as_str().unwrap().to_string();

    let shown = pallet_in(&root)
        .args(["runs", "show", &id, "--json", "--db"])
        .arg(directory.path().join("runs.db"))
        .output()
        .unwrap();
    let view: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(view["status"], "waiting_approval");
    assert_eq!(view["approval"]["title"], "Ship the draft?");
    assert_eq!(view["progress"]["steps_total"], 3);

    let missing = pallet(vec!["approve".into(), id.clone()]).await.unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--field ticket=VALUE"));

    let approved = pallet(vec![
        "approve".into(),
        id.clone(),
        "--field".into(),
        "ticket=OPS-1".into(),
        "--actor".into(),
        "grace".into(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let run: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["result"]["actor"], "grace");

    let cancel = pallet_in(&root)
        .args(["cancel", &id, "--db"])
        .arg(directory.path().join("runs.db"))
        .output()
        .unwrap();
    assert_eq!(
        cancel.status.code(),
        Some(2),
        "a completed run cannot be cancelled"
    );
    assert!(
        String::from_utf8_lossy(&cancel.stderr)
            .contains("a run cannot go from `completed` to `cancelled` (it has ended)")
    );
}

/// A legacy-protocol agent that echoes and records each call's `Idempotency-Key`.
async fn key_recording_agent() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::{get, post};
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = keys.clone();
    let app = axum::Router::new()
        .route(
            "/agent-card",
            get(|headers: axum::http::HeaderMap| async move {
                let host = headers["host"].to_str().unwrap().to_string();
                axum::Json(json!({"name": "keys", "url": format!("http://{host}"), "skills": [{"id": "first"}, {"id": "last"}]}))
            }),
        )
        .route(
            "/execute",
            post(
                move |headers: axum::http::HeaderMap, axum::Json(request): axum::Json<Value>| async move {
                    let key = headers["idempotency-key"].to_str().unwrap().to_string();
                    recorded.lock().unwrap().push(key);
                    axum::Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": {"ok": true}}))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, keys)
}

#[tokio::test]
async fn idempotency_keys_repeat_for_an_interrupted_attempt_and_change_for_rework() {
    let (url, keys) = key_recording_agent().await;
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![url])),
        Arc::new(BuiltinWorkflows),
    )
    .build();
    let runner = starter(&store, &engine);
    let steps = "  - {id: draft, skill: first}\n  - {id: gate, step_type: approval, title: Go?, on_reject: {retry_from: draft}}\n  - {id: publish, skill: last}\n";
    let text = workflow_text(steps);
    // A process that died while `draft` was in flight left this behind.
    let run = store
        .create_run(&NewRun {
            workflow_ref: "durable-test".to_string(),
            workflow_id: "durable-test".to_string(),
            workflow_version: "1.2.3".to_string(),
            workflow_source: "durable-test.yaml".to_string(),
            workflow_yaml: text,
            input: json!({}),
            actor: "tester".to_string(),
        })
        .unwrap();
    let id = run.id;
    store
        .transition(
            &id,
            RunChange::new(RunState::InProgress, "started", "tester"),
        )
        .wait()
        .unwrap();
    store
        .start_attempt(&id, "draft", AttemptStatus::Running, None)
        .wait()
        .unwrap();

    let resumed = runner.resume(&id, CancellationToken::new()).await.unwrap();
    assert_eq!(resumed.run.status, RunState::WaitingApproval);
    runner
        .reject(&id, decision("bob", None, &[]), CancellationToken::new())
        .await
        .unwrap();
    let done = runner
        .approve(&id, decision("bob", None, &[]), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.run.status, RunState::Completed);
    assert_eq!(
        *keys.lock().unwrap(),
        [
            format!("{id}:draft:1"),
            format!("{id}:draft:2"),
            format!("{id}:publish:1")
        ],
        "the re-run of the interrupted attempt repeats its key; rework gets a new one"
    );
}

#[tokio::test]
async fn an_approval_without_a_store_fails_clearly() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let record = engine(&agent)
        .run(
            workflow(APPROVAL_FLOW),
            json!({"text": "x"}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, pallet::engine::RunStatus::Failed);
    assert_eq!(
        record.error.as_deref(),
        Some("approval step `review` needs a durable run (a run store) to wait for a decision")
    );
    assert_eq!(agent.calls("first"), 1);
    assert_eq!(agent.calls("last"), 0);
}

/// `pallet ARGS --db DB --agent URL`, run to its end off the async runtime.
async fn pallet_output(args: Vec<String>, db: &Path, agent: &str) -> std::process::Output {
    let (db, agent) = (db.to_path_buf(), agent.to_string());
    // Its HOME and XDG directories beside the database.
    let root = db.parent().unwrap().to_path_buf();
    tokio::task::spawn_blocking(move || {
        pallet_in(&root)
            .args(&args)
            .arg("--db")
            .arg(&db)
            .args(["--agent", &agent])
            .env_remove("PALLET_AGENTS")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn attempt_statuses(store: &RunStore, id: &str, step: &str) -> Vec<String> {
    store
        .attempts(id)
        .unwrap()
        .into_iter()
        .filter(|attempt| attempt.step_id == step)
        .map(|attempt| attempt.status.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_another_live_process_executes_is_not_resumed_until_that_process_dies() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("owned.yaml");
    std::fs::write(
        &file,
        workflow_text(
            "  - {id: one, skill: first}\n  - {id: slow, skill: sleep, inputs: {ms: 6000}}\n  - {id: three, skill: last}\n",
        ),
    )
    .unwrap();
    let mut child = spawn_run(directory.path(), &file, &db, &agent.url());
    let id = wait_for_statuses(&db, "step `slow` in flight", &[("slow", "running")]).await;

    let refused = pallet_output(vec!["resume".into(), id.clone()], &db, &agent.url()).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    let owner = format!(
        "run `{id}` is being executed by another process (pid {} on host {}, since ",
        child.id(),
        pallet::store::lease::Owner::current().host
    );
    assert!(stderr.contains(&owner), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "): wait for it, or stop it with `pallet cancel {id}`"
        )),
        "{stderr}"
    );

    // The service's start-up resume leaves the run to its owner too.
    let store = RunStore::open(&db).unwrap();
    serve_briefly(&store, &agent).await;
    assert_eq!(agent.calls("first"), 1, "no step is run twice");
    assert_eq!(
        agent.calls("sleep"),
        1,
        "the step in flight is not started again"
    );
    assert_eq!(
        attempt_statuses(&store, &id, "slow"),
        ["running"],
        "the owner's attempt is not marked interrupted"
    );

    // SIGKILL: the owner is gone, so its lease is stale at once.
    kill_and_check_failed(&mut child);
    let shown = resume_json(directory.path(), &id, &db, &agent.url()).await;
    assert_eq!(shown["status"], "completed");
    assert_eq!(agent.calls("first"), 1);
    assert_eq!(agent.calls("sleep"), 2);
    assert_eq!(agent.calls("last"), 1);
    assert_eq!(
        attempt_statuses(&store, &id, "slow"),
        ["interrupted", "completed"]
    );
    assert_eq!(store.live_lease(&id).unwrap(), None, "released at the end");
}

/// Starts the service on `store` (so its start-up resume runs), lets it run
/// for 300 ms, then stops it gracefully.
async fn serve_briefly(store: &RunStore, agent: &LegacyAgent) {
    let state = pallet::api::AppState::new(
        std::sync::Arc::new(store.clone()),
        engine(agent),
        pallet::api::ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(pallet::api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    service.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_executor_in_the_same_process_is_refused_as_a_conflict() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    let steps = "  - {id: slow, skill: sleep, inputs: {ms: 800}}\n  - {id: after, skill: last}\n";
    let run = runner.start(
        workflow(steps),
        "durable-test",
        json!({}),
        CancellationToken::new(),
    );
    let second = async {
        while agent.calls("sleep") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let id = store.list(None, 1).unwrap()[0].id.clone();
        let lease = store.live_lease(&id).unwrap().expect("a live lease");
        assert_eq!(lease.owner, *pallet::store::lease::Owner::current());
        (
            id.clone(),
            runner.resume(&id, CancellationToken::new()).await,
        )
    };
    let (outcome, (id, refused)) = tokio::join!(run, second);
    let refused = refused.unwrap_err();
    assert!(refused.is_conflict(), "{refused}");
    assert!(
        matches!(&refused, RunError::Leased { id: leased, pid, .. } if *leased == id && *pid == std::process::id()),
        "{refused:?}"
    );
    let outcome = outcome.unwrap();
    assert_eq!(outcome.run.status, RunState::Completed);
    assert_eq!((agent.calls("sleep"), agent.calls("last")), (1, 1));
    assert_eq!(store.live_lease(&id).unwrap(), None, "released at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_whose_lease_was_taken_over_stops_and_records_nothing() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let store = RunStore::open(&db).unwrap();
    let engine = engine(&agent);
    let runner = starter(&store, &engine);
    // Longer than one renewal period, so the renewal finds the lease gone.
    let ms = pallet::runs::lease::RENEW_EVERY.as_millis() * 3;
    let steps = format!(
        "  - {{id: slow, skill: sleep, inputs: {{ms: {ms}}}}}\n  - {{id: after, skill: last}}\n"
    );
    let started = Instant::now();
    let run = runner.start(
        workflow(&steps),
        "durable-test",
        json!({}),
        CancellationToken::new(),
    );
    let take_over = async {
        while agent.calls("sleep") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another process took the lease (as after an expiry): the token is not ours.
        let other = rusqlite::Connection::open(&db).unwrap();
        other
            .execute("UPDATE run_leases SET token = 'taken-over'", [])
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(run, take_over);
    let error = outcome.unwrap_err();
    assert!(matches!(error, RunError::LeaseLost { .. }), "{error}");
    assert!(started.elapsed() < pallet::runs::lease::RENEW_EVERY * 2);
    let id = store.list(None, 1).unwrap()[0].id.clone();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    assert_eq!(agent.calls("last"), 0, "no step starts after the takeover");
    let other: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT token FROM run_leases", [], |row| row.get(0))
        .unwrap();
    assert_eq!(other, "taken-over", "the new owner's lease is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pallet_run_writes_its_outputs_when_the_end_of_the_run_cannot_be_recorded() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let store = RunStore::open(&db).unwrap();
    // A real SQLite failure at the run's last write, and only there.
    let connection = rusqlite::Connection::open(&db).unwrap();
    connection
        .execute_batch(
            "CREATE TRIGGER refuse_the_end BEFORE INSERT ON transitions WHEN NEW.to_status = 'completed' BEGIN SELECT RAISE(ABORT, 'no space left (test)'); END;",
        )
        .unwrap();
    let file = directory.path().join("end.yaml");
    std::fs::write(
        &file,
        workflow_text("  - {id: one, skill: first, inputs: {n: 1}}\n  - {id: two, skill: last, inputs: {n: 2}}\n"),
    )
    .unwrap();
    let out = directory.path().join("out");
    let run = pallet_output(
        vec![
            "run".into(),
            "--file".into(),
            file.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ],
        &db,
        &agent.url(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "ran, but the run database could not record its end (the run stays resumable)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("no space left (test)"), "{stderr}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "completed");
    assert_eq!(record["output"], json!({"n": 2}));
    assert!(out.join("steps/two.json").is_file());
    let id = record["run_id"].as_str().unwrap().to_string();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    assert_eq!(
        store.live_lease(&id).unwrap(),
        None,
        "released despite the error"
    );

    // Once the database takes writes again, resuming records the end without re-running a step.
    connection
        .execute_batch("DROP TRIGGER refuse_the_end")
        .unwrap();
    let resumed = pallet_output(vec!["resume".into(), id.clone()], &db, &agent.url()).await;
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(store.get(&id).unwrap().status, RunState::Completed);
    assert_eq!((agent.calls("first"), agent.calls("last")), (1, 1));
}

// ---------------------------------------------------------------------------
// Approvals inside child runs (`execute_workflow`): the child is journaled into
// the parent's run under `PARENT_STEP/CHILD_STEP` ids and its approval pauses
// the whole run.
// ---------------------------------------------------------------------------

const CHILD_SKILLS: [&str; 6] = ["prepare", "outline", "draft", "publish", "done", "finish"];

/// The child workflow: an approval between a draft and its publication.
fn child_text(on_reject: &str) -> String {
    format!(
        "metadata: {{id: child-flow, name: Child, version: 1.0.0}}
steps:
  - {{id: outline, skill: outline, inputs: {{text: '{{{{ workflow.input.text }}}}'}}}}
  - {{id: draft, skill: draft, inputs: {{text: '{{{{ steps.outline.outputs.text }}}}'}}}}
  - id: review
    step_type: approval
    title: Publish the child's draft?
    required: [ticket]
{on_reject}  - id: publish
    skill: publish
    inputs:
      approved: '{{{{ steps.review.outputs.approved }}}}'
      ticket: '{{{{ steps.review.outputs.fields.ticket }}}}'
      draft: '{{{{ steps.draft.outputs.text }}}}'
"
    )
}

/// The parent: a step before the child run and one that reads the child's output.
const PARENT_FLOW: &str = "  - {id: prepare, skill: prepare, inputs: {text: '{{ workflow.input.text }}'}}
  - id: build
    skill: execute_workflow
    inputs: {workflow_id: child-flow, input: {text: '{{ steps.prepare.outputs.text }}'}}
  - {id: finish, skill: finish, inputs: {ticket: '{{ steps.build.outputs.ticket }}', approved: '{{ steps.build.outputs.approved }}'}}
";

/// An engine whose `execute_workflow` finds the child in `dir`.
fn child_engine(url: String, dir: &Path) -> Engine {
    Engine::builder(
        Arc::new(StaticDiscovery::new(vec![url])),
        Arc::new(pallet::workflow::DirectorySource::new(dir)),
    )
    .build()
}

/// `(attempt, status)` of each attempt of `step`, in order.
fn attempts_of(store: &RunStore, id: &str, step: &str) -> Vec<(u32, String)> {
    store
        .attempts(id)
        .unwrap()
        .into_iter()
        .filter(|attempt| attempt.step_id == step)
        .map(|attempt| (attempt.attempt, attempt.status.to_string()))
        .collect()
}

fn attempts(expected: &[(u32, &str)]) -> Vec<(u32, String)> {
    expected
        .iter()
        .map(|(attempt, status)| (*attempt, status.to_string()))
        .collect()
}

/// Asserts the `(attempt, status)` of each attempt of `step`, in order.
#[track_caller]
fn assert_attempts(store: &RunStore, id: &str, step: &str, expected: &[(u32, &str)]) {
    assert_eq!(attempts_of(store, id, step), attempts(expected));
}

#[tokio::test]
async fn a_child_approval_pauses_the_run_and_approve_continues_the_child_then_the_parent() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("child.yaml"), child_text("")).unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let outcome = runner
        .start(
            workflow(PARENT_FLOW),
            "durable-test",
            json!({"text": "hello"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = outcome.run.id.clone();
    assert_eq!(
        outcome.run.status,
        RunState::WaitingApproval,
        "{:?}",
        outcome.run.error
    );
    assert_eq!((agent.calls("prepare"), agent.calls("draft")), (1, 1));
    assert_eq!(agent.calls("publish"), 0);
    assert_eq!(agent.calls("finish"), 0);
    assert_attempts(&store, &id, "build/draft", &[(1, "completed")]);
    assert_attempts(&store, &id, "build/review", &[(1, "waiting")]);
    assert_attempts(&store, &id, "build", &[(1, "waiting")]);
    let view = runner.view(&id).unwrap();
    let approval = view.approval.as_ref().expect("a pending approval");
    assert_eq!(approval.step, "build/review");
    assert_eq!(
        approval.title.as_deref(),
        Some("Publish the child's draft?")
    );
    assert_eq!(approval.required, ["ticket"]);

    let missing = runner
        .approve(&id, decision("ada", None, &[]), CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "the approval of step `build/review` lacks the required field(s) ticket"
    );
    let outcome = runner
        .approve(
            &id,
            decision("ada", Some("go"), &[("ticket", "OPS-7")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.run.status,
        RunState::Completed,
        "{:?}",
        outcome.run.error
    );
    // The child's later step read the decision, and its output reached the parent.
    assert_eq!(
        outcome.run.result.unwrap(),
        json!({"ticket": "OPS-7", "approved": true})
    );
    assert_eq!(
        first_attempt_inputs(&store, &id, "build/publish"),
        json!({"approved": true, "ticket": "OPS-7", "draft": "hello"})
    );
    assert_eq!(
        (
            agent.calls("prepare"),
            agent.calls("outline"),
            agent.calls("draft")
        ),
        (1, 1, 1),
        "completed steps of the parent and the child are not run again"
    );
    assert_eq!((agent.calls("publish"), agent.calls("finish")), (1, 1));
    assert_attempts(&store, &id, "build", &[(1, "waiting"), (2, "completed")]);
    let history = store.history(&id).unwrap();
    assert_eq!(history[3].trigger, "human_approved");
    assert_eq!(history[3].metadata["step"], "build/review");
}

/// The inputs recorded for the first attempt of `step`.
fn first_attempt_inputs(store: &RunStore, id: &str, step: &str) -> Value {
    store
        .attempts(id)
        .unwrap()
        .into_iter()
        .find(|attempt| attempt.step_id == step)
        .unwrap()
        .inputs
        .unwrap()
}

#[tokio::test]
async fn rejecting_a_child_approval_fails_the_run_naming_the_child_step() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("child.yaml"), child_text("")).unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let started = runner
        .start(
            workflow(PARENT_FLOW),
            "durable-test",
            json!({"text": "hello"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let failed = runner
        .reject(
            &started.run.id,
            decision("bob", Some("not yet"), &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(failed.run.status, RunState::Failed);
    assert_eq!(
        failed.run.error.as_deref(),
        Some("approval step `build/review` was rejected by bob: not yet")
    );
    assert_eq!((agent.calls("publish"), agent.calls("finish")), (0, 0));
    assert_eq!(
        triggers(&store, &failed.run.id).last().unwrap(),
        "human_rejected:failed"
    );
}

#[tokio::test]
async fn rejecting_a_child_approval_with_rework_runs_the_child_again_from_retry_from() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("child.yaml"),
        child_text("    on_reject: {retry_from: draft}\n"),
    )
    .unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let started = runner
        .start(
            workflow(PARENT_FLOW),
            "durable-test",
            json!({"text": "hello"}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = started.run.id;
    let reworked = runner
        .reject(
            &id,
            decision("bob", Some("redo"), &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(reworked.run.status, RunState::WaitingApproval);
    assert_eq!(
        (
            agent.calls("prepare"),
            agent.calls("outline"),
            agent.calls("draft")
        ),
        (1, 1, 2),
        "only the child steps from retry_from run again"
    );
    assert_eq!(
        attempts_of(&store, &id, "build/draft"),
        attempts(&[(1, "superseded"), (2, "completed")])
    );
    assert_eq!(
        attempts_of(&store, &id, "build/outline"),
        attempts(&[(1, "completed")])
    );
    assert_eq!(
        attempts_of(&store, &id, "build/review"),
        attempts(&[(1, "superseded"), (2, "waiting")])
    );
    let history = store.history(&id).unwrap();
    assert_eq!(history[3].metadata["retry_from"], "build/draft");

    let done = runner
        .approve(
            &id,
            decision("bob", None, &[("ticket", "T-2")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.run.status, RunState::Completed, "{:?}", done.run.error);
    assert_eq!(done.run.result.unwrap()["ticket"], "T-2");
    assert_eq!(agent.calls("draft"), 2);
    assert_eq!((agent.calls("publish"), agent.calls("finish")), (1, 1));
}

#[tokio::test]
async fn child_steps_send_stable_keys_under_their_qualified_ids() {
    let (url, keys) = key_recording_agent().await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("child.yaml"),
        "metadata: {id: child-flow, name: Child, version: 1.0.0}\nsteps:\n  - {id: draft, skill: first}\n  - {id: gate, step_type: approval, title: Go?, on_reject: {retry_from: draft}}\n  - {id: publish, skill: last}\n",
    )
    .unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(url, directory.path());
    let runner = starter(&store, &engine);
    let steps = "  - {id: draft, skill: first}\n  - {id: build, skill: execute_workflow, inputs: {workflow_id: child-flow}}\n";
    let started = runner
        .start(
            workflow(steps),
            "durable-test",
            json!({}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = started.run.id;
    runner
        .reject(&id, decision("bob", None, &[]), CancellationToken::new())
        .await
        .unwrap();
    let done = runner
        .approve(&id, decision("bob", None, &[]), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.run.status, RunState::Completed, "{:?}", done.run.error);
    assert_eq!(
        *keys.lock().unwrap(),
        [
            format!("{id}:draft:1"),
            format!("{id}:build/draft:1"),
            format!("{id}:build/draft:2"),
            format!("{id}:build/publish:1")
        ],
        "the child's draft has its own key, and its rework a new one"
    );
}

#[tokio::test]
async fn an_expired_child_approval_applies_its_timeout_decision() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let child = |on_timeout: &str| {
        format!(
            "metadata: {{id: child-{on_timeout}, name: Child, version: 1.0.0}}\nsteps:\n  - {{id: gate, step_type: approval, title: Go?, timeout: 0.2, on_timeout: {on_timeout}}}\n  - {{id: publish, skill: publish, inputs: {{approved: '{{{{ steps.gate.outputs.approved }}}}', actor: '{{{{ steps.gate.outputs.actor }}}}'}}}}\n"
        )
    };
    for on_timeout in ["approve", "reject"] {
        std::fs::write(
            directory.path().join(format!("{on_timeout}.yaml")),
            child(on_timeout),
        )
        .unwrap();
    }
    let clock = ManualClock::new();
    let store = RunStore::open(&directory.path().join("runs.db"))
        .unwrap()
        .with_clock(clock.clone());
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let parent = |on_timeout: &str| {
        workflow(&format!(
            "  - {{id: build, skill: execute_workflow, inputs: {{workflow_id: child-{on_timeout}}}}}\n"
        ))
    };
    let mut ids = Vec::new();
    for on_timeout in ["approve", "reject"] {
        let started = runner
            .start(
                parent(on_timeout),
                "durable-test",
                json!({}),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(started.run.status, RunState::WaitingApproval);
        ids.push(started.run.id);
    }
    let early = runner
        .resume(&ids[0], CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        early.to_string(),
        format!("run `{}` waits for approval at step `build/gate`", ids[0])
    );
    clock.advance(Duration::from_millis(300));

    let resumed = runner
        .resume(&ids[0], CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        resumed.run.status,
        RunState::Completed,
        "{:?}",
        resumed.run.error
    );
    assert_eq!(
        resumed.run.result.unwrap(),
        json!({"approved": true, "actor": "timeout"})
    );
    // Looking at a run past a rejecting deadline fails it.
    let view = runner.view(&ids[1]).unwrap();
    assert_eq!(view.run.status, RunState::Failed);
    assert_eq!(
        view.run.error.as_deref(),
        Some("approval step `build/gate` was rejected by timeout: no decision within 200ms")
    );
    assert_eq!(agent.calls("publish"), 1);
}

/// A child whose slow step follows its approval, for a kill after approving.
const SLOW_CHILD_FLOW: &str = "metadata: {id: child-flow, name: Child, version: 1.0.0}
steps:
  - {id: draft, skill: draft, inputs: {text: '{{ workflow.input.text }}'}}
  - {id: review, step_type: approval, title: Go on?}
  - {id: publish, skill: publish, inputs: {approved: '{{ steps.review.outputs.approved }}'}}
  - {id: slow, skill: sleep, inputs: {ms: 1500}}
  - {id: done, skill: done, inputs: {draft: '{{ steps.draft.outputs.text }}', slow: '{{ steps.slow.outputs.ms }}'}}
";

/// The parent of [`SLOW_CHILD_FLOW`]: it reads the child's `draft`.
const SLOW_PARENT_FLOW: &str =
    "  - {id: prepare, skill: prepare, inputs: {text: '{{ workflow.input.text }}'}}
  - id: build
    skill: execute_workflow
    inputs: {workflow_id: child-flow, input: {text: '{{ steps.prepare.outputs.text }}'}}
  - {id: finish, skill: finish, inputs: {draft: '{{ steps.build.outputs.draft }}'}}
";

/// `pallet ARGS --db DB --agent URL --workflows-dir DIR`, HOME in `root`.
fn pallet_with_workflows(
    root: &Path,
    db: &Path,
    agent: &str,
    workflows: &Path,
    args: &[&str],
) -> Command {
    let mut command = pallet_in(root);
    command
        .args(args)
        .arg("--db")
        .arg(db)
        .args(["--agent", agent, "--workflows-dir"])
        .arg(workflows)
        .env_remove("PALLET_AGENTS")
        .env_remove("PALLET_WORKFLOWS_DIR");
    command
}

/// `pallet runs show ARGS --db DB` (HOME in `root`), output collected.
fn runs_show(root: &Path, db: &Path, args: &[&str]) -> Output {
    pallet_in(root)
        .args(["runs", "show"])
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap()
}

/// How many calls `agent` received for each of `skills`.
fn calls_of(agent: &LegacyAgent, skills: &[&str]) -> Vec<u32> {
    skills.iter().map(|skill| agent.calls(skill)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_a_child_approval_resumes_without_running_completed_steps_again() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let workflows = directory.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    std::fs::write(workflows.join("child.yaml"), SLOW_CHILD_FLOW).unwrap();
    let file = directory.path().join("parent.yaml");
    std::fs::write(&file, workflow_text(SLOW_PARENT_FLOW)).unwrap();
    let root = directory.path().to_path_buf();
    let url = agent.url();
    let pallet = |args: &[&str]| pallet_with_workflows(&root, &db, &url, &workflows, args);
    let file_arg = file.display().to_string();
    let out = directory.path().join("out").display().to_string();
    let run = output_off_runtime(pallet(&[
        "run", "--json", "--file", &file_arg, "--out", &out, "--input", "text=hi",
    ]))
    .await;
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(record["status"], "waiting_approval");
    let id = record["run_id"].as_str().unwrap().to_string();

    let shown = runs_show(&root, &db, &[&id, "--json"]);
    let view: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(view["status"], "waiting_approval");
    assert_eq!(view["approval"]["step"], "build/review");
    assert_eq!(view["approval"]["title"], "Go on?");
    let text = runs_show(&root, &db, &[&id]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("for approval at step `build/review`: Go on?"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Approve in a process that is killed once `build/publish` completed and
    // `build/slow` is in flight.
    let mut approving = Spawned::spawn(
        pallet(&["approve", &id, "--actor", "ada"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let in_flight = [("build/publish", "completed"), ("build/slow", "running")];
    wait_for_statuses(&db, "step `build/slow` in flight", &in_flight).await;
    kill_and_check_failed(&mut approving);
    let store = RunStore::open(&db).unwrap();
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);

    let shown = succeeded_json(pallet(&["resume", &id, "--json"])).await;
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["result"], json!({"draft": "hi"}));
    let skills = ["prepare", "draft", "publish", "sleep", "done", "finish"];
    assert_eq!(
        calls_of(&agent, &skills),
        [1, 1, 1, 2, 1, 1],
        "only the interrupted child step runs again"
    );
    assert_attempts(
        &store,
        &id,
        "build/slow",
        &[(1, "interrupted"), (2, "completed")],
    );
    assert_attempts(&store, &id, "build/review", &[(1, "completed")]);
}

#[tokio::test]
async fn an_approval_in_a_grandchild_pauses_and_continues_the_whole_run() {
    let agent = LegacyAgent::start("helper", &CHILD_SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("child.yaml"), child_text("")).unwrap();
    std::fs::write(
        directory.path().join("middle.yaml"),
        "metadata: {id: middle-flow, name: Middle, version: 1.0.0}\nsteps:\n  - {id: inner, skill: execute_workflow, inputs: {workflow_id: child-flow, input: {text: '{{ workflow.input.text }}'}}}\n  - {id: done, skill: done, inputs: {ticket: '{{ steps.inner.outputs.ticket }}'}}\n",
    )
    .unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let steps = "  - {id: outer, skill: execute_workflow, inputs: {workflow_id: middle-flow, input: {text: deep}}}\n";
    let started = runner
        .start(
            workflow(steps),
            "durable-test",
            json!({}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let id = started.run.id;
    assert_eq!(started.run.status, RunState::WaitingApproval);
    let view = runner.view(&id).unwrap();
    assert_eq!(view.approval.unwrap().step, "outer/inner/review");
    let done = runner
        .approve(
            &id,
            decision("ada", None, &[("ticket", "T-9")]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.run.status, RunState::Completed, "{:?}", done.run.error);
    assert_eq!(done.run.result.unwrap(), json!({"ticket": "T-9"}));
    assert_eq!((agent.calls("outline"), agent.calls("draft")), (1, 1));
    assert_eq!((agent.calls("publish"), agent.calls("done")), (1, 1));
    assert_eq!(
        attempts_of(&store, &id, "outer/inner/draft"),
        attempts(&[(1, "completed")])
    );
}

/// An approval in a child run on one parallel branch pauses the run without
/// cancelling the sibling branch: its work completes once and is not repeated
/// after the decision.
#[tokio::test]
async fn an_approval_in_a_parallel_branch_lets_its_siblings_finish() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("gated.yaml"),
        "metadata: {id: gated, name: Gated, version: 1.0.0}\nsteps:\n  - {id: gate, step_type: approval, title: Go on?}\n",
    )
    .unwrap();
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let engine = child_engine(agent.url(), directory.path());
    let runner = starter(&store, &engine);
    let flow = "  - id: group
    step_type: parallel
    branches:
      steps:
        - {id: gated, skill: execute_workflow, inputs: {workflow_id: gated, input: {}}}
        - {id: slow, skill: sleep, inputs: {ms: 300}}
  - {id: after, skill: last, inputs: {approved: '{{ steps.gated.outputs.approved }}'}}
";
    let outcome = runner
        .start(
            workflow(flow),
            "durable-test",
            json!({}),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.run.status, RunState::WaitingApproval);
    let slow: Vec<String> = store
        .attempts(&outcome.run.id)
        .unwrap()
        .into_iter()
        .filter(|attempt| attempt.step_id == "slow")
        .map(|attempt| attempt.status.to_string())
        .collect();
    assert_eq!(slow, ["completed"], "the sibling ran to its end once");
    let approved = runner
        .approve(
            &outcome.run.id,
            decision("ada", None, &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        approved.run.status,
        RunState::Completed,
        "{:?}",
        approved.run.error
    );
    assert_eq!(
        agent.calls("sleep"),
        1,
        "the completed sibling is not run again"
    );
    assert_eq!(agent.calls("last"), 1);
}

/// `pallet ARGS --db DB --agent URL` as a child, with its homes in `home`.
/// A `pallet` process whose group is killed when the guard drops, also when
/// the test fails partway.
fn spawn_pallet(args: &[&str], db: &Path, agent: &str, home: &Path) -> Spawned {
    Spawned::spawn(
        crate::support::pallet::pallet_in(home)
            .args(args)
            .arg("--db")
            .arg(db)
            .args(["--agent", agent])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Waits until step `slow` of the run in `db` has `running` attempts, then kills `child`.
async fn kill_when_slow_runs(mut child: Spawned, db: &Path, running: usize) -> String {
    let db = db.to_path_buf();
    let id = tokio::task::spawn_blocking(move || {
        wait_for(&db, "step `slow` in flight", |store, id| {
            let statuses = attempt_statuses(store, id, "slow");
            statuses.len() == running && statuses.last().map(String::as_str) == Some("running")
        })
    })
    .await
    .unwrap();
    child.signal(libc::SIGKILL);
    assert!(!child.wait().unwrap().success());
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_executor_crashed_twice_is_not_resumed_at_start_up() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let home = directory.path();
    let db = home.join("runs.db");
    let file = home.join("crash.yaml");
    std::fs::write(
        &file,
        workflow_text(
            "  - {id: slow, skill: sleep, inputs: {ms: 2000}}\n  - {id: after, skill: last}\n",
        ),
    )
    .unwrap();
    let out = home.join("out");
    let (file, out) = (file.to_str().unwrap(), out.to_str().unwrap());
    // Killed while executing, twice: by `pallet run`, then by `pallet resume`.
    let run = spawn_pallet(
        &["run", "--quiet", "--file", file, "--out", out],
        &db,
        &agent.url(),
        home,
    );
    let id = kill_when_slow_runs(run, &db, 1).await;
    let resume = spawn_pallet(&["resume", &id], &db, &agent.url(), home);
    kill_when_slow_runs(resume, &db, 2).await;
    let store = RunStore::open(&db).unwrap();
    assert_eq!(store.executor_starts(&id).unwrap(), 2);

    let state = pallet::api::AppState::new(
        std::sync::Arc::new(store.clone()),
        engine(&agent),
        pallet::api::ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(pallet::api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    service.await.unwrap().unwrap();
    assert_eq!(
        agent.calls("sleep"),
        2,
        "start-up resume did not run it again"
    );
    assert_eq!(
        attempt_statuses(&store, &id, "slow"),
        ["interrupted", "running"]
    );

    let shown = crate::support::pallet::pallet_in(home)
        .args(["runs", "show", &id, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(
        stdout.contains(&format!(
            "the executor crashed twice while running this run; resume it by hand with `pallet resume {id}` after fixing the cause"
        )),
        "{stdout}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    // By hand it still runs, and a normal end clears the count.
    let resumed = pallet_output(
        vec!["resume".into(), id.clone(), "--json".into()],
        &db,
        &agent.url(),
    )
    .await;
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let shown: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(store.executor_starts(&id).unwrap(), 0);
}

/// A `pallet` child process, killed when dropped: a failing test leaves none behind.
struct PalletProcess(Spawned);

impl PalletProcess {
    /// Stops it as a service manager does (SIGTERM) and waits for its clean exit.
    fn terminate(mut self) {
        self.0.signal(libc::SIGTERM);
        let status = self.0.wait().unwrap();
        assert!(status.success(), "pallet serve exited with {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_stopped_gracefully_twice_still_resumes_its_run_at_start_up() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let home = directory.path();
    let db = home.join("runs.db");
    let store = RunStore::open(&db).unwrap();
    let engine = engine(&agent);
    let slow = workflow("  - {id: slow, skill: sleep, inputs: {ms: 60000}}\n");
    let run = starter(&store, &engine)
        .create(&slow, "durable-test.yaml", json!({}))
        .unwrap();
    // Each start resumes the run; each SIGTERM leaves it resumable once the
    // grace period is over. The third start must not take it for a crash loop.
    for start in 1..=3 {
        let service = PalletProcess(spawn_pallet(
            &["serve", "--addr", "127.0.0.1:0", "--grace", "100ms"],
            &db,
            &agent.url(),
            home,
        ));
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            wait_for(
                &db,
                &format!("start {start} to run step `slow`"),
                |store, id| {
                    let statuses = attempt_statuses(store, id, "slow");
                    statuses.len() == start
                        && statuses.last().map(String::as_str) == Some("running")
                },
            )
        })
        .await
        .unwrap();
        tokio::task::spawn_blocking(move || service.terminate())
            .await
            .unwrap();
    }
    assert_eq!(agent.calls("sleep"), 3);
    assert_eq!(store.executor_starts(&run.id).unwrap(), 0);
    assert_eq!(store.get(&run.id).unwrap().status, RunState::InProgress);
}

/// A JSON column the database holds in a form that does not parse is an
/// error naming the run and the column, not a `null`.
#[test]
fn a_corrupt_input_column_is_an_error_naming_the_run_and_column() {
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let store = RunStore::open(&db).unwrap();
    let run = store
        .create_run(&NewRun {
            workflow_ref: "w".to_string(),
            workflow_id: "w".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: "w.yaml".to_string(),
            workflow_yaml: "steps: []".to_string(),
            input: json!({"requirements": "x"}),
            actor: "test".to_string(),
        })
        .unwrap();
    drop(store);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE runs SET input = '{not json' WHERE id = ?1",
            [&run.id],
        )
        .unwrap();
    for arguments in [
        &["runs", "show", &run.id][..],
        &["runs", "show", &run.id, "--json"],
        &["runs"],
    ] {
        let output = pallet_in(directory.path())
            .args(arguments)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{arguments:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "run `{}` holds invalid data in column `input`",
                run.id
            )),
            "{arguments:?}: {stderr}"
        );
    }
}

/// When a run ends (failed by its workflow timeout while a step is in
/// flight, by a branch failing beside a slow one, or cancelled after its
/// process was killed), no attempt of it stays `running`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_run_keeps_no_attempt_running() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let file = directory.path().join("timeout.yaml");
    std::fs::write(
        &file,
        "metadata: {id: timeout, name: Timeout, version: 1.0.0}\ntimeout: 1s\nsteps:\n  - id: one\n    skill: first\n  - id: slow\n    skill: sleep\n    inputs: {ms: 5000}\n",
    )
    .unwrap();
    let out = directory.path().join("out").display().to_string();
    let run = pallet_output(
        vec![
            "run".into(),
            "--json".into(),
            "--file".into(),
            file.display().to_string(),
            "--out".into(),
            out,
        ],
        &db,
        &agent.url(),
    )
    .await;
    let record: Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&run.stderr)));
    assert_eq!(record["status"], "failed", "{record}");
    let store = RunStore::open(&db).unwrap();
    let id = record["run_id"].as_str().unwrap();
    assert_eq!(store.get(id).unwrap().status, RunState::Failed);
    assert_eq!(attempt_statuses(&store, id, "one"), ["completed"]);
    assert_eq!(attempt_statuses(&store, id, "slow"), ["cancelled"]);

    std::fs::write(
        &file,
        "metadata: {id: branches, name: Branches, version: 1.0.0}\nsteps:\n  - id: both\n    step_type: parallel\n    branches:\n      steps:\n        - {id: boom, skill: fail}\n        - {id: slow, skill: sleep, inputs: {ms: 5000}}\n",
    )
    .unwrap();
    let run = pallet_output(
        vec![
            "run".into(),
            "--json".into(),
            "--file".into(),
            file.display().to_string(),
        ],
        &db,
        &agent.url(),
    )
    .await;
    let record: Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&run.stderr)));
    assert_eq!(record["status"], "failed", "{record}");
    let id = record["run_id"].as_str().unwrap();
    let running: Vec<_> = store
        .attempts(id)
        .unwrap()
        .into_iter()
        .filter(|attempt| attempt.status == "running")
        .map(|attempt| attempt.step_id)
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");

    std::fs::write(
        &file,
        "metadata: {id: killed, name: Killed, version: 1.0.0}\nsteps:\n  - {id: slow, skill: sleep, inputs: {ms: 30000}}\n",
    )
    .unwrap();
    let mut child = Spawned::spawn(
        pallet_in(directory.path())
            .args(["run", "--quiet", "--file"])
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .args(["--agent", &agent.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let db_for_wait = db.clone();
    let id = tokio::task::spawn_blocking(move || {
        wait_for(&db_for_wait, "step `slow` in flight", |store, id| {
            store.get(id).is_ok_and(|run| run.workflow_id == "killed")
                && attempt_statuses(store, id, "slow") == ["running"]
        })
    })
    .await
    .unwrap();
    child.signal(libc::SIGKILL);
    let _ = child.wait();
    let cancelled = pallet_in(directory.path())
        .args(["cancel", &id, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    assert_eq!(attempt_statuses(&store, &id, "slow"), ["cancelled"]);
}

/// `pallet` as a user who cannot write `database` or its directory: as root
/// (permissions do not apply to root) a copy of the binary run as `nobody`.
fn pallet_as_reader(root: &Path) -> std::process::Command {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let home = root.join("reader");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    // SAFETY: geteuid only reads the process's user id.
    if unsafe { libc::geteuid() } != 0 {
        return crate::support::pallet::command_in(crate::support::pallet::PALLET, &home);
    }
    let binary = root.join("bin/pallet");
    if !binary.exists() {
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        std::fs::copy(crate::support::pallet::PALLET, &binary).unwrap();
    }
    for (path, mode) in [(&binary, 0o755), (&root.join("bin"), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut command = crate::support::pallet::command_in(&binary, &home);
    command.uid(65534).gid(65534);
    command
}

/// `command`'s output. A binary just copied can be briefly busy (ETXTBSY):
/// a process another test forks at that moment holds the copy's write
/// descriptor until it execs, so that one error is retried.
fn output_of(command: &mut std::process::Command) -> std::process::Output {
    for _ in 0..100 {
        match command.output() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
    panic!("the copied pallet binary stayed busy (ETXTBSY) for 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_user_cannot_write_can_be_read() {
    use std::os::unix::fs::PermissionsExt;
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let db = shared.join("runs.db");
    let file = root.join("flow.yaml");
    std::fs::write(&file, workflow_text("  - {id: one, skill: first}\n")).unwrap();
    let run = tokio::task::spawn_blocking({
        let (root, db, file, url) = (root.clone(), db.clone(), file.clone(), agent.url());
        move || {
            pallet_in(&root)
                .args(["run", "--quiet", "--json", "--file"])
                .arg(&file)
                .arg("--db")
                .arg(&db)
                .args(["--agent", &url, "--out"])
                .arg(root.join("out"))
                .env_remove("PALLET_AGENTS")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let id = serde_json::from_slice::<Value>(&run.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A shared or backed-up database: read-only, in a directory the reader cannot write.
    for (path, mode) in [(&db, 0o444), (&shared, 0o755), (&root, 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let commands: [&[&str]; 3] = [
        &["runs", "--json"],
        &["runs", "show", &id, "--json"],
        &["runs", "history", &id, "--json"],
    ];
    for arguments in commands {
        let output = output_of(pallet_as_reader(&root).args(arguments).arg("--db").arg(&db));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{arguments:?}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&id) || stdout.contains("created"),
            "{arguments:?}: {stdout}"
        );
    }
    // A file the reader cannot even read: a clear error saying what to do.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    let output = output_of(pallet_as_reader(&root).args(["runs", "--db"]).arg(&db));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the run database"), "{stderr}");
    assert!(stderr.contains("hint: check that you may read"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_skip_is_journaled_and_shown() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("runs.db");
    let workflows = directory.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    let file = directory.path().join("guarded.yaml");
    let steps = "  - {id: maybe, if: '{{ workflow.input.go }}', skill: echo}\n  - {id: after, skill: echo, inputs: {x: '{{#if steps.maybe}}ran{{else}}skipped{{/if}}'}}\n";
    std::fs::write(&file, workflow_text(steps)).unwrap();
    let root = directory.path().to_path_buf();
    let url = agent.url();
    let file_arg = file.display().to_string();
    let out = directory.path().join("out").display().to_string();
    let run = output_off_runtime(pallet_with_workflows(
        &root,
        &db,
        &url,
        &workflows,
        &[
            "run", "--json", "--file", &file_arg, "--out", &out, "--input", "go=false",
        ],
    ))
    .await;
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record: Value = serde_json::from_slice(&run.stdout).unwrap();
    let id = record["run_id"].as_str().unwrap().to_string();
    assert_eq!(agent.calls("echo"), 1);
    let shown = runs_show(&root, &db, &[&id, "--json"]);
    let text = String::from_utf8_lossy(&shown.stdout).to_string();
    let view: Value = serde_json::from_slice(&shown.stdout).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(view["status"], "completed", "{view}");
    assert!(text.contains("\"skipped\""), "{text}");
    assert!(text.contains("\"if\""), "{text}");
}
