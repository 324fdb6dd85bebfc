//! Call steps: agents tried in order with failover, retries of transient
//! failures, and `execute_workflow` served by the engine itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::retry::Schedule;
use super::run::{Failure, Run, StepDetails};
use super::{
    EXECUTE_WORKFLOW, Event, JournalWrite, MAX_STATUS_MESSAGE_CHARS, MAX_STATUS_MESSAGES,
    MAX_WORKFLOW_DEPTH, Nesting, RunStatus, STATUS_WRITE_INTERVAL, StepTask,
};
use crate::agent::{AgentCard, AgentTask, CallError, CallRequest};
use crate::error::chain_of;
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

fn lock(statuses: &Mutex<StatusMessages>) -> std::sync::MutexGuard<'_, StatusMessages> {
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
        // The agent's task of this step's interrupted attempt: asked for first.
        let mut interrupted = self
            .durable
            .and_then(|durable| durable.interrupted_tasks.get(&step.id));
        loop {
            details.attempts = attempt;
            // Qualified ids keep the keys of a child's steps apart from the parent's.
            let key = format!(
                "{}:{}:{}",
                self.id,
                self.event_name(step),
                self.previous_attempts(step) + attempt
            );
            let outcome = match interrupted {
                Some(task) => self.reattach(&call, task, details).await,
                None => self.attempt(&call, &key, details).await,
            };
            // Asked again on a retry only when the agent could not be reached.
            let unreachable =
                matches!(&outcome, Err(AttemptError::Call(error)) if error.is_unreachable());
            if !unreachable {
                interrupted = None;
            }
            let error = match outcome {
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
            agents,
            cancel,
            ..
        } = *call;
        let timeout = step.timeout();
        let mut last_error = None;
        for agent in agents {
            details.agent = Some(agent.name.clone());
            let started = Instant::now();
            let result = self.call_agent(call, agent, key, None, details).await;
            let error = match result {
                Ok(Ok(value)) => return Ok(value.unwrap_or_default()),
                Ok(Err(error)) => error,
                Err(_) => {
                    self.call_failed(&agent.name, "timeout");
                    return Err(AttemptError::TimedOut);
                }
            };
            self.call_failed(&agent.name, error.kind());
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

    /// The first attempt of a step whose interrupted attempt left an agent
    /// task: ask that agent for the task and await it; when the agent no
    /// longer knows it (or no longer offers the skill), send the step again
    /// with the key the task was sent with.
    async fn reattach(
        &self,
        call: &Call<'_>,
        task: &StepTask,
        details: &mut StepDetails,
    ) -> Result<Value, AttemptError> {
        let step = call.step;
        let Some(agent) = call.agents.iter().find(|agent| agent.name == task.agent) else {
            tracing::info!(step = %self.event_name(step), agent = %task.agent, task = %task.task.id, "the agent of the interrupted task no longer offers the skill: sending the step again");
            return self.attempt(call, &task.idempotency_key, details).await;
        };
        details.agent = Some(agent.name.clone());
        let result = self
            .call_agent(call, agent, &task.idempotency_key, Some(task), details)
            .await;
        match result {
            Ok(Ok(Some(value))) => Ok(value),
            Ok(Ok(None)) => {
                tracing::info!(step = %self.event_name(step), agent = %agent.name, task = %task.task.id, key = %task.idempotency_key, "sending the step again with the same idempotency key");
                self.attempt(call, &task.idempotency_key, details).await
            }
            Ok(Err(CallError::Timeout { .. })) | Err(_) => {
                self.call_failed(&agent.name, "timeout");
                Err(AttemptError::TimedOut)
            }
            Ok(Err(error)) => {
                self.call_failed(&agent.name, error.kind());
                Err(AttemptError::Call(error))
            }
        }
    }

    fn call_failed(&self, agent: &str, kind: &'static str) {
        if let Some(observer) = &self.engine.observer {
            observer.call_failed(agent, kind);
        }
    }

    /// One call of `agent` (or, with `interrupted`, a reattach to that
    /// task), under the step's timeout and a guard against a client that
    /// hangs; `None` when the agent no longer knows the interrupted task. In
    /// a durable run the task the agent accepts is kept with the attempt.
    async fn call_agent(
        &self,
        call: &Call<'_>,
        agent: &AgentCard,
        key: &str,
        interrupted: Option<&StepTask>,
        details: &mut StepDetails,
    ) -> Result<Result<Option<Value>, CallError>, tokio::time::error::Elapsed> {
        let reattached_from = interrupted.and_then(|task| task.reattached_from);
        let step = call.step;
        let statuses = Mutex::new(StatusMessages::default());
        let on_status = |message: &str| self.status_message(step, message, &statuses);
        let written: Mutex<Option<JournalWrite>> = Mutex::new(None);
        let durable = self.durable;
        let step_id = step.id.as_str();
        let record_task = |task: &AgentTask| {
            let Some(durable) = durable else { return };
            let task = StepTask {
                agent: agent.name.clone(),
                task: task.clone(),
                idempotency_key: key.to_string(),
                reattached_from,
            };
            let write = durable.journal.task_accepted(step_id, &task);
            *written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(write);
        };
        let on_task: Option<&(dyn Fn(&AgentTask) + Send + Sync)> = match durable {
            Some(_) => Some(&record_task),
            None => None,
        };
        let traceparent = traceparent(&self.id);
        let request = CallRequest {
            skill: call.skill,
            input: call.inputs,
            timeout: step.timeout(),
            cancel: call.cancel,
            idempotency_key: key,
            max_response_size: step.max_response_size,
            on_task,
            on_status: Some(&on_status),
            traceparent: Some(&traceparent),
        };
        let client = &self.engine.client;
        let work = async {
            match interrupted {
                Some(task) => client.reattach(agent, &task.task, request).await,
                None => client.call(agent, request).await.map(Some),
            }
        };
        // The client enforces the timeout; this only guards against a client that hangs.
        let result = tokio::time::timeout(step.timeout().saturating_add(TIMEOUT_GRACE), work).await;
        details
            .status_messages
            .append(&mut lock(&statuses).messages);
        let over = details
            .status_messages
            .len()
            .saturating_sub(MAX_STATUS_MESSAGES);
        details.status_messages.drain(..over);
        let pending = written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(pending) = pending
            && let Err(error) = pending.await
        {
            // The step's end is refused for the same reason and fails the step.
            tracing::warn!(step = %self.event_name(step), %error, "cannot record the agent's task");
        }
        result
    }

    /// A new status message of the step's agent: an event at once, a journal
    /// write at most every [`STATUS_WRITE_INTERVAL`], and the record.
    fn status_message(&self, step: &Step, message: &str, statuses: &Mutex<StatusMessages>) {
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
        // The child's `inputs` are checked (and defaulted) as any run's are.
        let input = loaded
            .check_input(input)
            .map_err(|error| fail(error.summary()))?;
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

/// A W3C `traceparent` for one agent call of run `run_id`: the run's trace
/// (its UUID's 32 hex digits, so a trace names its run; another id is
/// hashed), a new span per call, sampled.
fn traceparent(run_id: &str) -> String {
    let trace = match uuid::Uuid::parse_str(run_id) {
        Ok(id) if !id.is_nil() => id.simple().to_string(),
        _ => {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(run_id.as_bytes())[..16])
        }
    };
    // Never all zeros: that span id is invalid.
    let span = rand::random::<u64>().max(1);
    format!("00-{trace}-{span:016x}-01")
}

#[cfg(test)]
mod trace_tests {
    use super::traceparent;

    #[test]
    fn a_run_is_one_trace_and_each_call_a_span() {
        let run = "0b6f1c2e-3d4a-4b5c-8d9e-0f1a2b3c4d5e";
        let (first, second) = (traceparent(run), traceparent(run));
        let parts: Vec<&str> = first.split('-').collect();
        assert_eq!(parts.len(), 4, "{first}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "0b6f1c2e3d4a4b5c8d9e0f1a2b3c4d5e");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_eq!(&second[..36], &first[..36], "one trace");
        assert_ne!(second, first, "a new span per call");
        let other = traceparent("not-a-uuid");
        assert_eq!(other.split('-').nth(1).unwrap().len(), 32);
    }
}
