//! The fast local test agent: one axum server speaking A2A 1.0 JSON-RPC under
//! `/a2a` and the legacy protocol under `/legacy`, echoing each call's input
//! at once so the figures measure the runner, not the agent.
//!
//! A2A calls go the long way on purpose: `SendMessage` (with
//! `returnImmediately`) answers a submitted task and `GetTask` completes it,
//! so every A2A step makes the two requests a real asynchronous agent needs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Skills the fixtures call; every one echoes its input.
const SKILLS: [&str; 4] = ["echo", "create_plan", "generate_code", "review_code"];

pub struct EchoAgent {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct Tasks {
    /// Submitted tasks by id: the data part to echo on `GetTask`.
    pending: Mutex<HashMap<String, Value>>,
    next: AtomicU64,
    base: String,
}

impl EchoAgent {
    pub async fn start() -> EchoAgent {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let tasks = Arc::new(Tasks {
            base: base.clone(),
            ..Tasks::default()
        });
        let router = Router::new()
            .route("/a2a/.well-known/agent-card.json", get(a2a_card))
            .route("/a2a/rpc", post(a2a_rpc))
            .route("/legacy/agent-card", get(legacy_card))
            .route("/legacy/execute", post(legacy_execute))
            .with_state(tasks);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("agent server");
        });
        EchoAgent { base, server }
    }

    /// What `--agent` gets: the card URL, so discovery makes one request.
    pub fn card_url(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::A2a => format!("{}/a2a/.well-known/agent-card.json", self.base),
            Protocol::Legacy => format!("{}/legacy/agent-card", self.base),
        }
    }
}

impl Drop for EchoAgent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    A2a,
    Legacy,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::A2a => "A2A 1.0",
            Protocol::Legacy => "legacy",
        }
    }

    /// HTTP requests one step makes.
    pub fn calls_per_step(self) -> usize {
        match self {
            Protocol::A2a => 2,
            Protocol::Legacy => 1,
        }
    }
}

fn skills() -> Vec<Value> {
    SKILLS
        .iter()
        .map(|id| json!({"id": id, "name": id, "description": "echoes its input", "tags": ["bench"]}))
        .collect()
}

async fn a2a_card(State(tasks): State<Arc<Tasks>>) -> Json<Value> {
    Json(json!({
        "name": "bench-a2a",
        "description": "echo agent for benchmarks",
        "version": "1.0.0",
        "supportedInterfaces": [{
            "url": format!("{}/a2a/rpc", tasks.base),
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        }],
        "skills": skills(),
    }))
}

async fn a2a_rpc(
    State(tasks): State<Arc<Tasks>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> Json<Value> {
    let id = request["id"].clone();
    let reply = |result: Result<Value, (i64, &str)>| match result {
        Ok(result) => Json(json!({"jsonrpc": "2.0", "id": id, "result": result})),
        Err((code, message)) => {
            Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        }
    };
    if headers.get("A2A-Version").and_then(|v| v.to_str().ok()) != Some("1.0") {
        return reply(Err((-32009, "version not supported")));
    }
    let params = &request["params"];
    match request["method"].as_str() {
        Some("SendMessage") => {
            let data = params["message"]["parts"][0]["data"].clone();
            let task_id = format!("task-{}", tasks.next.fetch_add(1, Ordering::Relaxed));
            tasks.lock().insert(task_id.clone(), data);
            reply(Ok(json!({"task": {
                "id": task_id,
                "contextId": "bench",
                "status": {"state": "TASK_STATE_SUBMITTED"},
            }})))
        }
        Some("GetTask") => {
            let task_id = params["id"].as_str().unwrap_or_default();
            match tasks.lock().remove(task_id) {
                Some(data) => reply(Ok(json!({
                    "id": task_id,
                    "contextId": "bench",
                    "status": {"state": "TASK_STATE_COMPLETED"},
                    "artifacts": [{"artifactId": "echo", "parts": [{"data": data, "mediaType": "application/json"}]}],
                }))),
                None => reply(Err((-32001, "task not found"))),
            }
        }
        Some("CancelTask") => reply(Ok(
            json!({"id": params["id"], "status": {"state": "TASK_STATE_CANCELED"}}),
        )),
        _ => reply(Err((-32601, "method not found"))),
    }
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn legacy_card(State(tasks): State<Arc<Tasks>>) -> Json<Value> {
    let skills: Vec<Value> = SKILLS
        .iter()
        .map(|id| json!({"id": id, "description": "echoes its input"}))
        .collect();
    Json(json!({"name": "bench-legacy", "url": format!("{}/legacy", tasks.base), "skills": skills}))
}

async fn legacy_execute(Json(request): Json<Value>) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}))
}
