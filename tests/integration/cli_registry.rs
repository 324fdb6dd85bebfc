//! The registry commands of the CLI and `run --workflow` against a real
//! docker-registry, black-box on the pallet binary; and scripts/bootstrap.sh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TestContext;
use crate::support::pallet::Spawned;

use crate::support::registry::TestRegistry;

const AGENTS: [&str; 7] = [
    "plan",
    "build",
    "test",
    "router",
    "security",
    "performance",
    "aggregate",
];

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `pallet ARGS` in `scratch` with `environment` added.
fn pallet_with(scratch: &TestContext, arguments: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = scratch.pallet();
    command.args(arguments);
    for (key, value) in environment {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> &Output {
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    output
}

/// The stdout of a command that must succeed, as JSON.
fn succeeded_json(output: &Output) -> Value {
    serde_json::from_str(&stdout(succeeded(output))).unwrap()
}

fn closed_port_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

fn workflow_files() -> Vec<String> {
    ["code-generation", "parallel-analysis", "smart-router"]
        .map(|name| {
            repository_root()
                .join("workflows")
                .join(format!("{name}.yaml"))
                .display()
                .to_string()
        })
        .to_vec()
}

/// Pushes the example workflows; returns id -> digest.
fn push_examples(scratch: &TestContext, registry: &str) -> Vec<Value> {
    let mut arguments = vec!["push", "--json", "--registry", registry];
    let files = workflow_files();
    arguments.extend(files.iter().map(String::as_str));
    let output = scratch.output(&arguments);
    stdout(succeeded(&output))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `pallet agent serve` processes of the example agents on free ports; killed when dropped.
struct AgentProcesses {
    children: Vec<Spawned>,
    urls: Vec<String>,
}

impl AgentProcesses {
    fn start(scratch: &TestContext) -> AgentProcesses {
        let mut processes = AgentProcesses {
            children: Vec::new(),
            urls: Vec::new(),
        };
        for name in AGENTS {
            let address = closed_port_address();
            let definition = repository_root()
                .join("agents")
                .join(format!("{name}.yaml"));
            let child = Spawned::spawn(
                scratch
                    .pallet()
                    .arg("agent")
                    .arg("serve")
                    .arg(definition)
                    .arg("--addr")
                    .arg(&address)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            processes.children.push(child);
            processes.urls.push(format!("http://{address}"));
        }
        for address in &processes.urls {
            wait_for_port(address.trim_start_matches("http://"));
        }
        processes
    }
}

fn wait_for_port(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn push_list_show_pull_and_immutability() {
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    let pushed = push_examples(&scratch, &registry.address);
    assert_eq!(pushed.len(), 3);
    let code_generation = &pushed[0];
    assert_eq!(code_generation["name"], "code-generation-v1");
    assert_eq!(code_generation["repository"], "workflows/code-generation");
    assert_eq!(code_generation["uploaded"], true);
    let digest = code_generation["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // Identical content again: nothing written, same digest.
    let again = push_examples(&scratch, &registry.address);
    assert_eq!(again[0]["digest"], digest.as_str());
    assert_eq!(again[0]["uploaded"], false);

    let list =
        succeeded_json(&scratch.output(&["list", "--json", "--registry", &registry.address]));
    let repositories: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["repository"].as_str().unwrap())
        .collect();
    assert_eq!(
        repositories,
        [
            "workflows/code-generation",
            "workflows/parallel-analysis",
            "workflows/smart-router"
        ]
    );
    assert_eq!(list[0]["versions"][0]["digest"], digest.as_str());

    let show = succeeded_json(&scratch.output(&[
        "show",
        "code-generation-v1",
        "--json",
        "--registry",
        &registry.address,
    ]));
    assert_eq!(show["digest"], digest.as_str());
    assert_eq!(show["version"], "1.0.0");
    assert_eq!(show["config"]["id"], "code-generation-v1");
    assert_eq!(
        show["annotations"]["org.opencontainers.image.title"],
        "code-generation.yaml"
    );

    let pulled = scratch.join("pulled");
    let reference = format!("code-generation@{digest}");
    let pull = scratch.output(&[
        "pull",
        &reference,
        "-o",
        pulled.to_str().unwrap(),
        "--registry",
        &registry.address,
    ]);
    succeeded(&pull);
    assert_eq!(
        std::fs::read(pulled.join("code-generation.yaml")).unwrap(),
        std::fs::read(&workflow_files()[0]).unwrap()
    );

    push_of_a_changed_file_is_refused_then_forced(&scratch, &registry.address, &digest);
    push_with_an_invalid_file_pushes_nothing(&scratch, &registry.address);
}

/// A changed file under the same version is refused, then forced.
fn push_of_a_changed_file_is_refused_then_forced(
    scratch: &TestContext,
    registry: &str,
    digest: &str,
) {
    let changed = scratch.join("code-generation.yaml");
    let text = std::fs::read_to_string(&workflow_files()[0]).unwrap();
    std::fs::write(&changed, format!("{text}\n# changed\n")).unwrap();
    let changed = changed.to_str().unwrap();
    let refused = scratch.output(&["push", changed, "--registry", registry]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("already exists"),
        "{}",
        stderr(&refused)
    );
    let forced = scratch.output(&["push", "--force", changed, "--registry", registry]);
    let forced_line = stdout(succeeded(&forced));
    assert!(
        forced_line.starts_with("code-generation-v1 1.0.0 sha256:"),
        "{forced_line}"
    );
    assert!(!forced_line.contains(digest), "{forced_line}");
}

/// An invalid file among valid ones: nothing is pushed.
fn push_with_an_invalid_file_pushes_nothing(scratch: &TestContext, registry: &str) {
    let text = std::fs::read_to_string(&workflow_files()[0]).unwrap();
    let invalid = scratch.join("invalid.yaml");
    std::fs::write(&invalid, "metadata:\n  id: broken-v1\nsteps: 3\n").unwrap();
    let new_valid = scratch.join("new.yaml");
    std::fs::write(
        &new_valid,
        text.replace("id: code-generation-v1", "id: brand-new-v1"),
    )
    .unwrap();
    let rejected = scratch.output(&[
        "push",
        new_valid.to_str().unwrap(),
        invalid.to_str().unwrap(),
        "--registry",
        registry,
    ]);
    assert_eq!(rejected.status.code(), Some(2), "{}", stderr(&rejected));
    assert!(
        stderr(&rejected).contains("invalid.yaml"),
        "{}",
        stderr(&rejected)
    );
    let list = succeeded_json(&scratch.output(&["list", "--json", "--registry", registry]));
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
}

#[test]
fn run_resolves_through_the_registry_with_registry_agents_and_cache() {
    let mut registry = TestRegistry::start();
    let address = registry.address.clone();
    let scratch = TestContext::new();
    let pushed = push_examples(&scratch, &address);
    let digest = pushed[0]["digest"].as_str().unwrap().to_string();
    let agents = AgentProcesses::start(&scratch);
    push_the_cards_and_a_dead_one(&scratch, &agents, &address);

    let run = scratch.output(&[
        "run",
        "--workflow",
        "code-generation-v1",
        "--registry",
        &address,
        "Create a factorial function",
    ]);
    let messages = stderr(succeeded(&run));
    assert!(messages.contains("agent cards in registry"), "{messages}");
    assert!(!messages.contains("built-in"), "{messages}");
    assert!(messages.contains(&digest), "{messages}");
    let metadata = read_json(&scratch.join("app/metadata.json"));
    assert_eq!(metadata["digest"], digest.as_str());
    assert_eq!(
        metadata["workflow_source"],
        format!("{address}/workflows/code-generation@{digest}")
    );

    // Warm, with agents from the registry: the workflow's tag check, then one
    // catalog request and one tag list per agent card (8).
    let before = registry.logged_requests();
    succeeded(&scratch.output(&[
        "run",
        "--workflow",
        "code-generation-v1",
        "--registry",
        &address,
        "Create a factorial function",
    ]));
    assert_eq!(registry.logged_requests() - before, 1 + 1 + 8);

    // Warm: one round-trip (the tag check), agents given explicitly.
    let mut warm = vec![
        "run",
        "--workflow",
        "code-generation-v1",
        "--registry",
        &address,
    ];
    for url in &agents.urls {
        warm.extend(["--agent", url.as_str()]);
    }
    warm.push("Create a factorial function");
    let before = registry.logged_requests();
    succeeded(&scratch.output(&warm));
    assert_eq!(registry.logged_requests() - before, 1);

    an_unknown_skill_fails_before_the_first_step(&scratch, &address);

    registry.stop();
    let mut offline = warm.clone();
    offline.insert(1, "--offline");
    let run = scratch.output(&offline);
    assert!(
        stderr(succeeded(&run)).contains(&digest),
        "{}",
        stderr(&run)
    );
    let mut missing = offline.clone();
    missing[3] = "never-pushed-v1";
    // Not in the cache, then not in the local sources either: a workflow that
    // exists nowhere is bad input, as without a registry.
    let run = scratch.output(&missing);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("not in the local cache"),
        "{}",
        stderr(&run)
    );
}

/// Pushes the cards of `agents`, and a card whose agent does not answer.
fn push_the_cards_and_a_dead_one(scratch: &TestContext, agents: &AgentProcesses, address: &str) {
    let mut push_cards = vec!["agents", "push", "--json", "--registry", address];
    push_cards.extend(agents.urls.iter().map(String::as_str));
    succeeded(&scratch.output(&push_cards));
    // A card whose agent does not answer, offering the plan skill too.
    let card = fetch_json(&format!("{}/.well-known/agent-card.json", agents.urls[0]));
    let mut dead = card.clone();
    dead["name"] = "dead planner".into();
    dead["supportedInterfaces"][0]["url"] = format!("http://{}", closed_port_address()).into();
    let dead_file = scratch.join("dead.json");
    std::fs::write(&dead_file, dead.to_string()).unwrap();
    succeeded(&scratch.output(&[
        "agents",
        "push",
        dead_file.to_str().unwrap(),
        "--registry",
        address,
    ]));
    let listed =
        succeeded_json(&scratch.output(&["agents", "list", "--json", "--registry", address]));
    assert_eq!(listed.as_array().unwrap().len(), 8, "{listed}");
}

/// An unknown skill fails before the first step, naming what was searched.
fn an_unknown_skill_fails_before_the_first_step(scratch: &TestContext, address: &str) {
    let unknown = scratch.join("unknown.yaml");
    std::fs::write(
        &unknown,
        "metadata:\n  id: unknown-v1\n  name: unknown\n  version: 1.0.0\nsteps:\n  - { id: plan, skill: create_plan }\n  - { id: launch, skill: launch_rocket }\n",
    )
    .unwrap();
    let run = scratch.output(&[
        "run",
        "--file",
        unknown.to_str().unwrap(),
        "--registry",
        address,
        "x",
    ]);
    let messages = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{messages}");
    assert!(messages.contains("`launch_rocket`"), "{messages}");
    assert!(
        messages.contains(&format!("registry {address}")),
        "{messages}"
    );
    let record = read_json(&scratch.join("app/run.json"));
    let started = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["status"] != "skipped" || step["attempts"] != 0)
        .count();
    assert_eq!(started, 0, "{record}");
}

/// A blocking fetch from a sync test, with curl (installed wherever the tests run).
fn fetch_json(url: &str) -> Value {
    let output = Command::new("curl").args(["-fsS", url]).output().unwrap();
    assert!(output.status.success(), "curl {url}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_broken_credential_helper_is_a_warning_not_a_failure() {
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    std::fs::create_dir_all(scratch.join("docker")).unwrap();
    std::fs::write(
        scratch.join("docker/config.json"),
        r#"{"credsStore": "pallet-test-absent-helper"}"#,
    )
    .unwrap();
    push_examples(&scratch, &registry.address);
    let list = scratch.output(&["list", "--json", "--registry", &registry.address]);
    let messages = stderr(succeeded(&list));
    assert!(
        messages.contains("docker-credential-pallet-test-absent-helper"),
        "{messages}"
    );
}

#[test]
fn configured_registry_down_is_an_error() {
    let scratch = TestContext::new();
    let closed = closed_port_address();
    let run = pallet_with(
        &scratch,
        &[
            "run",
            "--workflow",
            "code-generation-v1",
            "Create a factorial function",
        ],
        &[("PALLET_REGISTRY", closed.as_str())],
    );
    let messages = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{messages}");
    assert!(messages.contains("not answering"), "{messages}");
    // No silent fallback: nothing ran.
    assert!(!messages.contains("none answering"), "{messages}");
    assert!(!scratch.join("app").exists(), "{messages}");

    let script = scratch
        .script(repository_root().join("scripts/push_workflows.sh"))
        .env("PALLET_REGISTRY", &closed)
        .output()
        .unwrap();
    let messages = stderr(&script);
    assert_eq!(script.status.code(), Some(1), "{messages}");
    assert!(
        messages.contains(&format!("the registry at {closed} does not answer")),
        "{messages}"
    );
}

/// The default registry is localhost:5000; the hidden PALLET_DEFAULT_REGISTRY
/// points it at a closed port so the test does not depend on what runs there.
#[test]
fn absent_default_registry_falls_back_to_the_builtin_workflow() {
    let scratch = TestContext::new();
    let closed = closed_port_address();
    let run = pallet_with(
        &scratch,
        &["run", "Create a factorial function"],
        &[("PALLET_DEFAULT_REGISTRY", closed.as_str())],
    );
    let messages = stderr(succeeded(&run));
    let fallback: Vec<&str> = messages
        .lines()
        .filter(|line| line.contains("none answering"))
        .collect();
    assert_eq!(fallback.len(), 1, "{messages}");
    assert!(fallback[0].contains("built-in"), "{messages}");
    let metadata = read_json(&scratch.join("app/metadata.json"));
    assert_eq!(metadata["digest"], "built-in");
}

/// The first of `count` consecutive free ports above `above`.
fn free_port_run(count: u16, above: u16) -> u16 {
    'search: for base in (above + 1..60000).step_by(97) {
        let mut held = Vec::new();
        for port in base..base + count {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => held.push(listener),
                Err(_) => continue 'search,
            }
        }
        return base;
    }
    panic!("no run of {count} free ports");
}

fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// scripts/bootstrap.sh run from a scratch directory on free ports, its state
/// under the scratch directory; `stop` runs again when dropped, so a failing
/// test leaves none of the processes it started (they run in sessions of
/// their own, out of reach of a process-group guard).
struct Bootstrap<'a> {
    scratch: &'a TestContext,
    registry_port: String,
    agent_port: String,
    state: PathBuf,
}

impl Bootstrap<'_> {
    fn new(scratch: &TestContext) -> Bootstrap<'_> {
        let registry_port = free_port_run(1, 20000);
        let agent_port = free_port_run(7, registry_port).to_string();
        Bootstrap {
            scratch,
            registry_port: registry_port.to_string(),
            agent_port,
            state: scratch.join("state"),
        }
    }

    /// `scripts/bootstrap.sh ARGS` (no ARGS: start).
    fn run(&self, arguments: &[&str]) -> Output {
        self.scratch
            .script(repository_root().join("scripts/bootstrap.sh"))
            .args(arguments)
            .env("PALLET_REGISTRY_PORT", &self.registry_port)
            .env("PALLET_AGENT_BASE_PORT", &self.agent_port)
            .env("PALLET_BOOTSTRAP_DIR", &self.state)
            .output()
            .unwrap()
    }

    /// The PIDs in its pidfiles.
    fn pids(&self) -> Vec<String> {
        std::fs::read_dir(&self.state)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        entry
                            .path()
                            .extension()
                            .is_some_and(|extension| extension == "pid")
                    })
                    .map(|entry| {
                        std::fs::read_to_string(entry.path())
                            .unwrap()
                            .trim()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Bootstrap<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// The three example runs through the registry at `registry`: what went wrong.
fn run_the_examples_through(scratch: &TestContext, registry: &str) -> Vec<String> {
    let runs: [&[&str]; 3] = [
        &[
            "--workflow",
            "code-generation-v1",
            "Create a factorial function",
        ],
        &[
            "--workflow",
            "parallel-analysis-v1",
            "--input",
            "code=def f(x):\n    return eval(x)\n",
            "--input",
            "language=python",
        ],
        &[
            "--workflow",
            "smart-router-v1",
            "Create a function that adds two numbers",
        ],
    ];
    let mut failures = Vec::new();
    for arguments in runs {
        let mut command = vec!["run", "--registry", registry];
        command.extend_from_slice(arguments);
        let run = scratch.output(&command);
        let messages = stderr(&run);
        let record = std::fs::read_to_string(scratch.join("app/run.json")).unwrap_or_default();
        // The router hands code requests to code-generation-v1, resolved in the registry too.
        if arguments[1] == "smart-router-v1"
            && !record.contains(&format!("{registry}/workflows/code-generation@sha256:"))
        {
            failures.push(format!("sub-workflow not from the registry: {record}"));
        }
        if !run.status.success()
            || !messages.contains("agent cards in registry")
            || !messages.contains("@sha256:")
        {
            failures.push(format!("{arguments:?}: {:?}\n{messages}", run.status));
        }
    }
    failures
}

#[test]
fn bootstrap_then_all_examples_through_registry_discovery_then_stop() {
    let scratch = TestContext::new();
    let bootstrap = Bootstrap::new(&scratch);
    let started = bootstrap.run(&[]);
    let stop = || bootstrap.run(&["stop"]);
    let pids = bootstrap.pids();
    if !started.status.success() {
        stop();
        panic!(
            "bootstrap failed:\n{}\n{}",
            stdout(&started),
            stderr(&started)
        );
    }
    assert_eq!(pids.len(), 8, "{}", stdout(&started));
    assert!(
        stdout(&started).contains("code-generation-v1 1.0.0 sha256:"),
        "{}",
        stdout(&started)
    );

    // Twice is harmless: nothing new is started, nothing pushed again.
    let again = bootstrap.run(&[]);
    let again_text = stdout(&again);
    if !again.status.success()
        || again_text.matches("already running").count() != 8
        || !again_text.contains("(unchanged)")
        || again_text.contains("(pushed)")
    {
        stop();
        panic!("second bootstrap:\n{again_text}\n{}", stderr(&again));
    }

    let registry = format!("127.0.0.1:{}", bootstrap.registry_port);
    let failures = run_the_examples_through(&scratch, &registry);
    let status = stdout(&bootstrap.run(&["status"]));
    let stopped = stop();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(status.matches(": running").count(), 8, "{status}");
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|pid| !process_gone(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<&String> = pids.iter().filter(|pid| !process_gone(pid)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
}

/// One tag whose manifest the registry cannot give (its blob deleted from the
/// registry's storage) is a warning row of `pallet list`; the others are listed.
#[test]
fn list_shows_an_unreadable_tag_as_a_warning_and_lists_the_others() {
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    let pushed = push_examples(&scratch, &registry.address);
    let broken = pushed
        .iter()
        .find(|entry| entry["repository"] == "workflows/smart-router")
        .unwrap();
    let hex = broken["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex);
    std::fs::remove_dir_all(&blob).unwrap_or_else(|error| panic!("{}: {error}", blob.display()));

    // Another machine's view: nothing of it in the local cache.
    let scratch = TestContext::new();
    let text = scratch.output(&["list", "--registry", &registry.address]);
    let listed = stdout(succeeded(&text));
    assert!(
        listed.contains("workflows/code-generation\n  1.0.0 sha256:"),
        "{listed}"
    );
    assert!(
        listed.contains("workflows/parallel-analysis\n  1.0.0 sha256:"),
        "{listed}"
    );
    // The router's rows: its `v1` alias (not read) and the warning.
    let router = listed
        .split("workflows/smart-router\n")
        .nth(1)
        .unwrap_or_default();
    assert!(
        router.contains("  warning: tag 1.0.0 cannot be read: ")
            && !router.contains("1.0.0 sha256:"),
        "{listed}"
    );
    let json =
        succeeded_json(&scratch.output(&["list", "--json", "--registry", &registry.address]));
    let router = json
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["repository"] == "workflows/smart-router")
        .unwrap();
    assert_eq!(router["versions"], serde_json::json!([]), "{router}");
    assert_eq!(router["unreadable"][0]["tag"], "1.0.0", "{router}");
    assert_eq!(json[0]["versions"][0]["version"], "1.0.0", "{json}");
}
