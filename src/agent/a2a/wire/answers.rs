//! The answers of every A2A version and binding read back into one shape, the
//! 1.0 JSON objects (`{task}` or `{message}`, parts `{data}` / `{text}`).

use serde_json::Value;

use super::Wire;
use crate::agent::a2a::sse::SseEvent;
use crate::agent::card::{Binding, Version};
use crate::agent::client::CallError;

/// What `SendMessage` gave, in the 1.0 shape.
pub(in crate::agent::a2a) enum Sent {
    Task(Value),
    Message(Value),
}

/// One event of a stream, in the 1.0 shape.
pub(in crate::agent::a2a) enum Update {
    Task(Value),
    Message(Value),
    Status {
        task_id: Option<String>,
        status: Value,
    },
    Artifact {
        task_id: Option<String>,
        artifact: Value,
        /// Its parts go after those of the artifact with the same id.
        append: bool,
    },
}

impl Wire<'_> {
    /// One event's data: a JSON-RPC reply whose `result` is the event
    /// (JSON-RPC) or the event itself (HTTP+JSON); an error, in a reply or
    /// as an `error` event, is an error.
    pub fn stream_update(&self, event: &SseEvent) -> Result<Update, CallError> {
        let data = event.data.as_str();
        self.target.check_json_values(data)?;
        let mut value: Value = serde_json::from_str(data).map_err(|source| {
            self.target
                .malformed("a stream event is not JSON", data, Some(source))
        })?;
        if let Some(error) = value.get("error").filter(|error| error.is_object()) {
            return Err(self
                .target
                .error_event(self.interface.binding == Binding::JsonRpc, error));
        }
        if event.event == "error" {
            return Err(self.target.error_event(false, &value));
        }
        let result = match self.interface.binding {
            Binding::JsonRpc => match value.get_mut("result").filter(|result| result.is_object()) {
                Some(result) => result.take(),
                None => {
                    return Err(self.target.malformed(
                        "a stream event has no `result` object",
                        data,
                        None,
                    ));
                }
            },
            Binding::HttpJson => value,
        };
        let update = match (self.interface.version, self.interface.binding) {
            (Version::V0_3, Binding::JsonRpc) => update_03(result),
            _ => update_10(result),
        };
        let mut update = update.ok_or_else(|| {
            self.target.malformed(
                "a stream event is none of task, message, status update, artifact update",
                data,
                None,
            )
        })?;
        match &mut update {
            Update::Task(task) => self.normalize_task(task),
            Update::Message(message) => self.normalize_message(message),
            Update::Status { status, .. } => {
                if let Some(message) = status.get_mut("message") {
                    self.normalize_message(message);
                }
            }
            Update::Artifact { artifact, .. } => {
                if self.interface.version == Version::V0_3
                    && self.interface.binding == Binding::HttpJson
                {
                    for part in artifact["parts"].as_array_mut().into_iter().flatten() {
                        unwrap_03_data_part(part);
                    }
                }
            }
        }
        Ok(update)
    }

    /// 1.0: `{task}` or `{message}`.
    pub(super) fn sent(&self, result: &mut Value, body: &str) -> Result<Sent, CallError> {
        if let Some(message) = result.get_mut("message") {
            return Ok(Sent::Message(message.take()));
        }
        match result.get_mut("task") {
            Some(task) => Ok(Sent::Task(task.take())),
            None => Err(self.target.malformed(
                "the SendMessage result has neither `task` nor `message`",
                body,
                None,
            )),
        }
    }

    /// 0.3 JSON-RPC: the task or message itself, told by `kind`; 0.3
    /// HTTP+JSON: `{task}` or `{message}` (`msg` in some servers).
    pub(super) fn sent_03(&self, result: &mut Value, body: &str) -> Result<Sent, CallError> {
        let mut sent = match self.interface.binding {
            Binding::JsonRpc => match result["kind"].as_str() {
                Some("task") => Sent::Task(result.take()),
                Some("message") => Sent::Message(result.take()),
                _ if result.get("status").is_some() => Sent::Task(result.take()),
                _ if result.get("parts").is_some() => Sent::Message(result.take()),
                _ => {
                    return Err(self.target.malformed(
                        "the message/send result is neither a task nor a message",
                        body,
                        None,
                    ));
                }
            },
            Binding::HttpJson => {
                if let Some(message) = result.get_mut("msg") {
                    Sent::Message(message.take())
                } else {
                    self.sent(result, body)?
                }
            }
        };
        match &mut sent {
            Sent::Task(task) => self.normalize_task(task),
            Sent::Message(message) => self.normalize_message(message),
        }
        Ok(sent)
    }

    /// A task of any kind in the 1.0 shape (states are read by the parent in
    /// both spellings).
    pub(super) fn normalize_task(&self, task: &mut Value) {
        if self.interface.binding == Binding::HttpJson && self.interface.version == Version::V0_3 {
            if let Some(message) = task["status"].get_mut("message") {
                self.normalize_message(message);
            }
            for artifact in task["artifacts"].as_array_mut().into_iter().flatten() {
                for part in artifact["parts"].as_array_mut().into_iter().flatten() {
                    unwrap_03_data_part(part);
                }
            }
        }
    }

    fn normalize_message(&self, message: &mut Value) {
        if self.interface.binding != Binding::HttpJson || self.interface.version != Version::V0_3 {
            return;
        }
        if let Some(object) = message.as_object_mut()
            && let Some(mut content) = object.remove("content")
        {
            for part in content.as_array_mut().into_iter().flatten() {
                unwrap_03_data_part(part);
            }
            object.insert("parts".to_string(), content);
        }
    }
}

/// 1.0 (and 0.3 HTTP+JSON) stream events: `{task}`, `{message}` (`{msg}` in
/// some 0.3 servers), `{statusUpdate}`, `{artifactUpdate}`.
fn update_10(mut event: Value) -> Option<Update> {
    let object = event.as_object_mut()?;
    if let Some(task) = object.remove("task") {
        return Some(Update::Task(task));
    }
    if let Some(message) = object.remove("message").or_else(|| object.remove("msg")) {
        return Some(Update::Message(message));
    }
    if let Some(mut update) = object.remove("statusUpdate") {
        return Some(status_update(&mut update));
    }
    let mut update = object.remove("artifactUpdate")?;
    Some(artifact_update(&mut update))
}

/// 0.3 JSON-RPC stream events: the object itself, told by `kind`.
fn update_03(mut event: Value) -> Option<Update> {
    match event["kind"].as_str()? {
        "task" => Some(Update::Task(event)),
        "message" => Some(Update::Message(event)),
        "status-update" => Some(status_update(&mut event)),
        "artifact-update" => Some(artifact_update(&mut event)),
        _ => None,
    }
}

fn status_update(update: &mut Value) -> Update {
    Update::Status {
        task_id: update["taskId"].as_str().map(str::to_string),
        status: update["status"].take(),
    }
}

fn artifact_update(update: &mut Value) -> Update {
    Update::Artifact {
        task_id: update["taskId"].as_str().map(str::to_string),
        artifact: update["artifact"].take(),
        append: update["append"].as_bool().unwrap_or(false),
    }
}

/// 0.3 protobuf JSON: `{data: {data: X}}` is the data part `{data: X}`.
fn unwrap_03_data_part(part: &mut Value) {
    if let Some(inner) = part.get_mut("data").and_then(|data| data.get_mut("data")) {
        let inner = inner.take();
        part["data"] = inner;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{interface, wire};
    use super::*;

    #[test]
    fn version_03_answers_take_the_10_shape() {
        let rpc = interface("http://h/", Version::V0_3, Binding::JsonRpc);
        let mut task = json!({"kind": "task", "id": "t", "status": {"state": "working"}});
        let Sent::Task(task) = wire(&rpc).sent_03(&mut task, "").unwrap() else {
            panic!("a task");
        };
        assert_eq!(task["id"], "t");
        let mut message = json!({"kind": "message", "parts": [{"kind": "text", "text": "hi"}]});
        assert!(matches!(
            wire(&rpc).sent_03(&mut message, "").unwrap(),
            Sent::Message(_)
        ));
        assert!(wire(&rpc).sent_03(&mut json!({"x": 1}), "").is_err());

        let rest = interface("http://h/", Version::V0_3, Binding::HttpJson);
        let mut answer = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_COMPLETED",
            "message": {"content": [{"text": "done"}]}},
            "artifacts": [{"parts": [{"data": {"data": {"a": 1}}}, {"text": "{}"}]}]}});
        let Sent::Task(task) = wire(&rest).sent_03(&mut answer, "").unwrap() else {
            panic!("a task");
        };
        assert_eq!(
            task,
            json!({"id": "t", "status": {"state": "TASK_STATE_COMPLETED",
                "message": {"parts": [{"text": "done"}]}},
                "artifacts": [{"parts": [{"data": {"a": 1}}, {"text": "{}"}]}]})
        );
        let mut answer = json!({"msg": {"content": [{"data": {"data": [1]}}]}});
        let Sent::Message(message) = wire(&rest).sent_03(&mut answer, "").unwrap() else {
            panic!("a message");
        };
        assert_eq!(message, json!({"parts": [{"data": [1]}]}));
    }
}
