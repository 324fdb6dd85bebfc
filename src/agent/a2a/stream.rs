//! Streaming calls, for agents whose card declares `capabilities.streaming`:
//! the message is sent with `SendStreamingMessage` and the task followed on
//! its event stream (SSE) to its end; status messages are reported as they
//! arrive and artifact updates collected into the output. A stream that
//! breaks before the task ended is resubscribed a few times
//! (`SubscribeToTask`), then the task is polled.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::sse::{SseError, SseLimits, SseReader};
use super::wire::{Update, Wire};
use super::{StatusReporter, message_output, poll, task_outcome, task_output};
use crate::agent::client::{AgentTask, CallError, CallRequest, StreamSettings};

/// A broken stream is resubscribed this many times before polling takes over.
const RESUBSCRIBES: u32 = 2;

/// Runs the skill on a stream; `task_id` is set by the first event naming the task.
pub(super) async fn call(
    wire: Wire<'_>,
    request: &CallRequest<'_>,
    task_id: &OnceLock<String>,
    settings: StreamSettings,
) -> Result<Value, CallError> {
    let limits = SseLimits {
        max_event_bytes: wire.target.max_response_size,
        max_stream_bytes: wire.target.max_response_size.saturating_mul(4),
        max_events: settings.max_events,
        idle_timeout: settings.idle_timeout,
    };
    let mut response = wire.send_streaming(request).await?;
    let mut follower = Follower {
        wire,
        task_id,
        on_task: request.on_task,
        status: Value::Null,
        artifacts: Vec::new(),
        artifact_bytes: 0,
        reporter: StatusReporter::new(request.on_status),
    };
    let mut resubscribed = 0;
    let id = loop {
        let mut events = SseReader::new(response, limits);
        let broken = match follower.follow(&mut events).await {
            Followed::Ended(outcome) => return outcome,
            Followed::Broken(error) => error,
        };
        // A broken stream (and its slot of the agent's connection cap) is let
        // go before the task is subscribed to or polled.
        drop(events);
        let Some(id) = task_id.get() else {
            return Err(broken);
        };
        if resubscribed == RESUBSCRIBES {
            tracing::debug!(agent = wire.target.agent, task = %id, error = %broken, "the stream broke again, polling the task");
            break id;
        }
        resubscribed += 1;
        tracing::debug!(agent = wire.target.agent, task = %id, error = %broken, "the stream broke, subscribing to the task again");
        match wire.subscribe(id).await {
            Ok(again) => response = again,
            Err(error) => {
                // A task that ended cannot be subscribed to: polling reads its end.
                tracing::debug!(agent = wire.target.agent, task = %id, %error, "cannot subscribe to the task, polling it");
                break id;
            }
        }
    };
    poll(wire, id, &mut follower.reporter).await
}

enum Followed {
    /// The task ended (or the stream said something that ends the call).
    Ended(Result<Value, CallError>),
    /// The stream broke or ended before the task did: worth subscribing again.
    Broken(CallError),
}

/// What the stream told so far.
struct Follower<'a> {
    wire: Wire<'a>,
    task_id: &'a OnceLock<String>,
    on_task: Option<&'a (dyn Fn(&AgentTask) + Send + Sync)>,
    /// The task's latest status.
    status: Value,
    /// The task's artifacts, in the 1.0 shape, as their updates built them.
    artifacts: Vec<Value>,
    /// Bytes of artifact updates received: their sum is one answer.
    artifact_bytes: u64,
    reporter: StatusReporter<'a>,
}

impl Follower<'_> {
    fn accept(&self, id: &str) {
        super::accept_task(self.on_task, self.wire.interface, self.task_id, id);
    }

    async fn follow(&mut self, events: &mut SseReader<reqwest::Response>) -> Followed {
        let target = self.wire.target;
        loop {
            let event = match events.next().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return Followed::Broken(target.malformed(
                        "the stream ended before the task did",
                        "",
                        None,
                    ));
                }
                Err(SseError::Transport(source)) => {
                    return Followed::Broken(target.transport(source));
                }
                Err(SseError::Idle { timeout }) => {
                    return Followed::Broken(CallError::StreamIdle {
                        agent: target.agent.to_string(),
                        skill: target.skill.to_string(),
                        timeout,
                    });
                }
                Err(limit) => return Followed::Ended(Err(limit_error(self.wire, limit))),
            };
            let outcome = self
                .wire
                .stream_update(&event)
                .and_then(|update| self.apply(update, &event.data));
            match outcome {
                Ok(None) => {}
                Ok(Some(output)) => return Followed::Ended(Ok(output)),
                Err(error) => return Followed::Ended(Err(error)),
            }
        }
    }

    /// Takes one event in; `Some` once the task completed (or the answer is a message).
    fn apply(&mut self, update: Update, body: &str) -> Result<Option<Value>, CallError> {
        let target = self.wire.target;
        match update {
            Update::Message(mut message) => {
                if self.task_id.get().is_none() {
                    return message_output(target, &mut message, body).map(Some);
                }
                // A message in a task's stream is news from the agent, not the answer.
                self.reporter.report_message(&message);
                Ok(None)
            }
            Update::Task(mut task) => {
                let id = task["id"]
                    .as_str()
                    .ok_or_else(|| target.malformed("the task has no `id`", body, None))?;
                self.accept(id);
                // A task (first on every stream) has every artifact so far.
                self.artifacts = match task["artifacts"].take() {
                    Value::Array(artifacts) => artifacts,
                    _ => Vec::new(),
                };
                self.status = task["status"].take();
                self.status_changed(body)
            }
            Update::Status { task_id, status } => {
                if let Some(id) = task_id.filter(|id| !id.is_empty()) {
                    self.accept(&id);
                }
                self.status = status;
                self.status_changed(body)
            }
            Update::Artifact {
                task_id,
                artifact,
                append,
            } => {
                if let Some(id) = task_id.filter(|id| !id.is_empty()) {
                    self.accept(&id);
                }
                self.artifact_bytes += body.len() as u64;
                if self.artifact_bytes > target.max_response_size {
                    return Err(CallError::TooLarge {
                        agent: target.agent.to_string(),
                        skill: target.skill.to_string(),
                        limit: target.max_response_size,
                        size: Some(self.artifact_bytes),
                    });
                }
                self.add_artifact(artifact, append);
                Ok(None)
            }
        }
    }

    /// Reports the status message and tells whether the task ended.
    fn status_changed(&mut self, body: &str) -> Result<Option<Value>, CallError> {
        let target = self.wire.target;
        self.reporter.report(&self.status);
        let id = self.task_id.get().map_or("", String::as_str);
        let mut task = json!({"id": id, "status": self.status});
        match task_outcome(target, &mut task, body) {
            None => Ok(None),
            Some(Err(error)) => Err(error),
            Some(Ok(_)) => {
                task["artifacts"] = Value::Array(std::mem::take(&mut self.artifacts));
                task_output(target, &mut task, body).map(Some)
            }
        }
    }

    /// `append` adds the parts to the artifact with the same `artifactId`;
    /// otherwise the artifact replaces the one with its id, or is added.
    fn add_artifact(&mut self, mut artifact: Value, append: bool) {
        let id = artifact["artifactId"].clone();
        let same = self
            .artifacts
            .iter_mut()
            .find(|known| !id.is_null() && known["artifactId"] == id);
        match same {
            Some(known) if append => {
                if let (Some(parts), Some(more)) = (
                    known["parts"].as_array_mut(),
                    artifact["parts"].as_array_mut(),
                ) {
                    parts.append(more);
                }
            }
            Some(known) => *known = artifact,
            None => self.artifacts.push(artifact),
        }
    }
}

fn limit_error(wire: Wire<'_>, error: SseError) -> CallError {
    let target = wire.target;
    let (agent, skill) = (target.agent.to_string(), target.skill.to_string());
    match error {
        SseError::EventTooLarge { limit } => CallError::TooLarge {
            agent,
            skill,
            limit,
            size: None,
        },
        SseError::StreamTooLarge { limit } => CallError::StreamLimit {
            agent,
            skill,
            limit: format!(
                "{} (4 times max_response_size)",
                crate::workflow::model::size::display(limit)
            ),
            hint: "raise `max_response_size` on the step or on the agent in the agents file",
        },
        SseError::TooManyEvents { limit } => CallError::StreamLimit {
            agent,
            skill,
            limit: format!("{limit} events"),
            hint: "raise PALLET_STREAM_MAX_EVENTS",
        },
        SseError::Idle { timeout } => CallError::StreamIdle {
            agent,
            skill,
            timeout,
        },
        SseError::Transport(source) => target.transport(source),
    }
}
