//! The engine against real in-process legacy agents: data flow, containers,
//! timeouts, cancellation, retries, failover and sub-workflows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pallet::agent::StaticDiscovery;
use pallet::engine::{Engine, Event, RunRecord, RunStatus, StepStatus};
use pallet::workflow::{DirectorySource, LoadedWorkflow, load_str};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::legacy_agent::LegacyAgent;
use crate::support::records::step;

/// An engine over the agents at `urls`, finding child workflows in `workflows_dir`.
fn engine(urls: &[String], workflows_dir: &Path) -> (Engine, mpsc::UnboundedReceiver<Event>) {
    let (events, received) = mpsc::unbounded_channel();
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(urls.to_vec())),
        Arc::new(DirectorySource::new(workflows_dir)),
    )
    .events(events)
    .build();
    (engine, received)
}

/// A workflow with id `id` and the given `steps:` block (and any top-level keys before it).
fn workflow(id: &str, body: &str) -> Arc<LoadedWorkflow> {
    let text = workflow_text(id, body);
    Arc::new(
        load_str(&format!("{id}.yaml"), &text).unwrap_or_else(|error| panic!("{error:?}\n{text}")),
    )
}

fn workflow_text(id: &str, body: &str) -> String {
    format!("metadata:\n  id: {id}\n  name: {id}\n  version: 1.0.0\n{body}")
}

/// Run `workflow` with `input` against one fresh agent.
async fn run_once(body: &str, input: Value) -> (RunRecord, LegacyAgent) {
    let agent = LegacyAgent::start("helper", &[]).await;
    let empty = tempfile::tempdir().unwrap();
    let (engine, _events) = engine(&[agent.url()], empty.path());
    let record = engine
        .run(workflow("test", body), input, CancellationToken::new())
        .await;
    (record, agent)
}

fn statuses(record: &RunRecord) -> Vec<(&str, StepStatus)> {
    record
        .steps
        .iter()
        .map(|step| (step.id.as_str(), step.status))
        .collect()
}

#[tokio::test]
async fn sequential_steps_pass_data_along() {
    let body = r#"
steps:
  - id: first
    skill: echo
    inputs: { value: "{{ workflow.input.name }}", count: 3 }
    outputs: echoed
  - id: second
    skill: echo
    inputs:
      greeting: "Hello {{ steps.first.outputs.echoed.value }}!"
      count: "{{ steps.first.outputs.echoed.count }}"
  - id: third
    skill: echo
    inputs: { again: "{{ steps.second.outputs.greeting }}" }
"#;
    let (record, agent) = run_once(body, json!({"name": "pallet"})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.output, Some(json!({"again": "Hello pallet!"})));
    assert_eq!(
        step(&record, "first").outputs,
        Some(json!({"echoed": {"value": "pallet", "count": 3}}))
    );
    assert_eq!(
        step(&record, "second").inputs,
        Some(json!({"greeting": "Hello pallet!", "count": 3}))
    );
    for step in &record.steps {
        assert_eq!(
            (step.attempts, step.agent.as_deref()),
            (1, Some("helper")),
            "{step:?}"
        );
    }
    assert_eq!(statuses(&record).len(), 3);
    assert_eq!(agent.calls("echo"), 3);
    assert_eq!(record.workflow_id, "test");
    assert_eq!(record.workflow_version, "1.0.0");
    assert_eq!(record.input, json!({"name": "pallet"}));
    assert!(uuid::Uuid::parse_str(&record.run_id).is_ok());
}

fn sleepers(count: usize, ms: u64) -> String {
    (0..count)
        .map(|index| {
            format!("        - {{ id: nap{index}, skill: sleep, inputs: {{ ms: {ms} }} }}\n")
        })
        .collect()
}

#[tokio::test]
async fn parallel_steps_really_overlap() {
    let body = format!(
        "steps:\n  - id: group\n    step_type: parallel\n    branches:\n      steps:\n{}",
        sleepers(4, 300)
    );
    let started = Instant::now();
    let (record, agent) = run_once(&body, json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls("sleep"), 4);
    // Four 300 ms calls one after the other would take 1.2 s.
    assert!(elapsed < Duration::from_millis(900), "took {elapsed:?}");
    let outputs = step(&record, "group").outputs.clone().unwrap();
    assert_eq!(outputs["nap3"], json!({"ms": 300}));
    assert_eq!(outputs.as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn parallel_steps_respect_max_concurrency() {
    let body = format!(
        "steps:\n  - id: group\n    step_type: parallel\n    max_concurrency: 2\n    branches:\n      steps:\n{}",
        sleepers(4, 300)
    );
    let started = Instant::now();
    let (record, _agent) = run_once(&body, json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    // Two waves of two: at least 600 ms, well under the 1.2 s of one at a time.
    assert!(elapsed >= Duration::from_millis(600), "took {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1150), "took {elapsed:?}");
}

#[tokio::test]
async fn fail_fast_cancels_the_siblings() {
    let body = r#"
steps:
  - id: group
    step_type: parallel
    branches:
      steps:
        - { id: slow1, skill: sleep, inputs: { ms: 5000 } }
        - { id: broken, skill: fail }
        - { id: slow2, skill: sleep, inputs: { ms: 5000 } }
  - id: after
    skill: echo
"#;
    let started = Instant::now();
    let (record, agent) = run_once(body, json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.clone().unwrap();
    assert!(
        error.contains("step `broken` failed") && error.contains("skill failed on purpose"),
        "{error}"
    );
    assert_eq!(
        statuses(&record),
        [
            ("group", StepStatus::Failed),
            ("slow1", StepStatus::Cancelled),
            ("broken", StepStatus::Failed),
            ("slow2", StepStatus::Cancelled),
            ("after", StepStatus::Skipped),
        ]
    );
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn without_fail_fast_every_sibling_finishes() {
    let body = r#"
steps:
  - id: group
    step_type: parallel
    fail_fast: false
    branches:
      steps:
        - { id: slow, skill: sleep, inputs: { ms: 300 } }
        - { id: broken, skill: fail }
        - { id: quick, skill: echo }
"#;
    let (record, _agent) = run_once(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        statuses(&record),
        [
            ("group", StepStatus::Failed),
            ("slow", StepStatus::Completed),
            ("broken", StepStatus::Failed),
            ("quick", StepStatus::Completed),
        ]
    );
    assert!(
        step(&record, "group")
            .error
            .as_deref()
            .unwrap()
            .contains("step `broken` failed")
    );
}

#[tokio::test]
async fn conditional_takes_the_branch_of_the_condition() {
    let body = r#"
steps:
  - id: check
    step_type: conditional
    condition: "{{ workflow.input.flag }}"
    branches:
      if_true:
        - { id: yes, skill: echo, inputs: { branch: "true side" } }
      if_false:
        - { id: no, skill: echo, inputs: { branch: "false side" } }
  - id: report
    skill: echo
    inputs: { got: "{{ steps.check.outputs.branch }}" }
"#;
    let cases = [
        (json!(true), "true side", "yes", "no"),
        (json!(false), "false side", "no", "yes"),
    ];
    for (flag, expected, taken, skipped) in cases {
        let (record, _agent) = run_once(body, json!({"flag": flag})).await;
        assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
        assert_eq!(record.output, Some(json!({"got": expected})));
        assert_eq!(step(&record, taken).status, StepStatus::Completed);
        assert_eq!(step(&record, skipped).status, StepStatus::Skipped);
        assert_eq!(
            step(&record, "check").inputs,
            Some(json!({"condition": flag}))
        );
    }
}

#[tokio::test]
async fn conditional_without_the_branch_runs_nothing() {
    let body = r#"
steps:
  - id: check
    step_type: conditional
    condition: "{{ workflow.input.flag }}"
    branches:
      if_true:
        - { id: yes, skill: echo }
"#;
    let (record, agent) = run_once(body, json!({"flag": false})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        statuses(&record),
        [
            ("check", StepStatus::Completed),
            ("yes", StepStatus::Skipped)
        ]
    );
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn switch_matches_cases_then_default() {
    let body = r#"
steps:
  - id: route
    step_type: switch
    condition: "{{ workflow.input.kind }}"
    branches:
      code_generation:
        - { id: code, skill: echo, inputs: { handled: code } }
      "3":
        - { id: three, skill: echo, inputs: { handled: three } }
      default:
        - { id: fallback, skill: echo, inputs: { handled: fallback } }
"#;
    let cases = [
        (json!("code_generation"), "code"),
        (json!(3), "three"),
        (json!("something else"), "fallback"),
    ];
    for (kind, expected) in cases {
        let (record, _agent) = run_once(body, json!({"kind": kind})).await;
        assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
        assert_eq!(record.output, Some(json!({"handled": expected})), "{kind}");
        let ran: Vec<&str> = record
            .steps
            .iter()
            .filter(|step| step.status == StepStatus::Completed)
            .map(|step| step.id.as_str())
            .collect();
        assert_eq!(ran, ["route", expected], "{kind}");
        assert_eq!(record.steps.len(), 4, "every step is recorded");
    }
}

#[tokio::test]
async fn switch_without_match_or_default_runs_nothing() {
    let body = r#"
steps:
  - id: route
    step_type: switch
    condition: "{{ workflow.input.kind }}"
    branches:
      a:
        - { id: only_a, skill: echo }
"#;
    let (record, agent) = run_once(body, json!({"kind": "b"})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(step(&record, "only_a").status, StepStatus::Skipped);
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn sub_workflow_runs_as_a_child_run() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let child = "steps:\n  - id: shout\n    skill: echo\n    inputs: { message: \"child says {{ workflow.input.name }}\" }\n";
    std::fs::write(
        dir.path().join("child.yaml"),
        workflow_text("child-v1", child),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "metadata: [").unwrap();
    let parent = r#"
steps:
  - id: delegate
    skill: execute_workflow
    inputs: { workflow_id: child-v1, input: "{{ workflow.input }}" }
    outputs: result
  - id: use
    skill: echo
    inputs: { heard: "{{ steps.delegate.outputs.result.message }}" }
"#;
    let (engine, mut events) = engine(&[agent.url()], dir.path());
    let record = engine
        .run(
            workflow("parent", parent),
            json!({"name": "ada"}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.output, Some(json!({"heard": "child says ada"})));
    let delegate = step(&record, "delegate");
    let child = delegate.child.as_ref().expect("the child run is recorded");
    assert_eq!(
        (child.workflow_id.as_str(), child.status),
        ("child-v1", RunStatus::Completed)
    );
    assert_eq!(child.input, json!({"name": "ada"}));
    assert_eq!(child.steps.len(), 1);
    drop(engine);
    let mut started = Vec::new();
    while let Some(event) = events.recv().await {
        if let Event::StepStarted { step, .. } = event {
            started.push(step);
        }
    }
    assert_eq!(started, ["delegate", "delegate/shout", "use"]);
}

#[tokio::test]
async fn sub_workflow_not_found_lists_what_is_there() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("child.yaml"),
        workflow_text("child-v1", "steps:\n  - { id: a, skill: echo }\n"),
    )
    .unwrap();
    let parent = "steps:\n  - id: delegate\n    skill: execute_workflow\n    inputs: { workflow_id: missing-v1 }\n";
    let (engine, _events) = engine(&[agent.url()], dir.path());
    let record = engine
        .run(
            workflow("parent", parent),
            json!({}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("workflow `missing-v1` not found") && error.contains("available: child-v1"),
        "{error}"
    );
}

#[tokio::test]
async fn sub_workflow_step_timeout_cancels_the_child() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let child = "steps:\n  - { id: nap, skill: sleep, inputs: { ms: 5000 } }\n";
    std::fs::write(
        dir.path().join("child.yaml"),
        workflow_text("sleepy-v1", child),
    )
    .unwrap();
    let parent = "steps:\n  - id: delegate\n    skill: execute_workflow\n    timeout: 300ms\n    inputs: { workflow_id: sleepy-v1 }\n";
    let (engine, _events) = engine(&[agent.url()], dir.path());
    let started = Instant::now();
    let record = engine
        .run(
            workflow("parent", parent),
            json!({}),
            CancellationToken::new(),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(4), "{record:#?}");
    assert_eq!(record.status, RunStatus::Failed, "{record:#?}");
    assert_eq!(
        record.error.as_deref(),
        Some("step `delegate` timed out after 300ms")
    );
    let delegate = step(&record, "delegate");
    assert_eq!(delegate.status, StepStatus::Failed);
    let child = delegate.child.as_ref().expect("the child run is recorded");
    assert_eq!(child.status, RunStatus::Cancelled, "{child:#?}");
}

#[tokio::test]
async fn recursive_workflows_fail_with_the_chain() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let calls = |target: &str| {
        format!(
            "steps:\n  - id: call_{target}\n    skill: execute_workflow\n    inputs: {{ workflow_id: {target} }}\n"
        )
    };
    std::fs::write(
        dir.path().join("a.yaml"),
        workflow_text("loop-a", &calls("loop-b")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        workflow_text("loop-b", &calls("loop-a")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("self.yaml"),
        workflow_text("selfish", &calls("selfish")),
    )
    .unwrap();
    let (engine, _events) = engine(&[agent.url()], dir.path());
    let cases = [
        (
            "loop-a",
            "workflow `loop-a` calls itself: loop-a -> loop-b -> loop-a",
        ),
        (
            "selfish",
            "workflow `selfish` calls itself: selfish -> selfish",
        ),
    ];
    for (id, expected) in cases {
        let loaded = pallet::workflow::load_file(&dir.path().join(match id {
            "loop-a" => "a.yaml",
            _ => "self.yaml",
        }))
        .unwrap();
        let record = engine
            .run(Arc::new(loaded), json!({}), CancellationToken::new())
            .await;
        assert_eq!(record.status, RunStatus::Failed);
        let error = record.error.unwrap();
        assert!(error.contains(expected), "{error}");
    }
}

#[tokio::test]
async fn step_timeout_fails_the_step() {
    let body = r#"
steps:
  - { id: slow, skill: sleep, inputs: { ms: 5000 }, timeout: 200ms }
  - { id: after, skill: echo }
"#;
    let started = Instant::now();
    let (record, _agent) = run_once(body, json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        record.error.as_deref(),
        Some("step `slow` timed out after 200ms")
    );
    assert_eq!(
        statuses(&record),
        [("slow", StepStatus::Failed), ("after", StepStatus::Skipped)]
    );
}

#[tokio::test]
async fn workflow_timeout_cancels_what_is_in_flight() {
    let body = r#"
timeout: 300ms
steps:
  - { id: slow, skill: sleep, inputs: { ms: 5000 } }
  - { id: after, skill: echo }
"#;
    let started = Instant::now();
    let (record, _agent) = run_once(body, json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        record.error.as_deref(),
        Some("workflow timed out after 300ms")
    );
    assert_eq!(
        statuses(&record),
        [
            ("slow", StepStatus::Cancelled),
            ("after", StepStatus::Skipped)
        ]
    );
}

#[tokio::test]
async fn cancellation_token_stops_the_run() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let empty = tempfile::tempdir().unwrap();
    let (engine, _events) = engine(&[agent.url()], empty.path());
    let body = r#"
steps:
  - id: group
    step_type: parallel
    branches:
      steps:
        - { id: slow1, skill: sleep, inputs: { ms: 5000 } }
        - { id: slow2, skill: sleep, inputs: { ms: 5000 } }
  - { id: after, skill: echo }
"#;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let record = engine.run(workflow("test", body), json!({}), cancel).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record.status, RunStatus::Cancelled, "{record:#?}");
    assert_eq!(
        statuses(&record),
        [
            ("group", StepStatus::Cancelled),
            ("slow1", StepStatus::Cancelled),
            ("slow2", StepStatus::Cancelled),
            ("after", StepStatus::Skipped),
        ]
    );
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let empty = tempfile::tempdir().unwrap();
    let (engine, mut events) = engine(&[agent.url()], empty.path());
    let body = r#"
steps:
  - id: shaky
    skill: flaky
    inputs: { key: "{{ workflow.input.key }}", failures: 2 }
    retry: { max_attempts: 3, backoff: { initial: 10ms, max: 50ms } }
"#;
    let record = engine
        .run(
            workflow("test", body),
            json!({"key": "succeeds"}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(step(&record, "shaky").attempts, 3);
    assert_eq!(agent.calls("flaky"), 3);
    let retried = record.clone();
    // Two failures and only two attempts allowed: the step fails with the last error.
    let body = body.replace("max_attempts: 3", "max_attempts: 2");
    let record = engine
        .run(
            workflow("test", &body),
            json!({"key": "gives-up"}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(step(&record, "shaky").attempts, 2);
    assert!(record.error.unwrap().contains("503"));
    drop(engine);
    let mut retries = Vec::new();
    while let Some(event) = events.recv().await {
        if let Event::StepRetrying {
            step,
            attempt,
            delay,
            ..
        } = event
        {
            assert!(delay <= Duration::from_millis(50), "{delay:?}");
            retries.push((step, attempt));
        }
    }
    assert_eq!(
        retries,
        [
            ("shaky".to_string(), 2),
            ("shaky".to_string(), 3),
            ("shaky".to_string(), 2)
        ]
    );
    assert_eq!(retried.steps.len(), 1);
}

#[tokio::test]
async fn agent_errors_are_not_retried() {
    for skill in ["fail", "garbage"] {
        let body = format!(
            "steps:\n  - id: broken\n    skill: {skill}\n    retry: {{ max_attempts: 3, backoff: {{ initial: 10ms }} }}\n"
        );
        let (record, agent) = run_once(&body, json!({})).await;
        assert_eq!(record.status, RunStatus::Failed, "{skill}");
        assert!(
            record
                .error
                .as_deref()
                .unwrap()
                .starts_with("step `broken` failed: "),
            "{skill}"
        );
        assert_eq!(step(&record, "broken").attempts, 1, "{skill}");
        assert_eq!(agent.calls(skill), 1, "{skill}");
    }
}

#[tokio::test]
async fn unreachable_agent_fails_over_without_a_retry() {
    let first = LegacyAgent::start("first", &[]).await;
    let second = LegacyAgent::start("second", &[]).await;
    let empty = tempfile::tempdir().unwrap();
    let discovery = Arc::new(StaticDiscovery::new(vec![first.url(), second.url()]));
    assert_eq!(
        discovery.cards().await.len(),
        2,
        "both cards fetched before the first agent stops"
    );
    drop(first);
    // Let the server shut down before the call.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let engine = Engine::builder(discovery, Arc::new(DirectorySource::new(empty.path()))).build();
    let body = "steps:\n  - { id: hello, skill: echo, inputs: { a: 1 } }\n";
    let record = engine
        .run(workflow("test", body), json!({}), CancellationToken::new())
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let hello = step(&record, "hello");
    assert_eq!(
        (hello.attempts, hello.agent.as_deref()),
        (1, Some("second"))
    );
    assert_eq!(second.calls("echo"), 1);
}

#[tokio::test]
async fn unknown_skill_fails_before_any_step() {
    let body = r#"
steps:
  - { id: first, skill: echo }
  - { id: second, skill: no_such_skill }
  - { id: third, skill: nor_this_one }
"#;
    let (record, agent) = run_once(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("no agent offers skills `no_such_skill`, `nor_this_one`"),
        "{error}"
    );
    assert!(
        error.contains(&agent.url()),
        "names where it searched: {error}"
    );
    assert!(
        record
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Skipped),
        "{:?}",
        record.steps
    );
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn many_sequential_steps_run_fast() {
    let steps: String = (0..100)
        .map(|index| {
            let input = if index == 0 {
                "{{ workflow.input.n }}".to_string()
            } else {
                format!("{{{{ steps.s{}.outputs.n }}}}", index - 1)
            };
            format!("  - {{ id: s{index}, skill: echo, inputs: {{ n: \"{input}\" }} }}\n")
        })
        .collect();
    let started = Instant::now();
    let (record, agent) = run_once(&format!("steps:\n{steps}"), json!({"n": 7})).await;
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.error);
    assert_eq!(record.output, Some(json!({"n": 7})));
    assert_eq!(agent.calls("echo"), 100);
    // Generous: a local echo round trip plus engine work, in a debug build.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sub_workflows_nest_only_so_deep() {
    let agent = LegacyAgent::start("helper", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    for level in 0..10 {
        let body = format!(
            "steps:\n  - id: deeper\n    skill: execute_workflow\n    inputs: {{ workflow_id: level-{} }}\n",
            level + 1
        );
        std::fs::write(
            dir.path().join(format!("level{level}.yaml")),
            workflow_text(&format!("level-{level}"), &body),
        )
        .unwrap();
    }
    let (engine, _events) = engine(&[agent.url()], dir.path());
    let top = Arc::new(pallet::workflow::load_file(&dir.path().join("level0.yaml")).unwrap());
    let record = engine.run(top, json!({}), CancellationToken::new()).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    let chain = "level-0 -> level-1 -> level-2 -> level-3 -> level-4 -> level-5 -> level-6 -> level-7 -> level-8";
    assert!(
        error.contains(&format!("workflows nest deeper than 8: {chain}")),
        "{error}"
    );
}

#[tokio::test]
async fn missing_input_fails_the_step_before_the_call() {
    let body = r#"
steps:
  - { id: greet, skill: echo, inputs: { name: "{{ workflow.input.name }}" } }
"#;
    let (record, agent) = run_once(body, json!({"nom": "x"})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.clone().unwrap();
    assert!(
        error.starts_with("step `greet` has bad inputs: ") && error.contains("name"),
        "{error}"
    );
    assert_eq!(step(&record, "greet").status, StepStatus::Failed);
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn smart_router_example_falls_back_by_default() {
    let agent = LegacyAgent::start("router", &["analyze_request", "create_plan"]).await;
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let (engine, _events) = engine(&[agent.url()], &workflows);
    let router =
        Arc::new(pallet::workflow::load_file(&workflows.join("smart-router.yaml")).unwrap());
    let input = json!({"requirements": "sort a list"});
    let record = engine.run(router, input, CancellationToken::new()).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    // The echoing analyzer names no route, so the default branch plans.
    assert_eq!(record.output, Some(json!({"requirements": "sort a list"})));
    assert_eq!(step(&record, "fallback").status, StepStatus::Completed);
    assert_eq!(
        step(&record, "generate_code_workflow").status,
        StepStatus::Skipped
    );
    assert_eq!(agent.calls("create_plan"), 1);
}

#[tokio::test]
async fn timed_out_attempts_are_retried() {
    let body = r#"
steps:
  - id: slow
    skill: sleep
    inputs: { ms: 5000 }
    timeout: 100ms
    retry: { max_attempts: 2, backoff: { initial: 10ms } }
"#;
    let (record, agent) = run_once(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        record.error.as_deref(),
        Some("step `slow` timed out after 100ms")
    );
    assert_eq!(step(&record, "slow").attempts, 2);
    assert_eq!(agent.calls("sleep"), 2);
}

#[tokio::test]
async fn parallel_analysis_example_runs_across_a2a_and_legacy_agents() {
    let a2a = crate::support::a2a_peer::A2aPeer::start_with_skills(
        "analysts",
        &["review_code", "security_scan", "performance_check"],
    )
    .await;
    let legacy = LegacyAgent::start("aggregator", &["aggregate_results"]).await;
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let (engine, _events) = engine(&[a2a.url(), legacy.url()], &workflows);
    let analysis = pallet::workflow::load_file(&workflows.join("parallel-analysis.yaml")).unwrap();
    let input = json!({"code": "def f(): pass", "language": "python"});
    let record = engine
        .run(Arc::new(analysis), input, CancellationToken::new())
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let code = json!({"code": "def f(): pass", "language": "python"});
    let expected = json!({"result": {
        "quality": code,
        "security": {"code": "def f(): pass"},
        "performance": {"code": "def f(): pass"},
    }});
    assert_eq!(record.output, Some(expected));
    assert_eq!(
        step(&record, "analyze_quality").agent.as_deref(),
        Some("analysts")
    );
    assert_eq!(
        step(&record, "aggregate").agent.as_deref(),
        Some("aggregator")
    );
    assert_eq!(legacy.calls("aggregate_results"), 1);
}

#[tokio::test]
async fn fail_fast_skips_siblings_not_yet_started() {
    let body = r#"
steps:
  - id: group
    step_type: parallel
    max_concurrency: 1
    branches:
      steps:
        - { id: broken, skill: fail }
        - { id: waiting, skill: echo }
"#;
    let (record, agent) = run_once(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        statuses(&record),
        [
            ("group", StepStatus::Failed),
            ("broken", StepStatus::Failed),
            ("waiting", StepStatus::Skipped),
        ]
    );
    assert_eq!(agent.calls("echo"), 0);
}

/// `each` blocks nested `depth` deep over `items`, `body` innermost.
fn each_bomb(depth: usize, body: &str) -> String {
    let mut template = String::from("{{#each workflow.input.items}}");
    template.push_str(&"{{#each @root.workflow.input.items}}".repeat(depth - 1));
    template.push_str(body);
    template.push_str(&"{{/each}}".repeat(depth));
    template
}

/// Five nested `each` over 100 items (10^10 bodies) once ran 39 s past a 3 s
/// step timeout and aborted allocating 8 GiB: the render is bounded now.
#[tokio::test]
async fn a_template_bomb_fails_the_step_at_a_limit() {
    let body = format!(
        "timeout: 5s\nsteps:\n  - id: bomb\n    skill: echo\n    timeout: 3s\n    inputs:\n      text: \"{}\"\n",
        each_bomb(5, "x")
    );
    let items: Vec<u32> = (0..100).collect();
    let started = Instant::now();
    let (record, agent) = run_once(&body, json!({ "items": items })).await;
    let took = started.elapsed();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("step `bomb` has bad inputs: step `bomb`, input `text`: ")
            && error.contains("(the limit)"),
        "{error}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(agent.calls("echo"), 0);
}

/// A render within the bounds but slower than the step's timeout stops there.
#[tokio::test]
async fn a_slow_render_stops_at_the_step_timeout() {
    let body = format!(
        "steps:\n  - id: slow\n    skill: echo\n    timeout: 20ms\n    inputs:\n      text: \"{}\"\n",
        each_bomb(4, "")
    );
    let items: Vec<u32> = (0..30).collect();
    let started = Instant::now();
    let (record, _agent) = run_once(&body, json!({ "items": items })).await;
    let took = started.elapsed();
    assert_eq!(
        record.error.as_deref(),
        Some("step `slow` timed out after 20ms while its inputs rendered")
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// The workflow's timeout stops a render too, when it comes first.
#[tokio::test]
async fn a_slow_render_stops_at_the_workflow_timeout() {
    let body = format!(
        "timeout: 20ms\nsteps:\n  - id: slow\n    skill: echo\n    inputs:\n      text: \"{}\"\n",
        each_bomb(4, "")
    );
    let items: Vec<u32> = (0..30).collect();
    let started = Instant::now();
    let (record, _agent) = run_once(&body, json!({ "items": items })).await;
    assert_eq!(
        record.error.as_deref(),
        Some("step `slow` failed: the workflow timed out while its inputs rendered")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
