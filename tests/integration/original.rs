//! The Python original's own kind of agents (FastAPI + pydantic 2, legacy
//! protocol) and its registry layout (`workflows/<stem>:v1`,
//! `agents/<name>:v1` with `*_agent_card.json`), against real `pallet`
//! processes, real agent processes and a real docker-registry.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::TestContext;
use crate::support::original_agent::OriginalAgent;
use crate::support::registry::{TestRegistry, push_like_original};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: &Output) -> &Output {
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// The three agents the code-generation workflow needs, one skill each.
async fn code_generation_agents() -> Vec<(&'static str, OriginalAgent)> {
    let (planner, coder, reviewer) = tokio::join!(
        OriginalAgent::start("planner", &["create_plan"]),
        OriginalAgent::start("coder", &["generate_code"]),
        OriginalAgent::start("reviewer", &["review_code"]),
    );
    vec![
        ("planner", planner),
        ("coder", coder),
        ("reviewer", reviewer),
    ]
}

/// The run reached the end: the reviewer approved the coder's code.
fn assert_code_generation_completed(output: &Output, agents: &[(&str, OriginalAgent)]) {
    succeeded(output);
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["output"]["result"]["approved"], true, "{record}");
    assert_eq!(record["output"]["result"]["language"], "python", "{record}");
    for (name, agent) in agents {
        let requests = agent.requests();
        assert_eq!(requests.len(), 1, "{name}: {requests:?}");
        assert!(requests[0]["id"].is_string(), "{name}: {requests:?}");
    }
}

fn code_generation_file() -> String {
    repository_root()
        .join("workflows/code-generation.yaml")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn code_generation_runs_on_fastapi_agents_given_with_agent() {
    let agents = code_generation_agents().await;
    let scratch = TestContext::new();
    let mut arguments = vec!["run".to_string()];
    for (_, agent) in &agents {
        arguments.extend(["--agent".to_string(), agent.card_url()]);
    }
    arguments.extend([
        "--file".to_string(),
        code_generation_file(),
        "--json".to_string(),
        "Create a factorial function".to_string(),
    ]);
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = scratch.output(&arguments);
    assert_code_generation_completed(&output, &agents);
}

/// Pushes what the original pushed: its workflow file and its agents' cards.
async fn push_the_original_way(registry: &TestRegistry, agents: &[(&str, OriginalAgent)]) {
    let workflow = std::fs::read(code_generation_file()).unwrap();
    push_like_original(
        &registry.address,
        "workflows/code-generation",
        "v1",
        "code-generation.yaml",
        "application/yaml",
        &workflow,
    )
    .await;
    for (name, agent) in agents {
        push_like_original(
            &registry.address,
            &format!("agents/{name}"),
            "v1",
            &format!("{name}_agent_card.json"),
            "application/json",
            &agent.card().await,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn code_generation_runs_on_fastapi_agents_found_in_the_registry() {
    let agents = code_generation_agents().await;
    let registry = TestRegistry::start();
    push_the_original_way(&registry, &agents).await;
    let scratch = TestContext::new();
    let output = scratch.output(&[
        "run",
        "--registry",
        &registry.address,
        "--workflow",
        "code-generation-v1",
        "--json",
        "Create a factorial function",
    ]);
    assert!(
        text(&output.stderr).contains("agent cards in registry"),
        "{}",
        text(&output.stderr)
    );
    assert_code_generation_completed(&output, &agents);
}

#[tokio::test(flavor = "multi_thread")]
async fn show_reads_the_originals_v1_tag_and_agents_list_its_cards_skills() {
    let agents = code_generation_agents().await;
    let registry = TestRegistry::start();
    push_the_original_way(&registry, &agents).await;
    let scratch = TestContext::new();

    let shown = scratch.output(&[
        "show",
        "--registry",
        &registry.address,
        "code-generation@v1",
    ]);
    let shown = text(&succeeded(&shown).stdout);
    assert!(shown.contains("tag          v1\n"), "{shown}");
    assert!(shown.contains("version      1.0.0\n"), "{shown}");
    assert!(
        shown.contains("file         code-generation.yaml\n"),
        "{shown}"
    );

    let listed = scratch.output(&["agents", "list", "--registry", &registry.address]);
    let listed = text(&succeeded(&listed).stdout);
    for (name, skill) in [
        ("planner", "create_plan"),
        ("coder", "generate_code"),
        ("reviewer", "review_code"),
    ] {
        let row = listed
            .lines()
            .find(|line| line.starts_with(&format!("agents/{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {listed}"));
        assert!(row.contains(&format!("skills: {skill}")), "{row}");
        assert!(row.contains(" 1.0.0 sha256:"), "{row}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_push_reads_the_legacy_card_and_defaults_its_version() {
    let agent = OriginalAgent::start("planner", &["create_plan"]).await;
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    let pushed = scratch.output(&[
        "agents",
        "push",
        "--registry",
        &registry.address,
        "--json",
        &agent.url(),
    ]);
    let messages = text(&succeeded(&pushed).stderr);
    assert!(
        messages.contains("has no `version`: pushed as 1.0.0"),
        "{messages}"
    );
    let line: Value = serde_json::from_slice(&pushed.stdout).unwrap();
    assert_eq!(line["file"], agent.card_url(), "{line}");
    assert_eq!(
        (&line["repository"], &line["tag"], &line["alias"]),
        (&"agents/planner".into(), &"1.0.0".into(), &"v1".into()),
        "{line}"
    );
    let listed = scratch.output(&["agents", "list", "--registry", &registry.address]);
    let listed = text(&succeeded(&listed).stdout);
    assert!(listed.contains("skills: create_plan"), "{listed}");
}

/// Runs a command, failing the test with its output when it fails.
fn checked(command: &mut Command) -> Vec<u8> {
    let output = command.output().expect("the program runs");
    succeeded(&output);
    output.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_originals_tools_read_what_pallet_pushed_at_v1() {
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    let pushed = scratch.output(&[
        "push",
        "--registry",
        &registry.address,
        "--json",
        &code_generation_file(),
    ]);
    let line: Value = serde_json::from_slice(&succeeded(&pushed).stdout).unwrap();
    // The original pushed `workflows/<file stem>`: the same repository here.
    assert_eq!(line["repository"], "workflows/code-generation", "{line}");
    assert_eq!(line["alias"], "v1", "{line}");
    let digest = line["digest"].as_str().unwrap();

    let v1 = format!("{}/workflows/code-generation:v1", registry.address);
    let raw = checked(scratch.command("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{v1}"),
    ]));
    assert_eq!(pallet::registry::artifact::sha256_digest(&raw), digest);

    let out = TestContext::new();
    checked(
        out.command(crate::support::a2a_peer::python())
            .arg("-c")
            .arg(
                "import sys\nfrom oras.client import OrasClient\n\
                 OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])",
            )
            .arg(&v1)
            .arg(out.path())
            .current_dir(out.path()),
    );
    assert_eq!(
        std::fs::read(out.path().join("code-generation.yaml")).unwrap(),
        std::fs::read(code_generation_file()).unwrap()
    );

    // --no-alias leaves `v1` where it was.
    let newer = scratch.join("code-generation.yaml");
    let text_v1 = std::fs::read_to_string(code_generation_file()).unwrap();
    std::fs::write(&newer, text_v1.replace("version: 1.0.0", "version: 1.1.0")).unwrap();
    let quiet = scratch.output(&[
        "push",
        "--registry",
        &registry.address,
        "--no-alias",
        newer.to_str().unwrap(),
    ]);
    let quiet = text(&succeeded(&quiet).stdout);
    assert!(!quiet.contains("alias"), "{quiet}");
    let raw = checked(scratch.command("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{v1}"),
    ]));
    assert_eq!(pallet::registry::artifact::sha256_digest(&raw), digest);
}
