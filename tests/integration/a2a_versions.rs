//! A2A 0.3 and 1.0 over JSON-RPC and HTTP+JSON against agents built on the
//! official SDKs: `@a2a-js/sdk` 1.3.0 and 0.3.14 (Node), `a2a-sdk` 1.3.0 and
//! 0.3 (Python). Each kind of agent gets the same checks: data, text that is
//! JSON, text that is not, an immediate message, a failed task, the request's
//! metadata, and a timeout that cancels the task on the agent.

use std::sync::Arc;
use std::time::Duration;

use pallet::agent::{
    AgentCard, AgentClient, Binding, CallError, CallRequest, Discovery, Endpoint, Interface,
    StaticDiscovery, Version,
};
use pallet::engine::{Engine, RunStatus};
use pallet::workflow::DirectorySource;
use pallet::workflow::load_str;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::a2a_peer::A2aPeer;
use crate::support::sdk_peer::{JsSdk, SdkPeer, free_port};

const GENEROUS: Duration = Duration::from_secs(20);

async fn call(
    agent: &AgentCard,
    skill: &str,
    input: Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    let cancel = CancellationToken::new();
    let input: Map<String, Value> = input.as_object().expect("an object").clone();
    let request = CallRequest {
        skill,
        input: &input,
        timeout,
        cancel: &cancel,
        idempotency_key: "key-1",
        max_response_size: None,
        on_task: None,
        on_status: None,
        traceparent: None,
    };
    AgentClient::new().call(agent, request).await
}

async fn card_of(url: String) -> Arc<AgentCard> {
    let discovery = StaticDiscovery::new(vec![url.clone()]);
    let cards = discovery.cards().await;
    cards
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no card at {url}: {}", discovery.searched()))
}

fn interfaces(card: &AgentCard) -> Vec<(Version, Binding)> {
    match &card.endpoint {
        Endpoint::A2a { interfaces } => interfaces
            .iter()
            .map(|interface| (interface.version, interface.binding))
            .collect(),
        Endpoint::Legacy { .. } => vec![],
    }
}

/// The state of task `id` as the agent tells any client, asked independently
/// of pallet's client.
async fn task_state(interface: &Interface, id: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = interface.url.trim_end_matches('/');
    let answer: Value = match (interface.version, interface.binding) {
        (Version::V1_0, Binding::HttpJson) => http
            .get(format!("{base}/tasks/{id}"))
            .header("A2A-Version", "1.0"),
        (Version::V0_3, Binding::HttpJson) => http.get(format!("{base}/v1/tasks/{id}")),
        (version, Binding::JsonRpc) => {
            let (method, header) = match version {
                Version::V1_0 => ("GetTask", "1.0"),
                Version::V0_3 => ("tasks/get", "0.3"),
            };
            http.post(&interface.url)
                .header("A2A-Version", header)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"id": id}}))
        }
    }
    .send()
    .await
    .expect("task request")
    .json()
    .await
    .expect("task answer is JSON");
    let task = answer.get("result").unwrap_or(&answer);
    task["status"]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no task state in {answer}"))
        .to_string()
}

/// The checks every kind of agent passes. `cancelled` is how the agent
/// writes a cancelled task's state.
async fn conforms(card: &AgentCard, cancelled: &str) {
    let given = json!({"name": "pallet", "count": 3, "nested": {"list": [1, 2]}});
    assert_eq!(
        call(card, "echo", given.clone(), GENEROUS).await.unwrap(),
        given
    );
    assert_eq!(
        call(card, "echo_text", given.clone(), GENEROUS)
            .await
            .unwrap(),
        given,
        "a text part holding JSON is parsed"
    );
    let metadata = call(card, "metadata", json!({}), GENEROUS).await.unwrap();
    let message = metadata.get("message").unwrap_or(&metadata);
    assert_eq!(message["skillId"], "metadata", "{metadata}");
    assert_eq!(message["idempotencyKey"], "key-1", "{metadata}");
    let error = call(card, "fail", json!({}), GENEROUS).await.unwrap_err();
    assert!(
        matches!(&error, CallError::TaskFailed { state, message, .. }
            if state == "TASK_STATE_FAILED" && message == "the skill failed on purpose"),
        "{error:?}"
    );
    let error = call(
        card,
        "slow",
        json!({"seconds": 30}),
        Duration::from_millis(800),
    )
    .await
    .unwrap_err();
    let CallError::Timeout {
        task_id: Some(id), ..
    } = &error
    else {
        panic!("a timeout with the task: {error:?}");
    };
    let Endpoint::A2a { interfaces } = &card.endpoint else {
        panic!("an A2A card");
    };
    assert_eq!(task_state(&interfaces[0], id).await, cancelled);
}

#[tokio::test]
async fn http_json_only_agent_on_the_js_sdk_1_3() {
    let peer = SdkPeer::js("js-rest", JsSdk::V1, &["HTTP+JSON"], &[]).await;
    let card = card_of(peer.url()).await;
    assert_eq!(interfaces(&card), [(Version::V1_0, Binding::HttpJson)]);
    conforms(&card, "TASK_STATE_CANCELED").await;
    let words = call(&card, "words", json!({}), GENEROUS).await.unwrap();
    assert_eq!(words, json!("plain words, not JSON"));
    let reply = call(&card, "reply", json!({"a": 1}), GENEROUS)
        .await
        .unwrap();
    assert_eq!(reply, json!({"a": 1}));
}

#[tokio::test]
async fn a2a_03_json_rpc_agent_on_the_js_sdk_0_3() {
    let peer = SdkPeer::js("js-03-rpc", JsSdk::V03, &["JSONRPC"], &[]).await;
    let card = card_of(peer.url()).await;
    assert_eq!(interfaces(&card), [(Version::V0_3, Binding::JsonRpc)]);
    conforms(&card, "canceled").await;
    let words = call(&card, "words", json!({}), GENEROUS).await.unwrap();
    assert_eq!(words, json!("plain words, not JSON"));
    let reply = call(&card, "reply", json!({"a": 1}), GENEROUS)
        .await
        .unwrap();
    assert_eq!(reply, json!({"a": 1}));
}

#[tokio::test]
async fn a2a_03_http_json_agent_on_the_js_sdk_0_3() {
    let peer = SdkPeer::js("js-03-rest", JsSdk::V03, &["HTTP+JSON", "JSONRPC"], &[]).await;
    let card = card_of(peer.url()).await;
    assert_eq!(
        interfaces(&card),
        [
            (Version::V0_3, Binding::HttpJson),
            (Version::V0_3, Binding::JsonRpc)
        ],
        "the preferred transport first"
    );
    conforms(&card, "TASK_STATE_CANCELLED").await;
    let reply = call(&card, "reply", json!({"a": 1}), GENEROUS)
        .await
        .unwrap();
    assert_eq!(reply, json!({"a": 1}));
}

#[tokio::test]
async fn a2a_03_json_rpc_agent_on_the_python_sdk_0_3() {
    let peer = SdkPeer::python_03("py-03", &[]).await;
    let card = card_of(peer.url()).await;
    assert_eq!(interfaces(&card), [(Version::V0_3, Binding::JsonRpc)]);
    conforms(&card, "canceled").await;
}

#[tokio::test]
async fn an_interface_that_does_not_connect_passes_the_call_to_the_next() {
    let dead = format!("JSONRPC=http://127.0.0.1:{}/", free_port());
    let peer = SdkPeer::js("js-fallback", JsSdk::V1, &[&dead, "HTTP+JSON"], &[]).await;
    let card = card_of(peer.url()).await;
    assert_eq!(
        interfaces(&card),
        [
            (Version::V1_0, Binding::JsonRpc),
            (Version::V1_0, Binding::HttpJson)
        ]
    );
    let given = json!({"via": "the second interface"});
    assert_eq!(
        call(&card, "echo", given.clone(), GENEROUS).await.unwrap(),
        given
    );
    // A timeout cancels the task at the interface that accepted it.
    let error = call(&card, "slow", json!({}), Duration::from_millis(500))
        .await
        .unwrap_err();
    let Some(id) = error.task_id() else {
        panic!("{error:?}");
    };
    let Endpoint::A2a { interfaces } = &card.endpoint else {
        panic!("an A2A card");
    };
    assert_eq!(task_state(&interfaces[1], id).await, "TASK_STATE_CANCELED");
}

fn engine(urls: Vec<String>) -> Engine {
    Engine::builder(
        Arc::new(StaticDiscovery::new(urls)),
        Arc::new(DirectorySource::new(std::env::temp_dir())),
    )
    .build()
}

#[tokio::test]
async fn one_workflow_over_a2a_1_0_json_rpc_1_0_http_json_and_0_3() {
    let (python_1, js_rest, js_03, python_03) = tokio::join!(
        A2aPeer::start_with_skills("python-1.0-rpc", &["plan"]),
        SdkPeer::js("js-1.0-rest", JsSdk::V1, &["HTTP+JSON"], &["code"]),
        SdkPeer::js("js-0.3-rpc", JsSdk::V03, &["JSONRPC"], &["review"]),
        SdkPeer::python_03("python-0.3-rpc", &["approve"]),
    );
    let text = r#"
metadata: { id: mixed, name: mixed, version: 1.0.0 }
steps:
  - id: plan
    skill: plan
    inputs: { task: "{{ workflow.input.task }}", steps: 2 }
  - id: code
    skill: code
    inputs: { from_plan: "{{ steps.plan.outputs.task }}", steps: "{{ steps.plan.outputs.steps }}" }
  - id: review
    skill: review
    inputs: { code: "{{ steps.code.outputs.from_plan }}" }
  - id: approve
    skill: approve
    inputs: { reviewed: "{{ steps.review.outputs.code }}", steps: "{{ steps.code.outputs.steps }}" }
"#;
    let workflow = Arc::new(load_str("mixed.yaml", text).unwrap());
    let urls = vec![python_1.url(), js_rest.url(), js_03.url(), python_03.url()];
    let record = engine(urls)
        .run(
            workflow,
            json!({"task": "factorial"}),
            CancellationToken::new(),
        )
        .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.output,
        Some(json!({"reviewed": "factorial", "steps": 2}))
    );
    let agents: Vec<Option<&str>> = record
        .steps
        .iter()
        .map(|step| step.agent.as_deref())
        .collect();
    assert_eq!(
        agents,
        [
            Some("python-1.0-rpc"),
            Some("js-1.0-rest"),
            Some("js-0.3-rpc"),
            Some("python-0.3-rpc")
        ]
    );
}

#[tokio::test]
async fn a_grpc_only_agent_is_refused_before_the_run_naming_it_and_what_it_offers() {
    let peer = SdkPeer::js("grpc-only", JsSdk::V1, &["GRPC"], &[]).await;
    let discovery = StaticDiscovery::new(vec![peer.url()]);
    let error = discovery.agents_for("echo").await.unwrap_err();
    let message = error.to_string();
    let offered = format!("GRPC (A2A 1.0) at http://127.0.0.1:{}/grpc", peer.port);
    assert!(
        message.contains("skill `echo` is offered only by agents pallet cannot speak to")
            && message.contains("`grpc-only`")
            && message.contains(&offered),
        "{message}"
    );
    assert!(error.hint().unwrap().contains("JSONRPC and HTTP+JSON"));
    let searched = discovery.searched();
    assert!(
        searched.contains("`grpc-only`") && searched.contains(&offered),
        "{searched}"
    );

    let workflow = "metadata: { id: grpc, name: grpc, version: 1.0.0 }\nsteps:\n  - { id: only, skill: echo }\n";
    let workflow = Arc::new(load_str("grpc.yaml", workflow).unwrap());
    let record = engine(vec![peer.url()])
        .run(workflow, json!({}), CancellationToken::new())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("`grpc-only`") && error.contains(&offered),
        "{error}"
    );
    assert!(error.contains("JSONRPC and HTTP+JSON"), "{error}");
    assert!(
        record.steps.iter().all(|step| step.attempts == 0),
        "{:#?}",
        record.steps
    );
}
