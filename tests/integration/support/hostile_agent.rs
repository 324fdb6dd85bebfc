//! An agent that misbehaves on purpose, as a real HTTP server on a free
//! loopback port: huge answers (announced or streamed), unknown task states,
//! redirects (of calls or of card fetches), cards with credentials in their URLs. Every request is recorded
//! (method, path, JSON-RPC method, Authorization header) so tests can tell
//! what pallet sent. Stops when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

/// What the agent answers to a skill call (A2A `SendMessage` or legacy `/execute`).
#[derive(Clone)]
pub enum Answer {
    /// A completed task (or legacy result) of `{"blob": "xxx…"}`, `bytes` long,
    /// with a Content-Length, or streamed in chunks without one.
    HugeString { bytes: usize, streamed: bool },
    /// `{"items": [{"a":1}, …]}`, about `bytes` long.
    ManyObjects { bytes: usize },
    /// A task in a state A2A does not define; `GetTask` says the same.
    UnknownState,
    /// `status` with `Location: location`.
    Redirect { status: u16, location: String },
    /// A small completed task `{"ok": true}`.
    Small,
}

/// One request the agent received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The JSON-RPC method, for POSTs with a JSON body.
    pub rpc_method: Option<String>,
    pub authorization: Option<String>,
    pub body: String,
}

struct Shared {
    answer: Answer,
    /// Overrides the card's interface URL (else this server's `/rpc`).
    interface_url: Option<String>,
    legacy: bool,
    received: Vec<Received>,
    base: String,
    /// (status, Location) every GET is answered with instead of the card.
    card_redirect: Option<(u16, String)>,
}

pub struct HostileAgent {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl HostileAgent {
    /// An A2A 1.0 agent offering skill `big`.
    pub async fn a2a(answer: Answer) -> HostileAgent {
        HostileAgent::start(answer, false, None).await
    }

    /// A legacy agent (`/agent-card`, `/execute`) offering skill `big`.
    pub async fn legacy(answer: Answer) -> HostileAgent {
        HostileAgent::start(answer, true, None).await
    }

    /// An A2A agent whose card names `interface_url` (`{addr}` is replaced by its own host:port).
    pub async fn a2a_with_interface(answer: Answer, interface_url: &str) -> HostileAgent {
        HostileAgent::start(answer, false, Some(interface_url.to_string())).await
    }

    async fn start(answer: Answer, legacy: bool, interface_url: Option<String>) -> HostileAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            answer,
            interface_url,
            legacy,
            received: Vec::new(),
            base: format!("http://{addr}"),
            card_redirect: None,
        }));
        let app = Router::new()
            .fallback(any(handle))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        HostileAgent {
            addr,
            shared,
            _shutdown: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on every GET (a card fetch) answers `status` with `Location: location`.
    pub fn redirect_cards(&self, status: u16, location: &str) {
        self.shared.lock().unwrap().card_redirect = Some((status, location.to_string()));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// How many JSON-RPC requests of `method` came in.
    pub fn rpc_calls(&self, method: &str) -> usize {
        self.received()
            .iter()
            .filter(|request| request.rpc_method.as_deref() == Some(method))
            .count()
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let rpc_method = request["method"].as_str().map(str::to_string);
    let (answer, legacy, base, interface_url, card_redirect) = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            rpc_method: rpc_method.clone(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
        (
            shared.answer.clone(),
            shared.legacy,
            shared.base.clone(),
            shared.interface_url.clone(),
            shared.card_redirect.clone(),
        )
    };
    if method == Method::GET
        && let Some((status, location)) = card_redirect
    {
        let status = StatusCode::from_u16(status).unwrap();
        return (status, [(header::LOCATION, location)]).into_response();
    }
    if method == Method::GET {
        return card(&uri, legacy, &base, interface_url);
    }
    if let Answer::Redirect { status, location } = &answer
        && matches!(uri.path(), "/rpc" | "/execute")
    {
        let status = StatusCode::from_u16(*status).unwrap();
        return (status, [(header::LOCATION, location.clone())]).into_response();
    }
    match rpc_method.as_deref() {
        Some("CancelTask") => json_reply(
            &request,
            json!({"id": "t-1", "status": {"state": "TASK_STATE_CANCELED"}}),
        ),
        Some("GetTask") => json_reply(&request, task(&answer)),
        _ if legacy => result_reply(&request, &answer, |result| result),
        _ => result_reply(&request, &answer, |result| {
            json!({"task": {"id": "t-1", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
                            "artifacts": [{"parts": [{"data": result}]}]}})
        }),
    }
}

fn card(uri: &Uri, legacy: bool, base: &str, interface_url: Option<String>) -> Response {
    let skills = json!([{"id": "big", "name": "big", "description": "answers badly"}]);
    let card = match (legacy, uri.path()) {
        (true, "/agent-card") => json!({"name": "hostile", "url": base, "skills": skills}),
        (false, "/.well-known/agent-card.json") => {
            let url = interface_url
                .map(|url| url.replace("{addr}", base.trim_start_matches("http://")))
                .unwrap_or_else(|| format!("{base}/rpc"));
            json!({"name": "hostile", "skills": skills, "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]})
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    axum::Json(card).into_response()
}

fn task(answer: &Answer) -> Value {
    match answer {
        Answer::UnknownState => {
            json!({"task": {"id": "t-1", "contextId": "c", "status": {"state": "TASK_STATE_EXPLODED"}}})
        }
        _ => {
            json!({"task": {"id": "t-1", "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}})
        }
    }
}

fn json_reply(request: &Value, result: Value) -> Response {
    let id = request["id"].clone();
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// The reply to a call: `wrap` turns the skill's result into the protocol's `result`.
fn result_reply(request: &Value, answer: &Answer, wrap: impl Fn(Value) -> Value) -> Response {
    let id = request["id"].clone();
    match answer {
        Answer::HugeString { bytes, streamed } => {
            let placeholder = wrap(json!({"blob": "@"}));
            let text = json!({"jsonrpc": "2.0", "id": id, "result": placeholder}).to_string();
            let (before, after) = text.split_once('@').unwrap();
            let (before, after) = (before.to_string(), after.to_string());
            if !streamed {
                let text = format!("{before}{}{after}", "x".repeat(*bytes));
                return ([(header::CONTENT_TYPE, "application/json")], text).into_response();
            }
            // No Content-Length: the client must count as the chunks arrive.
            let chunk = Bytes::from("x".repeat(64 * 1024));
            let chunks = bytes.div_ceil(chunk.len());
            let stream = futures::stream::iter(
                std::iter::once(Bytes::from(before))
                    .chain(std::iter::repeat_n(chunk, chunks))
                    .chain(std::iter::once(Bytes::from(after)))
                    .map(Ok::<Bytes, std::io::Error>),
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Answer::ManyObjects { bytes } => {
            let items = vec![json!({"a": 1}); bytes / 8];
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": wrap(json!({"items": items}))}))
                .into_response()
        }
        Answer::UnknownState => {
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": task(answer)})).into_response()
        }
        Answer::Small | Answer::Redirect { .. } => {
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": wrap(json!({"ok": true}))}))
                .into_response()
        }
    }
}
