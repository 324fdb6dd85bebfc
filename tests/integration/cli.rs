//! Black-box tests of the `pallet` binary: validate, run (main job, the three
//! examples over A2A and the legacy protocol), exit codes and error output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::Spawned;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `pallet agent serve` processes for every example agent; killed on drop.
struct ServedAgents {
    _children: Vec<Spawned>,
    _home: TestContext,
    urls: Vec<String>,
}

impl ServedAgents {
    fn start() -> ServedAgents {
        let home = TestContext::new();
        let mut children = Vec::new();
        let mut urls = Vec::new();
        let mut definitions: Vec<PathBuf> = std::fs::read_dir(repository().join("agents"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml")
            })
            .collect();
        definitions.sort();
        for definition in definitions {
            let mut child = Spawned::spawn(
                home.pallet_at(repository())
                    .args(["agent", "serve"])
                    .arg(&definition)
                    .args(["--addr", "127.0.0.1:0"])
                    .stderr(Stdio::piped()),
            );
            let mut first_line = String::new();
            BufReader::new(child.stderr.take().unwrap())
                .read_line(&mut first_line)
                .unwrap();
            let url = first_line
                .split_whitespace()
                .find(|word| word.starts_with("http://"))
                .unwrap_or_else(|| panic!("no address in {first_line:?}"))
                .to_string();
            children.push(child);
            urls.push(url);
        }
        ServedAgents {
            _children: children,
            _home: home,
            urls,
        }
    }
}

fn run_with_agents(context: &TestContext, agents: &[String], arguments: &[&str]) -> Output {
    let mut command = context.pallet();
    command.arg("run");
    for agent in agents {
        command.args(["--agent", agent]);
    }
    command.args(arguments).output().unwrap()
}

#[test]
fn validate_accepts_the_examples_and_rejects_fixtures_with_locations() {
    let home = TestContext::new();
    let valid = home
        .pallet_at(repository())
        .args([
            "validate",
            "workflows/code-generation.yaml",
            "workflows/parallel-analysis.yaml",
            "workflows/smart-router.yaml",
            "workflows/refine-code.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(valid.status.code(), Some(0), "{}", text(&valid.stderr));
    assert_eq!(text(&valid.stdout).matches("ok: workflows/").count(), 4);

    let invalid = home
        .pallet_at(repository())
        .args([
            "validate",
            "workflows/code-generation.yaml",
            "tests/fixtures/invalid/unknown-key-typo.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    let stderr = text(&invalid.stderr);
    assert!(
        stderr.contains(
            "error: tests/fixtures/invalid/unknown-key-typo.yaml is not a valid workflow"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("tests/fixtures/invalid/unknown-key-typo.yaml:7:5: unknown key `skil`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: did you mean `skill`?"), "{stderr}");
}

#[test]
fn validate_json_lists_diagnostics_per_file() {
    let home = TestContext::new();
    let output = home
        .pallet_at(repository())
        .args([
            "validate",
            "--json",
            "workflows/smart-router.yaml",
            "tests/fixtures/invalid/forward-reference.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[0]["workflow"]["id"], "smart-router-v1");
    assert_eq!(reports[0]["warnings"][0]["pointer"], "/steps/1/skill");
    assert_eq!(reports[1]["valid"], false);
    let diagnostic = &reports[1]["diagnostics"][0];
    assert_eq!(diagnostic["pointer"], "/steps/0/inputs/plan");
    assert_eq!(
        (diagnostic["line"].as_u64(), diagnostic["column"].as_u64()),
        (Some(9), Some(13))
    );
}

#[test]
fn validate_of_a_missing_file_is_bad_input() {
    let home = TestContext::new();
    let output = home
        .pallet_at(repository())
        .args(["validate", "no/such/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read workflow file no/such/file.yaml"));
}

/// The README's first command, in a scratch directory of a fresh clone's shape:
/// no workflows directory, no agents, no registry.
#[test]
fn main_job_runs_out_of_the_box_and_writes_app() {
    let scratch = TestContext::new();
    let output = scratch
        .pallet()
        .args([
            "run",
            "Create a function that calculates the factorial of a number",
        ])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("using the built-in example workflow `code-generation-v1`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("started the 7 built-in example agents"),
        "{stderr}"
    );
    let app = scratch.join("app");
    let plan = read_json(&app.join("plan.json"));
    assert!(
        plan["steps"]
            .as_array()
            .is_some_and(|steps| !steps.is_empty()),
        "{plan}"
    );
    let review = read_json(&app.join("review.json"));
    assert_eq!(review["approved"], true, "{review}");
    let metadata = read_json(&app.join("metadata.json"));
    assert_eq!(metadata["workflow_id"], "code-generation-v1");
    assert_eq!(metadata["digest"], "built-in");
    assert_eq!(
        metadata["input"]["requirements"],
        "Create a function that calculates the factorial of a number"
    );
    assert_eq!(metadata["approved"], true);
    let code_file = std::fs::read_dir(&app)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|extension| extension == "py"))
        .expect("a generated Python file in app/");
    assert!(
        std::fs::read_to_string(code_file)
            .unwrap()
            .contains("def factorial")
    );
    let run = read_json(&app.join("run.json"));
    assert_eq!(run["status"], "completed");
    for step in ["plan", "build", "test"] {
        assert_eq!(
            read_json(&app.join(format!("steps/{step}.json")))["status"],
            "completed"
        );
    }
}

/// All three example workflows against the example agents served as separate
/// processes, over A2A (base URLs) and over the legacy protocol (card URLs).
#[test]
fn the_three_examples_run_over_a2a_and_legacy() {
    let agents = ServedAgents::start();
    let legacy: Vec<String> = agents
        .urls
        .iter()
        .map(|url| format!("{url}/agent-card"))
        .collect();
    for (protocol, urls) in [("a2a", &agents.urls), ("legacy", &legacy)] {
        let scratch = TestContext::new();
        let workflows = repository().join("workflows");
        let workflows = workflows.to_str().unwrap();
        let file = |name: &str| format!("{workflows}/{name}.yaml");

        let record = run_example(
            &scratch,
            urls,
            protocol,
            &[
                "--file",
                &file("code-generation"),
                "--json",
                "Create a fibonacci function",
            ],
        );
        assert_eq!(
            record["output"]["result"]["approved"], true,
            "{protocol}: {record}"
        );

        let record = run_example(
            &scratch,
            urls,
            protocol,
            &[
                "--file",
                &file("parallel-analysis"),
                "--input",
                "code=import os\nos.system(input())\n",
                "--input",
                "language=python",
                "--json",
            ],
        );
        let aggregate = &record["output"]["result"];
        assert_eq!(
            aggregate["security"]["risk_level"], "high",
            "{protocol}: {aggregate}"
        );
        assert_eq!(aggregate["passed"], false, "{protocol}: {aggregate}");

        let record = run_example(
            &scratch,
            urls,
            protocol,
            &[
                "--file",
                &file("smart-router"),
                "--workflows-dir",
                workflows,
                "--json",
                "Write a Python function that reverses a string",
            ],
        );
        let steps: Vec<&str> = record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["id"].as_str().unwrap())
            .collect();
        assert!(
            steps.contains(&"generate_code_workflow"),
            "{protocol}: {steps:?}"
        );
        let child_step = record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["id"] == "generate_code_workflow")
            .unwrap();
        assert_eq!(
            child_step["child"]["workflow_id"], "code-generation-v1",
            "{protocol}"
        );
        assert_eq!(child_step["child"]["status"], "completed", "{protocol}");
    }
}

/// `pallet run ARGS` with `agents`, which must succeed; its `--json` record.
fn run_example(
    context: &TestContext,
    agents: &[String],
    protocol: &str,
    arguments: &[&str],
) -> Value {
    let output = run_with_agents(context, agents, arguments);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{protocol}: {}",
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_exits_1_with_the_agent_message() {
    let agent = LegacyAgent::start("tester", &[]).await;
    let scratch = TestContext::new();
    let workflow = scratch.join("fails.yaml");
    std::fs::write(
        &workflow,
        "metadata: {id: fails, name: Fails, version: 1.0.0}\nsteps:\n  - id: first\n    skill: echo\n  - id: broken\n    skill: fail\n  - id: never\n    skill: echo\n",
    )
    .unwrap();
    let url = agent.url();
    let directory = scratch.clone();
    let output = tokio::task::spawn_blocking(move || {
        run_with_agents(
            &directory,
            &[url],
            &["--file", "fails.yaml", "--out", "results"],
        )
    })
    .await
    .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(": fails 1.0.0 failed"), "{stderr}");
    assert!(
        stderr.starts_with("error: run ") || stderr.contains("\nerror: run "),
        "{stderr}"
    );
    assert!(stderr.contains("skill failed on purpose"), "{stderr}");
    let run = read_json(&scratch.join("results/run.json"));
    let statuses: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "failed", "skipped"]);
    assert_eq!(agent.calls("echo"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn inputs_are_typed_and_bad_inputs_exit_2() {
    let agent = LegacyAgent::start("tester", &[]).await;
    let scratch = TestContext::new();
    scratch.write("echo.yaml", "metadata: {id: echo, name: Echo, version: 1.0.0}\nsteps:\n  - id: echo\n    skill: echo\n    inputs:\n      everything: \"{{ workflow.input }}\"\n");
    scratch.write("input.json", r#"{"name": "from file", "count": 1}"#);
    scratch.write("list.json", "[1, 2]");
    let url = agent.url();
    let directory = scratch.clone();
    let (good, no_equals, not_object, bad_json) = tokio::task::spawn_blocking(move || {
        let run = |arguments: &[&str]| {
            let mut all = vec!["--file", "echo.yaml"];
            all.extend_from_slice(arguments);
            run_with_agents(&directory, std::slice::from_ref(&url), &all)
        };
        (
            run(&[
                "--input-json",
                "input.json",
                "--input",
                "name=Ada",
                "--input",
                "count:=3",
                "--json",
                "the requirements",
            ]),
            run(&["--input", "nokey"]),
            run(&["--input-json", "list.json"]),
            run(&["--input", "count:={oops"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let record: Value = serde_json::from_slice(&good.stdout).unwrap();
    let echoed = &record["output"]["everything"];
    assert_eq!(echoed["name"], "Ada");
    assert_eq!(echoed["count"], 3);
    assert_eq!(echoed["requirements"], "the requirements");

    for (output, expected) in [
        (&no_equals, "--input `nokey` is not KEY=VALUE or KEY:=JSON"),
        (
            &not_object,
            "input JSON from list.json is not an object (found an array)",
        ),
        (&bad_json, "the value after `:=` is not JSON"),
    ] {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    assert!(text(&no_equals.stderr).contains("hint: e.g. --input name=Ada"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_skill_fails_before_any_step() {
    let agent = LegacyAgent::start("tester", &[]).await;
    let scratch = TestContext::new();
    scratch.write("unknown.yaml", "metadata: {id: unknown, name: Unknown, version: 1.0.0}\nsteps:\n  - id: first\n    skill: echo\n  - id: second\n    skill: teleport\n");
    let url = agent.url();
    let directory = scratch.clone();
    let output = tokio::task::spawn_blocking(move || {
        run_with_agents(&directory, &[url], &["--file", "unknown.yaml"])
    })
    .await
    .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`teleport`"), "{stderr}");
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_run_cleanly() {
    // SIGTERM leaves the run resumable instead (durable::sigterm_leaves...).
    for signal in [libc::SIGINT] {
        let agent = LegacyAgent::start("tester", &[]).await;
        let scratch = TestContext::new();
        scratch.write("slow.yaml", "metadata: {id: slow, name: Slow, version: 1.0.0}\nsteps:\n  - id: wait\n    skill: sleep\n    inputs: {ms: 30000}\n  - id: after\n    skill: echo\n");
        let mut child = Spawned::spawn(
            scratch
                .pallet()
                .args(["run", "--file", "slow.yaml", "--agent", &agent.url()])
                .stderr(Stdio::piped()),
        );
        // Wait until the slow call reached the agent, then interrupt.
        let started = std::time::Instant::now();
        while agent.calls("sleep") == 0 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the run never called the agent"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        child.signal(signal);
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "signal {signal}: {stderr}");
        assert!(stderr.contains("cancelling the run"), "{stderr}");
        assert!(stderr.contains("was cancelled"), "{stderr}");
        let run = read_json(&scratch.join("app/run.json"));
        assert_eq!(run["status"], "cancelled");
        assert_eq!(agent.calls("echo"), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_run_removes_the_previous_runs_results() {
    let agent = LegacyAgent::start("tester", &["create_plan"]).await;
    let scratch = TestContext::new();
    scratch.write("plans.yaml", "metadata: {id: plans, name: Plans, version: 1.0.0}\nsteps:\n  - id: plan\n    skill: create_plan\n    inputs: {title: kept}\n    outputs: result\n");
    scratch.write("fails.yaml", "metadata: {id: fails, name: Fails, version: 1.0.0}\nsteps:\n  - id: broken\n    skill: fail\n");
    scratch.write("notes.txt", "the user's own file");
    let url = agent.url();
    let directory = scratch.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let agents = std::slice::from_ref(&url);
        (
            run_with_agents(&directory, agents, &["--file", "plans.yaml", "--out", "."]),
            run_with_agents(&directory, agents, &["--file", "fails.yaml", "--out", "."]),
        )
    })
    .await
    .unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        !scratch.join("plan.json").exists(),
        "the first run's plan.json was left beside the second run"
    );
    assert!(!scratch.join("steps/plan.json").exists());
    assert_eq!(read_json(&scratch.join("run.json"))["workflow_id"], "fails");
    assert_eq!(
        std::fs::read_to_string(scratch.join("notes.txt")).unwrap(),
        "the user's own file"
    );
}

/// `--offline` means no network, not no other source: a workflow missing from
/// the cache is taken from the built-in examples or the workflows directory,
/// also when the configured registry is down, and that is said in one line.
#[tokio::test(flavor = "multi_thread")]
async fn offline_runs_fall_back_to_the_built_in_examples_and_the_workflows_dir() {
    let scratch = TestContext::new();
    let directory = scratch.clone();
    let built_in = tokio::task::spawn_blocking(move || {
        directory
            .pallet()
            .args(["run", "--offline", "Create a factorial function"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = text(&built_in.stderr);
    assert_eq!(built_in.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "offline, `code-generation-v1` is not in the local cache of registry 127.0.0.1:1: using the built-in example workflow"
        ),
        "{stderr}"
    );
    assert_eq!(
        read_json(&scratch.join("app/run.json"))["status"],
        "completed"
    );

    let agent = LegacyAgent::start("tester", &[]).await;
    let workflows = scratch.join("flows");
    std::fs::create_dir(&workflows).unwrap();
    std::fs::write(
        workflows.join("local.yaml"),
        "metadata: {id: local-v1, name: Local, version: 1.0.0}\nsteps:\n  - id: echo\n    skill: echo\n    inputs: {said: hi}\n",
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap().to_string();
    drop(closed);
    let directory = scratch.clone();
    let url = agent.url();
    let from_directory = tokio::task::spawn_blocking(move || {
        let arguments = [
            "--offline",
            "--registry",
            &down,
            "--workflows-dir",
            "flows",
            "--workflow",
            "local-v1",
            "--json",
        ];
        run_with_agents(&directory, &[url], &arguments)
    })
    .await
    .unwrap();
    let stderr = text(&from_directory.stderr);
    assert_eq!(from_directory.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("offline, `local-v1` is not in the local cache of registry")
            && stderr.contains("using workflow file flows/local.yaml"),
        "{stderr}"
    );
    let record: Value = serde_json::from_slice(&from_directory.stdout).unwrap();
    assert_eq!(record["output"]["said"], "hi", "{record}");
}

/// The shipped refinement example runs out of the box: the strict review
/// fails the first draft, the second build addresses it and the loop ends on
/// `until` in round 2, with the built-in example agents and no network.
#[tokio::test(flavor = "multi_thread")]
async fn the_refine_example_ends_on_until_in_its_second_round() {
    let scratch = TestContext::new();
    let directory = scratch.clone();
    let run = tokio::task::spawn_blocking(move || {
        directory
            .pallet()
            .args(["run", "--offline", "--workflow", "refine-code-v1", "--json"])
            .arg("Create a function that calculates the factorial of a number")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let record: Value = serde_json::from_slice(&run.stdout).unwrap();
    let output = &record["output"];
    assert_eq!(output["iterations"], 2, "{output}");
    assert_eq!(output["until_met"], true, "{output}");
    let last = &output["last"];
    assert_eq!(last["review"]["result"]["approved"], true, "{last}");
    assert_eq!(
        last["build"]["result"]["addressed"],
        serde_json::json!(["function 'validate_input' has no test of its own"]),
        "{last}"
    );
    let round_one = read_json(&scratch.join("app/steps/refine.1.review.json"));
    assert_eq!(
        round_one["outputs"]["result"]["approved"], false,
        "{round_one}"
    );
}

/// A reader that goes away (`pallet runs --json | head -c 10`) ends every
/// command quietly, as SIGPIPE would, with no panic message.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let home = TestContext::new();
    let repository = repository();
    let commands: [&[&str]; 4] = [
        &["runs", "--json"],
        &["runs", "--help"],
        &["validate", "workflows/code-generation.yaml"],
        &["validate", "--json", "workflows/code-generation.yaml"],
    ];
    for arguments in commands {
        // The read end is closed before pallet starts, so its first write
        // fails with EPIPE however fast it writes.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = Spawned::spawn(
            home.pallet_at(&repository)
                .args(arguments)
                .stdout(writer)
                .stderr(Stdio::piped()),
        );
        let output = child.wait_with_output();
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("panicked"), "{arguments:?}: {stderr}");
        assert_eq!(
            output.status.code(),
            Some(141),
            "{arguments:?}: {:?} {stderr}",
            output.status
        );
    }
}

/// Control characters from an agent's error, the database and actors are
/// shown escaped in text output (no terminal title set, no forged `error:`
/// line), and kept exact in JSON; `--actor` refuses them.
#[tokio::test(flavor = "multi_thread")]
async fn control_characters_from_outside_reach_the_terminal_escaped() {
    const EVIL: &str = "\u{1b}]0;pwned\u{7}\nerror: forged";
    const SHOWN: &str = "\\u{1b}]0;pwned\\u{7}\\nerror: forged";
    let agent = LegacyAgent::start("tester", &[]).await;
    let scratch = TestContext::new();
    scratch.write("evil.yaml", "metadata: {id: evil, name: Evil, version: 1.0.0}\nsteps:\n  - id: boom\n    skill: fail\n    inputs: {message: \"\\e]0;pwned\\a\\nerror: forged\"}\n");
    let store = pallet::store::RunStore::open(&scratch.join("runs.db")).unwrap();
    let planted = store
        .create_run(&pallet::store::NewRun {
            workflow_ref: "planted".to_string(),
            workflow_id: EVIL.to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: EVIL.to_string(),
            workflow_yaml: String::new(),
            input: serde_json::json!({}),
            actor: EVIL.to_string(),
        })
        .unwrap();
    drop(store);
    let directory = scratch.clone();
    let url = agent.url();
    let outputs = tokio::task::spawn_blocking(move || {
        let pallet = |arguments: &[&str]| {
            directory
                .pallet()
                .args(arguments)
                .args(["--db", "runs.db"])
                .output()
                .unwrap()
        };
        let run = pallet(&["run", "--file", "evil.yaml", "--agent", &url]);
        let listed: Value = serde_json::from_slice(&pallet(&["runs", "--json"]).stdout).unwrap();
        let failed = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap().to_string())
            .find(|id| *id != planted.id)
            .expect("the failed run is listed");
        let evil_actor = pallet(&["cancel", &planted.id, "--actor", EVIL]);
        (
            vec![
                ("run", run),
                ("runs show", pallet(&["runs", "show", &failed])),
                ("runs", pallet(&["runs"])),
                ("runs show planted", pallet(&["runs", "show", &planted.id])),
                ("runs history", pallet(&["runs", "history", &planted.id])),
            ],
            pallet(&["runs", "show", &failed, "--json"]),
            evil_actor,
        )
    })
    .await
    .unwrap();
    let (texts, json, evil_actor) = outputs;
    for (command, output) in &texts {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "{command}: {all:?}"
        );
        assert!(
            !all.lines().any(|line| line.starts_with("error: forged")),
            "{command}: {all}"
        );
        assert!(all.contains(SHOWN), "{command}: {all}");
    }
    let view: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        view.to_string()
            .contains("\\u001b]0;pwned\\u0007\\nerror: forged"),
        "{view}"
    );
    assert_eq!(evil_actor.status.code(), Some(2));
    let stderr = text(&evil_actor.stderr);
    assert!(
        stderr.contains(&format!("--actor `{SHOWN}` is not a name")),
        "{stderr}"
    );
}

/// Two runs writing into one `--out` would mix their files: while another
/// process holds the directory the run is refused before its first step,
/// and the next run removes the temporaries a killed run left.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_into_a_directory_another_process_writes_is_refused_before_it_starts() {
    use std::os::fd::AsRawFd;
    let scratch = TestContext::new();
    let out = scratch.join("app");
    std::fs::create_dir_all(out.join("steps")).unwrap();
    let left = out
        .join("steps")
        .join(".plan.json.0123456789abcdef0123456789abcdef.tmp");
    std::fs::write(&left, "a killed run's partial file").unwrap();
    let holder = std::fs::File::open(&out).unwrap();
    // SAFETY: a plain syscall on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);

    let run = |scratch: TestContext| {
        tokio::task::spawn_blocking(move || {
            scratch
                .pallet()
                .args([
                    "run",
                    "--offline",
                    "Create a function that adds two numbers",
                ])
                .output()
                .unwrap()
        })
    };
    let refused = run(scratch.clone()).await.unwrap();
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another pallet process is writing results into")
            && stderr.contains("hint: wait until it ends, or pass another --out"),
        "{stderr}"
    );
    assert!(!out.join("run.json").exists());
    assert!(left.exists(), "the refused run removed another's file");
    let listed = scratch.pallet().args(["runs", "--json"]).output().unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([]),
        "{}",
        text(&listed.stderr)
    );

    drop(holder);
    let done = run(scratch.clone()).await.unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(out.join("run.json").exists());
    assert!(!left.exists(), "the killed run's temporary is still there");
}

/// `approve` of a run that does not exist says so, and leaves no `app/`.
#[test]
fn approving_an_unknown_run_creates_no_output_directory() {
    let scratch = TestContext::new();
    let output = scratch
        .pallet()
        .args(["approve", "00000000-0000-0000-0000-000000000000"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("00000000-0000-0000-0000-000000000000"),
        "{stderr}"
    );
    assert!(!scratch.join("app").exists());
}
