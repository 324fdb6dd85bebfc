//! Call steps: agents tried in order with failover, retries of transient
//! failures, and `execute_workflow` served by the engine itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::retry::Schedule;
use super::run::{Failure, Run, StepDetails, chain_of};
use super::{
    EXECUTE_WORKFLOW, Event, MAX_STATUS_MESSAGE_CHARS, MAX_STATUS_MESSAGES, MAX_WORKFLOW_DEPTH,
    Nesting, RunStatus, STATUS_WRITE_INTERVAL,
};
use crate::agent::{AgentCard, CallError, CallRequest};
use crate::workflow::Step;

/// How long past its own timeout a call may take to wind down (cancel the
/// agent's task) before the engine stops waiting for it.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// The status messages of one attempt's calls, and when the last was journaled.
#[derive(Default)]
struct StatusMessages {
    messages: Vec<String>,
    last_write: Option<Instant>,
}

fn lock(statuses: &std::sync::Mutex<StatusMessages>) -> std::sync::MutexGuard<'_, StatusMessages> {
    statuses
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A message cut to [`MAX_STATUS_MESSAGE_CHARS`] characters.
fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_STATUS_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

/// Why one attempt (over every agent) failed.
enum AttemptError {
    TimedOut,
    NoAgent,
    Call(CallError),
}

/// What every attempt of one call step shares.
#[derive(Clone, Copy)]
struct Call<'a> {
    step: &'a Step,
    skill: &'a str,
    inputs: &'a Map<String, Value>,
    agents: &'a [Arc<AgentCard>],
    cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// Resolve the inputs, call the skill and shape the result into the step's outputs.
    pub(super) async fn call(
        &self,
        step: &Step,
        skill: &str,
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let inputs = self.render_inputs(step)?;
        let result = if skill == EXECUTE_WORKFLOW {
            self.sub_workflow(step, &inputs, cancel, details).await
        } else {
            self.call_with_retry(step, skill, &inputs, cancel, details)
                .await
        };
        details.inputs = Some(Value::Object(inputs));
        result.map(|value| shape_outputs(step, value))
    }

    async fn call_with_retry(
        &self,
        step: &Step,
        skill: &str,
        inputs: &Map<String, Value>,
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let call = Call {
            step,
            skill,
            inputs,
            agents: self
                .agents
                .get(skill)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            cancel,
        };
        let schedule = step
            .retry
            .as_ref()
            .map_or_else(Schedule::once, Schedule::from);
        let mut delays = schedule.delays(rand::random::<f64>);
        let mut attempt = 1;
        loop {
            details.attempts = attempt;
            // Qualified ids keep the keys of a child's steps apart from the parent's.
            let key = format!(
                "{}:{}:{}",
                self.id,
                self.event_name(step),
                self.previous_attempts(step) + attempt
            );
            let error = match self.attempt(&call, &key, details).await {
                Ok(value) => return Ok(value),
                Err(_) if cancel.is_cancelled() => return Err(Failure::cancelled(step)),
                Err(error) => error,
            };
            let (message, transient, retry_after) = match &error {
                AttemptError::TimedOut => (
                    format!(
                        "step `{}` timed out after {}",
                        step.id,
                        humantime::format_duration(step.timeout())
                    ),
                    true,
                    None,
                ),
                AttemptError::NoAgent => (
                    format!("step `{}` failed: no agent offers skill `{skill}`", step.id),
                    false,
                    None,
                ),
                AttemptError::Call(error) => (
                    format!("step `{}` failed: {}", step.id, chain_of(error)),
                    error.is_transient(),
                    error.retry_after(),
                ),
            };
            let delay = match delays.next_with(retry_after) {
                Some(delay) if transient => delay,
                _ => return Err(Failure::failed(message)),
            };
            attempt += 1;
            self.engine.emit(|| Event::StepRetrying {
                step: self.event_name(step),
                attempt,
                delay,
                error: message,
            });
            tokio::select! {
                () = cancel.cancelled() => return Err(Failure::cancelled(step)),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One attempt: the agents in order, moving on while they are unreachable.
    async fn attempt(
        &self,
        call: &Call<'_>,
        key: &str,
        details: &mut StepDetails,
    ) -> Result<Value, AttemptError> {
        let Call {
            step,
            skill,
            inputs,
            agents,
            cancel,
        } = *call;
        let timeout = step.timeout();
        let mut last_error = None;
        let statuses = std::sync::Mutex::new(StatusMessages::default());
        let on_status = |message: &str| self.status_message(step, message, &statuses);
        for agent in agents {
            details.agent = Some(agent.name.clone());
            let request = CallRequest {
                skill,
                input: inputs,
                timeout,
                cancel,
                idempotency_key: key,
                max_response_size: step.max_response_size,
                on_status: Some(&on_status),
            };
            let started = Instant::now();
            // The client enforces the timeout; this only guards against a client that hangs.
            let result = tokio::time::timeout(
                timeout.saturating_add(TIMEOUT_GRACE),
                self.engine.client.call(agent, request),
            )
            .await;
            let messages = &mut lock(&statuses).messages;
            details.status_messages.append(messages);
            let over = details
                .status_messages
                .len()
                .saturating_sub(MAX_STATUS_MESSAGES);
            details.status_messages.drain(..over);
            let error = match result {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_) => return Err(AttemptError::TimedOut),
            };
            if cancel.is_cancelled() {
                return Err(AttemptError::Call(error));
            }
            if matches!(error, CallError::Timeout { .. }) || started.elapsed() >= timeout {
                return Err(AttemptError::TimedOut);
            }
            if !error.is_unreachable() {
                return Err(AttemptError::Call(error));
            }
            tracing::debug!(step = %step.id, agent = %agent.name, error = %chain_of(&error), "agent unreachable, trying the next one");
            last_error = Some(error);
        }
        Err(last_error.map_or(AttemptError::NoAgent, AttemptError::Call))
    }

    /// A new status message of the step's agent: an event at once, a journal
    /// write at most every [`STATUS_WRITE_INTERVAL`], and the record.
    fn status_message(
        &self,
        step: &Step,
        message: &str,
        statuses: &std::sync::Mutex<StatusMessages>,
    ) {
        let message = bounded(message);
        self.engine.emit(|| Event::StepStatusMessage {
            step: self.event_name(step),
            message: message.clone(),
        });
        let mut statuses = lock(statuses);
        let due = statuses
            .last_write
            .is_none_or(|last| last.elapsed() >= STATUS_WRITE_INTERVAL);
        if due && let Some(durable) = self.durable {
            statuses.last_write = Some(Instant::now());
            // Queued in order before the step's end; its answer is not awaited
            // (a lost status message fails nothing).
            drop(durable.journal.step_status(&step.id, &message));
        }
        statuses.messages.push(message);
    }

    /// `execute_workflow`: run the workflow named by `workflow_id` as a child run.
    async fn sub_workflow(
        &self,
        step: &Step,
        inputs: &Map<String, Value>,
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        details.attempts = 1;
        let fail = |reason: String| Failure::failed(format!("step `{}` failed: {reason}", step.id));
        let Some(id) = inputs.get("workflow_id").and_then(Value::as_str) else {
            return Err(fail(
                "input `workflow_id` must be a string naming a workflow".to_string(),
            ));
        };
        let input = match inputs.get("input") {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(fields)) => Value::Object(fields.clone()),
            Some(_) => return Err(fail("input `input` must be an object".to_string())),
        };
        let path = format!("{} -> {id}", self.chain.join(" -> "));
        if self.chain.iter().any(|caller| caller == id) {
            return Err(fail(format!("workflow `{id}` calls itself: {path}")));
        }
        if self.chain.len() >= MAX_WORKFLOW_DEPTH {
            return Err(fail(format!(
                "workflows nest deeper than {MAX_WORKFLOW_DEPTH}: {path}"
            )));
        }
        let loaded = tokio::select! {
            () = cancel.cancelled() => return Err(Failure::cancelled(step)),
            loaded = self.engine.workflows.load(id) => loaded,
        };
        let loaded = loaded.map_err(|error| fail(chain_of(&error)))?;
        let nesting = Nesting {
            callers: self.chain.clone(),
            event_prefix: format!("{}/", self.event_name(step)),
        };
        // The step's timeout bounds the whole child run: when it fires the
        // child is cancelled and given the chance to wind down.
        let child_cancel = cancel.child_token();
        // A child of a durable run is durable too, journaled under `STEP/...`.
        let child_durable = self.durable.map(|durable| durable.child(&step.id));
        let child_run = self.engine.run_nested(
            loaded,
            input,
            child_cancel.clone(),
            nesting,
            child_durable.as_ref(),
        );
        tokio::pin!(child_run);
        let (child, timed_out) = tokio::select! {
            child = &mut child_run => (child, false),
            () = tokio::time::sleep(step.timeout()) => {
                child_cancel.cancel();
                (child_run.await, true)
            }
        };
        let outcome = match child.status {
            RunStatus::Completed => Ok(child.output.clone().unwrap_or_else(|| json!({}))),
            _ if timed_out && !cancel.is_cancelled() => Err(Failure::failed(format!(
                "step `{}` timed out after {}",
                step.id,
                humantime::format_duration(step.timeout())
            ))),
            RunStatus::Cancelled => Err(Failure::cancelled(step)),
            // Only a durable child waits; the whole run pauses with it.
            RunStatus::WaitingApproval => Err(Failure::waiting(step)),
            RunStatus::Failed => Err(fail(format!(
                "workflow `{id}` failed: {}",
                child.error.as_deref().unwrap_or("no error given")
            ))),
        };
        details.child = Some(Box::new(child));
        outcome
    }
}

/// A call's result as the step's outputs object (see the module docs of `engine`).
fn shape_outputs(step: &Step, result: Value) -> Value {
    match (&step.outputs, result) {
        (Some(name), result) => {
            let mut outputs = Map::with_capacity(1);
            outputs.insert(name.clone(), result);
            Value::Object(outputs)
        }
        (None, Value::Object(fields)) => Value::Object(fields),
        (None, other) => json!({ "result": other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_shaped_as_in_the_original() {
        let step = |outputs: Option<&str>| Step {
            id: "plan".to_string(),
            skill: Some("create_plan".to_string()),
            inputs: Map::new(),
            outputs: outputs.map(str::to_string),
            ..Step::default()
        };
        let cases = [
            (
                Some("plan"),
                json!({"steps": [1]}),
                json!({"plan": {"steps": [1]}}),
            ),
            (Some("count"), json!(3), json!({"count": 3})),
            (None, json!({"a": 1}), json!({"a": 1})),
            (None, json!("text"), json!({"result": "text"})),
            (None, json!(null), json!({"result": null})),
        ];
        for (outputs, result, expected) in cases {
            assert_eq!(
                shape_outputs(&step(outputs), result.clone()),
                expected,
                "{outputs:?} {result}"
            );
        }
    }
}
