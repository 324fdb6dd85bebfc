//! Streaming agents (`capabilities.streaming: true`): the call follows the
//! task's event stream, status messages reach the caller as they arrive, a
//! broken stream is subscribed to again, and hostile streams end in clear,
//! bounded errors. Against the official `@a2a-js/sdk` 1.3.0 and 0.3.14 agents
//! and a raw loopback server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pallet::agent::{
    AgentCard, AgentClient, CallError, CallRequest, Discovery, StaticDiscovery, StreamSettings,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::sdk_peer::{JsSdk, SdkPeer};

const GENEROUS: Duration = Duration::from_secs(20);

async fn card_of(url: String) -> Arc<AgentCard> {
    let discovery = StaticDiscovery::new(vec![url.clone()]);
    let cards = discovery.cards().await;
    cards
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no card at {url}: {}", discovery.searched()))
}

/// Calls `skill` and returns its outcome and the status messages reported.
async fn call(
    client: &AgentClient,
    agent: &AgentCard,
    skill: &str,
    input: Value,
) -> (Result<Value, CallError>, Vec<String>) {
    let cancel = CancellationToken::new();
    let input: Map<String, Value> = input.as_object().expect("an object").clone();
    let messages = Mutex::new(Vec::new());
    let on_status = |message: &str| messages.lock().unwrap().push(message.to_string());
    let request = CallRequest {
        skill,
        input: &input,
        timeout: GENEROUS,
        cancel: &cancel,
        idempotency_key: "stream-key",
        max_response_size: None,
        on_task: None,
        on_status: Some(&on_status),
        traceparent: None,
    };
    let outcome = client.call(agent, request).await;
    (outcome, messages.into_inner().unwrap())
}

fn steps(count: u32) -> Vec<String> {
    (1..=count)
        .map(|step| format!("step {step} of {count}"))
        .collect()
}

#[tokio::test]
async fn status_messages_and_output_from_streams_of_every_kind() {
    let cases = [
        ("JSONRPC", JsSdk::V1),
        ("HTTP+JSON", JsSdk::V1),
        ("JSONRPC", JsSdk::V03),
        ("HTTP+JSON", JsSdk::V03),
    ];
    for (binding, sdk) in cases {
        let peer = SdkPeer::js_with("streamer", sdk, &[binding], &[], &["--streaming"]).await;
        let card = card_of(peer.url()).await;
        assert!(card.streaming, "{binding}: the card declares streaming");
        let input = json!({"count": 3, "delay_ms": 50, "word": "hi"});
        let (output, messages) = call(&AgentClient::new(), &card, "chatty", input.clone()).await;
        assert_eq!(output.unwrap(), input, "{binding}");
        assert_eq!(messages, steps(3), "{binding}");
        // A failed task on a stream fails the call with the agent's message.
        let (error, _) = call(&AgentClient::new(), &card, "fail", json!({})).await;
        let error = error.unwrap_err();
        assert!(
            error.to_string().contains("the skill failed on purpose"),
            "{binding}: {error}"
        );
    }
}

#[tokio::test]
async fn a_dropped_stream_is_subscribed_to_again() {
    for binding in ["JSONRPC", "HTTP+JSON"] {
        let peer = SdkPeer::js_with(
            "dropper",
            JsSdk::V1,
            &[binding],
            &[],
            &["--streaming", "--drop-streams=1"],
        )
        .await;
        let card = card_of(peer.url()).await;
        let input = json!({"count": 4, "delay_ms": 150});
        let (output, messages) = call(&AgentClient::new(), &card, "chatty", input.clone()).await;
        assert_eq!(output.unwrap(), input, "{binding}");
        assert_eq!(
            messages.last().map(String::as_str),
            Some("step 4 of 4"),
            "{binding}"
        );
        // The first stream broke; the second is the subscription (not polling).
        let streams: Value = reqwest::get(format!("{}/test/streams", peer.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(streams["opened"], 2, "{binding}: {messages:?}");
    }
}

/// What the raw server answers to the streaming call.
#[derive(Clone, Copy)]
enum Hostile {
    /// One event that never ends.
    EndlessEvent,
    /// Headers, then nothing.
    Silent,
    /// An HTML page.
    NotAnEventStream,
    /// Events without end, each small.
    EndlessEvents,
}

/// A raw HTTP server on a loopback port: a card declaring streaming over
/// JSON-RPC 1.0, and `behaviour` for every POST. Stopped when dropped.
struct HostileServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile(behaviour: Hostile) -> HostileServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let card = json!({"name": "hostile", "version": "1.0.0",
        "capabilities": {"streaming": true},
        "supportedInterfaces": [{"url": format!("{url}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "skills": [{"id": "echo"}]})
    .to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let card = card.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                if request.starts_with(b"GET") {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{card}",
                        card.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    return;
                }
                let sse = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                match behaviour {
                    Hostile::NotAnEventStream => {
                        let body = "<html>hello</html>";
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                    Hostile::Silent => {
                        let _ = socket.write_all(sse.as_bytes()).await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Hostile::EndlessEvent => {
                        let _ = socket.write_all(sse.as_bytes()).await;
                        let _ = socket.write_all(b"data: ").await;
                        let chunk = vec![b'x'; 64 * 1024];
                        while socket.write_all(&chunk).await.is_ok() {}
                    }
                    Hostile::EndlessEvents => {
                        let _ = socket.write_all(sse.as_bytes()).await;
                        let event = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"statusUpdate\":{\"taskId\":\"t\",\"status\":{\"state\":\"TASK_STATE_WORKING\"}}}}\n\n";
                        while socket.write_all(event).await.is_ok() {}
                    }
                }
            });
        }
    });
    HostileServer { url, task }
}

#[tokio::test]
async fn hostile_streams_end_in_clear_bounded_errors() {
    let client = AgentClient::with_stream_settings(StreamSettings {
        max_events: 50,
        idle_timeout: Duration::from_secs(2),
    });
    let cases = [
        (
            Hostile::EndlessEvent,
            "the limit is 1 MiB; raise it with `max_response_size`",
        ),
        (
            Hostile::Silent,
            "sent nothing on the stream of skill `echo` for 2s before naming its task",
        ),
        (
            Hostile::NotAnEventStream,
            "with content type `text/html`, not an event stream (text/event-stream)",
        ),
        (
            Hostile::EndlessEvents,
            "sent more than 50 events on the stream of skill `echo`: raise PALLET_STREAM_MAX_EVENTS",
        ),
    ];
    for (behaviour, expected) in cases {
        let server = hostile(behaviour).await;
        let mut card = (*card_of(server.url.clone()).await).clone();
        card.max_response_size = Some(1024 * 1024);
        let started = std::time::Instant::now();
        let (outcome, _) = call(&client, &card, "echo", json!({})).await;
        let error = outcome.unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
    }
}

const CHATTY_WORKFLOW: &str = r#"
metadata: { id: chatty, name: chatty, version: 1.0.0 }
steps:
  - id: talk
    skill: chatty
    inputs: { count: 3, delay_ms: 300 }
"#;

#[test]
fn pallet_run_shows_status_messages_in_progress_json_and_the_run_view() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = runtime.block_on(SdkPeer::js_with(
        "chatty",
        JsSdk::V1,
        &["JSONRPC"],
        &[],
        &["--streaming"],
    ));
    let home = crate::support::TestContext::new();
    let workflow = home.join("chatty.yaml");
    std::fs::write(&workflow, CHATTY_WORKFLOW).unwrap();
    let workflow = workflow.to_str().unwrap().to_string();

    let output = home
        .pallet()
        .args(["run", "--file", &workflow, "--agent", &peer.url(), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    let step = &record["steps"][0];
    assert_eq!(step["status_messages"], json!(steps(3)), "{record}");
    assert_eq!(step["outputs"]["count"], 3, "{record}");

    // The run view (the service's GET /workflows/{id} is the same view) shows the latest.
    let run_id = record["run_id"].as_str().unwrap();
    let shown = home
        .pallet()
        .args(["runs", "show", run_id, "--json"])
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let view: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        view["attempts"][0]["status_message"], "step 3 of 3",
        "{view}"
    );

    // On a terminal, the progress view prints each message as it arrives.
    let terminal = home
        .pallet_on_terminal(&["run", "--file", &workflow, "--agent", &peer.url()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(terminal.status.success(), "{shown}");
    for message in steps(3) {
        assert!(shown.contains(&format!("… {message}")), "{shown}");
    }
}

#[tokio::test]
async fn a_step_timeout_cancels_a_streamed_task() {
    let peer = SdkPeer::js_with("slowpoke", JsSdk::V1, &["JSONRPC"], &[], &["--streaming"]).await;
    let card = card_of(peer.url()).await;
    let cancel = CancellationToken::new();
    let input: Map<String, Value> = json!({"seconds": 30}).as_object().unwrap().clone();
    let request = CallRequest {
        skill: "slow",
        input: &input,
        timeout: Duration::from_millis(800),
        cancel: &cancel,
        idempotency_key: "stream-timeout",
        max_response_size: None,
        on_task: None,
        on_status: None,
        traceparent: None,
    };
    let error = AgentClient::new().call(&card, request).await.unwrap_err();
    assert!(matches!(error, CallError::Timeout { .. }), "{error}");
    assert!(
        error.task_id().is_some(),
        "the stream named the task: {error}"
    );
}

#[test]
fn the_run_view_shows_the_latest_status_message_while_the_step_runs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = runtime.block_on(SdkPeer::js_with(
        "chatty",
        JsSdk::V1,
        &["HTTP+JSON"],
        &[],
        &["--streaming"],
    ));
    let home = crate::support::TestContext::new();
    let workflow = home.join("chatty.yaml");
    std::fs::write(
        &workflow,
        // A step of 12 s: a poll (two CLI processes) may take a second or
        // more on a loaded machine, and the view is only read while it runs.
        CHATTY_WORKFLOW.replace("count: 3, delay_ms: 300", "count: 60, delay_ms: 200"),
    )
    .unwrap();
    let mut run = crate::support::pallet::Spawned::spawn(
        home.pallet()
            .args([
                "run",
                "--file",
                workflow.to_str().unwrap(),
                "--agent",
                &peer.url(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let pallet_json = |args: &[&str]| -> Value {
        let output = home.pallet().args(args).output().unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let seen = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no status message in the run view"
        );
        let listed = pallet_json(&["runs", "--json"]);
        if let Some(id) = listed[0]["id"].as_str() {
            let view = pallet_json(&["runs", "show", id, "--json"]);
            let attempt = &view["attempts"][0];
            if attempt["status"] == "running"
                && let Some(message) = attempt["status_message"].as_str()
            {
                break message.to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        seen.starts_with("step ") && seen.ends_with(" of 60"),
        "{seen}"
    );
    let output = run.wait_with_output();
    assert!(output.status.success());
}

/// Counts the status messages the engine journals.
#[derive(Default)]
struct CountingJournal {
    statuses: Mutex<Vec<String>>,
}

impl pallet::engine::Journal for CountingJournal {
    fn step_started(&self, _: &str) -> pallet::engine::JournalWrite {
        Box::pin(std::future::ready(Ok(())))
    }
    fn step_finished(&self, _: &pallet::engine::StepRecord) -> pallet::engine::JournalWrite {
        Box::pin(std::future::ready(Ok(())))
    }
    fn approval_waiting(&self, _: &str) -> pallet::engine::JournalWrite {
        Box::pin(std::future::ready(Ok(())))
    }
    fn task_accepted(&self, _: &str, _: &pallet::engine::StepTask) -> pallet::engine::JournalWrite {
        Box::pin(std::future::ready(Ok(())))
    }
    fn step_status(&self, _: &str, message: &str) -> pallet::engine::JournalWrite {
        self.statuses.lock().unwrap().push(message.to_string());
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn a_chatty_agent_is_journaled_at_most_every_500_ms_and_shown_as_events() {
    let peer = SdkPeer::js_with("chatty", JsSdk::V03, &["JSONRPC"], &[], &["--streaming"]).await;
    let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let engine = pallet::engine::Engine::builder(
        Arc::new(StaticDiscovery::new(vec![peer.url()])),
        Arc::new(pallet::workflow::DirectorySource::new(std::env::temp_dir())),
    )
    .events(events)
    .build();
    let text = CHATTY_WORKFLOW.replace("count: 3, delay_ms: 300", "count: 20, delay_ms: 30");
    let workflow = Arc::new(pallet::workflow::load_str("chatty.yaml", &text).unwrap());
    let journal = Arc::new(CountingJournal::default());
    let durable = pallet::engine::Durable {
        run_id: "run-1".to_string(),
        journal: journal.clone(),
        completed: Default::default(),
        previous_attempts: Default::default(),
        interrupted_tasks: Default::default(),
        handled_failures: Default::default(),
    };
    let started = std::time::Instant::now();
    let record = engine
        .run_durable(workflow, json!({}), CancellationToken::new(), &durable)
        .await;
    let took = started.elapsed();
    drop(engine);
    assert_eq!(record.steps[0].status_messages, steps(20), "{record:#?}");
    let mut shown = Vec::new();
    while let Some(event) = receiver.recv().await {
        if let pallet::engine::Event::StepStatusMessage { step, message } = event {
            assert_eq!(step, "talk");
            shown.push(message);
        }
    }
    assert_eq!(shown, steps(20));
    let journaled = journal.statuses.lock().unwrap().clone();
    let allowed = (took.as_millis() / 500 + 1) as usize;
    assert!(
        !journaled.is_empty() && journaled.len() <= allowed,
        "{} writes in {took:?}: {journaled:?}",
        journaled.len()
    );
}
