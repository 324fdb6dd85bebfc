//! A2A 1.0 over JSON-RPC: the agent card, `SendMessage`, `GetTask`, `CancelTask`.
//! Field names and error codes follow the official SDK (see DESIGN.md).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::AppState;
use super::definition::AgentDefinition;
use super::tasks::Task;

pub(super) const PARSE_ERROR: i64 = -32700;
pub(super) const INVALID_REQUEST: i64 = -32600;
pub(super) const METHOD_NOT_FOUND: i64 = -32601;
pub(super) const INVALID_PARAMS: i64 = -32602;
const TASK_NOT_FOUND: i64 = -32001;
const TASK_NOT_CANCELABLE: i64 = -32002;
const UNSUPPORTED_OPERATION: i64 = -32004;
const VERSION_NOT_SUPPORTED: i64 = -32009;

/// The card extension that publishes the skills' JSON Schemas.
pub const SKILL_SCHEMAS_EXTENSION: &str = "urn:pallet:skill-schemas:v1";
const JSON_MEDIA_TYPE: &str = "application/json";

/// A JSON-RPC error object; sent with HTTP 200 as the SDK does.
#[derive(Debug, PartialEq)]
pub(super) struct RpcError {
    pub(super) code: i64,
    pub(super) message: String,
}

impl RpcError {
    pub(super) fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// The JSON-RPC response for `id`.
pub(super) fn response(id: Value, result: Result<Value, RpcError>) -> Json<Value> {
    Json(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
        }
    })
}

/// `GET /.well-known/agent-card.json`
pub(super) async fn card(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    let base = super::base_url(&state, &headers);
    let card = agent_card(&state.runtime.definition, &format!("{base}/"));
    Json(super::security::declared(
        card,
        state.options.token.is_some(),
    ))
}

/// `POST /`
pub(super) async fn rpc(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let error = RpcError::new(PARSE_ERROR, format!("request body is not JSON: {error}"));
            return response(Value::Null, Err(error));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    response(id, handle(&state, &headers, &request).await)
}

async fn handle(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    request: &Value,
) -> Result<Value, RpcError> {
    let method = method_of(request)?;
    let version = headers
        .get("a2a-version")
        .and_then(|value| value.to_str().ok());
    if !version_supported(version) {
        let sent = version.map_or("none (which means 0.3)".to_string(), |version| {
            format!("`{version}`")
        });
        let message =
            format!("A2A version {sent} is not supported: send header `A2A-Version: 1.0`");
        return Err(RpcError::new(VERSION_NOT_SUPPORTED, message));
    }
    let params = request.get("params").unwrap_or(&Value::Null);
    match method {
        "SendMessage" => send_message(state, params).await,
        "GetTask" => {
            let id = task_id_param(params)?;
            let task = state.tasks.get(id).ok_or_else(|| not_found(id))?;
            Ok(task_json(&task))
        }
        "CancelTask" => cancel_task(state, params).await,
        "SendStreamingMessage" | "SubscribeToTask" => Err(RpcError::new(
            UNSUPPORTED_OPERATION,
            format!(
                "`{method}` is not supported: this agent does not stream (capabilities.streaming is false)"
            ),
        )),
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "method `{method}` not found: this agent serves SendMessage, GetTask and CancelTask"
            ),
        )),
    }
}

fn method_of(request: &Value) -> Result<&str, RpcError> {
    if !request.is_object() {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "a JSON-RPC request must be an object",
        ));
    }
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(INVALID_REQUEST, "`method` must be a string"))
}

/// A missing header means 0.3; any 1.x is compatible (the SDK ignores minor and patch).
fn version_supported(version: Option<&str>) -> bool {
    let Some(version) = version.map(str::trim).filter(|version| !version.is_empty()) else {
        return false;
    };
    version.split('.').next() == Some("1")
}

async fn send_message(state: &Arc<AppState>, params: &Value) -> Result<Value, RpcError> {
    let message = params
        .get("message")
        .filter(|message| message.is_object())
        .ok_or_else(|| invalid_params("`params.message` is required"))?;
    if message
        .get("messageId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(invalid_params("`params.message.messageId` is required"));
    }
    if let Some(task_id) = message
        .get("taskId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        state.tasks.get(task_id).ok_or_else(|| not_found(task_id))?;
        let message =
            format!("task `{task_id}` takes no follow-up messages: each skill call is a new task");
        return Err(RpcError::new(UNSUPPORTED_OPERATION, message));
    }
    let definition = &state.runtime.definition;
    let skill_id = skill_of(definition, message, params)?;
    let input = input_of(message).map_err(invalid_params)?;
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let task_id = start_task(state, skill_id, &context_id, input);
    let return_immediately = params
        .pointer("/configuration/returnImmediately")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let task = if return_immediately {
        state.tasks.get(&task_id)
    } else {
        state.tasks.wait_finished(&task_id).await
    };
    let task = task.ok_or_else(|| not_found(&task_id))?;
    Ok(json!({"task": task_json(&task)}))
}

/// Runs the skill in the background: a client that disconnects does not stop
/// it (A2A semantics); only `CancelTask`, the timeout or shutdown do.
fn start_task(state: &Arc<AppState>, skill_id: String, context_id: &str, input: Value) -> String {
    let task_id = uuid::Uuid::new_v4().to_string();
    let cancel = state.tasks.create(&task_id, context_id, &skill_id);
    let job_state = state.clone();
    let job_task = task_id.clone();
    state.tracker.spawn(async move {
        let tasks = &job_state.tasks;
        let result = job_state
            .runtime
            .run(&skill_id, &job_task, &input, &cancel, || {
                tasks.set_working(&job_task)
            })
            .await;
        tasks.finish(&job_task, result);
    });
    task_id
}

async fn cancel_task(state: &Arc<AppState>, params: &Value) -> Result<Value, RpcError> {
    let id = task_id_param(params)?;
    match state.tasks.cancel(id) {
        None => Err(not_found(id)),
        Some(Err(task)) => Err(RpcError::new(
            TASK_NOT_CANCELABLE,
            format!(
                "task `{id}` cannot be canceled: it already ended ({})",
                task.state.wire_name()
            ),
        )),
        Some(Ok(())) => {
            // Answer with the final state: the command is stopped by then.
            let task = state
                .tasks
                .wait_finished(id)
                .await
                .ok_or_else(|| not_found(id))?;
            Ok(task_json(&task))
        }
    }
}

fn task_id_param(params: &Value) -> Result<&str, RpcError> {
    params
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid_params("`params.id` (the task id) is required"))
}

fn not_found(id: &str) -> RpcError {
    RpcError::new(TASK_NOT_FOUND, format!("task `{id}` not found"))
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(INVALID_PARAMS, message)
}

/// The skill from `metadata.skillId` of the message or the params; an agent
/// with a single skill needs none.
fn skill_of(
    definition: &AgentDefinition,
    message: &Value,
    params: &Value,
) -> Result<String, RpcError> {
    let requested = [message, params]
        .iter()
        .find_map(|value| value.pointer("/metadata/skillId").and_then(Value::as_str));
    let offered = definition.skill_list();
    match requested {
        Some(id) if definition.skill(id).is_some() => Ok(id.to_string()),
        Some(id) => Err(invalid_params(format!(
            "unknown skill `{id}`: agent `{}` offers {offered}",
            definition.name
        ))),
        None if definition.skills.len() == 1 => Ok(definition.skills[0].id.clone()),
        None => Err(invalid_params(format!(
            "no skill chosen: set `metadata.skillId` to one of {offered}"
        ))),
    }
}

/// The skill input: the first data part, else the first text part parsed as JSON.
fn input_of(message: &Value) -> Result<Value, String> {
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(data) = parts.iter().find_map(|part| part.get("data")) {
        return Ok(data.clone());
    }
    match parts
        .iter()
        .find_map(|part| part.get("text").and_then(Value::as_str))
    {
        Some(text) => serde_json::from_str(text).map_err(|error| {
            format!("the message's text part is not JSON ({error}); send the input as a data part")
        }),
        None => Ok(Value::Object(Map::new())),
    }
}

pub(super) fn task_json(task: &Task) -> Value {
    let mut status =
        json!({"state": task.state.wire_name(), "timestamp": task.updated.to_rfc3339()});
    if let Some(message) = &task.message {
        status["message"] = json!({
            "messageId": uuid::Uuid::new_v4().to_string(),
            "role": "ROLE_AGENT",
            "parts": [{"text": message}],
            "taskId": task.id,
            "contextId": task.context_id,
        });
    }
    let artifacts: Vec<Value> = task
        .output
        .iter()
        .map(|output| json!({"artifactId": format!("{}-result", task.id), "name": "result", "parts": [output_part(output)]}))
        .collect();
    json!({
        "id": task.id,
        "contextId": task.context_id,
        "status": status,
        "artifacts": artifacts,
        "metadata": {"skillId": task.skill_id},
    })
}

/// An object travels as a data part; other JSON as its text, since clients
/// expect a data part to hold an object.
fn output_part(output: &Value) -> Value {
    if output.is_object() {
        json!({"data": output, "mediaType": JSON_MEDIA_TYPE})
    } else {
        json!({"text": output.to_string(), "mediaType": JSON_MEDIA_TYPE})
    }
}

pub(super) fn agent_card(definition: &AgentDefinition, url: &str) -> Value {
    let skills: Vec<Value> = definition
        .skills
        .iter()
        .map(|skill| {
            json!({
                "id": skill.id,
                "name": skill.name,
                "description": skill.description,
                "tags": skill.tags,
                "examples": skill.examples,
                "inputModes": [JSON_MEDIA_TYPE],
                "outputModes": [JSON_MEDIA_TYPE],
            })
        })
        .collect();
    let schemas: Map<String, Value> = definition
        .skills
        .iter()
        .map(|skill| {
            let schemas =
                json!({"input_schema": skill.input_schema, "output_schema": skill.output_schema});
            (skill.id.clone(), schemas)
        })
        .collect();
    json!({
        "name": definition.name,
        "description": definition.description,
        "version": definition.version,
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {
            "streaming": false,
            "extensions": [{
                "uri": SKILL_SCHEMAS_EXTENSION,
                "description": "JSON Schemas of the skills' inputs and outputs",
                "params": {"skills": schemas},
            }],
        },
        "defaultInputModes": [JSON_MEDIA_TYPE],
        "defaultOutputModes": [JSON_MEDIA_TYPE],
        "skills": skills,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn version_header_must_be_1_x() {
        let cases = [
            (None, false),
            (Some(""), false),
            (Some("0.3"), false),
            (Some("2.0"), false),
            (Some("1.0"), true),
            (Some("1"), true),
            (Some("1.0.2"), true),
        ];
        for (header, supported) in cases {
            assert_eq!(version_supported(header), supported, "for {header:?}");
        }
    }

    #[test]
    fn input_comes_from_the_first_data_or_text_part() {
        let cases = [
            (
                json!({"parts": [{"text": "hi"}, {"data": {"a": 1}}]}),
                Ok(json!({"a": 1})),
            ),
            (json!({"parts": [{"text": "[1, 2]"}]}), Ok(json!([1, 2]))),
            (json!({"parts": []}), Ok(json!({}))),
            (json!({}), Ok(json!({}))),
        ];
        for (message, expected) in cases {
            assert_eq!(input_of(&message), expected, "for {message}");
        }
        let error = input_of(&json!({"parts": [{"text": "hello"}]})).unwrap_err();
        assert!(error.contains("text part is not JSON"), "{error}");
    }

    #[test]
    fn outputs_become_data_or_text_parts() {
        let cases = [
            (
                json!({"a": 1}),
                json!({"data": {"a": 1}, "mediaType": "application/json"}),
            ),
            (
                json!("plain"),
                json!({"text": "\"plain\"", "mediaType": "application/json"}),
            ),
            (
                json!([1]),
                json!({"text": "[1]", "mediaType": "application/json"}),
            ),
            (
                json!(3),
                json!({"text": "3", "mediaType": "application/json"}),
            ),
        ];
        for (output, part) in cases {
            assert_eq!(output_part(&output), part);
        }
    }

    #[test]
    fn failed_task_carries_its_reason_and_no_artifact() {
        let task = Task {
            id: "t".into(),
            context_id: "c".into(),
            skill_id: "s".into(),
            state: super::super::tasks::TaskState::Failed,
            message: Some("boom".into()),
            output: None,
            updated: Utc::now(),
        };
        let json = task_json(&task);
        assert_eq!(json["status"]["state"], "TASK_STATE_FAILED");
        assert_eq!(json["status"]["message"]["parts"][0]["text"], "boom");
        assert_eq!(json["artifacts"], json!([]));
    }

    #[test]
    fn requests_need_a_json_rpc_envelope() {
        let cases = [
            (json!([]), Err(INVALID_REQUEST)),
            (json!({"method": "GetTask"}), Err(INVALID_REQUEST)),
            (json!({"jsonrpc": "2.0", "method": 3}), Err(INVALID_REQUEST)),
            (
                json!({"jsonrpc": "2.0", "method": "GetTask"}),
                Ok("GetTask"),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                method_of(&request).map_err(|error| error.code),
                expected,
                "for {request}"
            );
        }
    }
}
