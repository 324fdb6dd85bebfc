//! `pallet agent serve` as a library: real HTTP on a free loopback port, real
//! skill processes (small shell commands), and the official A2A Python client.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pallet::agent::server::{AgentDefinition, ServerError, serve};
use serde_json::{Value, json};

/// A served agent; stops (and stops its skills) when dropped.
struct TestAgent {
    url: String,
    directory: tempfile::TempDir,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
}

impl TestAgent {
    /// Serves the definition `yaml`; `{dir}` in it becomes the agent's directory.
    async fn start(yaml: &str) -> TestAgent {
        let directory = tempfile::tempdir().unwrap();
        let yaml = yaml.replace("{dir}", &directory.path().to_string_lossy());
        let path = directory.path().join("agent.yaml");
        std::fs::write(&path, yaml).unwrap();
        let definition = AgentDefinition::load(&path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(definition, listener, Default::default(), async {
            let _ = stopped.await;
        }));
        let _ = rustls::crypto::ring::default_provider().install_default();
        TestAgent {
            url,
            directory,
            http: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// A2A JSON-RPC call with the version header; returns the whole response.
    async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let response = self
            .http
            .post(format!("{}/", self.url))
            .header("A2A-Version", "1.0")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "JSON-RPC answers with HTTP 200");
        response.json().await.unwrap()
    }

    /// `SendMessage` with a data part; returns the task of the result.
    async fn send(&self, skill: &str, input: Value, return_immediately: bool) -> Value {
        let response = self
            .rpc(
                "SendMessage",
                message_params(skill, input, return_immediately),
            )
            .await;
        assert!(response["error"].is_null(), "unexpected error: {response}");
        response["result"]["task"].clone()
    }

    async fn get_task(&self, id: &str) -> Value {
        self.rpc("GetTask", json!({"id": id})).await["result"].clone()
    }

    /// Polls `GetTask` until the task is in `state`.
    async fn wait_for_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let task = self.get_task(id).await;
            if task["status"]["state"] == state {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never reached {state}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn execute(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/execute", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let server = self.server.take().unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), server).await;
        result.expect("the server stops promptly").unwrap().unwrap();
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn message_params(skill: &str, input: Value, return_immediately: bool) -> Value {
    json!({
        "message": {
            "messageId": uuid::Uuid::new_v4().to_string(),
            "role": "ROLE_USER",
            "parts": [{"data": input, "mediaType": "application/json"}],
            "metadata": {"skillId": skill},
        },
        "configuration": {"returnImmediately": return_immediately},
        "metadata": {"skillId": skill},
    })
}

fn status_text(task: &Value) -> String {
    task["status"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Alive and not a zombie waiting to be reaped.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

async fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ECHO_AGENT: &str = r#"
name: echo-agent
description: Echoes its input
version: 2.1.0
skills:
  - id: echo
    name: Echo
    description: Returns its input
    tags: [test]
    examples: ["{}"]
    run: [sh, -c, cat]
    input_schema: {type: object}
    output_schema: {type: object}
  - id: greeting
    description: Prints a JSON string
    run: [sh, -c, 'echo "\"hello\""']
"#;

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("PALLET_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "no Python with a2a-sdk at {}: run scripts/setup-test-env.sh (or set PALLET_TEST_PYTHON)",
        python.display()
    );
    python
}

async fn official_client(agent: &TestAgent, skill: &str, input: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/a2a_client.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([agent.url.as_str(), skill, &input.to_string()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "a2a_client.py failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("client printed no JSON ({error}): {stderr}"))
}

#[tokio::test]
async fn official_a2a_client_calls_the_agent() {
    let agent = TestAgent::start(ECHO_AGENT).await;
    let input = json!({"requirements": "factorial", "count": 2});
    let answer = official_client(&agent, "echo", input.clone()).await;
    assert_eq!(answer["card"]["name"], "echo-agent");
    assert_eq!(
        answer["card"]["supportedInterfaces"][0]["url"],
        format!("{}/", agent.url)
    );
    let task = &answer["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{answer}");
    let data = &task["artifacts"][0]["parts"][0]["data"];
    // The SDK carries numbers as doubles.
    assert_eq!(data["requirements"], "factorial");
    assert_eq!(data["count"].as_f64(), Some(2.0));
    assert_eq!(answer["fetched"]["id"], task["id"]);
    assert_eq!(answer["fetched"]["status"]["state"], "TASK_STATE_COMPLETED");

    let unknown = official_client(&agent, "nope", json!({})).await;
    assert_eq!(unknown["error"]["type"], "InvalidParamsError", "{unknown}");
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown skill `nope`") && message.contains("echo, greeting"),
        "{message}"
    );
}

#[tokio::test]
async fn card_lists_interfaces_skills_and_schemas() {
    let agent = TestAgent::start(ECHO_AGENT).await;
    let card = agent.get("/.well-known/agent-card.json").await;
    assert_eq!(card["name"], "echo-agent");
    assert_eq!(card["version"], "2.1.0");
    assert_eq!(
        card["supportedInterfaces"],
        json!([
            {"url": format!("{}/", agent.url), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": format!("{}/rest", agent.url), "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            {"url": format!("{}/", agent.url), "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ])
    );
    assert_eq!(card["capabilities"]["streaming"], true);
    let extension = &card["capabilities"]["extensions"][0];
    assert_eq!(extension["uri"], "urn:pallet:skill-schemas:v1");
    assert_eq!(
        extension["params"]["skills"]["echo"]["input_schema"],
        json!({"type": "object"})
    );
    assert_eq!(
        extension["params"]["skills"]["greeting"]["input_schema"],
        Value::Null
    );
    let echo = &card["skills"][0];
    assert_eq!(echo["id"], "echo");
    assert_eq!(echo["name"], "Echo");
    assert_eq!(echo["tags"], json!(["test"]));
    assert_eq!(
        echo["inputModes"],
        json!(["application/json", "text/plain"])
    );
    assert_eq!(
        card["skills"][1]["name"], "greeting",
        "the name defaults to the id"
    );
}

#[tokio::test]
async fn blocking_send_returns_the_output_as_an_artifact() {
    let agent = TestAgent::start(ECHO_AGENT).await;
    let task = agent.send("echo", json!({"a": [1, 2]}), false).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(task["metadata"]["skillId"], "echo");
    assert_eq!(
        task["artifacts"][0]["parts"][0],
        json!({"data": {"a": [1, 2]}, "mediaType": "application/json"})
    );
    let greeting = agent.send("greeting", json!({}), false).await;
    assert_eq!(
        greeting["artifacts"][0]["parts"][0]["text"], "\"hello\"",
        "a string output is sent as JSON text"
    );
}

#[tokio::test]
async fn command_failures_fail_the_task_clearly() {
    let agent = TestAgent::start(
        r#"
name: failing
description: Fails in several ways
skills:
  - id: crash
    run: [sh, -c, 'echo first >&2; echo oops >&2; exit 3']
  - id: quiet_crash
    run: [sh, -c, 'echo bad request; exit 2']
  - id: garbage
    run: [sh, -c, 'echo this is not json']
  - id: wrong_shape
    run: [sh, -c, 'echo "{\"score\": \"high\"}"']
    output_schema: {type: object, properties: {score: {type: number}}}
  - id: missing_program
    run: [./no-such-program]
"#,
    )
    .await;
    let cases = [
        ("crash", "exit status: 3): first\noops"),
        ("quiet_crash", "exit status: 2): bad request"),
        ("garbage", "printed output that is not JSON"),
        (
            "wrong_shape",
            "output does not match the output schema: at `/score`",
        ),
        (
            "missing_program",
            "cannot start command `./no-such-program`",
        ),
    ];
    for (skill, expected) in cases {
        let task = agent.send(skill, json!({}), false).await;
        assert_eq!(
            task["status"]["state"], "TASK_STATE_FAILED",
            "{skill}: {task}"
        );
        let message = status_text(&task);
        assert!(
            message.contains(expected),
            "{skill}: {message:?} should contain {expected:?}"
        );
        assert_eq!(task["artifacts"], json!([]));
    }
}

#[tokio::test]
async fn bad_input_is_rejected_before_the_command_starts() {
    let agent = TestAgent::start(
        r#"
name: strict
description: Checks its input
skills:
  - id: count
    run: [sh, -c, 'touch {dir}/started; cat']
    input_schema:
      type: object
      required: [n]
      properties: {n: {type: integer}}
"#,
    )
    .await;
    let task = agent.send("count", json!({"n": "three"}), false).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED");
    let message = status_text(&task);
    assert!(
        message.contains("at `/n`") && message.contains("not of type \"integer\""),
        "{message}"
    );
    assert!(
        !agent.path("started").exists(),
        "the command must not start on bad input"
    );

    let task = agent.send("count", json!({"n": 3}), false).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(agent.path("started").exists());
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let agent = TestAgent::start(
        r#"
name: slow
description: Sleeps
skills:
  - id: nap
    run: [sh, -c, 'sleep 30 & echo $! > {dir}/child.pid; echo $$ > {dir}/parent.pid; wait']
"#,
    )
    .await;
    let task = agent.send("nap", json!({}), true).await;
    let id = task["id"].as_str().unwrap();
    assert!(
        ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING"]
            .contains(&task["status"]["state"].as_str().unwrap())
    );
    let parent = read_pid(&agent.path("parent.pid")).await;
    let child = read_pid(&agent.path("child.pid")).await;
    assert!(process_alive(parent) && process_alive(child));

    let started = Instant::now();
    let canceled = agent.rpc("CancelTask", json!({"id": id})).await;
    assert_eq!(
        canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{canceled}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_gone(parent).await;
    wait_gone(child).await;
    assert_eq!(
        agent.get_task(id).await["status"]["state"],
        "TASK_STATE_CANCELED"
    );

    let again = agent.rpc("CancelTask", json!({"id": id})).await;
    assert_eq!(again["error"]["code"], -32002, "{again}");
}

#[tokio::test]
async fn timeout_kills_the_command_and_fails_the_task() {
    let agent = TestAgent::start(
        r#"
name: slow
description: Sleeps
skills:
  - id: nap
    timeout: 1
    run: [sh, -c, 'echo $$ > {dir}/parent.pid; sleep 30']
"#,
    )
    .await;
    let started = Instant::now();
    let task = agent.send("nap", json!({}), false).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED");
    assert!(status_text(&task).contains("timed out after 1s"), "{task}");
    assert!(started.elapsed() < Duration::from_secs(6));
    wait_gone(read_pid(&agent.path("parent.pid")).await).await;
}

#[tokio::test]
async fn excess_calls_queue_behind_max_concurrency() {
    let agent = TestAgent::start(
        r#"
name: single
description: One call at a time
skills:
  - id: work
    max_concurrency: 1
    run: [sh, -c, 'sleep 1; cat']
"#,
    )
    .await;
    let started = Instant::now();
    let first = agent.send("work", json!({"call": 1}), true).await;
    let first_id = first["id"].as_str().unwrap();
    agent.wait_for_state(first_id, "TASK_STATE_WORKING").await;
    let second = agent.send("work", json!({"call": 2}), true).await;
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(
        second["status"]["state"], "TASK_STATE_SUBMITTED",
        "queued behind the first call"
    );

    let first = agent.wait_for_state(first_id, "TASK_STATE_COMPLETED").await;
    assert_eq!(
        agent.get_task(second_id).await["status"]["state"],
        "TASK_STATE_WORKING"
    );
    let second = agent
        .wait_for_state(second_id, "TASK_STATE_COMPLETED")
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the calls ran one after the other"
    );
    assert_eq!(
        first["artifacts"][0]["parts"][0]["data"],
        json!({"call": 1})
    );
    assert_eq!(
        second["artifacts"][0]["parts"][0]["data"],
        json!({"call": 2})
    );
}

#[tokio::test]
async fn protocol_errors_have_standard_codes_and_clear_messages() {
    let agent = TestAgent::start(ECHO_AGENT).await;
    let no_message_id = json!({"message": {"role": "ROLE_USER", "parts": []}});
    let cases = [
        (
            "SendMessage",
            message_params("nope", json!({}), false),
            -32602,
            "unknown skill `nope`: agent `echo-agent` offers echo, greeting",
        ),
        ("SendMessage", no_message_id, -32602, "messageId"),
        (
            "GetTask",
            json!({"id": "missing"}),
            -32001,
            "task `missing` not found",
        ),
        (
            "CancelTask",
            json!({"id": "missing"}),
            -32001,
            "task `missing` not found",
        ),
        ("GetTask", json!({}), -32602, "`/params/id`"),
        (
            "ListPizzas",
            json!({}),
            -32601,
            "method `ListPizzas` not found",
        ),
    ];
    for (method, params, code, expected) in cases {
        let response = agent.rpc(method, params).await;
        assert_eq!(response["id"], 7);
        assert_eq!(response["error"]["code"], code, "{method}: {response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{method}: {message:?} should contain {expected:?}"
        );
    }

    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}});
    let response = agent
        .http
        .post(format!("{}/", agent.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response: Value = response.json().await.unwrap();
    assert_eq!(
        response["error"]["code"], -32009,
        "no A2A-Version header means 0.3: {response}"
    );

    let response = agent
        .http
        .post(format!("{}/", agent.url))
        .header("A2A-Version", "1.0")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let response: Value = response.json().await.unwrap();
    assert_eq!(response["error"]["code"], -32700);
}

#[tokio::test]
async fn legacy_client_going_away_kills_the_whole_process_group() {
    let agent = TestAgent::start(
        r#"
name: slow
description: Sleeps
skills:
  - id: nap
    run: [sh, -c, 'sleep 30 & echo $! > {dir}/child.pid; wait']
"#,
    )
    .await;
    let request = agent
        .http
        .post(format!("{}/execute", agent.url))
        .timeout(Duration::from_millis(500))
        .json(&json!({"jsonrpc": "2.0", "method": "nap", "params": {}, "id": 1}))
        .send();
    let pid_file = agent.path("child.pid");
    let (response, child) = tokio::join!(request, read_pid(&pid_file));
    assert!(response.unwrap_err().is_timeout(), "the client gave up");
    wait_gone(child).await;
}

#[tokio::test]
async fn legacy_endpoints_serve_the_same_skills() {
    let agent = TestAgent::start(ECHO_AGENT).await;
    let card = agent.get("/agent-card").await;
    assert_eq!(card["name"], "echo-agent");
    assert_eq!(card["url"], agent.url);
    assert_eq!(card["skills"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(card["skills"][1]["id"], "greeting");

    let ok = agent
        .execute(json!({"jsonrpc": "2.0", "method": "echo", "params": {"x": 1}, "id": 5}))
        .await;
    assert_eq!(ok, json!({"jsonrpc": "2.0", "id": 5, "result": {"x": 1}}));
    let string = agent
        .execute(json!({"jsonrpc": "2.0", "method": "greeting", "params": {}, "id": 6}))
        .await;
    assert_eq!(string["result"], "hello");

    // The original's clients send string ids, pallet's older ones numbers:
    // each comes back exactly as given, and a missing id as null.
    for id in [
        json!("req-1"),
        json!("7"),
        json!(7),
        json!(2.5),
        Value::Null,
    ] {
        let request = json!({"jsonrpc": "2.0", "method": "echo", "params": {}, "id": id});
        let response = agent.execute(request).await;
        assert_eq!(response["id"], id, "{response}");
        assert_eq!(response["result"], json!({}), "{response}");
    }
    let response = agent
        .execute(json!({"jsonrpc": "2.0", "method": "echo", "params": {}}))
        .await;
    assert_eq!(response["id"], Value::Null, "{response}");

    let cases = [
        (
            json!({"jsonrpc": "2.0", "method": "nope", "params": {}, "id": 1}),
            -32601,
            "unknown skill `nope`",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1}),
            -32602,
            "input does not match the input schema",
        ),
    ];
    for (request, code, expected) in cases {
        let response = agent.execute(request).await;
        assert_eq!(response["error"]["code"], code, "{response}");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{response}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_running_skills() {
    let agent = TestAgent::start(
        r#"
name: slow
description: Sleeps
skills:
  - id: nap
    run: [sh, -c, 'echo $$ > {dir}/parent.pid; sleep 30']
"#,
    )
    .await;
    let task = agent.send("nap", json!({}), true).await;
    agent
        .wait_for_state(task["id"].as_str().unwrap(), "TASK_STATE_WORKING")
        .await;
    let parent = read_pid(&agent.path("parent.pid")).await;
    let directory = agent.directory.path().to_path_buf();
    agent.shutdown().await;
    assert!(
        !process_alive(parent),
        "skill process {parent} outlived the server in {}",
        directory.display()
    );
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The current-thread runtime runs the server's tasks on this thread, so a
// thread-local subscriber sees their logs.
#[tokio::test(flavor = "current_thread")]
async fn stderr_goes_to_the_log_with_skill_and_task() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let agent = TestAgent::start(
        r#"
name: chatty
description: Talks on stderr
skills:
  - id: chat
    run: [sh, -c, 'echo "thinking hard" >&2; cat']
"#,
    )
    .await;
    let task = agent.send("chat", json!({}), false).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("thinking hard"))
        .unwrap_or_else(|| panic!("stderr line missing from the log:\n{log}"));
    assert!(line.contains("skill=chat"), "{line}");
    assert!(line.contains(task["id"].as_str().unwrap()), "{line}");
}
