//! The Python original's own kind of agents (FastAPI + pydantic 2, legacy
//! protocol) and its registry layout (`workflows/<stem>:v1`,
//! `agents/<name>:v1` with `*_agent_card.json`), against real `pallet`
//! processes, real agent processes and a real docker-registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::original_agent::OriginalAgent;
use crate::support::registry::{TestRegistry, push_like_original};

const PALLET: &str = env!("CARGO_BIN_EXE_pallet");

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp directory holding HOME, every XDG directory and the working
/// directory of the `pallet` processes; nothing comes from the caller's shell.
struct Scratch {
    directory: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            directory: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }

    fn pallet(&self, arguments: &[&str]) -> Output {
        let root = self.path();
        let mut command = Command::new(PALLET);
        command
            .current_dir(root)
            .env("HOME", root.join("home"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_STATE_HOME", root.join("state"))
            .env("DOCKER_CONFIG", root.join("docker"))
            .env("NO_COLOR", "1");
        for (name, _) in std::env::vars() {
            if name.starts_with("PALLET_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command.args(arguments).output().unwrap()
    }
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
    let scratch = Scratch::new();
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
    let output = scratch.pallet(&arguments);
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
    let scratch = Scratch::new();
    let output = scratch.pallet(&[
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
