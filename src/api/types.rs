//! Request and answer bodies (shared by the routes and `client.rs`), the
//! seed's workflow types, and list cursors.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::registry::{ACCEPTED_FORMS, ArtifactKind, Reference, RegistryError};

/// The workflow run when `POST /workflows` names none.
pub const DEFAULT_WORKFLOW: &str = "code-generation-v1";

/// Shortest `feature_description` accepted (the seed's rule).
const MIN_DESCRIPTION_CHARS: usize = 10;

/// The seed's `workflow_type`s and the workflow each runs (see docs/service.md).
/// Every phase of the original was one agent call followed by a human
/// approval; here each maps to the plan-build-test pipeline, whose input
/// `requirements` is the feature description. `pallet serve --workflow-type
/// TYPE=REF` changes or adds entries.
pub fn default_workflow_types() -> BTreeMap<String, String> {
    ["specify", "plan", "tasks", "implement"]
        .into_iter()
        .map(|name| (name.to_string(), DEFAULT_WORKFLOW.to_string()))
        .collect()
}

/// `{"workflow": REF, "input": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    workflow: Option<String>,
    input: Option<Map<String, Value>>,
}

/// The seed's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    workflow_type: String,
    feature_description: String,
    context: Option<Map<String, Value>>,
}

/// What `POST /workflows` starts: a workflow reference and its input.
#[derive(Debug, PartialEq)]
pub struct Start {
    pub reference: String,
    pub input: Value,
    /// Made from the seed's form (`workflow_type`, `feature_description`).
    pub seed: bool,
}

/// The fields of `input` that `workflow` declares in its `inputs`.
pub fn declared_only(input: Value, workflow: &crate::workflow::LoadedWorkflow) -> Value {
    let Some(inputs) = &workflow.workflow.inputs else {
        return input;
    };
    match input {
        Value::Object(mut fields) => {
            fields.retain(|name, _| inputs.0.contains_key(name));
            Value::Object(fields)
        }
        other => other,
    }
}

/// Read either body form of `POST /workflows`.
/// `reference` if it is a workflow reference; else the problem, naming
/// `pointer` (the body field or query parameter it came from). Checked
/// before any lookup so a path or garbage is the client's error (422), never
/// a lookup failure; a valid reference is also a valid workflow id.
pub fn checked_reference(reference: &str, pointer: &'static str) -> Result<(), ApiError> {
    if reference.trim().is_empty() {
        return Err(ApiError::field(pointer, "is empty"));
    }
    if let Err(RegistryError::InvalidReference { problem, .. }) =
        Reference::parse(ArtifactKind::Workflow, reference)
    {
        return Err(ApiError::field(
            pointer,
            format!("{problem}; accepted forms: {ACCEPTED_FORMS}"),
        ));
    }
    Ok(())
}

pub fn start_request(
    body: Value,
    workflow_types: &BTreeMap<String, String>,
) -> Result<Start, ApiError> {
    if body.get("workflow_type").is_some() {
        let request: SeedRequest = typed(body)?;
        let Some(reference) = workflow_types.get(&request.workflow_type) else {
            return Err(ApiError::invalid(format!(
                "unknown workflow_type `{}`: expected one of {}",
                request.workflow_type,
                workflow_types
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let length = request.feature_description.trim().chars().count();
        if length < MIN_DESCRIPTION_CHARS {
            return Err(ApiError::invalid(format!(
                "feature_description has {length} characters; it needs at least {MIN_DESCRIPTION_CHARS}"
            )));
        }
        return Ok(Start {
            reference: reference.clone(),
            input: json!({
                "requirements": request.feature_description,
                "feature_description": request.feature_description,
                "workflow_type": request.workflow_type,
                "context": request.context.unwrap_or_default(),
            }),
            seed: true,
        });
    }
    let request: RunRequest = typed(body)?;
    let reference = request
        .workflow
        .unwrap_or_else(|| DEFAULT_WORKFLOW.to_string());
    checked_reference(&reference, "/workflow")?;
    Ok(Start {
        reference,
        input: Value::Object(request.input.unwrap_or_default()),
        seed: false,
    })
}

/// `POST /workflows/{id}/advance`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    pub trigger: Trigger,
    #[serde(default)]
    pub phase_result: PhaseResult,
}

/// `POST /workflows/{id}/rerun`: the top-level step to run again from.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    pub from: String,
}

/// The seed's triggers. `agent_complete` is accepted in the body but refused
/// (409): pallet's runner records agent completion itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    HumanApproved,
    HumanRejected,
    AgentComplete,
}

/// The decision's details; `comments` and `approved` of the seed are accepted.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseResult {
    #[serde(alias = "comments")]
    pub comment: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
}

/// The query of `GET /workflows`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only the runs of this workflow id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
}

/// The answer of `GET /workflows`: a page of runs, and the cursor of the
/// next page when this one is full.
#[derive(Debug, Deserialize, Serialize)]
pub struct RunsPage<Run> {
    pub runs: Vec<Run>,
    pub next_cursor: Option<String>,
}

/// The answer of `GET /workflows/{id}/history`: every state transition of run `id`.
#[derive(Debug, Deserialize, Serialize)]
pub struct History<Transition> {
    pub id: String,
    pub transitions: Vec<Transition>,
}

/// Deserialize `body`, naming the field at fault.
pub fn typed<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        match path.as_str() {
            "." | "" => ApiError::invalid(format!("invalid request body: {message}")),
            path => ApiError::invalid(format!("invalid `{path}`: {message}")),
        }
    })
}

/// A list cursor: the `created_at` and id of the last run of a page.
pub fn encode_cursor(created_at: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at} {id}"))
}

pub fn decode_cursor(cursor: &str) -> Result<(String, String), ApiError> {
    let invalid = || ApiError::invalid(format!("cursor `{cursor}` is not one this service gave"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (created_at, id) = text.split_once(' ').ok_or_else(invalid)?;
    Ok((created_at.to_string(), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_body_forms_are_read() {
        let types = default_workflow_types();
        let cases = [
            (json!({}), Some(DEFAULT_WORKFLOW)),
            (json!({"workflow": "x-v1", "input": {"a": 1}}), Some("x-v1")),
            (
                json!({"workflow_type": "plan", "feature_description": "Add OAuth2 login"}),
                Some(DEFAULT_WORKFLOW),
            ),
            (
                json!({"workflow_type": "plan", "feature_description": "short"}),
                None,
            ),
            (
                json!({"workflow_type": "deploy", "feature_description": "Add OAuth2 login"}),
                None,
            ),
            (json!({"workflow": "x", "inputs": {}}), None),
            (json!({"input": [1]}), None),
            (json!({"workflow": " "}), None),
            (json!({"workflow": "../../../etc/passwd"}), None),
            (json!({"workflow": "x-v1\u{1b}[31m"}), None),
            (json!({"workflow": "x@^1.2"}), Some("x@^1.2")),
            (json!({"workflow": "x@2"}), Some("x@2")),
        ];
        for (body, expected) in cases {
            let found = start_request(body.clone(), &types).ok();
            assert_eq!(
                found.as_ref().map(|start| start.reference.as_str()),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn the_seed_form_passes_the_description_as_requirements() {
        let body = json!({"workflow_type": "specify", "feature_description": "Add OAuth2 login", "context": {"priority": "P1"}});
        let start = start_request(body, &default_workflow_types()).unwrap();
        assert_eq!(start.input["requirements"], "Add OAuth2 login");
        assert_eq!(start.input["context"]["priority"], "P1");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor("2026-01-01T00:00:00.000001Z", "abc");
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            ("2026-01-01T00:00:00.000001Z".to_string(), "abc".to_string())
        );
        for garbage in ["!!", "bm9zcGFjZQ"] {
            assert!(decode_cursor(garbage).is_err(), "{garbage}");
        }
    }
}
