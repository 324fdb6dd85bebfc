//! The original project's protocol: `GET /agent-card` and `POST /execute`
//! (JSON-RPC with the skill as the method and the input as the params).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use super::a2a::response;
use super::definition::AgentDefinition;
use super::errors::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError};
use super::runtime::Failure;

/// The original agents' code for a skill that failed.
const SKILL_FAILED: i64 = -32000;

/// `GET /agent-card`
pub(super) async fn card(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    let base = super::base_url(&state, &headers);
    Json(legacy_card(&state.runtime.definition, &base))
}

/// `POST /execute`
pub(super) async fn execute(State(state): State<Arc<AppState>>, body: Bytes) -> Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let error = RpcError::new(PARSE_ERROR, format!("request body is not JSON: {error}"));
            return response(Value::Null, Err(error));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(skill_id) = request.get("method").and_then(Value::as_str) else {
        let error = RpcError::new(INVALID_REQUEST, "`method` must be the skill id");
        return response(id, Err(error));
    };
    let definition = &state.runtime.definition;
    if definition.skill(skill_id).is_none() {
        let message = format!(
            "unknown skill `{skill_id}`: agent `{}` offers {}",
            definition.name,
            definition.skill_list()
        );
        return response(id, Err(RpcError::new(METHOD_NOT_FOUND, message)));
    }
    let input = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let call_id = format!("legacy-{}", uuid::Uuid::new_v4());
    let cancel = state.tasks.child_token();
    let result = state
        .runtime
        .run(skill_id, &call_id, &input, &cancel, || {})
        .await;
    let result = result.map_err(|failure| match failure {
        Failure::InvalidInput(message) => RpcError::new(INVALID_PARAMS, message),
        Failure::Canceled => RpcError::new(SKILL_FAILED, "canceled: the agent is shutting down"),
        Failure::Failed(message) => RpcError::new(SKILL_FAILED, message),
    });
    response(id, result)
}

fn legacy_card(definition: &AgentDefinition, url: &str) -> Value {
    let skills: Vec<Value> = definition
        .skills
        .iter()
        .map(|skill| {
            json!({
                "id": skill.id,
                "description": skill.description,
                // `{}` accepts anything, which is what a skill without a schema does.
                "input_schema": skill.input_schema.clone().unwrap_or_else(|| json!({})),
                "output_schema": skill.output_schema.clone().unwrap_or_else(|| json!({})),
            })
        })
        .collect();
    json!({"name": definition.name, "url": url, "skills": skills})
}
