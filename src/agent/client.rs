//! One client over two protocols, chosen by the card's endpoint kind.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::card::AgentCard;

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
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("todo")]
    Todo,
}

impl CallError {
    /// Connection refused/reset before the agent accepted the call: try another agent.
    pub fn is_unreachable(&self) -> bool {
        todo!()
    }
    /// Worth retrying: unreachable, HTTP 5xx/429, timeout.
    pub fn is_transient(&self) -> bool {
        todo!()
    }
    /// Delay the agent asked for (HTTP 429/503 Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        todo!()
    }
}

#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
}

impl AgentClient {
    pub fn new() -> AgentClient {
        todo!()
    }

    /// Call `request.skill` on `agent` and return its output.
    pub async fn call(&self, agent: &AgentCard, request: CallRequest<'_>) -> Result<Value, CallError> {
        let _ = (agent, request, &self.http);
        todo!()
    }
}
