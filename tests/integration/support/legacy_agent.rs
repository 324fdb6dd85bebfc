//! An in-process agent speaking the original project's legacy protocol
//! (`GET /agent-card`, `POST /execute`), with skills whose behaviour tests choose.
//!
//! Skills: `echo` (returns its params), `fail` (JSON-RPC error, with
//! `params.message` if given), `sleep`
//! (waits `params.ms`, then echoes), `flaky` (HTTP 503 for the first
//! `params.failures` calls with the same `params.key`, then echoes),
//! `garbage` (answers 200 with a body that is not JSON-RPC). Any skill named in
//! `extra_skills` echoes as well.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
struct Shared {
    name: String,
    skills: Vec<String>,
    /// skill -> number of /execute calls received.
    calls: HashMap<String, u32>,
    /// flaky key -> failures served so far.
    flaky: HashMap<String, u64>,
    /// (Idempotency-Key header, params) of every /execute call, in arrival order.
    sent: Vec<(String, Value)>,
    /// The `traceparent` header of every /execute call ("" when absent).
    traces: Vec<String>,
    /// /execute calls being answered now, and the most there ever were at once.
    in_flight: u32,
    max_in_flight: u32,
}

/// Counts a call in flight until dropped.
struct InFlight(Arc<Mutex<Shared>>);

impl InFlight {
    fn enter(shared: &Arc<Mutex<Shared>>) -> InFlight {
        let mut state = shared.lock().unwrap();
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

/// A running legacy agent; stops when dropped.
pub struct LegacyAgent {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl LegacyAgent {
    pub async fn start(name: &str, extra_skills: &[&str]) -> LegacyAgent {
        let mut skills: Vec<String> = ["echo", "fail", "sleep", "flaky", "garbage"]
            .iter()
            .chain(extra_skills)
            .map(|skill| skill.to_string())
            .collect();
        skills.dedup();
        let shared = Arc::new(Mutex::new(Shared {
            name: name.to_string(),
            skills,
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/agent-card", get(card))
            .route("/execute", post(execute))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        LegacyAgent {
            addr,
            shared,
            _shutdown: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most /execute calls it answered at once.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.lock().unwrap().max_in_flight
    }

    /// (Idempotency-Key, params) of every call received, in arrival order.
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.shared.lock().unwrap().sent.clone()
    }

    /// The `traceparent` header of each /execute call, in arrival order.
    pub fn traces(&self) -> Vec<String> {
        self.shared.lock().unwrap().traces.clone()
    }

    /// How many times `skill` was called.
    pub fn calls(&self, skill: &str) -> u32 {
        self.shared
            .lock()
            .unwrap()
            .calls
            .get(skill)
            .copied()
            .unwrap_or(0)
    }
}

async fn card(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let shared = shared.lock().unwrap();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let skills: Vec<Value> = shared
        .skills
        .iter()
        .map(|id| json!({"id": id, "description": format!("test skill {id}"), "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}))
        .collect();
    Json(json!({"name": shared.name, "url": format!("http://{host}"), "skills": skills}))
}

async fn execute(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: axum::http::HeaderMap,
    Json(request): Json<Value>,
) -> Response {
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default().to_string();
    let params = request.get("params").cloned().unwrap_or(json!({}));
    let _in_flight = InFlight::enter(&shared);
    let key = headers
        .get("idempotency-key")
        .and_then(|key| key.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let known = {
        let mut shared = shared.lock().unwrap();
        shared.sent.push((key, params.clone()));
        let trace = headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        shared.traces.push(trace.to_string());
        *shared.calls.entry(method.clone()).or_default() += 1;
        shared.skills.contains(&method)
    };
    let ok =
        |result: Value| Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response();
    if !known {
        return Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method not found: {method}")}}))
            .into_response();
    }
    match method.as_str() {
        "fail" => {
            let message = params["message"]
                .as_str()
                .unwrap_or("skill failed on purpose");
            Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}}))
                .into_response()
        }
        "sleep" => {
            let ms = params["ms"].as_u64().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ok(params)
        }
        "flaky" => {
            let key = params["key"].as_str().unwrap_or_default().to_string();
            let failures = params["failures"].as_u64().unwrap_or(1);
            let served = {
                let mut shared = shared.lock().unwrap();
                let served = shared.flaky.entry(key).or_default();
                *served += 1;
                *served
            };
            if served <= failures {
                (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
            } else {
                ok(params)
            }
        }
        "garbage" => (StatusCode::OK, "this is not json").into_response(),
        _ => ok(params),
    }
}
