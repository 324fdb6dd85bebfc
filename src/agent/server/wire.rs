//! Tasks and stream events as A2A 1.0 JSON (both bindings send the same objects).

use serde_json::{Value, json};

use super::tasks::Task;

pub(super) const JSON_MEDIA_TYPE: &str = "application/json";

/// How much of a task an answer shows.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskView {
    /// At most this many recent messages; `None` = all that are kept; 0 = no `history`.
    pub(super) history_length: Option<usize>,
    /// `ListTasks` leaves `artifacts` out unless asked (the spec says omitted, not empty).
    pub(super) artifacts: bool,
}

impl TaskView {
    pub(super) const FULL: TaskView = TaskView {
        history_length: None,
        artifacts: true,
    };
}

/// One event of a stream (SendStreamingMessage, SubscribeToTask).
#[derive(Debug, Clone)]
pub(super) enum StreamEvent {
    /// The task as it is when the stream starts.
    Task(Task),
    Status(Task),
    /// The result, sent before the final status.
    Artifact(Task),
}

pub(super) fn status_message(task: &Task) -> Option<Value> {
    task.message.as_ref().map(|message| {
        json!({
            "messageId": format!("{}-status", task.id),
            "role": "ROLE_AGENT",
            "parts": [{"text": message}],
            "taskId": task.id,
            "contextId": task.context_id,
        })
    })
}

pub(super) fn status_json(task: &Task) -> Value {
    // ProtoJSON timestamps: UTC, written with `Z`.
    let timestamp = task
        .updated
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut status = json!({"state": task.state.wire_name(), "timestamp": timestamp});
    if let Some(message) = status_message(task) {
        status["message"] = message;
    }
    status
}

pub(super) fn artifact_json(task: &Task) -> Option<Value> {
    task.output.as_ref().map(|output| {
        json!({"artifactId": format!("{}-result", task.id), "name": "result", "parts": [output_part(output)]})
    })
}

pub(super) fn task_json(task: &Task, view: TaskView) -> Value {
    let mut json = json!({
        "id": task.id,
        "contextId": task.context_id,
        "status": status_json(task),
        "metadata": {"skillId": task.skill_id},
    });
    if view.artifacts {
        json["artifacts"] = Value::Array(artifact_json(task).into_iter().collect());
    }
    let mut history = task.history.clone();
    history.extend(status_message(task));
    let keep = view
        .history_length
        .unwrap_or(history.len())
        .min(history.len());
    if keep > 0 {
        json["history"] = Value::Array(history.split_off(history.len() - keep));
    }
    json
}

/// The `StreamResponse` of an event.
pub(super) fn event_json(event: &StreamEvent) -> Value {
    match event {
        StreamEvent::Task(task) => json!({"task": task_json(task, TaskView::FULL)}),
        StreamEvent::Status(task) => json!({"statusUpdate": {
            "taskId": task.id,
            "contextId": task.context_id,
            "status": status_json(task),
        }}),
        StreamEvent::Artifact(task) => json!({"artifactUpdate": {
            "taskId": task.id,
            "contextId": task.context_id,
            "artifact": artifact_json(task).unwrap_or(Value::Null),
            "lastChunk": true,
        }}),
    }
}

/// An object travels as a data part; other JSON as its text, since clients
/// expect a data part to hold an object.
pub(super) fn output_part(output: &Value) -> Value {
    if output.is_object() {
        json!({"data": output, "mediaType": JSON_MEDIA_TYPE})
    } else {
        json!({"text": output.to_string(), "mediaType": JSON_MEDIA_TYPE})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn task(history: Vec<Value>, message: Option<&str>) -> Task {
        Task {
            id: "t".into(),
            context_id: "c".into(),
            skill_id: "s".into(),
            state: super::super::tasks::TaskState::Failed,
            message: message.map(str::to_string),
            output: None,
            updated: Utc::now(),
            history,
        }
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
        let json = task_json(&task(Vec::new(), Some("boom")), TaskView::FULL);
        assert_eq!(json["status"]["state"], "TASK_STATE_FAILED");
        assert_eq!(json["status"]["message"]["parts"][0]["text"], "boom");
        assert_eq!(json["artifacts"], json!([]));
        let timestamp = json["status"]["timestamp"].as_str().unwrap();
        assert!(timestamp.ends_with('Z'), "{timestamp}");
    }

    #[test]
    fn history_length_keeps_the_most_recent_messages() {
        let task = task(vec![json!({"messageId": "user"})], Some("boom"));
        let ids = |view: TaskView| -> Value {
            let json = task_json(&task, view);
            match json.get("history") {
                None => Value::Null,
                Some(history) => history
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["messageId"].clone())
                    .collect(),
            }
        };
        let view = |history_length| TaskView {
            history_length,
            artifacts: true,
        };
        assert_eq!(ids(view(None)), json!(["user", "t-status"]));
        assert_eq!(ids(view(Some(1))), json!(["t-status"]));
        assert_eq!(ids(view(Some(5))), json!(["user", "t-status"]));
        assert_eq!(ids(view(Some(0))), Value::Null, "0 leaves `history` out");
        let listed = task_json(
            &task,
            TaskView {
                history_length: None,
                artifacts: false,
            },
        );
        assert!(listed.get("artifacts").is_none());
    }
}
