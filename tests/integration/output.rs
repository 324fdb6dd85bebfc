//! Snapshots of what users see from the main commands, next to the
//! `.contains` checks of the other modules: the run report in text and JSON,
//! the stored-run views, the registry listings, errors with their hints, and
//! the main commands' help. Ids, digests, ports, times, durations and temp
//! paths are replaced by placeholders (see `support::snapshot`).

use std::path::PathBuf;
use std::process::Output;

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::process::Running;
use crate::support::registry::TestRegistry;
use crate::support::snapshot::{settings, transcript};

/// Two skill steps, the second fed by the first.
const REPORT: &str = "metadata: {id: report, name: Report, version: 1.0.0}
steps:
  - {id: plan, skill: create_plan, inputs: {title: \"{{ workflow.input.requirements }}\"}}
  - {id: check, skill: echo, inputs: {title: \"{{ steps.plan.outputs.title }}\"}}
";

/// A step that fails, and one that is then skipped.
const FAILS: &str = "metadata: {id: fails, name: Fails, version: 1.0.0}
steps:
  - {id: broken, skill: fail}
  - {id: never, skill: echo}
";

/// An approval with a required field, then a skill step.
const GATED: &str = "metadata: {id: gated, name: Gated, version: 1.0.0}
steps:
  - id: review
    step_type: approval
    title: Ship it?
    required: [ticket]
  - {id: publish, skill: echo, inputs: {ticket: \"{{ steps.review.outputs.fields.ticket }}\"}}
";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `pallet ARGS` in `context`, off the async runtime (the agent answers on it).
async fn pallet(context: &TestContext, arguments: &[&str]) -> Output {
    let context = context.clone();
    let arguments: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
    tokio::task::spawn_blocking(move || context.pallet().args(&arguments).output().unwrap())
        .await
        .unwrap()
}

/// Runs `pallet ARGS` and snapshots its transcript as `name`.
async fn snapshot(context: &TestContext, name: &str, arguments: &[&str]) -> Output {
    let output = pallet(context, arguments).await;
    let mut settings = settings(context);
    settings.set_snapshot_suffix(name);
    settings.bind(|| insta::assert_snapshot!("output", transcript(arguments, &output)));
    output
}

/// [`snapshot`] of a command line whose arguments have no spaces.
async fn snapshot_line(context: &TestContext, name: &str, line: &str) -> Output {
    let arguments: Vec<&str> = line.split_whitespace().collect();
    snapshot(context, name, &arguments).await
}

/// The id of the newest run in `runs.db`.
async fn newest_run(context: &TestContext) -> String {
    let listed = pallet(context, &["runs", "--db", "runs.db", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    listed[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_report_in_text_and_json() {
    let agent = LegacyAgent::start("tester", &["create_plan"]).await;
    let context = TestContext::new();
    context.write("report.yaml", REPORT);
    context.write("fails.yaml", FAILS);
    let url = agent.url();
    let run = format!("run --file report.yaml --agent {url} --db runs.db");
    let mut text: Vec<&str> = run.split_whitespace().collect();
    text.push("a factorial function");
    snapshot(&context, "run-text", &text).await;
    snapshot_line(&context, "run-json", &format!("{run} --json factorial")).await;
    let failed = format!("run --file fails.yaml --agent {url} --db runs.db");
    snapshot_line(&context, "run-failed", &failed).await;
    let quiet = format!("run --quiet --file fails.yaml --agent {url} --db runs.db");
    snapshot_line(&context, "run-failed-quiet", &quiet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stored_run_views_through_an_approval() {
    let agent = LegacyAgent::start("tester", &["create_plan"]).await;
    let context = TestContext::new();
    context.write("report.yaml", REPORT);
    context.write("gated.yaml", GATED);
    let url = agent.url();
    let report = format!("run --quiet --file report.yaml --agent {url} --db runs.db factorial");
    let report: Vec<&str> = report.split_whitespace().collect();
    pallet(&context, &report).await;
    let gated = format!("run --file gated.yaml --agent {url} --db runs.db");
    snapshot_line(&context, "run-waiting", &gated).await;
    let id = newest_run(&context).await;

    let cases = [
        ("runs", "runs".to_string()),
        ("runs-show-waiting", format!("runs show {id}")),
        (
            "approve-without-a-required-field",
            format!("approve {id} --actor ada"),
        ),
        (
            "approve",
            format!("approve {id} --field ticket=OPS-1 --actor ada --agent {url}"),
        ),
        ("runs-show-completed", format!("runs show {id}")),
        ("runs-show-json", format!("runs show {id} --json")),
        ("runs-history", format!("runs history {id}")),
        ("runs-history-json", format!("runs history {id} --json")),
        ("cancel-an-ended-run", format!("cancel {id}")),
    ];
    for (name, line) in cases {
        snapshot_line(&context, name, &format!("{line} --db runs.db")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_with_their_hints() {
    let context = TestContext::new();
    context.write(
        "one.yaml",
        "metadata: {id: one, name: One, version: 1.0.0}\nsteps:\n  - {id: fetch, skill: echo}\n",
    );
    let cases = [
        ("error-input-not-key-value", "run --offline --input nokey"),
        ("error-unknown-run", "runs show no-such-run --db runs.db"),
        (
            "error-agent-url-with-credentials",
            "run --file one.yaml --agent http://user:hunter2@127.0.0.1:9/ --offline",
        ),
        ("error-server-address", "runs --server ftp://127.0.0.1:1"),
        ("error-missing-workflow-file", "validate no/such/file.yaml"),
        ("error-unknown-command", "rnu"),
        ("error-unknown-flag", "run --fil one.yaml"),
    ];
    for (name, line) in cases {
        snapshot_line(&context, name, line).await;
    }
    // Paths relative to the repository, as a user there would type them.
    let arguments = [
        "validate",
        "workflows/code-generation.yaml",
        "tests/fixtures/invalid/unknown-key-typo.yaml",
    ];
    let output = context
        .pallet_at(repository())
        .args(arguments)
        .output()
        .unwrap();
    let mut settings = settings(&context);
    settings.set_snapshot_suffix("error-invalid-workflow");
    settings.bind(|| insta::assert_snapshot!("output", transcript(&arguments, &output)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inputs_of_a_workflow() {
    let context = TestContext::new();
    context.write("typed.yaml", crate::inputs::TYPED);
    context.write(
        "untyped.yaml",
        "metadata: {id: untyped, name: Untyped, version: 1.0.0}\nsteps:\n  - {id: a, skill: echo, inputs: {x: '{{ workflow.input.code }} {{ workflow.input.language }}'}}\n",
    );
    let cases = [
        ("help-inputs", "run --file typed.yaml --help-inputs"),
        (
            "help-inputs-json",
            "run --file typed.yaml --help-inputs --json",
        ),
        (
            "help-inputs-untyped",
            "run --file untyped.yaml --help-inputs",
        ),
        (
            "help-inputs-built-in",
            "run --offline --workflow code-generation-v1 --help-inputs",
        ),
        (
            "error-input-does-not-fit",
            "run --offline --file typed.yaml --input count=x --input mode:=1",
        ),
    ];
    for (name, line) in cases {
        snapshot_line(&context, name, line).await;
    }
}

#[test]
fn the_help_of_the_main_commands() {
    let context = TestContext::new();
    let commands: [&[&str]; 10] = [
        &[],
        &["run"],
        &["validate"],
        &["runs"],
        &["runs", "show"],
        &["approve"],
        &["push"],
        &["list"],
        &["agents", "list"],
        &["serve"],
    ];
    for command in commands {
        let arguments = [command, &["--help"]].concat();
        let output = context.pallet().args(&arguments).output().unwrap();
        let name = format!("help-{}", command.join("-"));
        let name = name.trim_end_matches('-');
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true, snapshot_suffix => name }, {
            insta::assert_snapshot!("output", transcript(&arguments, &output));
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_listings() {
    let registry = tokio::task::spawn_blocking(TestRegistry::start)
        .await
        .unwrap();
    let context = TestContext::new();
    let address = registry.address.as_str();
    // Copies, so that the paths shown are relative and no git checkout
    // decides the source and revision annotations.
    let files = ["code-generation", "parallel-analysis", "smart-router"].map(|name| {
        let file = format!("{name}.yaml");
        std::fs::copy(
            repository().join("workflows").join(&file),
            context.join(&file),
        )
        .unwrap();
        file
    });
    let push = format!(
        "push --registry {address} --source https://example.org/pallet.git --revision 0123456 {}",
        files.join(" ")
    );
    snapshot_line(&context, "push", &push).await;
    snapshot_line(&context, "push-unchanged", &push).await;
    let registry = format!("--registry {address}");
    let cases = [
        ("list", "list"),
        ("list-json", "list --json"),
        ("show", "show code-generation-v1"),
    ];
    for (name, line) in cases {
        snapshot_line(&context, name, &format!("{line} {registry}")).await;
    }

    let mut serve = context.pallet();
    serve
        .args(["agent", "serve"])
        .arg(repository().join("agents/plan.yaml"))
        .args(["--addr", "127.0.0.1:0"]);
    let (_agent, url) = Running::until_line(serve, "agent `plan` listening on ");
    let cases = [
        ("agents-push", format!("agents push {url}")),
        ("agents-list", "agents list".to_string()),
        ("agents-list-json", "agents list --json".to_string()),
    ];
    for (name, line) in cases {
        snapshot_line(&context, name, &format!("{line} {registry}")).await;
    }
}

/// A step that takes long enough to be drawn running, between two quick ones.
const SLOW: &str = "metadata: {id: slow, name: Slow, version: 1.0.0}
steps:
  - {id: plan, skill: create_plan, inputs: {title: \"{{ workflow.input.requirements }}\"}}
  - {id: wait, skill: sleep, inputs: {ms: 600}}
  - {id: check, skill: echo, inputs: {title: \"{{ steps.plan.outputs.title }}\"}}
";

#[tokio::test(flavor = "multi_thread")]
async fn the_progress_view_redraws_on_a_terminal() {
    let agent = LegacyAgent::start("tester", &["create_plan"]).await;
    let context = TestContext::new();
    context.write("slow.yaml", SLOW);
    let url = agent.url();
    let arguments = [
        "run",
        "--file",
        "slow.yaml",
        "--agent",
        &url,
        "--db",
        "runs.db",
        "factorial",
    ];
    let shown = {
        let context = context.clone();
        let arguments: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
            context.pallet_on_terminal(&arguments).output().unwrap()
        })
        .await
        .unwrap()
    };
    let raw = String::from_utf8_lossy(&shown.stdout).replace("\r\n", "\n");
    assert!(shown.status.success(), "{raw}");
    // Drawn in place: the cursor goes back up over the lines drawn before,
    // and the slow step was shown running with a spinner.
    assert!(
        raw.contains("\x1b[3F") || raw.contains("\x1b[2F"),
        "{raw:?}"
    );
    assert!(raw.contains("wait (sleep) running"), "{raw:?}");
    // What stays on the screen: the last frame, then the report.
    let last = raw.rsplit("\x1b[J").next().unwrap();
    let mut settings = settings(&context);
    settings.set_snapshot_suffix("progress-terminal");
    settings.bind(|| insta::assert_snapshot!("output", last));
}
