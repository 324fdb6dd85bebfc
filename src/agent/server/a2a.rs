//! The JSON-RPC binding (`POST /`) for A2A 1.0 and 0.3: checks the envelope,
//! picks the version from the `A2A-Version` header (none means 0.3) and
//! encodes the operations' answers; streams are Server-Sent Events whose
//! `data` are JSON-RPC responses.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::AppState;
use super::card::agent_card;
use super::errors::{
    INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, PUSH_NOTIFICATION_NOT_SUPPORTED, RpcError,
    UNSUPPORTED_OPERATION, VERSION_NOT_SUPPORTED,
};
use super::operations;
use super::stream::TaskStream;
use super::v03;
use super::wire::{StreamEvent, event_json};

const PUSH_METHODS: [&str; 4] = [
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
];
const V1_METHODS: [&str; 6] = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
];
const ROOT: &str = "/params";

/// The protocol version a request speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Version {
    V1,
    V03,
}

/// The JSON-RPC response for `id`.
pub(super) fn response(id: Value, result: Result<Value, RpcError>) -> Json<Value> {
    Json(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => {
            let mut body = json!({"code": error.code, "message": error.message});
            if error.field.is_some() {
                body["data"] = error.details();
            }
            json!({"jsonrpc": "2.0", "id": id, "error": body})
        }
    })
}

/// `GET /.well-known/agent-card.json`
pub(super) async fn card(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    let base = super::base_url(&state, &headers);
    let card = agent_card(&state.runtime.definition, &base);
    Json(super::security::declared(
        card,
        state.options.token.is_some(),
    ))
}

/// `POST /`
pub(super) async fn rpc(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let error = RpcError::new(PARSE_ERROR, format!("request body is not JSON: {error}"));
            return response(Value::Null, Err(error)).into_response();
        }
    };
    let (id, method) = match envelope(&request) {
        Ok(envelope) => envelope,
        Err(error) => return response(Value::Null, Err(error)).into_response(),
    };
    let params = request.get("params").unwrap_or(&Value::Null);
    let answer = match version_of(&headers, uri.query()) {
        Ok(version) => handle(&state, version, method, params).await,
        Err(error) => Err(error),
    };
    match answer {
        Ok(Answer::Value(result)) => response(id, Ok(result)).into_response(),
        Ok(Answer::Stream(stream, version)) => sse(id, stream, version),
        Err(error) => response(id, Err(error)).into_response(),
    }
}

enum Answer {
    Value(Value),
    Stream(TaskStream, Version),
}

/// The request's id and method; an id that is not a string, number or null is
/// an invalid request (answered with id null, as JSON-RPC says).
fn envelope(request: &Value) -> Result<(Value, &str), RpcError> {
    if !request.is_object() {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "a JSON-RPC request must be an object",
        ));
    }
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    if !(id.is_string() || id.is_number() || id.is_null()) {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "`id` must be a string, a number or null",
        ));
    }
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(INVALID_REQUEST, "`method` must be a string"))?;
    if request
        .get("params")
        .is_some_and(|params| !params.is_object())
    {
        return Err(RpcError::invalid_field("/params", "must be an object"));
    }
    Ok((id, method))
}

/// The version from the `A2A-Version` header, else the `A2A-Version` query
/// parameter (spec §3.6.1): none means 0.3; any 1.x is 1.0 (minor and patch
/// do not matter).
pub(super) fn version_of(headers: &HeaderMap, query: Option<&str>) -> Result<Version, RpcError> {
    let from_query = query.and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name.eq_ignore_ascii_case("a2a-version"))
            .map(|(_, value)| value.into_owned())
    });
    let header = headers
        .get("a2a-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or(from_query);
    let requested = header
        .as_deref()
        .map(str::trim)
        .filter(|version| !version.is_empty());
    match requested {
        None => Ok(Version::V03),
        Some(version) if version.split('.').next() == Some("1") => Ok(Version::V1),
        Some(version) if version == "0.3" || version.starts_with("0.3.") => Ok(Version::V03),
        Some(version) => Err(RpcError::new(
            VERSION_NOT_SUPPORTED,
            format!(
                "A2A version `{version}` is not supported: send header `A2A-Version: 1.0` (or none for 0.3)"
            ),
        )),
    }
}

async fn handle(
    state: &Arc<AppState>,
    version: Version,
    method: &str,
    params: &Value,
) -> Result<Answer, RpcError> {
    match version {
        Version::V1 => handle_v1(state, method, params).await,
        Version::V03 => handle_v03(state, method, params).await,
    }
}

async fn handle_v1(
    state: &Arc<AppState>,
    method: &str,
    params: &Value,
) -> Result<Answer, RpcError> {
    let value = match method {
        "SendMessage" => operations::send_message(state, params, ROOT).await?,
        "GetTask" => operations::get_task(state, params, ROOT)?,
        "ListTasks" => operations::list_tasks(state, params, ROOT)?,
        "CancelTask" => operations::cancel_task(state, params, ROOT).await?,
        "SendStreamingMessage" => {
            let stream = operations::send_streaming_message(state, params, ROOT)?;
            return Ok(Answer::Stream(stream, Version::V1));
        }
        "SubscribeToTask" => {
            let stream = operations::subscribe(state, params, ROOT)?;
            return Ok(Answer::Stream(stream, Version::V1));
        }
        "GetExtendedAgentCard" => return Err(no_extended_card()),
        _ if PUSH_METHODS.contains(&method) => return Err(no_push_notifications(method)),
        _ => {
            return Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!(
                    "method `{method}` not found: A2A 1.0 methods are {}",
                    V1_METHODS.join(", ")
                ),
            ));
        }
    };
    Ok(Answer::Value(value))
}

async fn handle_v03(
    state: &Arc<AppState>,
    method: &str,
    params: &Value,
) -> Result<Answer, RpcError> {
    let params = v03::params_to_v1(params);
    let value = match method {
        "message/send" => {
            let result = operations::send_message(state, &params, ROOT).await?;
            v03::task(&result["task"])
        }
        "tasks/get" => v03::task(&operations::get_task(state, &params, ROOT)?),
        "tasks/cancel" => v03::task(&operations::cancel_task(state, &params, ROOT).await?),
        "message/stream" => {
            let stream = operations::send_streaming_message(state, &params, ROOT)?;
            return Ok(Answer::Stream(stream, Version::V03));
        }
        "tasks/resubscribe" => {
            let stream = operations::subscribe(state, &params, ROOT)?;
            return Ok(Answer::Stream(stream, Version::V03));
        }
        "agent/getAuthenticatedExtendedCard" => return Err(no_extended_card()),
        _ if method.starts_with("tasks/pushNotificationConfig/") => {
            return Err(no_push_notifications(method));
        }
        _ if V1_METHODS.contains(&method) || method == "GetExtendedAgentCard" => {
            return Err(RpcError::new(
                VERSION_NOT_SUPPORTED,
                format!(
                    "`{method}` is an A2A 1.0 method and the request has no `A2A-Version` header (which means 0.3): send header `A2A-Version: 1.0`"
                ),
            ));
        }
        _ => {
            return Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("method `{method}` not found"),
            ));
        }
    };
    Ok(Answer::Value(value))
}

pub(super) fn no_extended_card() -> RpcError {
    RpcError::new(
        UNSUPPORTED_OPERATION,
        "this agent has no extended agent card (capabilities.extendedAgentCard is false)",
    )
}

pub(super) fn no_push_notifications(method: &str) -> RpcError {
    RpcError::new(
        PUSH_NOTIFICATION_NOT_SUPPORTED,
        format!(
            "`{method}`: this agent does not send push notifications (capabilities.pushNotifications is false); use SubscribeToTask or GetTask"
        ),
    )
}

/// The stream as SSE; each event's `data` is a JSON-RPC response for `id`.
fn sse(id: Value, stream: TaskStream, version: Version) -> Response {
    let events = stream.events().map(move |event: StreamEvent| {
        let result = match version {
            Version::V1 => event_json(&event),
            Version::V03 => v03::event(&event),
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
        Ok::<Event, Infallible>(Event::default().data(body.to_string()))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_header_picks_the_dialect() {
        let cases = [
            (None, Ok(Version::V03)),
            (Some(""), Ok(Version::V03)),
            (Some("0.3"), Ok(Version::V03)),
            (Some("2.0"), Err(VERSION_NOT_SUPPORTED)),
            (Some("0.2"), Err(VERSION_NOT_SUPPORTED)),
            (Some("1.0"), Ok(Version::V1)),
            (Some("1"), Ok(Version::V1)),
            (Some("1.0.2"), Ok(Version::V1)),
        ];
        for (header, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(header) = header {
                headers.insert("a2a-version", header.parse().unwrap());
            }
            assert_eq!(
                version_of(&headers, None).map_err(|error| error.code),
                expected,
                "for {header:?}"
            );
        }
    }

    #[test]
    fn requests_need_a_json_rpc_envelope() {
        let cases = [
            (json!([]), Err(INVALID_REQUEST)),
            (json!({"method": "GetTask"}), Err(INVALID_REQUEST)),
            (json!({"jsonrpc": "2.0", "method": 3}), Err(INVALID_REQUEST)),
            (
                json!({"jsonrpc": "2.0", "id": {}, "method": "GetTask"}),
                Err(INVALID_REQUEST),
            ),
            (
                json!({"jsonrpc": "2.0", "id": [1], "method": "GetTask"}),
                Err(INVALID_REQUEST),
            ),
            (
                json!({"jsonrpc": "2.0", "id": true, "method": "GetTask"}),
                Err(INVALID_REQUEST),
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": [1]}),
                Err(-32602),
            ),
            (
                json!({"jsonrpc": "2.0", "id": "a", "method": "GetTask"}),
                Ok("GetTask"),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "GetTask"}),
                Ok("GetTask"),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                envelope(&request)
                    .map(|(_, method)| method)
                    .map_err(|error| error.code),
                expected,
                "for {request}"
            );
        }
    }
}
