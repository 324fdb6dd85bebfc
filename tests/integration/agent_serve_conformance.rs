//! `pallet agent serve` against the A2A specification: a real `pallet agent
//! serve` process on a free loopback port, called over raw HTTP for every
//! error code and over both bindings and both versions, and by the official
//! JavaScript (`@a2a-js/sdk` 1.3.0 and 0.3.14) and Python (`a2a-sdk` 1.3.0 and
//! 0.3) clients.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestContext;
use crate::support::process::Running;

const GET: reqwest::Method = reqwest::Method::GET;
const POST: reqwest::Method = reqwest::Method::POST;

const AGENT: &str = r#"
name: conformance
description: Skills for the conformance tests
version: 1.0.0
skills:
  - id: echo
    description: Returns its input
    run: [sh, -c, cat]
  - id: shout
    description: Takes a string
    run: [sh, -c, cat]
    input_schema: {type: string}
  - id: slow
    description: Sleeps until canceled
    run: [sh, -c, 'sleep 20; echo "{}"']
"#;

/// A `pallet agent serve` process; stopped with SIGTERM (so its skills stop
/// too) when dropped.
struct Served {
    running: Running,
    url: String,
    http: reqwest::Client,
    _home: TestContext,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.running.terminate(Duration::from_secs(10));
    }
}

impl Served {
    fn start(token: Option<&str>) -> Served {
        Served::start_with(token, &[])
    }

    fn start_with(token: Option<&str>, args: &[&str]) -> Served {
        let home = TestContext::new();
        let definition = home.join("agent.yaml");
        std::fs::write(&definition, AGENT).unwrap();
        let mut command = home.pallet();
        command
            .args(["agent", "serve"])
            .arg(&definition)
            .args(["--addr", "127.0.0.1:0"])
            .args(args);
        if let Some(token) = token {
            command.env("PALLET_AGENT_TOKEN", token);
        }
        let (running, url) = Running::until_line(command, "agent `conformance` listening on ");
        let _ = rustls::crypto::ring::default_provider().install_default();
        Served {
            running,
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            _home: home,
        }
    }

    /// A JSON-RPC request body as given, with `version` as `A2A-Version` (none: no header).
    async fn post_raw(&self, body: &Value, version: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/", self.url)).json(body);
        if let Some(version) = version {
            request = request.header("A2A-Version", version);
        }
        request.send().await.unwrap()
    }

    async fn rpc_version(&self, method: &str, params: Value, version: Option<&str>) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": "r1", "method": method, "params": params});
        let response = self.post_raw(&body, version).await;
        assert_eq!(response.status(), 200, "JSON-RPC answers with HTTP 200");
        response.json().await.unwrap()
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        self.rpc_version(method, params, Some("1.0")).await
    }

    async fn result(&self, method: &str, params: Value) -> Value {
        let response = self.rpc(method, params).await;
        assert!(response["error"].is_null(), "{method}: {response}");
        response["result"].clone()
    }

    /// The events of an SSE answer (each `data:` line as JSON).
    async fn events(response: reqwest::Response) -> Vec<Value> {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let body = tokio::time::timeout(Duration::from_secs(30), response.text())
            .await
            .expect("the stream ends at the terminal state")
            .unwrap();
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| serde_json::from_str(data.trim()).unwrap())
            .collect()
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.rest_as(None, method, path, body).await
    }

    /// The JSON answer of an HTTP+JSON `GET path`, with `token` if given.
    async fn get_json_as(&self, token: Option<&str>, path: &str) -> Value {
        let response = self.rest_as(token, GET, path, None).await;
        response.json().await.unwrap()
    }

    /// An HTTP+JSON request, with `token` as its bearer token if given.
    async fn rest_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}/rest{path}", self.url))
            .header("A2A-Version", "1.0");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/a2a+json")
                .body(body.to_string());
        }
        request.send().await.unwrap()
    }
}

fn message(skill: &str, parts: Value) -> Value {
    json!({
        "messageId": uuid::Uuid::new_v4().to_string(),
        "role": "ROLE_USER",
        "parts": parts,
        "metadata": {"skillId": skill},
    })
}

fn send_params(skill: &str, parts: Value) -> Value {
    json!({"message": message(skill, parts)})
}

fn output_of(task: &Value) -> Value {
    let part = &task["artifacts"][0]["parts"][0];
    if let Some(data) = part.get("data") {
        return data.clone();
    }
    serde_json::from_str(part["text"].as_str().unwrap()).unwrap()
}

fn assert_error(response: &Value, code: i64, contains: &str) {
    assert_eq!(response["error"]["code"], code, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(contains),
        "{message:?} should contain {contains:?}"
    );
}

#[tokio::test]
async fn ids_that_are_not_string_number_or_null_are_invalid_requests() {
    let agent = Served::start(None);
    for id in [json!({"a": 1}), json!([1]), json!(true)] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "GetTask", "params": {"id": "x"}});
        let response: Value = agent
            .post_raw(&body, Some("1.0"))
            .await
            .json()
            .await
            .unwrap();
        assert_error(&response, -32600, "`id`");
        assert_eq!(response["id"], Value::Null, "answered with id null");
    }
    for id in [json!("text"), json!(12)] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "GetTask", "params": {"id": "x"}});
        let response: Value = agent
            .post_raw(&body, Some("1.0"))
            .await
            .json()
            .await
            .unwrap();
        assert_error(&response, -32001, "task `x` not found");
        assert_eq!(response["id"], id, "the id is echoed as given");
    }
    let response = agent
        .rpc_version("GetTask", json!({"id": "x"}), Some("2.0"))
        .await;
    assert_error(&response, -32009, "`2.0` is not supported");
}

#[tokio::test]
async fn invalid_messages_and_history_lengths_name_the_field() {
    let agent = Served::start(None);
    let valid = message("echo", json!([{"text": "{}"}]));
    let without = |field: &str| {
        let mut message = valid.clone();
        message.as_object_mut().unwrap().remove(field);
        json!({"message": message})
    };
    let with = |field: &str, value: Value| {
        let mut message = valid.clone();
        message[field] = value;
        json!({"message": message})
    };
    let cases = [
        (without("role"), "/params/message/role"),
        (with("role", json!("ROLE_ROBOT")), "/params/message/role"),
        (without("parts"), "/params/message/parts"),
        (with("parts", json!([])), "/params/message/parts"),
        (
            with("parts", json!([{"metadata": {}}])),
            "/params/message/parts/0",
        ),
        (without("messageId"), "/params/message/messageId"),
        (json!({}), "/params/message"),
        (
            json!({"message": valid, "configuration": {"historyLength": -1}}),
            "/params/configuration/historyLength",
        ),
    ];
    for (params, pointer) in cases {
        for method in ["SendMessage", "SendStreamingMessage"] {
            let response = agent.rpc(method, params.clone()).await;
            assert_error(&response, -32602, pointer);
            let violation = &response["error"]["data"][0];
            assert_eq!(
                violation["@type"],
                "type.googleapis.com/google.rpc.BadRequest"
            );
            assert_eq!(
                violation["fieldViolations"][0]["field"], pointer,
                "{response}"
            );
        }
    }
    let response = agent
        .rpc("GetTask", json!({"id": "x", "historyLength": -2}))
        .await;
    assert_error(&response, -32602, "/params/historyLength");
    let response = agent.rpc("ListTasks", json!({"historyLength": -2})).await;
    assert_error(&response, -32602, "/params/historyLength");
    let response = agent.rpc("GetTask", json!({})).await;
    assert_error(&response, -32602, "/params/id");
}

#[tokio::test]
async fn push_notifications_and_the_extended_card_are_unsupported_as_the_card_says() {
    let agent = Served::start(None);
    let card: Value = agent
        .http
        .get(format!("{}/.well-known/agent-card.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["capabilities"]["pushNotifications"], false);
    assert_eq!(card["capabilities"]["extendedAgentCard"], false);
    assert_eq!(card["capabilities"]["streaming"], true);
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(
        card["supportedInterfaces"][1]["protocolBinding"],
        "HTTP+JSON"
    );
    assert_eq!(card["supportedInterfaces"][2]["protocolVersion"], "0.3");
    assert_eq!(
        card["protocolVersion"], "0.3.0",
        "0.3 clients read the top-level fields"
    );
    assert_eq!(card["url"], format!("{}/", agent.url));
    assert!(card.get("securitySchemes").is_none());
    for method in [
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
    ] {
        let params = json!({"taskId": "t", "id": "c"});
        assert_error(
            &agent.rpc(method, params).await,
            -32003,
            "push notifications",
        );
    }
    assert_error(
        &agent.rpc("GetExtendedAgentCard", json!({})).await,
        -32004,
        "extended agent card",
    );
    let response = agent
        .rpc_version("tasks/pushNotificationConfig/set", json!({}), None)
        .await;
    assert_error(&response, -32003, "push notifications");
    assert_error(
        &agent.rpc("tasks/get", json!({"id": "x"})).await,
        -32601,
        "not found",
    );
}

#[tokio::test]
async fn text_parts_are_json_text_or_a_string_and_several_parts_merge() {
    let agent = Served::start(None);
    let cases = [
        ("echo", json!([{"text": "{\"a\": 1}"}]), json!({"a": 1})),
        (
            "echo",
            json!([{"text": "hello there"}]),
            json!({"text": "hello there"}),
        ),
        ("shout", json!([{"text": "hello"}]), json!("hello")),
        (
            "echo",
            json!([{"data": {"a": [1]}, "mediaType": "application/json"}]),
            json!({"a": [1]}),
        ),
        (
            "echo",
            json!([{"text": "note"}, {"data": {"b": 2}}]),
            json!({"text": "note", "b": 2}),
        ),
    ];
    for (skill, parts, expected) in cases {
        let result = agent
            .result("SendMessage", send_params(skill, parts.clone()))
            .await;
        let task = &result["task"];
        assert_eq!(
            task["status"]["state"], "TASK_STATE_COMPLETED",
            "{parts}: {result}"
        );
        assert_eq!(output_of(task), expected, "for {parts}");
    }
    let clash = send_params("echo", json!([{"data": {"a": 1}}, {"data": {"a": 2}}]));
    assert_error(
        &agent.rpc("SendMessage", clash).await,
        -32602,
        "/params/message/parts/1",
    );
    let file = send_params("echo", json!([{"url": "http://example.invalid/f"}]));
    assert_error(
        &agent.rpc("SendMessage", file).await,
        -32005,
        "file parts are not supported",
    );
}

#[tokio::test]
async fn history_length_is_honoured_by_send_get_and_list() {
    let agent = Served::start(None);
    let mut params = send_params("echo", json!([{"text": "{}"}]));
    let sent = agent.result("SendMessage", params.clone()).await["task"].clone();
    let history = sent["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "the user message: {sent}");
    assert_eq!(history[0]["role"], "ROLE_USER");
    assert_eq!(history[0]["taskId"], sent["id"]);
    params["configuration"] = json!({"historyLength": 0});
    let sent = agent.result("SendMessage", params).await["task"].clone();
    assert!(
        sent.get("history").is_none(),
        "historyLength 0: no history: {sent}"
    );
    let id = sent["id"].as_str().unwrap();
    let fetched = agent.result("GetTask", json!({"id": id})).await;
    assert_eq!(fetched["history"].as_array().unwrap().len(), 1);
    let fetched = agent
        .result("GetTask", json!({"id": id, "historyLength": 0}))
        .await;
    assert!(fetched.get("history").is_none());
    let listed = agent.result("ListTasks", json!({"historyLength": 0})).await;
    assert!(listed["tasks"][0].get("history").is_none());

    // A large input runs whole but is not kept whole in the history.
    let large = "x".repeat(100 * 1024);
    let sent = agent
        .result(
            "SendMessage",
            send_params("echo", json!([{"data": {"large": large}}])),
        )
        .await;
    assert_eq!(
        output_of(&sent["task"])["large"].as_str().map(str::len),
        Some(100 * 1024)
    );
    let note = sent["task"]["history"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(note.contains("not kept in the history"), "{note}");
}

#[tokio::test]
async fn list_tasks_filters_pages_and_leaves_artifacts_out_unless_asked() {
    let agent = Served::start(None);
    let context = "context-a";
    for index in 0..3 {
        let mut params = send_params("echo", json!([{"data": {"n": index}}]));
        params["message"]["contextId"] = json!(context);
        agent.result("SendMessage", params).await;
    }
    agent
        .result("SendMessage", send_params("echo", json!([{"data": {}}])))
        .await;

    let all = agent.result("ListTasks", json!({})).await;
    assert_eq!(all["totalSize"], 4);
    assert_eq!(all["pageSize"], 50, "the spec's default page size");
    assert_eq!(all["nextPageToken"], "");
    assert!(
        all["tasks"][0].get("artifacts").is_none(),
        "includeArtifacts defaults to false"
    );
    let last_sent = agent.result("ListTasks", json!({"pageSize": 1})).await;
    // The task sent last (outside `context`) was updated last.
    assert_ne!(
        last_sent["tasks"][0]["contextId"], context,
        "most recently updated first"
    );
    let as_string = agent.result("ListTasks", json!({"pageSize": "2"})).await;
    assert_eq!(
        as_string["pageSize"], 2,
        "ProtoJSON integers may come as strings"
    );

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = agent
            .result("ListTasks", json!({"contextId": context, "pageSize": 2, "pageToken": token, "includeArtifacts": true}))
            .await;
        assert_eq!(page["totalSize"], 3);
        for task in page["tasks"].as_array().unwrap() {
            assert_eq!(task["contextId"], context);
            assert!(task["artifacts"].is_array());
            seen.push(task["id"].as_str().unwrap().to_string());
        }
        token = page["nextPageToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "each task once: {seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 3);

    let completed = agent
        .result("ListTasks", json!({"status": "TASK_STATE_COMPLETED"}))
        .await;
    assert_eq!(completed["totalSize"], 4);
    let working = agent
        .result("ListTasks", json!({"status": "TASK_STATE_WORKING"}))
        .await;
    assert_eq!(working["tasks"], json!([]));
    let future = agent
        .result(
            "ListTasks",
            json!({"statusTimestampAfter": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(future["totalSize"], 0);

    let refused = [
        (json!({"pageSize": 0}), "/params/pageSize"),
        (json!({"pageSize": 101}), "/params/pageSize"),
        (json!({"pageToken": "not-a-token"}), "/params/pageToken"),
        (json!({"status": "TASK_STATE_SLEEPING"}), "/params/status"),
        (
            json!({"statusTimestampAfter": "yesterday"}),
            "/params/statusTimestampAfter",
        ),
    ];
    for (params, pointer) in refused {
        assert_error(&agent.rpc("ListTasks", params).await, -32602, pointer);
    }
}

#[tokio::test]
async fn streams_start_with_the_task_and_end_at_the_terminal_status() {
    let agent = Served::start(None);
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "SendStreamingMessage",
                      "params": send_params("echo", json!([{"data": {"x": 1}}]))});
    let events = Served::events(agent.post_raw(&body, Some("1.0")).await).await;
    assert!(
        events
            .iter()
            .all(|event| event["id"] == 9 && event["jsonrpc"] == "2.0")
    );
    let first = &events[0]["result"];
    assert!(first["task"]["id"].is_string(), "{first}");
    let last = &events.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(
        last["status"]["state"], "TASK_STATE_COMPLETED",
        "{events:?}"
    );
    let artifact = events
        .iter()
        .find_map(|event| event["result"].get("artifactUpdate"))
        .expect("the result comes as an artifact update");
    assert_eq!(artifact["artifact"]["parts"][0]["data"], json!({"x": 1}));

    // Subscribe to a running task, cancel it: the stream ends with CANCELED.
    let mut params = send_params("slow", json!([{"data": {}}]));
    params["configuration"] = json!({"returnImmediately": true});
    let task = agent.result("SendMessage", params).await["task"].clone();
    let id = task["id"].as_str().unwrap().to_string();
    let body =
        json!({"jsonrpc": "2.0", "id": "s", "method": "SubscribeToTask", "params": {"id": id}});
    let subscription = agent.post_raw(&body, Some("1.0")).await;
    let canceled = agent.result("CancelTask", json!({"id": id})).await;
    assert_eq!(canceled["status"]["state"], "TASK_STATE_CANCELED");
    let events = Served::events(subscription).await;
    assert_eq!(events[0]["result"]["task"]["id"], id.as_str());
    let last = &events.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_CANCELED", "{events:?}");

    let finished = agent.rpc("SubscribeToTask", json!({"id": id})).await;
    assert_error(&finished, -32004, "already ended");
    assert_error(
        &agent.rpc("SubscribeToTask", json!({"id": "nope"})).await,
        -32001,
        "not found",
    );
    assert_error(
        &agent.rpc("CancelTask", json!({"id": id})).await,
        -32002,
        "cannot be canceled",
    );
}

#[tokio::test]
async fn http_json_binding_serves_the_same_operations_with_its_error_form() {
    let token = "0123456789abcdef0123456789abcdef";
    let agent = Served::start(Some(token));
    let unauthorized = agent
        .rest(
            POST,
            "/message:send",
            Some(send_params("echo", json!([{"text": "{}"}]))),
        )
        .await;
    assert_eq!(
        unauthorized.status(),
        401,
        "the bearer token guards HTTP+JSON too"
    );
    let authorized = Some(token);
    let response = agent
        .rest_as(
            authorized,
            POST,
            "/message:send",
            Some(send_params("echo", json!([{"text": "{\"r\": 1}"}]))),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/a2a+json");
    let sent: Value = response.json().await.unwrap();
    assert_eq!(output_of(&sent["task"]), json!({"r": 1}));
    let id = sent["task"]["id"].as_str().unwrap();

    let path = format!("/tasks/{id}?historyLength=0");
    let fetched = agent.get_json_as(authorized, &path).await;
    assert_eq!(fetched["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(fetched.get("history").is_none());
    let path = "/tasks?pageSize=10&includeArtifacts=true";
    let listed = agent.get_json_as(authorized, path).await;
    assert_eq!(listed["tasks"][0]["id"], id);
    assert!(listed["tasks"][0]["artifacts"].is_array());

    let stream = agent
        .rest_as(
            authorized,
            POST,
            "/message:stream",
            Some(send_params("echo", json!([{"data": {}}]))),
        )
        .await;
    let events = Served::events(stream).await;
    assert!(
        events[0]["task"].is_object(),
        "HTTP+JSON events are bare StreamResponses: {events:?}"
    );
    assert_eq!(
        events.last().unwrap()["statusUpdate"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );

    http_json_errors_name_their_reason(&agent, token, id).await;
    let invalid = agent
        .rest_as(
            authorized,
            POST,
            "/message:send",
            Some(json!({"message": {"messageId": "m", "parts": [{"text": "a"}]}})),
        )
        .await;
    assert_eq!(invalid.status(), 400);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        body["error"]["details"][0]["fieldViolations"][0]["field"],
        "/message/role"
    );
}

/// The HTTP+JSON error form: the HTTP status in `error.code`, the reason in
/// `error.details[0].reason` (none: INVALID_ARGUMENT), for task `id`.
async fn http_json_errors_name_their_reason(agent: &Served, token: &str, id: &str) {
    let errors = [
        (GET, "/tasks/nope".to_string(), 404, "TASK_NOT_FOUND"),
        (
            POST,
            format!("/tasks/{id}:cancel"),
            400,
            "TASK_NOT_CANCELABLE",
        ),
        (
            GET,
            format!("/tasks/{id}:subscribe"),
            400,
            "UNSUPPORTED_OPERATION",
        ),
        (
            POST,
            format!("/tasks/{id}:subscribe"),
            400,
            "UNSUPPORTED_OPERATION",
        ),
        (
            GET,
            "/extendedAgentCard".to_string(),
            400,
            "UNSUPPORTED_OPERATION",
        ),
        (
            GET,
            format!("/tasks/{id}/pushNotificationConfigs"),
            400,
            "PUSH_NOTIFICATION_NOT_SUPPORTED",
        ),
        (
            GET,
            "/tasks?pageSize=500".to_string(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            GET,
            "/tasks?pageToken=zzz".to_string(),
            400,
            "INVALID_ARGUMENT",
        ),
    ];
    for (method, path, status, reason) in errors {
        let response = agent.rest_as(Some(token), method, &path, None).await;
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], status, "{path}: {body}");
        let details = body["error"]["details"][0].clone();
        let found = details["reason"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "INVALID_ARGUMENT".to_string());
        assert_eq!(found, reason, "{path}: {body}");
    }
}

#[tokio::test]
async fn a2a_0_3_requests_without_a_version_header_are_served() {
    let agent = Served::start(None);
    let params = json!({"message": {
        "kind": "message", "messageId": "m1", "role": "user",
        "parts": [{"kind": "text", "text": "{\"v\": 3}"}],
        "metadata": {"skillId": "echo"},
    }});
    let response = agent
        .rpc_version("message/send", params.clone(), None)
        .await;
    let task = &response["result"];
    assert_eq!(task["kind"], "task", "{response}");
    assert_eq!(task["status"]["state"], "completed");
    assert_eq!(
        task["artifacts"][0]["parts"][0],
        json!({"kind": "data", "data": {"v": 3}})
    );
    assert_eq!(task["history"][0]["role"], "user");
    let id = task["id"].as_str().unwrap();
    let fetched = agent
        .rpc_version("tasks/get", json!({"id": id}), Some("0.3"))
        .await;
    assert_eq!(fetched["result"]["status"]["state"], "completed");
    let cancel = agent
        .rpc_version("tasks/cancel", json!({"id": id}), None)
        .await;
    assert_error(&cancel, -32002, "cannot be canceled");

    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "message/stream", "params": params});
    let events = Served::events(agent.post_raw(&body, None).await).await;
    assert_eq!(events[0]["result"]["kind"], "task");
    let last = &events.last().unwrap()["result"];
    assert_eq!(last["kind"], "status-update");
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "completed");

    let response = agent.rpc_version("SendMessage", json!({}), None).await;
    assert_error(&response, -32009, "`A2A-Version: 1.0`");
}

// ---- official clients ----

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python(venv: &str) -> std::path::PathBuf {
    let python = repository().join(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-env.sh",
        python.display()
    );
    python
}

async fn run_client(mut command: tokio::process::Command) -> Value {
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("the client finishes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("client printed no JSON ({error}): {stderr}"))
}

fn node() -> tokio::process::Command {
    let node = std::env::var_os("PALLET_TEST_NODE").unwrap_or_else(|| "node".into());
    let mut command = tokio::process::Command::new(node);
    command.kill_on_drop(true);
    command
}

/// What each official 1.0 client reports, per binding: text and data parts,
/// ListTasks, streaming and cancel.
fn assert_v1_client_report(report: &Value) {
    for (binding, transport) in [("JSONRPC", "JsonRpc"), ("HTTP+JSON", "Rest")] {
        let run = &report[binding];
        let used = run["transport"].as_str().unwrap_or_default();
        assert!(
            used.contains(transport),
            "{binding} went through {used}: {report}"
        );
        assert_eq!(
            run["text"]["state"], "TASK_STATE_COMPLETED",
            "{binding}: {report}"
        );
        assert_eq!(
            run["text"]["output"],
            json!({"text": "hello agent"}),
            "{binding}"
        );
        assert_eq!(
            run["data"]["output"]["n"].as_f64(),
            Some(7.0),
            "{binding}: {report}"
        );
        assert!(run["listed"].as_u64().unwrap() >= 2, "{binding}: {report}");
        let streamed = run["streamed"].as_array().unwrap();
        assert_eq!(streamed.first().unwrap(), "task", "{binding}: {report}");
        assert_eq!(
            streamed.last().unwrap(),
            "TASK_STATE_COMPLETED",
            "{binding}: {report}"
        );
        assert_eq!(
            run["canceled"], "TASK_STATE_CANCELED",
            "{binding}: {report}"
        );
    }
}

#[tokio::test]
async fn official_javascript_clients_1_0_and_0_3_call_the_agent() {
    let agent = Served::start(None);
    let mut command = node();
    command
        .arg(repository().join("tests/peers/js/serve_client.mjs"))
        .arg(&agent.url)
        .arg("--sdk=1");
    assert_v1_client_report(&run_client(command).await);

    let mut command = node();
    command
        .arg(repository().join("tests/peers/js/serve_client.mjs"))
        .arg(&agent.url)
        .arg("--sdk=0.3");
    let report = run_client(command).await;
    assert_eq!(report["text"]["state"], "completed", "{report}");
    assert_eq!(
        report["text"]["output"],
        json!({"text": "hello agent"}),
        "{report}"
    );
    assert_eq!(
        report["streamed"].as_array().unwrap().last().unwrap(),
        "completed",
        "{report}"
    );
    assert_eq!(report["canceled"], "canceled", "{report}");
}

#[tokio::test]
async fn official_python_clients_1_0_and_0_3_call_the_agent() {
    let agent = Served::start(None);
    let mut command = tokio::process::Command::new(python(".venv"));
    command
        .kill_on_drop(true)
        .arg(repository().join("tests/peers/serve_client.py"))
        .arg(&agent.url);
    assert_v1_client_report(&run_client(command).await);

    let mut command = tokio::process::Command::new(python(".venv-a2a03"));
    command
        .kill_on_drop(true)
        .arg(repository().join("tests/peers/serve_client03.py"))
        .arg(&agent.url);
    let report = run_client(command).await;
    assert_eq!(report["text"]["state"], "completed", "{report}");
    assert_eq!(
        report["text"]["output"],
        json!({"text": "hello agent"}),
        "{report}"
    );
    assert_eq!(report["streamed"][0], "task", "{report}");
    assert_eq!(
        report["streamed"].as_array().unwrap().last().unwrap(),
        "completed",
        "{report}"
    );
    assert_eq!(report["canceled"], "canceled", "{report}");
}

#[tokio::test]
async fn open_streams_are_bounded_and_a_slot_frees_when_a_stream_ends() {
    const MAX_STREAMS: usize = 3;
    let agent = Served::start_with(None, &["--max-streams", "3"]);
    let stream_body = || {
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
               "params": send_params("slow", json!([{"data": {}}]))})
    };
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS {
        let response = agent.post_raw(&stream_body(), Some("1.0")).await;
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        open.push(response);
    }
    let refused: Value = agent
        .post_raw(&stream_body(), Some("1.0"))
        .await
        .json()
        .await
        .unwrap();
    assert_error(
        &refused,
        -32603,
        "too many open streams (see `pallet agent serve --max-streams`)",
    );

    // Cancel the task of one stream: its stream ends and frees the slot.
    let mut first = open.remove(0);
    let chunk = first.chunk().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&chunk);
    let event: Value =
        serde_json::from_str(text.trim().strip_prefix("data:").unwrap().trim()).unwrap();
    let id = event["result"]["task"]["id"].as_str().unwrap();
    agent.result("CancelTask", json!({"id": id})).await;
    while first.chunk().await.unwrap().is_some() {}
    let again = agent.post_raw(&stream_body(), Some("1.0")).await;
    assert!(
        again.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
}
