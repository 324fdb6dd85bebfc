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
    let run = [
        "run",
        "--file",
        "report.yaml",
        "--agent",
        &url,
        "--db",
        "runs.db",
    ];
    let text = [&run[..], &["a factorial function"]].concat();
    snapshot(&context, "run-text", &text).await;
    let json = [&run[..], &["--json", "a factorial function"]].concat();
    snapshot(&context, "run-json", &json).await;
    let failed = [
        "run",
        "--file",
        "fails.yaml",
        "--agent",
        &url,
        "--db",
        "runs.db",
    ];
    snapshot(&context, "run-failed", &failed).await;
    let quiet = [
        "run",
        "--quiet",
        "--file",
        "fails.yaml",
        "--agent",
        &url,
        "--db",
        "runs.db",
    ];
    snapshot(&context, "run-failed-quiet", &quiet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stored_run_views_through_an_approval() {
    let agent = LegacyAgent::start("tester", &["create_plan"]).await;
    let context = TestContext::new();
    context.write("report.yaml", REPORT);
    context.write("gated.yaml", GATED);
    let url = agent.url();
    let db = ["--db", "runs.db"];
    let report = [
        "run",
        "--quiet",
        "--file",
        "report.yaml",
        "--agent",
        &url,
        "requirements",
    ];
    pallet(&context, &[&report[..], &db].concat()).await;
    let gated = ["run", "--file", "gated.yaml", "--agent", &url];
    snapshot(&context, "run-waiting", &[&gated[..], &db].concat()).await;
    let id = newest_run(&context).await;

    snapshot(&context, "runs", &[&["runs"][..], &db].concat()).await;
    let waiting = [&["runs", "show", &id][..], &db].concat();
    snapshot(&context, "runs-show-waiting", &waiting).await;
    let approve = [&["approve", &id, "--actor", "ada"][..], &db].concat();
    snapshot(&context, "approve-without-a-required-field", &approve).await;
    let approve = [
        &["approve", &id, "--field", "ticket=OPS-1", "--actor", "ada"][..],
        &db,
        &["--agent", &url],
    ]
    .concat();
    snapshot(&context, "approve", &approve).await;
    let show = [&["runs", "show", &id][..], &db].concat();
    snapshot(&context, "runs-show-completed", &show).await;
    snapshot(
        &context,
        "runs-show-json",
        &[&show[..], &["--json"]].concat(),
    )
    .await;
    let history = [&["runs", "history", &id][..], &db].concat();
    snapshot(&context, "runs-history", &history).await;
    snapshot(
        &context,
        "runs-history-json",
        &[&history[..], &["--json"]].concat(),
    )
    .await;
    let cancel = [&["cancel", &id][..], &db].concat();
    snapshot(&context, "cancel-an-ended-run", &cancel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_with_their_hints() {
    let context = TestContext::new();
    context.write(
        "one.yaml",
        "metadata: {id: one, name: One, version: 1.0.0}\nsteps:\n  - {id: fetch, skill: echo}\n",
    );
    let cases: [(&str, &[&str]); 7] = [
        (
            "error-input-not-key-value",
            &["run", "--offline", "--input", "nokey"],
        ),
        (
            "error-unknown-run",
            &["runs", "show", "no-such-run", "--db", "runs.db"],
        ),
        (
            "error-agent-url-with-credentials",
            &[
                "run",
                "--file",
                "one.yaml",
                "--agent",
                "http://user:hunter2@127.0.0.1:9/",
                "--offline",
            ],
        ),
        (
            "error-server-address",
            &["runs", "--server", "ftp://127.0.0.1:1"],
        ),
        (
            "error-missing-workflow-file",
            &["validate", "no/such/file.yaml"],
        ),
        ("error-unknown-command", &["rnu"]),
        ("error-unknown-flag", &["run", "--fil", "one.yaml"]),
    ];
    for (name, arguments) in cases {
        snapshot(&context, name, arguments).await;
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
    let mut push = vec!["push", "--registry", address];
    push.extend([
        "--source",
        "https://example.org/pallet.git",
        "--revision",
        "0123456",
    ]);
    push.extend(files.iter().map(String::as_str));
    snapshot(&context, "push", &push).await;
    snapshot(&context, "push-unchanged", &push).await;
    snapshot(&context, "list", &["list", "--registry", address]).await;
    snapshot(
        &context,
        "list-json",
        &["list", "--json", "--registry", address],
    )
    .await;
    snapshot(
        &context,
        "show",
        &["show", "code-generation-v1", "--registry", address],
    )
    .await;

    let mut serve = context.pallet();
    serve
        .args(["agent", "serve"])
        .arg(repository().join("agents/plan.yaml"))
        .args(["--addr", "127.0.0.1:0"]);
    let (_agent, url) = Running::until_line(serve, "agent `plan` listening on ");
    snapshot(
        &context,
        "agents-push",
        &["agents", "push", &url, "--registry", address],
    )
    .await;
    snapshot(
        &context,
        "agents-list",
        &["agents", "list", "--registry", address],
    )
    .await;
    snapshot(
        &context,
        "agents-list-json",
        &["agents", "list", "--json", "--registry", address],
    )
    .await;
}
