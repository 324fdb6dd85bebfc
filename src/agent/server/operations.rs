//! The A2A operations, independent of the binding: each takes the request
//! object (A2A 1.0 JSON) and `root`, the JSON pointer of that object in the
//! request (`/params` for JSON-RPC, empty for HTTP+JSON), used in errors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::AppState;
use super::definition::AgentDefinition;
use super::errors::{
    RpcError, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION, invalid_params, task_not_found,
};
use super::message;
use super::stream::{self, TaskStream};
use super::tasks::{HISTORY_KEPT, HISTORY_MESSAGE_BYTES, Task, TaskFilter};
use super::wire::{TaskView, task_json};

/// `ListTasks` page size when the client sets none, and the largest allowed.
pub(super) const DEFAULT_PAGE_SIZE: usize = 50;
pub(super) const MAX_PAGE_SIZE: usize = 100;

const TASK_STATES: [&str; 8] = [
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
];

/// `SendMessage`: `{"task": ...}` when the task ends, or at once with `returnImmediately`.
pub(super) async fn send_message(
    state: &Arc<AppState>,
    params: &Value,
    root: &str,
) -> Result<Value, RpcError> {
    let history_length = history_length(
        params.get("configuration"),
        &format!("{root}/configuration"),
    )?;
    let task_id = start(state, params, root)?;
    let return_immediately = params
        .pointer("/configuration/returnImmediately")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let task = if return_immediately {
        state.tasks.get(&task_id)
    } else {
        state.tasks.wait_finished(&task_id).await
    };
    let task = task.ok_or_else(|| task_not_found(&task_id))?;
    let view = TaskView {
        history_length,
        artifacts: true,
    };
    Ok(json!({"task": task_json(&task, view)}))
}

/// `SendStreamingMessage`: the new task's events.
pub(super) fn send_streaming_message(
    state: &Arc<AppState>,
    params: &Value,
    root: &str,
) -> Result<TaskStream, RpcError> {
    // Checked though a stream's first event is the whole task: a negative
    // length is invalid whatever the method.
    history_length(
        params.get("configuration"),
        &format!("{root}/configuration"),
    )?;
    // Take the slot first so a refused stream starts no task.
    let slot = stream::reserve(&state.streams)?;
    let task_id = start(state, params, root)?;
    let receiver = state
        .tasks
        .subscribe(&task_id)
        .ok_or_else(|| task_not_found(&task_id))?;
    Ok(TaskStream::new(receiver, slot))
}

/// `SubscribeToTask`: a running task's events; a finished task is refused (spec §3.1.6).
pub(super) fn subscribe(
    state: &Arc<AppState>,
    params: &Value,
    root: &str,
) -> Result<TaskStream, RpcError> {
    let id = task_id(params, root)?;
    let receiver = state
        .tasks
        .subscribe(id)
        .ok_or_else(|| task_not_found(id))?;
    let current = receiver.borrow().state;
    if current.is_terminal() {
        let message = format!(
            "task `{id}` already ended ({}): read it with GetTask",
            current.wire_name()
        );
        return Err(RpcError::new(UNSUPPORTED_OPERATION, message));
    }
    Ok(TaskStream::new(receiver, stream::reserve(&state.streams)?))
}

pub(super) fn get_task(state: &AppState, params: &Value, root: &str) -> Result<Value, RpcError> {
    let id = task_id(params, root)?;
    let view = TaskView {
        history_length: history_length(Some(params), root)?,
        artifacts: true,
    };
    let task = state.tasks.get(id).ok_or_else(|| task_not_found(id))?;
    Ok(task_json(&task, view))
}

pub(super) async fn cancel_task(
    state: &AppState,
    params: &Value,
    root: &str,
) -> Result<Value, RpcError> {
    let id = task_id(params, root)?;
    match state.tasks.cancel(id) {
        None => Err(task_not_found(id)),
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
                .ok_or_else(|| task_not_found(id))?;
            Ok(task_json(&task, TaskView::FULL))
        }
    }
}

/// `ListTasks`: most recently updated first; the page token is the position
/// after the last task of the previous page (`UPDATED_MICROS.TASK_ID`).
pub(super) fn list_tasks(state: &AppState, params: &Value, root: &str) -> Result<Value, RpcError> {
    let filter = list_filter(params, root)?;
    let page_size = page_size(params, root)?;
    let view = TaskView {
        history_length: history_length(Some(params), root)?,
        artifacts: params
            .get("includeArtifacts")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let tasks = state.tasks.list(&filter);
    let start = match params
        .get("pageToken")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
    {
        None => 0,
        Some(token) => {
            let after = parse_page_token(token).ok_or_else(|| {
                let pointer = format!("{root}/pageToken");
                RpcError::invalid_field(&pointer, "not a page token of this agent")
            })?;
            // The first task past the cursor in the list's order (newest first, then by id).
            tasks
                .iter()
                .position(|task| position_of(task) > after)
                .unwrap_or(tasks.len())
        }
    };
    let page = &tasks[start..(start + page_size).min(tasks.len())];
    let next_page_token = match page.last() {
        Some(last) if start + page.len() < tasks.len() => {
            format!("{}.{}", last.updated.timestamp_micros(), last.id)
        }
        _ => String::new(),
    };
    let page: Vec<Value> = page.iter().map(|task| task_json(task, view)).collect();
    Ok(json!({
        "tasks": page,
        "nextPageToken": next_page_token,
        "pageSize": page_size,
        "totalSize": tasks.len(),
    }))
}

/// A task's place in `ListTasks` order, as a page token names it: newer
/// first (a smaller key), ties by id.
fn position_of(task: &Task) -> (std::cmp::Reverse<i64>, &str) {
    (
        std::cmp::Reverse(task.updated.timestamp_micros()),
        task.id.as_str(),
    )
}

fn parse_page_token(token: &str) -> Option<(std::cmp::Reverse<i64>, &str)> {
    let (updated, id) = token.split_once('.')?;
    let updated = updated.parse().ok()?;
    (!id.is_empty()).then_some((std::cmp::Reverse(updated), id))
}

fn list_filter(params: &Value, root: &str) -> Result<TaskFilter, RpcError> {
    let text = |name: &str| -> Result<Option<String>, RpcError> {
        match params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) if value.is_empty() => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(RpcError::invalid_field(
                &format!("{root}/{name}"),
                "must be a string",
            )),
        }
    };
    let state = text("status")?;
    if let Some(state) = &state
        && !TASK_STATES.contains(&state.as_str())
    {
        let problem = format!(
            "`{state}` is not a task state (one of {})",
            TASK_STATES.join(", ")
        );
        return Err(RpcError::invalid_field(&format!("{root}/status"), &problem));
    }
    let updated_after = text("statusTimestampAfter")?
        .map(|time| {
            DateTime::parse_from_rfc3339(&time)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|error| {
                    let problem = format!("not an ISO 8601 timestamp ({error})");
                    RpcError::invalid_field(&format!("{root}/statusTimestampAfter"), &problem)
                })
        })
        .transpose()?;
    Ok(TaskFilter {
        context_id: text("contextId")?,
        state,
        updated_after,
    })
}

fn page_size(params: &Value, root: &str) -> Result<usize, RpcError> {
    let Some(value) = params.get("pageSize").filter(|value| !value.is_null()) else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    non_negative(value)
        .and_then(|size| usize::try_from(size).ok())
        .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
        .ok_or_else(|| {
            let problem = format!("must be an integer from 1 to {MAX_PAGE_SIZE}, not {value}");
            RpcError::invalid_field(&format!("{root}/pageSize"), &problem)
        })
}

/// `historyLength` of `object` (found at `pointer`): absent = all kept, else
/// a non-negative integer.
fn history_length(object: Option<&Value>, pointer: &str) -> Result<Option<usize>, RpcError> {
    let Some(value) = object
        .and_then(|object| object.get("historyLength"))
        .filter(|value| !value.is_null())
    else {
        return Ok(None);
    };
    let length = non_negative(value).ok_or_else(|| {
        let problem = format!("must be an integer of 0 or more, not {value}");
        RpcError::invalid_field(&format!("{pointer}/historyLength"), &problem)
    })?;
    Ok(Some(usize::try_from(length).unwrap_or(HISTORY_KEPT)))
}

/// A non-negative integer, also written as a string (ProtoJSON allows both).
fn non_negative(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.parse().ok(),
        _ => value.as_u64(),
    }
}

fn task_id<'a>(params: &'a Value, root: &str) -> Result<&'a str, RpcError> {
    params
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| RpcError::invalid_field(&format!("{root}/id"), "the task id is required"))
}

/// Checks the message, then starts its task; returns the task id.
fn start(state: &Arc<AppState>, params: &Value, root: &str) -> Result<String, RpcError> {
    if !params.is_object() {
        return Err(RpcError::invalid_field(
            root_or_slash(root),
            "an object is required",
        ));
    }
    let pointer = format!("{root}/message");
    let message = params.get("message");
    message::check(message, &pointer)?;
    let message = message.expect("checked above");
    if let Some(task_id) = message
        .get("taskId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        state
            .tasks
            .get(task_id)
            .ok_or_else(|| task_not_found(task_id))?;
        let message =
            format!("task `{task_id}` takes no follow-up messages: each skill call is a new task");
        return Err(RpcError::new(UNSUPPORTED_OPERATION, message));
    }
    let definition = &state.runtime.definition;
    let skill_id = skill_of(definition, message, params)?;
    let skill = definition
        .skill(&skill_id)
        .expect("skill_of returns offered skills");
    let input = message::input_of(message, skill, &pointer)?;
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let task_id = uuid::Uuid::new_v4().to_string();
    let mut received = message.clone();
    received["taskId"] = json!(task_id);
    received["contextId"] = json!(context_id);
    let cancel = state.tasks.create_with_history(
        &task_id,
        &context_id,
        &skill_id,
        vec![bounded_for_history(received)],
    );
    run_in_background(state, skill_id, task_id.clone(), input, cancel);
    Ok(task_id)
}

/// A message kept in a task's history is at most [`HISTORY_MESSAGE_BYTES`]
/// of JSON: a larger one keeps its ids and role, its parts become a note (the
/// finished tasks kept would otherwise hold every large input).
fn bounded_for_history(mut message: Value) -> Value {
    let size = serde_json::to_vec(&message).map_or(0, |bytes| bytes.len());
    if size > HISTORY_MESSAGE_BYTES {
        let note = format!("(a message of {size} bytes: its parts are not kept in the history)");
        message["parts"] = json!([{"text": note}]);
    }
    message
}

fn root_or_slash(root: &str) -> &str {
    if root.is_empty() { "/" } else { root }
}

/// Runs the skill in the background: a client that disconnects does not stop
/// it (A2A semantics); only `CancelTask`, the timeout or shutdown do.
fn run_in_background(
    state: &Arc<AppState>,
    skill_id: String,
    task_id: String,
    input: Value,
    cancel: tokio_util::sync::CancellationToken,
) {
    let job_state = state.clone();
    state.tracker.spawn(async move {
        let tasks = &job_state.tasks;
        let result = job_state
            .runtime
            .run(&skill_id, &task_id, &input, &cancel, || {
                tasks.set_working(&task_id)
            })
            .await;
        tasks.finish(&task_id, result);
    });
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
