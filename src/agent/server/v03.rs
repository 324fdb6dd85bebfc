//! A2A 0.3 over JSON-RPC, as a translation: 0.3 requests become 1.0 request
//! objects for the same operations, and 1.0 answers are written back in 0.3
//! form (`kind` on objects and parts, lower-case roles and states).

use serde_json::{Map, Value, json};

use super::wire::{StreamEvent, event_json};

/// A 0.3 `MessageSendParams` as a 1.0 `SendMessageRequest`; other params pass as they are.
pub(super) fn params_to_v1(params: &Value) -> Value {
    let mut params = params.clone();
    if let Some(message) = params
        .get_mut("message")
        .filter(|message| message.is_object())
    {
        *message = message_to_v1(message);
    }
    if let Some(configuration) = params
        .get_mut("configuration")
        .and_then(Value::as_object_mut)
        && let Some(blocking) = configuration.remove("blocking").and_then(|b| b.as_bool())
    {
        configuration.insert("returnImmediately".into(), json!(!blocking));
    }
    params
}

fn message_to_v1(message: &Value) -> Value {
    let mut message = message.clone();
    let object = message.as_object_mut().expect("filtered to objects");
    object.remove("kind");
    if let Some(role) = object.get("role").and_then(Value::as_str) {
        let role = match role {
            "user" => "ROLE_USER",
            "agent" => "ROLE_AGENT",
            other => other,
        };
        object.insert("role".into(), json!(role));
    }
    if let Some(parts) = object.get_mut("parts").and_then(Value::as_array_mut) {
        for part in parts {
            *part = part_to_v1(part);
        }
    }
    message
}

fn part_to_v1(part: &Value) -> Value {
    let Some(object) = part.as_object() else {
        return part.clone();
    };
    let mut converted: Map<String, Value> = object.clone();
    converted.remove("kind");
    if let Some(file) = converted.remove("file") {
        for (from, to) in [
            ("bytes", "raw"),
            ("uri", "url"),
            ("mimeType", "mediaType"),
            ("name", "filename"),
        ] {
            if let Some(value) = file.get(from) {
                converted.insert(to.into(), value.clone());
            }
        }
    }
    Value::Object(converted)
}

/// A 1.0 task in 0.3 form.
pub(super) fn task(task: &Value) -> Value {
    let mut converted = task.clone();
    converted["kind"] = json!("task");
    converted["status"] = status(&task["status"]);
    if let Some(artifacts) = task.get("artifacts").and_then(Value::as_array) {
        converted["artifacts"] = artifacts.iter().map(artifact).collect();
    }
    if let Some(history) = task.get("history").and_then(Value::as_array) {
        converted["history"] = history.iter().map(message).collect();
    }
    converted
}

fn status(status: &Value) -> Value {
    let mut converted = status.clone();
    if let Some(state) = status.get("state").and_then(Value::as_str) {
        converted["state"] = json!(state_name(state));
    }
    if let Some(status_message) = status.get("message") {
        converted["message"] = message(status_message);
    }
    converted
}

/// `TASK_STATE_INPUT_REQUIRED` -> `input-required`.
fn state_name(state: &str) -> String {
    state
        .trim_start_matches("TASK_STATE_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn message(message: &Value) -> Value {
    let mut converted = message.clone();
    converted["kind"] = json!("message");
    let role = match message.get("role").and_then(Value::as_str) {
        Some("ROLE_AGENT") => "agent",
        _ => "user",
    };
    converted["role"] = json!(role);
    if let Some(parts) = message.get("parts").and_then(Value::as_array) {
        converted["parts"] = parts.iter().map(part).collect();
    }
    converted
}

fn artifact(artifact: &Value) -> Value {
    let mut converted = artifact.clone();
    if let Some(parts) = artifact.get("parts").and_then(Value::as_array) {
        converted["parts"] = parts.iter().map(part).collect();
    }
    converted
}

fn part(part: &Value) -> Value {
    if let Some(text) = part.get("text") {
        return json!({"kind": "text", "text": text});
    }
    if let Some(data) = part.get("data") {
        return json!({"kind": "data", "data": data});
    }
    let mut file = Map::new();
    for (from, to) in [
        ("raw", "bytes"),
        ("url", "uri"),
        ("mediaType", "mimeType"),
        ("filename", "name"),
    ] {
        if let Some(value) = part.get(from) {
            file.insert(to.into(), value.clone());
        }
    }
    json!({"kind": "file", "file": file})
}

/// A stream event as 0.3 sends it: the task, or a `status-update` /
/// `artifact-update` with `final` on the last status.
pub(super) fn event(stream_event: &StreamEvent) -> Value {
    let json = event_json(stream_event);
    match stream_event {
        StreamEvent::Task(_) => task(&json["task"]),
        StreamEvent::Status(current) => {
            let update = &json["statusUpdate"];
            json!({
                "kind": "status-update",
                "taskId": update["taskId"],
                "contextId": update["contextId"],
                "status": status(&update["status"]),
                "final": current.state.is_terminal(),
            })
        }
        StreamEvent::Artifact(_) => {
            let update = &json["artifactUpdate"];
            json!({
                "kind": "artifact-update",
                "taskId": update["taskId"],
                "contextId": update["contextId"],
                "artifact": artifact(&update["artifact"]),
                "lastChunk": true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_translate_both_ways() {
        let params = json!({
            "message": {"kind": "message", "messageId": "m", "role": "user",
                        "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"a": 1}}]},
            "configuration": {"blocking": false},
        });
        assert_eq!(
            params_to_v1(&params),
            json!({
                "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}, {"data": {"a": 1}}]},
                "configuration": {"returnImmediately": true},
            })
        );
        let v1 = json!({
            "id": "t", "contextId": "c",
            "status": {"state": "TASK_STATE_INPUT_REQUIRED",
                       "message": {"messageId": "s", "role": "ROLE_AGENT", "parts": [{"text": "why"}]}},
            "artifacts": [{"artifactId": "a", "parts": [{"data": {"x": 1}, "mediaType": "application/json"}]}],
        });
        let converted = task(&v1);
        assert_eq!(converted["kind"], "task");
        assert_eq!(converted["status"]["state"], "input-required");
        assert_eq!(converted["status"]["message"]["role"], "agent");
        assert_eq!(
            converted["status"]["message"]["parts"][0],
            json!({"kind": "text", "text": "why"})
        );
        assert_eq!(
            converted["artifacts"][0]["parts"][0],
            json!({"kind": "data", "data": {"x": 1}})
        );
    }
}
