//! The HTTP+JSON binding of A2A 1.0, mounted under [`REST_PREFIX`]: the same
//! operations as JSON-RPC, answered as `application/a2a+json`; errors as
//! `google.rpc.Status` (`{"error": {code, status, message, details}}`) with
//! the spec's HTTP status; streams as SSE of `StreamResponse` objects.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};

use super::AppState;
use super::a2a::{Version, no_extended_card, no_push_notifications, version_of};
use super::errors::{
    INVALID_PARAMS, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, VERSION_NOT_SUPPORTED,
};
use super::operations;
use super::stream::TaskStream;
use super::wire::event_json;

pub(super) use super::card::REST_PREFIX;

const A2A_JSON: &str = "application/a2a+json";

/// The binding's routes (relative to [`REST_PREFIX`]).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/message:send", post(send_message))
        .route("/message:stream", post(send_streaming_message))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(get_task).post(task_action))
        .route("/tasks/{id}/{*rest}", axum::routing::any(push_configs))
        .route("/extendedAgentCard", get(extended_card))
        .fallback(unknown_endpoint)
}

async fn unknown_endpoint(method: axum::http::Method, uri: Uri) -> Response {
    error_response(not_found(&format!("{method} {}", uri.path())))
}

/// The `google.rpc.Status` JSON of an error, with its HTTP status.
fn error_response(error: RpcError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"error": {
        "code": status.as_u16(),
        "status": grpc_status(&error),
        "message": error.message,
        "details": error.details(),
    }});
    (status, [(header::CONTENT_TYPE, A2A_JSON)], body.to_string()).into_response()
}

fn grpc_status(error: &RpcError) -> &'static str {
    match error.http_status() {
        404 => "NOT_FOUND",
        503 => "UNAVAILABLE",
        _ if error.code == INVALID_PARAMS || error.code == PARSE_ERROR => "INVALID_ARGUMENT",
        _ => "FAILED_PRECONDITION",
    }
}

fn json_response(result: Result<Value, RpcError>) -> Response {
    match result {
        Ok(value) => ([(header::CONTENT_TYPE, A2A_JSON)], value.to_string()).into_response(),
        Err(error) => error_response(error),
    }
}

fn stream_response(result: Result<TaskStream, RpcError>) -> Response {
    match result {
        Ok(stream) => {
            let events = stream.events().map(|event| {
                Ok::<Event, Infallible>(Event::default().data(event_json(&event).to_string()))
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
        Err(error) => error_response(error),
    }
}

/// HTTP+JSON is served for A2A 1.x only (0.3 clients use JSON-RPC here).
fn check_version(headers: &HeaderMap, uri: &Uri) -> Result<(), RpcError> {
    match version_of(headers, uri.query())? {
        Version::V1 => Ok(()),
        Version::V03 => Err(RpcError::new(
            VERSION_NOT_SUPPORTED,
            "the HTTP+JSON binding serves A2A 1.0: send header `A2A-Version: 1.0` (0.3 clients: use JSON-RPC at `/`)",
        )),
    }
}

fn body_json(body: &Bytes) -> Result<Value, RpcError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|error| RpcError::new(PARSE_ERROR, format!("request body is not JSON: {error}")))
}

async fn send_message(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        check_version(&headers, &uri)?;
        operations::send_message(&state, &body_json(&body)?, "").await
    };
    json_response(result.await)
}

async fn send_streaming_message(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = check_version(&headers, &uri)
        .and_then(|()| operations::send_streaming_message(&state, &body_json(&body)?, ""));
    stream_response(result)
}

/// `GET /tasks/{id}` and `GET /tasks/{id}:subscribe`.
async fn get_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(error) = check_version(&headers, &uri) {
        return error_response(error);
    }
    if let Some(id) = id.strip_suffix(":subscribe") {
        return stream_response(operations::subscribe(&state, &json!({"id": id}), ""));
    }
    let params = match query_params(&query, &["historyLength"], &[]) {
        Ok(mut params) => {
            params["id"] = json!(id);
            params
        }
        Err(error) => return error_response(error),
    };
    json_response(operations::get_task(&state, &params, ""))
}

/// `POST /tasks/{id}:cancel` and `POST /tasks/{id}:subscribe`.
async fn task_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    if let Err(error) = check_version(&headers, &uri) {
        return error_response(error);
    }
    if let Some(id) = id.strip_suffix(":cancel") {
        return json_response(operations::cancel_task(&state, &json!({"id": id}), "").await);
    }
    if let Some(id) = id.strip_suffix(":subscribe") {
        return stream_response(operations::subscribe(&state, &json!({"id": id}), ""));
    }
    error_response(not_found(&format!("POST /tasks/{id}")))
}

async fn list_tasks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = check_version(&headers, &uri).and_then(|()| {
        let params = query_params(
            &query,
            &["pageSize", "historyLength"],
            &["includeArtifacts"],
        )?;
        operations::list_tasks(&state, &params, "")
    });
    json_response(result)
}

async fn push_configs(Path((id, _rest)): Path<(String, String)>) -> Response {
    error_response(no_push_notifications(&format!(
        "/tasks/{id}/pushNotificationConfigs"
    )))
}

async fn extended_card() -> Response {
    error_response(no_extended_card())
}

fn not_found(what: &str) -> RpcError {
    RpcError::new(
        METHOD_NOT_FOUND,
        format!("`{what}` is not an A2A HTTP+JSON endpoint"),
    )
}

/// Query parameters as a request object: `numbers` and `booleans` are typed
/// (a bad value is refused naming the parameter), the rest stay strings.
fn query_params(
    query: &HashMap<String, String>,
    numbers: &[&str],
    booleans: &[&str],
) -> Result<Value, RpcError> {
    let mut params = serde_json::Map::new();
    for (name, value) in query {
        let pointer = format!("/{name}");
        let typed = if numbers.contains(&name.as_str()) {
            match value.parse::<i64>() {
                Ok(number) => json!(number),
                Err(_) => return Err(RpcError::invalid_field(&pointer, "must be an integer")),
            }
        } else if booleans.contains(&name.as_str()) {
            match value.as_str() {
                "true" => json!(true),
                "false" => json!(false),
                _ => {
                    return Err(RpcError::invalid_field(
                        &pointer,
                        "must be `true` or `false`",
                    ));
                }
            }
        } else {
            json!(value)
        };
        params.insert(name.clone(), typed);
    }
    Ok(Value::Object(params))
}
