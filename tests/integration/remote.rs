//! The durable-run commands with `--server URL`, black-box on the pallet
//! binary against the service on a free loopback port: the same output as
//! against the database, errors with the service's status and detail, the
//! token, a service that is down. And approve/resume finding agents as `run`
//! does: through the registry's agent cards (a real docker-registry).

use std::process::Output;

use pallet::api::ServiceOptions;
use pallet::store::{NewRun, RunStore};
use serde_json::{Value, json};

use crate::api::{SKILLS, Service, start};
use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::registry::{TestRegistry, push_like_original};

/// A scratch directory pallet runs in, with its own home and data
/// directories and nothing from the environment that would pick a server,
/// token, database, registry or agents.
struct Scratch {
    context: TestContext,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            context: TestContext::new(),
        }
    }

    /// `pallet ARGS --server SERVER`, nothing else from the environment.
    async fn against(&self, server: &str, arguments: &[&str]) -> Output {
        let mut all = arguments.to_vec();
        all.extend(["--server", server]);
        self.pallet(&all, &[]).await
    }

    /// Run pallet off the async runtime (the service answers on it).
    async fn pallet(&self, arguments: &[impl AsRef<str>], environment: &[(&str, &str)]) -> Output {
        let mut command = self.context.pallet();
        command.args(arguments.iter().map(AsRef::as_ref));
        for (key, value) in environment {
            command.env(key, value);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, with the output in the message when it is not `code`.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// Fails unless the output's stderr contains `expected`.
fn assert_stderr_contains(output: &Output, expected: &str) {
    assert!(stderr(output).contains(expected), "{}", stderr(output));
}

fn json_of(output: &Output) -> Value {
    assert_exit(output, 0);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A run's JSON without what changes with the time it is looked at.
fn untimed(mut view: Value) -> Value {
    if let Some(object) = view.as_object_mut() {
        object.remove("time_in_state_seconds");
        object.remove("total_duration_seconds");
    }
    view
}

/// `arguments`, then `mode`, then `--json` if asked.
fn joined(arguments: &[&str], mode: [&str; 2], json: bool) -> Vec<String> {
    let mut all: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
    all.extend(mode.map(str::to_string));
    if json {
        all.push("--json".to_string());
    }
    all
}

async fn waiting_run(service: &Service) -> String {
    let body = json!({"workflow": "approval-test", "input": {"text": "draft"}});
    let (_, created) = service.post("/workflows", body).await;
    let id = created["id"].as_str().unwrap().to_string();
    service.wait_for(&id, "waiting_approval").await;
    id
}

/// The same JSON and the same lines as the local commands on the service's database.
async fn the_views_match_the_local_ones(scratch: &Scratch, server: &str, database: &str, id: &str) {
    for arguments in [
        vec!["runs", "show", id],
        vec!["runs", "--status", "waiting_approval"],
        vec!["runs", "history", id],
    ] {
        let with = |mode: [&str; 2], json: bool| joined(&arguments, mode, json);
        let remote = json_of(&scratch.pallet(&with(["--server", server], true), &[]).await);
        let local = json_of(&scratch.pallet(&with(["--db", database], true), &[]).await);
        assert_eq!(untimed(remote.clone()), untimed(local), "{arguments:?}");
        assert_ne!(remote, json!([]), "{arguments:?}");
        let remote = scratch
            .pallet(&with(["--server", server], false), &[])
            .await;
        let local = scratch.pallet(&with(["--db", database], false), &[]).await;
        assert_exit(&remote, 0);
        let timed = |line: &&str| !line.trim_end().ends_with(" s");
        assert_eq!(
            stdout(&remote).lines().filter(timed).collect::<Vec<_>>(),
            stdout(&local).lines().filter(timed).collect::<Vec<_>>(),
            "{arguments:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_commands_work_against_the_service_as_against_the_database() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = TestContext::new();
    let service = start(&agent, directory.path(), ServiceOptions::default()).await;
    let scratch = Scratch::new();
    let server = service.base.as_str();
    let database = directory.path().join("runs.db");
    let database = database.to_str().unwrap();
    let id = waiting_run(&service).await;

    the_views_match_the_local_ones(&scratch, server, database, &id).await;
    let shown = scratch.against(server, &["runs", "show", &id]).await;
    assert!(
        stdout(&shown).contains("waiting   for approval at step `review`: Ship the draft?"),
        "{}",
        stdout(&shown)
    );

    // A missing required field: the service's 422 detail, bad input.
    let missing = scratch.against(server, &["approve", &id]).await;
    assert_exit(&missing, 2);
    assert_stderr_contains(&missing, "HTTP 422");
    assert_stderr_contains(&missing, "field(s) ticket");

    // Approved: the command follows the run until it ends, like the local one.
    let approve = [
        "approve",
        &id,
        "--field",
        "ticket=OPS-1",
        "--actor",
        "grace",
        "--json",
    ];
    let approved = json_of(&scratch.against(server, &approve).await);
    assert_eq!(approved["status"], "completed", "{approved}");
    assert_eq!(approved["context"]["review"]["actor"], "grace");
    assert_eq!(approved["context"]["publish"]["ticket"], "OPS-1");

    // An invalid transition: 409 with the service's detail, exit 2.
    let cancel = scratch.against(server, &["cancel", &id]).await;
    assert_exit(&cancel, 2);
    let message = stderr(&cancel);
    assert!(message.contains("HTTP 409"), "{message}");
    assert!(
        message.contains("cannot go from `completed` to `cancelled`"),
        "{message}"
    );
    assert!(message.contains("hint: see the run's state"), "{message}");

    // An unknown run: 404 with its detail, exit 2.
    for command in ["show", "history"] {
        let unknown = scratch
            .against(server, &["runs", command, "no-such-run"])
            .await;
        assert_exit(&unknown, 2);
        assert_stderr_contains(&unknown, "HTTP 404");
        assert_stderr_contains(&unknown, "no-such-run");
    }

    // Rejected without rework: the run fails, exit 1 as locally.
    let rejected_id = waiting_run(&service).await;
    let rejected = scratch
        .against(server, &["reject", &rejected_id, "--comment", "not yet"])
        .await;
    assert_exit(&rejected, 1);
    assert_stderr_contains(&rejected, "is failed");
    assert_stderr_contains(&rejected, "not yet");

    // Resume refuses a run that waits for a human; cancel stops it.
    let cancelled_id = waiting_run(&service).await;
    let early = scratch.against(server, &["resume", &cancelled_id]).await;
    assert_exit(&early, 2);
    assert_stderr_contains(&early, "waits for approval");
    let cancelled = scratch
        .against(server, &["cancel", &cancelled_id, "--json"])
        .await;
    assert_eq!(json_of(&cancelled)["status"], "cancelled");

    assert!(
        !scratch.context.default_database().exists(),
        "--server never opens a local database"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_server_continues_a_run_left_by_another_process() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = TestContext::new();
    let service = start(&agent, directory.path(), ServiceOptions::default()).await;
    let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
    let left = store
        .create_run(&NewRun {
            workflow_ref: "fast-test".to_string(),
            workflow_id: "fast-test".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: "fast.yaml".to_string(),
            workflow_yaml: std::fs::read_to_string(directory.path().join("workflows/fast.yaml"))
                .unwrap(),
            input: json!({"requirements": "left behind"}),
            actor: "test".to_string(),
        })
        .unwrap();
    drop(store);
    let scratch = Scratch::new();
    let environment = [("PALLET_SERVER", service.base.as_str())];
    let resumed = scratch.pallet(&["resume", &left.id], &environment).await;
    assert_exit(&resumed, 0);
    assert_stderr_contains(
        &resumed,
        &format!("run {} (fast-test 1.0.0) is completed", left.id),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&resumed)).unwrap(),
        json!({"requirements": "left behind"})
    );
    let again = scratch.pallet(&["resume", &left.id], &environment).await;
    assert_exit(&again, 2);
    assert_stderr_contains(&again, "has ended (completed)");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_sent_and_never_shown() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let directory = TestContext::new();
    let options = ServiceOptions {
        token: Some("s3cret-token".to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, directory.path(), options).await;
    let scratch = Scratch::new();
    let list = ["runs", "--server", service.base.as_str()];

    let without = scratch.pallet(&list, &[]).await;
    assert_exit(&without, 2);
    let message = stderr(&without);
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(message.contains("bearer token"), "{message}");
    assert!(message.contains("hint: set PALLET_API_TOKEN"), "{message}");

    let wrong = scratch
        .pallet(&list, &[("PALLET_API_TOKEN", "other-token")])
        .await;
    assert_exit(&wrong, 2);
    assert_stderr_contains(&wrong, "is not the token");
    assert!(
        !stderr(&wrong).contains("other-token"),
        "{}",
        stderr(&wrong)
    );

    let with = scratch
        .pallet(&list, &[("PALLET_API_TOKEN", "s3cret-token")])
        .await;
    assert_exit(&with, 0);
    let flag = scratch
        .pallet(
            &[
                "runs",
                "--json",
                "--token",
                "s3cret-token",
                "--server",
                &service.base,
            ],
            &[],
        )
        .await;
    assert_eq!(json_of(&flag), json!([]));
    for output in [&without, &with, &flag] {
        let all = format!("{}{}", stdout(output), stderr(output));
        assert!(!all.contains("s3cret"), "{all}");
    }
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_or_misnamed_is_reported_clearly() {
    let scratch = Scratch::new();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down = scratch
        .pallet(&["runs", "show", "x", "--server", &closed], &[])
        .await;
    assert_exit(&down, 1);
    let message = stderr(&down);
    assert!(
        message.contains(&format!("cannot reach pallet serve at {closed}")),
        "{message}"
    );
    assert!(
        message.contains("is `pallet serve` running there?"),
        "{message}"
    );

    for url in [
        "localhost:8080",
        "ftp://127.0.0.1:1",
        "http://127.0.0.1:1/api",
        "http://127.0.0.1:1/?a=b",
    ] {
        let bad = scratch.pallet(&["runs", "--server", url], &[]).await;
        assert_exit(&bad, 2);
        assert_stderr_contains(&bad, &format!("--server `{url}` is not a service address"));
    }
}

/// A run waits at an approval; the agent of the step after it is known only
/// through an agent card in the registry. `pallet approve` must find it there,
/// as `pallet run` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_finds_agents_through_the_registry_as_run_does() {
    let registry = TestRegistry::start();
    let agent = LegacyAgent::start("registry-only", &["registry_only_skill"]).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let card = reqwest::get(format!("{}/agent-card", agent.url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    push_like_original(
        &registry.address,
        "agents/registry-only",
        "v1",
        "registry-only_agent_card.json",
        "application/json",
        &card,
    )
    .await;
    let scratch = Scratch::new();
    let file = scratch.context.join("gated.yaml");
    std::fs::write(
        &file,
        "metadata: {id: gated, name: Gated, version: 1.0.0}\nsteps:\n  - {id: gate, step_type: approval, title: Go?}\n  - {id: after, skill: registry_only_skill, inputs: {note: '{{ steps.gate.outputs.comment }}'}}\n",
    )
    .unwrap();
    let database = scratch.context.join("runs.db");
    let database = database.to_str().unwrap();
    let sources = ["--registry", registry.address.as_str(), "--db", database];

    let mut run = vec!["run", "--file", file.to_str().unwrap(), "--json"];
    run.extend(sources);
    let record = json_of(&scratch.pallet(&run, &[]).await);
    assert_eq!(record["status"], "waiting_approval", "{record}");
    let id = record["run_id"].as_str().unwrap();
    assert_eq!(agent.calls("registry_only_skill"), 0);

    let mut approve = vec!["approve", id, "--comment", "go", "--json"];
    approve.extend(sources);
    let approved = json_of(&scratch.pallet(&approve, &[]).await);
    assert_eq!(approved["status"], "completed", "{approved}");
    assert_eq!(approved["result"], json!({"note": "go"}));
    assert_eq!(agent.calls("registry_only_skill"), 1);
}
