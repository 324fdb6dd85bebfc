//! The one error of an agent call, what it means for retries and failover,
//! and the words its messages use.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("agent `{agent}` is unreachable for skill `{skill}`")]
    Unreachable {
        agent: String,
        skill: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("agent `{agent}` has no A2A interface pallet speaks, for skill `{skill}`")]
    NoInterface { agent: String, skill: String },
    #[error("request to agent `{agent}` for skill `{skill}` failed")]
    Transport {
        agent: String,
        skill: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("agent `{agent}` answered HTTP {status} to skill `{skill}` (body: {snippet})")]
    Http {
        agent: String,
        skill: String,
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        /// The start of the body, which often says why.
        snippet: String,
    },
    #[error(
        "agent `{agent}` refused skill `{skill}` with HTTP {status}: it asks for {asked}, pallet sent {sent}{}",
        challenge_suffix(.challenge)
    )]
    Unauthorized {
        agent: String,
        skill: String,
        status: reqwest::StatusCode,
        /// The schemes the card asks for, described.
        asked: String,
        /// What pallet sent, described (never the secret).
        sent: String,
        /// The start of the `WWW-Authenticate` header, when given.
        challenge: Option<String>,
    },
    #[error("skill `{skill}` on agent `{agent}` timed out after {}{}", humantime::format_duration(*.timeout), task_suffix(.task_id))]
    Timeout {
        agent: String,
        skill: String,
        timeout: Duration,
        task_id: Option<String>,
    },
    #[error("skill `{skill}` on agent `{agent}` was cancelled{}", task_suffix(.task_id))]
    Cancelled {
        agent: String,
        skill: String,
        task_id: Option<String>,
    },
    #[error("skill `{skill}` on agent `{agent}` {} (task {task_id}): {message}", state_words(.state))]
    TaskFailed {
        agent: String,
        skill: String,
        task_id: String,
        /// The A2A task state, e.g. `TASK_STATE_FAILED`.
        state: String,
        /// The agent's status message text.
        message: String,
    },
    #[error("agent `{agent}` answered skill `{skill}` with JSON-RPC error {code}: {message}")]
    JsonRpc {
        agent: String,
        skill: String,
        code: i64,
        message: String,
    },
    #[error(
        "agent `{agent}` answered skill `{skill}` with {} (the limit is {}; raise it with `max_response_size` on the step or on the agent in the agents file)",
        size_words(*.size),
        crate::workflow::model::size::display(*.limit)
    )]
    TooLarge {
        agent: String,
        skill: String,
        limit: u64,
        /// The size the agent announced, when it did.
        size: Option<u64>,
    },
    #[error(
        "agent `{agent}` answered skill `{skill}` with about {values} JSON values (the limit is {limit}, one per {} bytes of max_response_size; raise `max_response_size` on the step or on the agent in the agents file)",
        crate::agent::answer::BYTES_PER_JSON_VALUE
    )]
    TooManyValues {
        agent: String,
        skill: String,
        values: u64,
        limit: u64,
    },
    #[error(
        "agent `{agent}` answered skill `{skill}` with the unknown task state `{state}` (task {task_id}, cancellation sent to the agent)"
    )]
    UnknownTaskState {
        agent: String,
        skill: String,
        task_id: String,
        state: String,
    },
    #[error(
        "agent `{agent}` answered {what} for skill `{skill}` with content type `{content_type}`, not an event stream (text/event-stream), although its card declares streaming (body: {snippet})"
    )]
    NotAnEventStream {
        agent: String,
        skill: String,
        what: String,
        content_type: String,
        snippet: String,
    },
    #[error("agent `{agent}` ended the stream of skill `{skill}` with error {code}: {message}")]
    ErrorEvent {
        agent: String,
        skill: String,
        code: i64,
        message: String,
    },
    #[error("agent `{agent}` sent more than {limit} on the stream of skill `{skill}`: {hint}")]
    StreamLimit {
        agent: String,
        skill: String,
        limit: String,
        hint: &'static str,
    },
    #[error(
        "agent `{agent}` sent nothing on the stream of skill `{skill}` for {} before naming its task (raise PALLET_STREAM_IDLE_TIMEOUT if the agent is that slow to start)",
        humantime::format_duration(*.timeout)
    )]
    StreamIdle {
        agent: String,
        skill: String,
        timeout: Duration,
    },
    #[error(
        "agent `{agent}` redirected skill `{skill}` to {location}, which pallet does not follow ({why})"
    )]
    Redirected {
        agent: String,
        skill: String,
        location: String,
        why: &'static str,
    },
    #[error(
        "agent `{agent}` sent a malformed response to skill `{skill}`: {what} (body: {snippet})"
    )]
    Malformed {
        agent: String,
        skill: String,
        what: String,
        snippet: String,
        #[source]
        source: Option<serde_json::Error>,
    },
}

/// How a task that did not complete ended, for messages.
fn state_words(state: &str) -> String {
    match state {
        "TASK_STATE_FAILED" => "failed".to_string(),
        "TASK_STATE_REJECTED" => "was rejected".to_string(),
        "TASK_STATE_CANCELED" => "was cancelled by the agent".to_string(),
        "TASK_STATE_INPUT_REQUIRED" => "needs input".to_string(),
        "TASK_STATE_AUTH_REQUIRED" => "needs authentication".to_string(),
        other => format!("ended in state {other}"),
    }
}

fn size_words(size: Option<u64>) -> String {
    match size {
        Some(size) => format!(
            "{} ({size} bytes)",
            crate::workflow::model::size::display(size)
        ),
        None => "a larger body".to_string(),
    }
}

fn challenge_suffix(challenge: &Option<String>) -> String {
    match challenge {
        Some(challenge) => {
            format!(" (WWW-Authenticate: {challenge}); see docs/agents.md#authentication")
        }
        None => "; see docs/agents.md#authentication".to_string(),
    }
}

fn task_suffix(task_id: &Option<String>) -> String {
    match task_id {
        Some(id) => format!(" (task {id}, cancellation sent to the agent)"),
        None => String::new(),
    }
}

impl CallError {
    /// What went wrong, in one word, for counting (`pallet_agent_call_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Unreachable { .. }
            | CallError::Transport { .. }
            | CallError::Redirected { .. } => "connection",
            CallError::NoInterface { .. } => "no_interface",
            CallError::Http { .. } => "http",
            CallError::Unauthorized { .. } => "unauthorized",
            CallError::Timeout { .. } | CallError::StreamIdle { .. } => "timeout",
            CallError::Cancelled { .. } => "cancelled",
            CallError::TaskFailed { .. }
            | CallError::JsonRpc { .. }
            | CallError::ErrorEvent { .. } => "agent_reported",
            CallError::TooLarge { .. }
            | CallError::TooManyValues { .. }
            | CallError::StreamLimit { .. } => "too_large",
            CallError::UnknownTaskState { .. }
            | CallError::NotAnEventStream { .. }
            | CallError::Malformed { .. } => "invalid_answer",
        }
    }

    /// Connection refused/reset before the agent accepted the call: try another
    /// agent. Also when an A2A agent stops answering while its task runs, since
    /// that agent is gone too.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, CallError::Unreachable { .. })
    }

    /// Worth retrying: unreachable, HTTP 5xx/429, timeout.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable { .. }
            | CallError::Transport { .. }
            | CallError::StreamIdle { .. }
            | CallError::Timeout { .. } => true,
            CallError::Http { status, .. } => {
                status.is_server_error() || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            CallError::Cancelled { .. }
            | CallError::TaskFailed { .. }
            | CallError::JsonRpc { .. }
            | CallError::TooLarge { .. }
            | CallError::TooManyValues { .. }
            | CallError::UnknownTaskState { .. }
            | CallError::Redirected { .. }
            | CallError::Unauthorized { .. }
            | CallError::NotAnEventStream { .. }
            | CallError::ErrorEvent { .. }
            | CallError::StreamLimit { .. }
            | CallError::NoInterface { .. }
            | CallError::Malformed { .. } => false,
        }
    }

    /// Delay the agent asked for (HTTP 429/503 Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The agent's task, when the agent had accepted the call.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            CallError::Timeout { task_id, .. } | CallError::Cancelled { task_id, .. } => {
                task_id.as_deref()
            }
            CallError::TaskFailed { task_id, .. } | CallError::UnknownTaskState { task_id, .. } => {
                Some(task_id)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_outcomes() {
        let http = |status: u16| CallError::Http {
            agent: "a".into(),
            skill: "s".into(),
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            snippet: String::new(),
        };
        let cases = [
            (http(503), true),
            (http(500), true),
            (http(429), true),
            (http(404), false),
            (http(400), false),
            (
                CallError::Timeout {
                    agent: "a".into(),
                    skill: "s".into(),
                    timeout: Duration::from_secs(1),
                    task_id: None,
                },
                true,
            ),
            (
                CallError::Cancelled {
                    agent: "a".into(),
                    skill: "s".into(),
                    task_id: None,
                },
                false,
            ),
            (
                CallError::Unauthorized {
                    agent: "a".into(),
                    skill: "s".into(),
                    status: reqwest::StatusCode::UNAUTHORIZED,
                    asked: "HTTP bearer (scheme `bearer`)".into(),
                    sent: "no credential".into(),
                    challenge: None,
                },
                false,
            ),
            (
                CallError::JsonRpc {
                    agent: "a".into(),
                    skill: "s".into(),
                    code: -32000,
                    message: "m".into(),
                },
                false,
            ),
        ];
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error}");
            assert!(!error.is_unreachable(), "{error}");
        }
    }

    #[test]
    fn messages_name_agent_skill_and_task() {
        let failed = CallError::TaskFailed {
            agent: "coder".into(),
            skill: "plan".into(),
            task_id: "t-2".into(),
            state: "TASK_STATE_INPUT_REQUIRED".into(),
            message: "which language?".into(),
        };
        assert_eq!(
            failed.to_string(),
            "skill `plan` on agent `coder` needs input (task t-2): which language?"
        );
        let timeout = CallError::Timeout {
            agent: "coder".into(),
            skill: "generate_code".into(),
            timeout: Duration::from_millis(1500),
            task_id: Some("t-1".into()),
        };
        assert_eq!(
            timeout.to_string(),
            "skill `generate_code` on agent `coder` timed out after 1s 500ms (task t-1, cancellation sent to the agent)"
        );
        let cancelled = CallError::Cancelled {
            agent: "coder".into(),
            skill: "plan".into(),
            task_id: None,
        };
        assert_eq!(
            cancelled.to_string(),
            "skill `plan` on agent `coder` was cancelled"
        );
    }
}
