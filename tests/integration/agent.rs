//! Agents against real servers: the official A2A SDK's server (Python child
//! process) and the in-process legacy agent.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pallet::agent::{
    AgentCard, AgentClient, Binding, CallError, CallRequest, Discovery, Endpoint, Interface,
    StaticDiscovery, Version,
};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::a2a_peer::A2aPeer;
use crate::support::legacy_agent::LegacyAgent;

const GENEROUS: Duration = Duration::from_secs(20);

fn input(value: Value) -> Map<String, Value> {
    value.as_object().expect("test input is an object").clone()
}

async fn call(
    agent: &AgentCard,
    skill: &str,
    input: &Map<String, Value>,
    timeout: Duration,
) -> Result<Value, CallError> {
    let cancel = CancellationToken::new();
    let request = CallRequest {
        skill,
        input,
        timeout,
        cancel: &cancel,
        idempotency_key: "test-key",
        max_response_size: None,
        on_task: None,
        on_status: None,
        traceparent: None,
    };
    AgentClient::new().call(agent, request).await
}

async fn card_of(url: String) -> Arc<AgentCard> {
    let cards = StaticDiscovery::new(vec![url.clone()]).cards().await;
    cards
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no card at {url}"))
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn discovery_reads_both_card_kinds_in_configured_order() {
    let (peer, legacy) = tokio::join!(
        A2aPeer::start_with_skills("a2a-agent", &["create_plan"]),
        LegacyAgent::start("legacy-agent", &[])
    );
    let dead = dead_url();
    let by_base = StaticDiscovery::new(vec![legacy.url(), dead.clone(), peer.url()]);
    let by_card = StaticDiscovery::new(vec![
        format!("{}/agent-card", legacy.url()),
        peer.card_url(),
    ]);
    for discovery in [by_base, by_card] {
        let echo = discovery.agents_for("echo").await.unwrap();
        let endpoints: Vec<&Endpoint> = echo.iter().map(|card| &card.endpoint).collect();
        assert_eq!(
            endpoints,
            [
                &Endpoint::Legacy { url: legacy.url() },
                &Endpoint::A2a {
                    interfaces: vec![Interface {
                        url: format!("{}/", peer.url()),
                        version: Version::V1_0,
                        binding: Binding::JsonRpc,
                    }]
                }
            ]
        );
        assert_eq!(echo[1].name, "a2a-agent");
        let plan = discovery.agents_for("create_plan").await.unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].name, "a2a-agent");
        let given = input(json!({"requirements": "a factorial"}));
        let output = call(&plan[0], "create_plan", &given, GENEROUS)
            .await
            .unwrap();
        assert_eq!(output, Value::Object(given));
        let text = discovery.agents_for("echo_text").await.unwrap();
        assert_eq!(text.len(), 1);
        assert_eq!(text[0].name, "a2a-agent");
    }
    let no_card = format!("{}/nothing-here", legacy.url());
    let with_dead = StaticDiscovery::new(vec![dead.clone(), no_card.clone(), legacy.url()]);
    assert_eq!(
        with_dead.agents_for("fail").await.unwrap()[0].name,
        "legacy-agent"
    );
    let searched = with_dead.searched();
    assert!(
        searched.contains(&format!("{dead} (unreachable)")),
        "{searched}"
    );
    assert!(
        searched.contains(&format!("{no_card} (no usable agent card)")),
        "{searched}"
    );
    assert!(searched.contains("`legacy-agent`"), "{searched}");
}

#[tokio::test]
async fn cards_are_fetched_once_per_discovery() {
    let legacy = LegacyAgent::start("short-lived", &[]);
    let legacy = legacy.await;
    let discovery = StaticDiscovery::new(vec![legacy.url()]);
    assert_eq!(discovery.agents_for("echo").await.unwrap().len(), 1);
    drop(legacy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        discovery.agents_for("echo").await.unwrap()[0].name,
        "short-lived"
    );
}

#[tokio::test]
async fn agents_file_adds_agents_after_the_flags() {
    let (first, second) = tokio::join!(
        LegacyAgent::start("first", &[]),
        LegacyAgent::start("second", &[])
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "agents:\n  - url: {}", second.url()).unwrap();
    let discovery = StaticDiscovery::with_agents_file(vec![first.url()], file.path()).unwrap();
    let names: Vec<String> = discovery
        .agents_for("echo")
        .await
        .unwrap()
        .iter()
        .map(|card| card.name.clone())
        .collect();
    assert_eq!(names, ["first", "second"]);
}

#[tokio::test]
async fn unknown_skill_names_the_skill_the_agents_and_a_close_match() {
    let legacy = LegacyAgent::start("planner", &["create_plan"]).await;
    let discovery = StaticDiscovery::new(vec![legacy.url()]);
    let error = discovery.agents_for("create_pln").await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("no agent offers skill `create_pln`"),
        "{message}"
    );
    assert!(
        message.contains(&format!("`planner` at {}", legacy.url())),
        "{message}"
    );
    let hint = error.hint().unwrap();
    assert!(hint.starts_with("did you mean `create_plan`?"), "{hint}");
}

#[tokio::test]
async fn a2a_outputs_from_data_text_several_parts_and_messages() {
    let peer = A2aPeer::shared().await;
    let agent = card_of(peer.url()).await;
    let given = input(json!({"count": 3, "ratio": 0.5, "name": "pallet", "list": [1, "two"]}));
    let cases = [
        ("echo", Value::Object(given.clone())),
        ("echo_text", Value::Object(given.clone())),
        (
            "pair",
            json!([Value::Object(given.clone()), {"second": true}]),
        ),
        ("reply", Value::Object(given.clone())),
    ];
    for (skill, expected) in cases {
        let started = Instant::now();
        let output = call(&agent, skill, &given, GENEROUS).await.unwrap();
        assert_eq!(output, expected, "skill {skill}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "skill {skill} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a2a_requests_carry_the_skill_and_idempotency_key() {
    let peer = A2aPeer::shared().await;
    let agent = card_of(peer.url()).await;
    let seen = call(&agent, "metadata", &Map::new(), GENEROUS)
        .await
        .unwrap();
    assert_eq!(
        seen,
        json!({"message": {"skillId": "metadata", "idempotencyKey": "test-key"},
               "params": {"skillId": "metadata"}})
    );
}

#[tokio::test]
async fn a2a_failures_carry_the_agent_message_or_rpc_error() {
    let peer = A2aPeer::shared().await;
    let agent = card_of(peer.url()).await;
    let empty = Map::new();

    let failed = call(&agent, "fail", &empty, GENEROUS).await.unwrap_err();
    assert!(
        matches!(&failed, CallError::TaskFailed { state, .. } if state == "TASK_STATE_FAILED"),
        "{failed:?}"
    );
    let message = failed.to_string();
    assert!(
        message.contains("the skill failed on purpose") && message.contains("`fail`"),
        "{message}"
    );
    assert!(!failed.is_transient() && !failed.is_unreachable());

    let input_required = call(&agent, "needs_input", &empty, GENEROUS)
        .await
        .unwrap_err();
    let message = input_required.to_string();
    assert!(
        message.contains("needs input") && message.contains("tell me more"),
        "{message}"
    );

    let rpc = call(&agent, "invalid", &empty, GENEROUS).await.unwrap_err();
    assert!(
        matches!(&rpc, CallError::JsonRpc { code: -32602, .. }),
        "{rpc:?}"
    );
    assert!(
        rpc.to_string().contains("input rejected by skill invalid"),
        "{rpc}"
    );
    assert!(!rpc.is_transient());
}

#[tokio::test]
async fn a2a_timeout_cancels_the_task_on_the_agent() {
    let peer = A2aPeer::shared().await;
    let agent = card_of(peer.url()).await;
    let started = Instant::now();
    let error = call(
        &agent,
        "slow",
        &input(json!({"seconds": 60})),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, CallError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient() && !error.is_unreachable());
    let task_id = error
        .task_id()
        .expect("the timeout names the task")
        .to_string();
    assert!(error.to_string().contains(&task_id), "{error}");
    let task = peer.get_task(&task_id).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_CANCELED", "{task}");
}

#[tokio::test]
async fn a2a_cancellation_token_cancels_the_task_on_the_agent() {
    let peer = A2aPeer::shared().await;
    let agent = card_of(peer.url()).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let slow = input(json!({"seconds": 60}));
    let request = CallRequest {
        skill: "slow",
        input: &slow,
        timeout: GENEROUS,
        cancel: &cancel,
        idempotency_key: "k",
        max_response_size: None,
        on_task: None,
        on_status: None,
        traceparent: None,
    };
    let error = AgentClient::new().call(&agent, request).await.unwrap_err();
    assert!(matches!(error, CallError::Cancelled { .. }), "{error:?}");
    assert!(!error.is_transient());
    let task = peer
        .get_task(error.task_id().expect("the cancellation names the task"))
        .await;
    assert_eq!(task["status"]["state"], "TASK_STATE_CANCELED", "{task}");
}

#[tokio::test]
async fn agents_that_are_down_are_unreachable_and_transient() {
    let url = dead_url();
    let a2a = |version, binding| Endpoint::A2a {
        interfaces: vec![Interface {
            url: format!("{url}/"),
            version,
            binding,
        }],
    };
    for endpoint in [
        a2a(Version::V1_0, Binding::JsonRpc),
        a2a(Version::V1_0, Binding::HttpJson),
        a2a(Version::V0_3, Binding::JsonRpc),
        a2a(Version::V0_3, Binding::HttpJson),
        Endpoint::Legacy { url: url.clone() },
    ] {
        let agent = AgentCard {
            name: "gone".into(),
            description: None,
            endpoint,
            skills: vec![],
            max_response_size: None,
            auth: Default::default(),
            streaming: false,
        };
        let error = call(&agent, "echo", &Map::new(), GENEROUS)
            .await
            .unwrap_err();
        assert!(error.is_unreachable() && error.is_transient(), "{error:?}");
        assert_eq!(
            error.to_string(),
            "agent `gone` is unreachable for skill `echo`"
        );
    }
}

#[tokio::test]
async fn legacy_success_failure_and_malformed_replies() {
    let legacy = LegacyAgent::start("legacy-agent", &[]).await;
    let agent = card_of(legacy.url()).await;
    let given = input(json!({"count": 3, "nested": {"a": [1, 2]}}));
    assert_eq!(
        call(&agent, "echo", &given, GENEROUS).await.unwrap(),
        Value::Object(given.clone())
    );

    let failed = call(&agent, "fail", &given, GENEROUS).await.unwrap_err();
    assert!(
        matches!(&failed, CallError::JsonRpc { code: -32000, .. }),
        "{failed:?}"
    );
    assert!(
        failed.to_string().contains("skill failed on purpose"),
        "{failed}"
    );
    assert!(!failed.is_transient());

    let garbage = call(&agent, "garbage", &given, GENEROUS).await.unwrap_err();
    let message = garbage.to_string();
    assert!(
        matches!(garbage, CallError::Malformed { .. }),
        "{garbage:?}"
    );
    assert!(
        message.contains("not JSON") && message.contains("this is not json"),
        "{message}"
    );
    assert!(!garbage.is_transient());
}

#[tokio::test]
async fn legacy_http_503_is_transient_and_timeouts_abort() {
    let legacy = LegacyAgent::start("legacy-agent", &[]).await;
    let agent = card_of(legacy.url()).await;
    let flaky = input(json!({"key": "k1", "failures": 1}));
    let error = call(&agent, "flaky", &flaky, GENEROUS).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Http { status, .. } if status.as_u16() == 503),
        "{error:?}"
    );
    assert!(error.is_transient() && !error.is_unreachable());
    assert!(
        error
            .to_string()
            .contains("HTTP 503 Service Unavailable to skill `flaky` (body: try again)"),
        "{error}"
    );
    assert_eq!(
        call(&agent, "flaky", &flaky, GENEROUS).await.unwrap(),
        Value::Object(flaky.clone())
    );
    assert_eq!(legacy.calls("flaky"), 2);

    let started = Instant::now();
    let sleepy = input(json!({"ms": 5000}));
    let error = call(&agent, "sleep", &sleepy, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, CallError::Timeout { task_id: None, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}

/// `pallet agent serve` beyond loopback follows `pallet serve`'s rule (a
/// strong PALLET_AGENT_TOKEN), a wildcard address needs `--public-url`, and
/// with a token the skill endpoints (A2A and legacy) check it while the
/// cards stay public and advertise the public URL.
/// `pallet agent serve` on 0.0.0.0 ends with exit 2 unless it has a long
/// enough token and a public URL.
async fn serving_beyond_loopback_is_refused_without_a_token(
    home: &crate::support::TestContext,
    definition: &std::path::Path,
    token: &str,
) {
    use crate::support::process::output_within;
    let refusals = [
        (
            None,
            "refusing to listen on 0.0.0.0:0 without a token: set PALLET_AGENT_TOKEN",
        ),
        (
            Some("short"),
            "refusing to listen on 0.0.0.0:0: PALLET_AGENT_TOKEN has 5 characters",
        ),
        (Some(token), "listening on 0.0.0.0:0 needs --public-url"),
    ];
    for (given, expected) in refusals {
        let mut command = home.pallet();
        command
            .args(["agent", "serve"])
            .arg(definition)
            .args(["--addr", "0.0.0.0:0"]);
        if let Some(given) = given {
            command.env("PALLET_AGENT_TOKEN", given);
        }
        let output =
            tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(10)))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("pallet agent serve started ({expected})"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// The JSON of `GET url`.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn pallet_agent_serve_needs_a_token_beyond_loopback_and_advertises_its_public_url() {
    use crate::support::TestContext;
    use crate::support::process::Running;
    let home = TestContext::new();
    let definition = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/plan.yaml");
    let token = "0123456789abcdef0123456789abcdef";
    serving_beyond_loopback_is_refused_without_a_token(&home, &definition, token).await;

    let mut command = home.pallet();
    command
        .args(["agent", "serve"])
        .arg(&definition)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--public-url",
            "http://agents.example:9000/",
        ])
        .env("PALLET_AGENT_TOKEN", token);
    let (_agent, base) = Running::until_line(command, "agent `plan` listening on ");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let card = get_json(&client, format!("{base}/.well-known/agent-card.json")).await;
    assert!(
        card.to_string().contains("http://agents.example:9000/"),
        "{card}"
    );
    assert!(!card.to_string().contains("127.0.0.1"), "{card}");
    let legacy = get_json(&client, format!("{base}/agent-card")).await;
    assert_eq!(legacy["url"], "http://agents.example:9000", "{legacy}");
    let call = json!({"jsonrpc": "2.0", "method": "create_plan", "params": {"requirements": "Create a factorial function"}, "id": "1"});
    for authorization in [None, Some("Bearer wrong-token-wrong-token")] {
        let mut request = client.post(format!("{base}/execute")).json(&call);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        let response = client
            .post(format!("{base}/"))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    let answer: Value = client
        .post(format!("{base}/execute"))
        .header("authorization", format!("bearer {token}"))
        .json(&call)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["result"].is_object(), "{answer}");
}
