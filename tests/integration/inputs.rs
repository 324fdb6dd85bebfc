//! Typed workflow inputs against the real parts: `pallet run` refuses an
//! input that does not fit (exit 2, every problem by JSON pointer, no agent
//! called) and fills in defaults (the agent receives them, the stored run
//! holds them); `pallet serve` answers 422 with the problems; a child
//! workflow of `execute_workflow` is checked too; `pallet validate` names a
//! template that reads an undeclared input.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pallet::agent::StaticDiscovery;
use pallet::engine::{Engine, RunStatus, StepStatus};
use pallet::workflow::{DirectorySource, load_str};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::Spawned;

/// Three inputs: a required string, an integer with a default, an optional choice.
pub const TYPED: &str = "metadata: {id: typed, name: Typed, version: 1.0.0}
inputs:
  requirements:
    type: string
    description: What to build
  count:
    type: integer
    minimum: 1
    default: 2
    description: How many variants
  mode:
    enum: [fast, thorough]
    required: false
steps:
  - id: build
    skill: echo
    inputs:
      requirements: '{{ workflow.input.requirements }}'
      count: '{{ workflow.input.count }}'
";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `pallet ARGS` in `context`, off the async runtime (the agent answers on it).
async fn pallet(context: &TestContext, arguments: &[&str]) -> Output {
    let context = context.clone();
    let arguments: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
    tokio::task::spawn_blocking(move || context.pallet().args(&arguments).output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pallet_run_refuses_an_input_that_does_not_fit_before_any_step() {
    let agent = LegacyAgent::start("builder", &[]).await;
    let context = TestContext::new();
    context.write("typed.yaml", TYPED);
    let url = agent.url();
    let output = pallet(
        &context,
        &[
            "run",
            "--file",
            "typed.yaml",
            "--agent",
            &url,
            "--db",
            "runs.db",
            "--input",
            "count=3.5",
            "--input",
            "mode=slow",
            "--input",
            "colour=red",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let expected = [
        "error: the input does not match the inputs of workflow `typed` (4 problems)",
        "  /colour: unknown input `colour`; the declared inputs are: requirements, count, mode",
        "  /requirements: the required input `requirements` is missing (string: What to build)",
        "  /count: \"3.5\" is not of type \"integer\"",
        "  /mode: \"slow\" is not one of \"fast\" or \"thorough\"",
        "hint: `pallet run --help-inputs` (with the same --workflow or --file) lists the inputs; give them with --input NAME=VALUE (read as a number or boolean where the input is one), --input NAME:=JSON or --input-json FILE",
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
    assert_eq!(agent.calls("echo"), 0, "no step ran");
    // Nothing was recorded either: the run never started.
    let runs = pallet(&context, &["runs", "--db", "runs.db", "--json"]).await;
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap_or(json!([]));
    assert_eq!(runs, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn pallet_run_fills_in_defaults_that_the_agent_receives_and_the_run_keeps() {
    let agent = LegacyAgent::start("builder", &[]).await;
    let context = TestContext::new();
    context.write("typed.yaml", TYPED);
    let url = agent.url();
    let output = pallet(
        &context,
        &[
            "run",
            "--file",
            "typed.yaml",
            "--agent",
            &url,
            "--db",
            "runs.db",
            "--json",
            "a parser",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    // The agent echoes what it received: the default, typed.
    assert_eq!(
        record["input"],
        json!({"requirements": "a parser", "count": 2})
    );
    let build = &record["steps"][0];
    assert_eq!(
        build["inputs"],
        json!({"requirements": "a parser", "count": 2})
    );
    assert_eq!(
        build["outputs"],
        json!({"requirements": "a parser", "count": 2})
    );
    assert_eq!(agent.calls("echo"), 1);
    let listed = pallet(&context, &["runs", "--db", "runs.db", "--json"]).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let stored = listed[0]["id"].as_str().unwrap().to_string();
    let shown = pallet(
        &context,
        &["runs", "show", &stored, "--db", "runs.db", "--json"],
    )
    .await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["input"],
        json!({"requirements": "a parser", "count": 2})
    );
}

/// `pallet serve` on `dir`, with `agent`: its base URL; the process ends when dropped.
fn serve(context: &TestContext, agent: &str) -> (Spawned, String) {
    let mut child = Spawned::spawn(
        context
            .pallet()
            .args([
                "serve",
                "--offline",
                "--addr",
                "127.0.0.1:0",
                "--agent",
                agent,
            ])
            .arg("--workflows-dir")
            .arg(context.path())
            .arg("--db")
            .arg(context.join("runs.db"))
            .stderr(Stdio::piped()),
    );
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = lines
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("serving on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        })
        .expect("the service says where it listens");
    (child, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_answers_422_with_every_problem_and_stores_the_defaulted_input() {
    let agent = LegacyAgent::start("builder", &[]).await;
    let context = TestContext::new();
    context.write("typed.yaml", TYPED);
    let (mut child, base) = serve(&context, &agent.url());
    let client = crate::support::http_client();
    let refused = client
        .post(format!("{base}/workflows"))
        .json(&json!({"workflow": "typed", "input": {"count": 0, "colour": "red"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 422, "{problem}");
    assert_eq!(
        problem["errors"],
        json!([
            {"pointer": "/colour", "message": "unknown input `colour`; the declared inputs are: requirements, count, mode"},
            {"pointer": "/requirements", "message": "the required input `requirements` is missing (string: What to build)"},
            {"pointer": "/count", "message": "0 is less than the minimum of 1"},
        ]),
        "{problem}"
    );
    assert_eq!(
        problem["declared_inputs"],
        json!(["requirements", "count", "mode"])
    );
    assert!(
        problem["detail"].as_str().unwrap().starts_with(
            "the input does not match the inputs of workflow `typed` (3 problems): /colour: "
        ),
        "{problem}"
    );
    assert_eq!(agent.calls("echo"), 0);

    let created: Value = client
        .post(format!("{base}/workflows"))
        .json(&json!({"workflow": "typed", "input": {"requirements": "a parser"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created["input"],
        json!({"requirements": "a parser", "count": 2}),
        "{created}"
    );
    let id = created["id"].as_str().unwrap();
    let mut run = Value::Null;
    for _ in 0..400 {
        run = client
            .get(format!("{base}/workflows/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["context"]["build"],
        json!({"requirements": "a parser", "count": 2}),
        "{run}"
    );
    child.signal(libc::SIGTERM);
    let _ = child.wait_with_output();
}

#[tokio::test]
async fn a_child_workflow_checks_its_inputs_and_the_step_fails_with_the_list() {
    let agent = LegacyAgent::start("builder", &[]).await;
    let workflows = tempfile::tempdir().unwrap();
    std::fs::write(workflows.path().join("typed.yaml"), TYPED).unwrap();
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url()])),
        Arc::new(DirectorySource::new(workflows.path())),
    )
    .build();
    let parent = "metadata: {id: parent, name: Parent, version: 1.0.0}
steps:
  - id: child
    skill: execute_workflow
    inputs:
      workflow_id: typed
      input: {count: many}
";
    let loaded = Arc::new(load_str("parent.yaml", parent).unwrap());
    let record = engine
        .run(loaded.clone(), json!({}), CancellationToken::new())
        .await;
    assert_eq!(record.status, RunStatus::Failed, "{record:#?}");
    let step = &record.steps[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(
        step.error.as_deref(),
        Some(
            "step `child` failed: the input does not match the inputs of workflow `typed` (2 problems): /requirements: the required input `requirements` is missing (string: What to build); /count: \"many\" is not of type \"integer\""
        )
    );
    assert_eq!(agent.calls("echo"), 0);

    // With a fitting input, the child gets its default.
    let fitting = parent.replace("{count: many}", "{requirements: ok}");
    let loaded = Arc::new(load_str("parent.yaml", &fitting).unwrap());
    let record = engine
        .run(loaded, json!({}), CancellationToken::new())
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let child = record.steps[0].child.as_ref().expect("the child's record");
    assert_eq!(
        child.steps[0].inputs,
        Some(json!({"requirements": "ok", "count": 2}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_a_template_reading_an_undeclared_input() {
    let context = TestContext::new();
    context.write(
        "typo.yaml",
        TYPED.replace("workflow.input.count", "workflow.input.cuont"),
    );
    let output = pallet(&context, &["validate", "typo.yaml"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "typo.yaml:19:14: template reads `workflow.input.cuont`, but `inputs` declares no input `cuont`\n  at /steps/0/inputs/count\n  hint: did you mean `count`? declared: requirements, count, mode; or add `cuont` under `inputs:`"
        ),
        "{stderr}"
    );
    context.write("typed.yaml", TYPED);
    let output = pallet(&context, &["validate", "typed.yaml"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_inputs_are_read_as_the_number_or_boolean_the_input_declares() {
    let agent = LegacyAgent::start("builder", &[]).await;
    let context = TestContext::new();
    context.write("typed.yaml", TYPED);
    let url = agent.url();
    let run = |extra: &'static [&'static str]| {
        let mut arguments = vec!["run", "--file", "typed.yaml", "--agent", &url, "--json"];
        arguments.extend_from_slice(extra);
        arguments
            .iter()
            .map(|text| text.to_string())
            .collect::<Vec<_>>()
    };
    let typed = run(&["--input", "count=5", "--input", "mode=fast", "text"]);
    let typed: Vec<&str> = typed.iter().map(String::as_str).collect();
    let output = pallet(&context, &typed).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        record["input"],
        json!({"count": 5, "mode": "fast", "requirements": "text"})
    );
    // `:=` is JSON as written: a JSON string stays a string, and is refused.
    let quoted = run(&["--input", "count:=\"5\"", "text"]);
    let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
    let output = pallet(&context, &quoted).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("  /count: \"5\" is not of type \"integer\"\n"),
        "{}",
        text(&output.stderr)
    );
}
