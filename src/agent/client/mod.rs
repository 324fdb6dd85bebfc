//! One client over two protocols, chosen by the card's endpoint kind. The
//! client owns the call's deadline and cancellation, so both protocols stop
//! the same way.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::card::{AgentCard, Endpoint, Interface};
use super::{a2a, legacy};

mod error;
mod http;
mod limit;
mod target;

pub use error::CallError;
pub(crate) use http::{card_http_client, http_client, redacted};
pub use limit::{DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_VARIABLE, max_connections};
pub(crate) use target::Target;

/// One call of one skill.
pub struct CallRequest<'a> {
    pub skill: &'a str,
    pub input: &'a Map<String, Value>,
    /// The call gives up (and cancels the agent's task) after this long.
    pub timeout: Duration,
    /// Fires on workflow timeout, fail-fast or Ctrl-C; the agent's task is cancelled.
    pub cancel: &'a CancellationToken,
    /// Stable per step attempt so agents can de-duplicate.
    pub idempotency_key: &'a str,
    /// The step's cap on one answer's body; else the agent's, else [`DEFAULT_MAX_RESPONSE_SIZE`].
    pub max_response_size: Option<u64>,
    /// Told once, at once, when an A2A agent accepted the call as a task that
    /// is still running (a durable run stores it, so that a resume after a
    /// crash can ask the agent for that task instead of sending the call again).
    /// A task that has ended in the agent's first answer is not told (on a
    /// stream, the task is told at its first event).
    pub on_task: Option<&'a (dyn Fn(&AgentTask) + Send + Sync)>,
    /// Called with the text of each new status message of the agent's task,
    /// as it arrives (streamed, or seen while polling).
    pub on_status: Option<&'a (dyn Fn(&str) + Send + Sync)>,
    /// A W3C `traceparent` header value sent with every request of the call,
    /// so an agent's traces join the run's.
    pub traceparent: Option<&'a str>,
}

/// An agent's A2A task and the interface that accepted it: what is needed to
/// find the task again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTask {
    pub id: String,
    pub interface: Interface,
}

/// The bounds of the event streams of streaming agents (one event is also
/// bounded by the answer limit, a stream by four times it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// The most events one stream may carry.
    pub max_events: u64,
    /// The longest silence between two events; then the task is subscribed
    /// to again (or polled), or the call fails if the task is not known yet.
    pub idle_timeout: Duration,
}

/// Environment variables overriding [`StreamSettings::default`].
pub const STREAM_MAX_EVENTS_VARIABLE: &str = "PALLET_STREAM_MAX_EVENTS";
pub const STREAM_IDLE_TIMEOUT_VARIABLE: &str = "PALLET_STREAM_IDLE_TIMEOUT";

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            max_events: 10_000,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl StreamSettings {
    /// The defaults with the environment's overrides; a value that does not
    /// parse is named in a warning and the default is kept.
    pub fn from_env() -> StreamSettings {
        let mut settings = StreamSettings::default();
        if let Ok(text) = std::env::var(STREAM_MAX_EVENTS_VARIABLE) {
            match text.trim().parse::<u64>() {
                Ok(events) if events > 0 => settings.max_events = events,
                _ => tracing::warn!(
                    "{STREAM_MAX_EVENTS_VARIABLE}={text:?} is not a positive number of events: using {}",
                    settings.max_events
                ),
            }
        }
        if let Ok(text) = std::env::var(STREAM_IDLE_TIMEOUT_VARIABLE) {
            match humantime::parse_duration(text.trim()) {
                Ok(timeout) if !timeout.is_zero() => settings.idle_timeout = timeout,
                _ => tracing::warn!(
                    "{STREAM_IDLE_TIMEOUT_VARIABLE}={text:?} is not a duration such as 30s: using {}",
                    humantime::format_duration(settings.idle_timeout)
                ),
            }
        }
        settings
    }
}

/// The largest agent answer (one HTTP body) read by default: a bigger one
/// fails the step rather than the process.
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    streams: StreamSettings,
}

impl Default for AgentClient {
    fn default() -> Self {
        AgentClient::new()
    }
}

impl AgentClient {
    /// A client with the stream bounds of the environment ([`StreamSettings::from_env`]).
    pub fn new() -> AgentClient {
        AgentClient::with_stream_settings(StreamSettings::from_env())
    }

    pub fn with_stream_settings(streams: StreamSettings) -> AgentClient {
        AgentClient {
            http: http_client(),
            streams,
        }
    }

    /// Call `request.skill` on `agent` and return its output. The call ends at
    /// `request.timeout` or when `request.cancel` fires; an A2A task that was
    /// already accepted is then cancelled on the agent.
    pub async fn call(
        &self,
        agent: &AgentCard,
        request: CallRequest<'_>,
    ) -> Result<Value, CallError> {
        let target = target(agent, &request);
        // One slot per interface, set as soon as that interface accepted the
        // task: the work below is dropped on timeout, the slots are not.
        let interfaces: &[Interface] = match &agent.endpoint {
            Endpoint::A2a { interfaces } => interfaces,
            Endpoint::Legacy { .. } => &[],
        };
        let task_ids: Vec<OnceLock<String>> = interfaces.iter().map(|_| OnceLock::new()).collect();
        // Each protocol's future boxed: every step in flight holds this one,
        // which would otherwise take the room of the larger (A2A's, 3.6 KB)
        // whatever the agent speaks, and twice (a local and inside `bounded`).
        let work = async {
            match &agent.endpoint {
                Endpoint::A2a { interfaces } => {
                    let streaming = agent.streaming.then_some(self.streams);
                    Box::pin(self.call_a2a(interfaces, target, &request, &task_ids, streaming))
                        .await
                }
                Endpoint::Legacy { url } => {
                    Box::pin(legacy::call(&self.http, url, target, &request)).await
                }
            }
        };
        self.bounded(target, &request, interfaces, &task_ids, work)
            .await
    }

    /// Continue the A2A task `task` that an earlier process sent to `agent`
    /// for `request.skill` (and died waiting for): ask the agent for it at the
    /// interface that accepted it, and await it as [`AgentClient::call`] does,
    /// under `request.timeout` counted from now. `Ok(None)` when the agent no
    /// longer knows the task: the caller sends the call again.
    pub async fn reattach(
        &self,
        agent: &AgentCard,
        task: &AgentTask,
        request: CallRequest<'_>,
    ) -> Result<Option<Value>, CallError> {
        let target = target(agent, &request);
        let interfaces = std::slice::from_ref(&task.interface);
        let task_ids = [OnceLock::new()];
        let work = a2a::reattach(
            &self.http,
            &task.interface,
            target,
            &request,
            &task.id,
            &task_ids[0],
        );
        // Boxed, as in `call`.
        self.bounded(target, &request, interfaces, &task_ids, Box::pin(work))
            .await
    }

    /// Runs `work` until it ends, `request.timeout` passes or `request.cancel`
    /// fires; in the last two cases the task an interface accepted (its slot
    /// in `task_ids` is set) is cancelled on the agent.
    async fn bounded<T>(
        &self,
        target: Target<'_>,
        request: &CallRequest<'_>,
        interfaces: &[Interface],
        task_ids: &[OnceLock<String>],
        work: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let ended = tokio::select! {
            biased;
            _ = request.cancel.cancelled() => Ended::Cancelled,
            _ = tokio::time::sleep(request.timeout) => Ended::TimedOut,
            result = work => Ended::Done(result),
        };
        let accepted = interfaces
            .iter()
            .zip(task_ids)
            .find_map(|(interface, task_id)| Some((interface, task_id.get()?.clone())));
        let gave_up = !matches!(ended, Ended::Done(_));
        if gave_up && let Some((interface, id)) = &accepted {
            // Boxed: only a call given up needs its room (2.5 KB).
            Box::pin(a2a::cancel_task(&self.http, interface, target, id)).await;
        }
        let task_id = accepted.map(|(_, id)| id);
        let (agent, skill) = (target.agent.to_string(), request.skill.to_string());
        match ended {
            Ended::Done(result) => result,
            Ended::TimedOut => Err(CallError::Timeout {
                agent,
                skill,
                timeout: request.timeout,
                task_id,
            }),
            Ended::Cancelled => Err(CallError::Cancelled {
                agent,
                skill,
                task_id,
            }),
        }
    }
}

/// Who a call goes to, for messages, with the answer limit that applies.
fn target<'a>(agent: &'a AgentCard, request: &CallRequest<'a>) -> Target<'a> {
    Target {
        agent: &agent.name,
        skill: request.skill,
        max_response_size: request
            .max_response_size
            .or(agent.max_response_size)
            .unwrap_or(DEFAULT_MAX_RESPONSE_SIZE),
        auth: Some(&agent.auth),
        traceparent: request.traceparent,
    }
}

impl AgentClient {
    /// Calls the interfaces in the card's order: one that refuses the
    /// connection before accepting the task passes the call to the next.
    async fn call_a2a(
        &self,
        interfaces: &[Interface],
        target: Target<'_>,
        request: &CallRequest<'_>,
        task_ids: &[OnceLock<String>],
        streaming: Option<StreamSettings>,
    ) -> Result<Value, CallError> {
        let mut remaining = interfaces.iter().zip(task_ids).peekable();
        while let Some((interface, task_id)) = remaining.next() {
            let outcome =
                a2a::call(&self.http, interface, target, request, task_id, streaming).await;
            let next_one = task_id.get().is_none()
                && remaining.peek().is_some()
                && outcome.as_ref().is_err_and(CallError::is_unreachable);
            if !next_one {
                return outcome;
            }
            tracing::debug!(
                agent = target.agent,
                interface = %interface.describe(),
                "interface does not answer, trying the next one"
            );
        }
        Err(CallError::NoInterface {
            agent: target.agent.to_string(),
            skill: target.skill.to_string(),
        })
    }
}

enum Ended<T> {
    Done(Result<T, CallError>),
    TimedOut,
    Cancelled,
}
