//! A2A tasks, whatever the version and binding: send the message asking for
//! the task at once, then poll it until it ends, or follow its event stream
//! when the agent streams ([`stream`]); cancel it when the caller gives up.
//! The differences between versions and bindings are in [`wire`].

mod sse;
mod stream;
mod wire;

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::card::Interface;
use super::client::{AgentTask, CallError, CallRequest, StreamSettings, Target};
use wire::{Sent, Wire};

/// Polling starts fast so quick skills return quickly, and backs off to this.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(200);

/// Waits before each `GetTask`: none before the first (a quick skill is often
/// done by then, and a timer sleep costs a millisecond or more, many times a
/// loopback round-trip), then from [`FIRST_POLL`] doubling up to [`MAX_POLL`].
fn poll_delays() -> impl Iterator<Item = Duration> {
    let backoff = std::iter::successors(Some(FIRST_POLL), |delay| Some((*delay * 2).min(MAX_POLL)));
    std::iter::once(Duration::ZERO).chain(backoff)
}
/// Polling survives this many transient failures in a row (the task lives on).
const POLL_FAILURES_TOLERATED: u32 = 3;
/// `CancelTask` is best effort and must not hold up the caller for long.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the skill as an A2A task at `interface`, on a stream when
/// `streaming` is given. `task_id` is set as soon as the agent accepted the
/// task, so the caller can cancel it if it stops waiting; `request.on_task`
/// is told then too, when the task is still running.
pub(crate) async fn call(
    http: &reqwest::Client,
    interface: &Interface,
    target: Target<'_>,
    request: &CallRequest<'_>,
    task_id: &OnceLock<String>,
    streaming: Option<StreamSettings>,
) -> Result<Value, CallError> {
    let wire = Wire {
        http,
        interface,
        target,
    };
    let outcome = match streaming {
        Some(settings) => stream::call(wire, request, task_id, settings).await,
        None => send_and_poll(wire, request, task_id).await,
    };
    cancel_if_it_lives_on(wire, task_id.get().map(String::as_str), outcome).await
}

/// Asks the agent at `interface` for the task `id` that an earlier process
/// sent (and died waiting for), then awaits it as [`call`] awaits a task it
/// sent: still running, it is polled; ended, its outcome is the call's.
/// `Ok(None)` when the agent no longer knows the task (JSON-RPC error -32001
/// TaskNotFound, HTTP 404): the caller sends the call again.
pub(crate) async fn reattach(
    http: &reqwest::Client,
    interface: &Interface,
    target: Target<'_>,
    request: &CallRequest<'_>,
    id: &str,
    task_id: &OnceLock<String>,
) -> Result<Option<Value>, CallError> {
    let wire = Wire {
        http,
        interface,
        target,
    };
    let (mut task, body) = match wire.get_task(id).await {
        Ok(found) => found,
        Err(error) if is_task_not_found(&error) => {
            tracing::info!(agent = target.agent, task = id, interface = %interface.describe(), "the agent no longer knows the task of the interrupted attempt");
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    accept_task(request.on_task, interface, task_id, id);
    let state = task["status"]["state"].as_str().unwrap_or_default();
    tracing::info!(agent = target.agent, task = id, state, interface = %interface.describe(), "reattached to the task of the interrupted attempt");
    let mut reporter = StatusReporter::new(request.on_status);
    reporter.report(&task["status"]);
    let outcome = match task_outcome(target, &mut task, &body) {
        Some(outcome) => outcome,
        None => poll(wire, id, &mut reporter).await,
    };
    cancel_if_it_lives_on(wire, Some(id), outcome)
        .await
        .map(Some)
}

/// The agent's answer for a task it does not know (A2A `TaskNotFoundError`).
fn is_task_not_found(error: &CallError) -> bool {
    match error {
        CallError::JsonRpc { code, .. } => *code == TASK_NOT_FOUND,
        CallError::Http { status, .. } => *status == reqwest::StatusCode::NOT_FOUND,
        _ => false,
    }
}

/// A2A's JSON-RPC error code for a task the agent does not know (0.3 and 1.0).
const TASK_NOT_FOUND: i64 = -32001;

/// The agent accepted the task `id`: the slot is set (so the caller can
/// cancel it) and, the first time, `on_task` is told.
pub(super) fn accept_task(
    on_task: Option<&(dyn Fn(&AgentTask) + Send + Sync)>,
    interface: &Interface,
    task_id: &OnceLock<String>,
    id: &str,
) {
    if task_id.set(id.to_string()).is_err() {
        return;
    }
    if let Some(on_task) = on_task {
        on_task(&AgentTask {
            id: id.to_string(),
            interface: interface.clone(),
        });
    }
}

/// A task whose end means nothing to pallet, or that could not be followed
/// (polling or the stream broke down), is cancelled: it is not known to have
/// ended, and a retry must not run it twice.
async fn cancel_if_it_lives_on(
    wire: Wire<'_>,
    id: Option<&str>,
    outcome: Result<Value, CallError>,
) -> Result<Value, CallError> {
    let task_lives_on = outcome.as_ref().is_err_and(|error| {
        error.task_id().is_none() || matches!(error, CallError::UnknownTaskState { .. })
    });
    if task_lives_on && let Some(id) = id {
        // Polling or the stream broke down, or the state means nothing to
        // pallet, not that the task ended: stop it so a retry does not run it twice.
        cancel(wire, id).await;
    }
    outcome
}

async fn send_and_poll(
    wire: Wire<'_>,
    request: &CallRequest<'_>,
    task_id: &OnceLock<String>,
) -> Result<Value, CallError> {
    let (sent, body) = wire.send_message(request).await?;
    let mut task = match sent {
        Sent::Message(mut message) => return message_output(wire.target, &mut message, &body),
        Sent::Task(task) => task,
    };
    let id = task["id"]
        .as_str()
        .ok_or_else(|| wire.target.malformed("the task has no `id`", &body, None))?
        .to_string();
    let mut reporter = StatusReporter::new(request.on_status);
    reporter.report(&task["status"]);
    match task_outcome(wire.target, &mut task, &body) {
        Some(outcome) => {
            let _ = task_id.set(id);
            outcome
        }
        None => {
            accept_task(request.on_task, wire.interface, task_id, &id);
            poll(wire, &id, &mut reporter).await
        }
    }
}

/// Hands the task's status messages to the caller's callback, each once.
pub(super) struct StatusReporter<'a> {
    callback: Option<&'a (dyn Fn(&str) + Send + Sync)>,
    last: Option<String>,
}

impl<'a> StatusReporter<'a> {
    fn new(callback: Option<&'a (dyn Fn(&str) + Send + Sync)>) -> StatusReporter<'a> {
        StatusReporter {
            callback,
            last: None,
        }
    }

    /// The text of a task status's message, unless it is the one reported last.
    fn report(&mut self, status: &Value) {
        self.report_message(&status["message"]);
    }

    fn report_message(&mut self, message: &Value) {
        let Some(callback) = self.callback else {
            return;
        };
        let texts: Vec<&str> = message["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .filter(|text| !text.trim().is_empty())
            .collect();
        if texts.is_empty() {
            return;
        }
        let text = texts.join("\n");
        if self.last.as_deref() != Some(text.as_str()) {
            callback(&text);
            self.last = Some(text);
        }
    }
}

/// Gets the task with backoff until it reaches a terminal or interrupted
/// state, reporting its status messages as they change.
async fn poll(
    wire: Wire<'_>,
    id: &str,
    reporter: &mut StatusReporter<'_>,
) -> Result<Value, CallError> {
    let mut failures = 0;
    let mut delays = poll_delays();
    loop {
        let delay = delays.next().unwrap_or(MAX_POLL);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match wire.get_task(id).await {
            Ok((mut task, body)) => {
                failures = 0;
                reporter.report(&task["status"]);
                if let Some(outcome) = task_outcome(wire.target, &mut task, &body) {
                    return outcome;
                }
            }
            Err(error) if error.is_transient() && failures < POLL_FAILURES_TOLERATED => {
                failures += 1;
                tracing::debug!(task = id, %error, "polling the task failed, trying again");
            }
            Err(error) => return Err(error),
        }
    }
}

/// Asks the agent at `interface` to stop `id`; failures are logged, never
/// returned, because the caller is already reporting why it stopped waiting.
pub(crate) async fn cancel_task(
    http: &reqwest::Client,
    interface: &Interface,
    target: Target<'_>,
    id: &str,
) {
    let wire = Wire {
        http,
        interface,
        target,
    };
    cancel(wire, id).await;
}

async fn cancel(wire: Wire<'_>, id: &str) {
    let agent = wire.target.agent;
    match tokio::time::timeout(CANCEL_TIMEOUT, wire.cancel_task(id)).await {
        Ok(Ok(())) => tracing::debug!(agent, task = id, "task cancelled"),
        Ok(Err(error)) => {
            tracing::warn!(agent, task = id, %error, "could not cancel the task")
        }
        Err(_) => tracing::warn!(agent, task = id, "cancelling the task timed out"),
    }
}

/// What a task means for the call: `None` while it is still running.
fn task_outcome(
    target: Target<'_>,
    task: &mut Value,
    body: &str,
) -> Option<Result<Value, CallError>> {
    let Some(state) = task["status"]["state"].as_str() else {
        return Some(Err(target.malformed(
            "the task has no `status.state`",
            body,
            None,
        )));
    };
    match normalize_state(state).as_str() {
        "TASK_STATE_SUBMITTED" | "TASK_STATE_WORKING" | "TASK_STATE_UNSPECIFIED" => None,
        "TASK_STATE_COMPLETED" => Some(task_output(target, task, body)),
        failed @ ("TASK_STATE_FAILED"
        | "TASK_STATE_REJECTED"
        | "TASK_STATE_CANCELED"
        | "TASK_STATE_INPUT_REQUIRED"
        | "TASK_STATE_AUTH_REQUIRED") => Some(Err(CallError::TaskFailed {
            agent: target.agent.to_string(),
            skill: target.skill.to_string(),
            task_id: task["id"].as_str().unwrap_or_default().to_string(),
            state: failed.to_string(),
            message: status_text(task),
        })),
        _ => Some(Err(CallError::UnknownTaskState {
            agent: target.agent.to_string(),
            skill: target.skill.to_string(),
            task_id: task["id"].as_str().unwrap_or_default().to_string(),
            state: state.to_string(),
        })),
    }
}

/// 1.0 writes `TASK_STATE_COMPLETED`; 0.3 JSON-RPC wrote `completed`, and
/// 0.3's protobuf JSON `TASK_STATE_CANCELLED`.
fn normalize_state(state: &str) -> String {
    let state = if state.starts_with("TASK_STATE_") {
        state.to_string()
    } else {
        format!("TASK_STATE_{}", state.to_uppercase().replace('-', "_"))
    };
    if state == "TASK_STATE_CANCELLED" {
        "TASK_STATE_CANCELED".to_string()
    } else {
        state
    }
}

fn status_text(task: &Value) -> String {
    let texts: Vec<&str> = task["status"]["message"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect();
    if texts.is_empty() {
        "the agent gave no message".to_string()
    } else {
        texts.join("\n")
    }
}

/// The output of a completed task: its artifacts' parts, else its status message's.
/// The parts are taken out of the answer, not copied: a large answer is held once.
fn task_output(target: Target<'_>, task: &mut Value, body: &str) -> Result<Value, CallError> {
    let mut parts = Vec::new();
    for artifact in task["artifacts"].as_array_mut().into_iter().flatten() {
        match artifact["parts"].as_array_mut() {
            Some(artifact_parts) => parts.append(artifact_parts),
            None => return Err(target.malformed("an artifact has no `parts` list", body, None)),
        }
    }
    if parts.is_empty()
        && let Some(status_parts) = task["status"]["message"]["parts"].as_array_mut()
    {
        parts.append(status_parts);
    }
    Ok(parts_output(target, parts))
}

fn message_output(target: Target<'_>, message: &mut Value, body: &str) -> Result<Value, CallError> {
    match message["parts"].as_array_mut() {
        Some(parts) => Ok(parts_output(target, std::mem::take(parts))),
        None => Err(target.malformed("the message has no `parts` list", body, None)),
    }
}

/// One part gives its value, several an array in order, none null.
fn parts_output(target: Target<'_>, parts: Vec<Value>) -> Value {
    let mut values: Vec<Value> = parts
        .into_iter()
        .map(|part| part_value(target, part))
        .collect();
    match values.len() {
        0 => Value::Null,
        1 => values.remove(0),
        _ => Value::Array(values),
    }
}

/// Data parts as they are; text parts as JSON when they parse; other parts
/// (raw bytes, URLs) whole, so nothing the agent sent is lost.
/// Text that holds more JSON values than the answer may is kept as text.
fn part_value(target: Target<'_>, mut part: Value) -> Value {
    if let Some(data) = part.get_mut("data") {
        return integral_numbers(data.take());
    }
    if let Some(Value::String(text)) = part.get_mut("text") {
        let text = std::mem::take(text);
        if target.check_json_values(&text).is_err() {
            return Value::String(text);
        }
        return serde_json::from_str(&text)
            .map(integral_numbers)
            .unwrap_or(Value::String(text));
    }
    part
}

/// A2A carries values as protobuf values, where every number is a double
/// (`1` comes back as `1.0`), so agents echo integers as doubles, in data
/// parts and in JSON they print from them alike; whole numbers are turned
/// back into integers so templates compare them as the workflow wrote them.
fn integral_numbers(value: Value) -> Value {
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or_default();
            let whole = float.fract() == 0.0 && float.abs() < 9.0e15;
            if whole {
                Value::from(float as i64)
            } else {
                Value::Number(number)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, integral_numbers(value)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TARGET: Target<'static> = Target {
        agent: "agent",
        skill: "skill",
        max_response_size: 1 << 20,
        auth: None,
        traceparent: None,
    };

    #[test]
    fn polling_starts_at_once_then_backs_off_to_the_maximum() {
        let expected_ms = [0, 1, 2, 4, 8, 16, 32, 64, 128, 200, 200];
        let delays: Vec<u128> = poll_delays()
            .take(expected_ms.len())
            .map(|delay| delay.as_millis())
            .collect();
        assert_eq!(delays, expected_ms);
    }

    #[test]
    fn outputs_from_parts() {
        let cases = [
            (
                json!([{"data": {"a": 1.0, "b": 1.5}}]),
                json!({"a": 1, "b": 1.5}),
            ),
            (
                json!([{"text": "{\"x\": [1.0, 2.5]}"}]),
                json!({"x": [1, 2.5]}),
            ),
            (json!([{"text": "plain words"}]), json!("plain words")),
            (json!([{"data": 2.0}, {"text": "3"}]), json!([2, 3])),
            (
                json!([{"url": "http://h/f", "mediaType": "text/plain"}]),
                json!({"url": "http://h/f", "mediaType": "text/plain"}),
            ),
            (json!([]), Value::Null),
        ];
        for (parts, expected) in cases {
            let parts: Vec<Value> = parts.as_array().unwrap().clone();
            assert_eq!(parts_output(TARGET, parts), expected);
        }
    }

    #[test]
    fn task_states() {
        let task = |state: &str| {
            json!({"id": "t", "status": {"state": state, "message": {"parts": [{"text": "why"}]}},
                   "artifacts": [{"parts": [{"data": {"ok": true}}]}]})
        };
        for running in ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "working"] {
            assert!(
                task_outcome(TARGET, &mut task(running), "").is_none(),
                "{running}"
            );
        }
        for done in ["TASK_STATE_COMPLETED", "completed"] {
            let output = task_outcome(TARGET, &mut task(done), "").unwrap().unwrap();
            assert_eq!(output, json!({"ok": true}));
        }
        for failed in [
            "TASK_STATE_FAILED",
            "TASK_STATE_REJECTED",
            "TASK_STATE_INPUT_REQUIRED",
            "auth-required",
            "canceled",
            "TASK_STATE_CANCELLED",
        ] {
            let error = task_outcome(TARGET, &mut task(failed), "")
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(&error, CallError::TaskFailed { message, .. } if message == "why"),
                "{error}"
            );
            assert!(!error.is_transient());
        }
        for unknown in ["unknown", "TASK_STATE_UNKNOWN"] {
            let error = task_outcome(TARGET, &mut task(unknown), "")
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(error, CallError::UnknownTaskState { .. }),
                "{error}"
            );
        }
        let error = task_outcome(TARGET, &mut task("TASK_STATE_EXPLODED"), "{}")
            .unwrap()
            .unwrap_err();
        assert!(
            error.to_string().contains(
                "unknown task state `TASK_STATE_EXPLODED` (task t, cancellation sent to the agent)"
            ),
            "{error}"
        );
    }

    #[test]
    fn only_task_not_found_answers_send_a_reattached_step_again() {
        let rpc = |code: i64| CallError::JsonRpc {
            agent: "a".into(),
            skill: "s".into(),
            code,
            message: "m".into(),
        };
        let http = |status: u16| CallError::Http {
            agent: "a".into(),
            skill: "s".into(),
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            snippet: String::new(),
        };
        let cases = [
            (rpc(-32001), true),
            (http(404), true),
            (rpc(-32601), false),
            (rpc(-32603), false),
            (http(500), false),
            (http(410), false),
        ];
        for (error, not_found) in cases {
            assert_eq!(is_task_not_found(&error), not_found, "{error}");
        }
    }

    #[test]
    fn completed_task_without_artifacts_uses_its_status_message() {
        let mut task = json!({"id": "t", "status": {"state": "TASK_STATE_COMPLETED", "message": {"parts": [{"text": "done"}]}}});
        assert_eq!(task_output(TARGET, &mut task, "").unwrap(), json!("done"));
    }
}
