//! One client over two protocols, chosen by the card's endpoint kind. The
//! client owns the call's deadline and cancellation, so both protocols stop
//! the same way.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::answer::{BodyError, json_values, max_json_values, read_limited};
use super::auth::Auth;
use super::card::{AgentCard, Endpoint, Interface};
use super::{a2a, legacy};

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

/// How much of an error answer (HTTP 4xx/5xx) is read: enough for its message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// How long connecting to an agent may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
        super::answer::BYTES_PER_JSON_VALUE
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

/// Who is being called, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub agent: &'a str,
    pub skill: &'a str,
    /// The most bytes one answer's body may have.
    pub max_response_size: u64,
    /// What the card asks for and the header to send, if any.
    pub auth: Option<&'a Auth>,
}

impl Target<'_> {
    /// Sends one JSON-RPC request and returns the reply's `result` (if any) and
    /// the raw body for error snippets; a JSON-RPC `error` is an error.
    pub async fn json_rpc_exchange(
        &self,
        request: reqwest::RequestBuilder,
        body: &Value,
        method: &str,
    ) -> Result<(Option<Value>, String), CallError> {
        let response = self.send(request.json(body)).await?;
        if !response.status().is_success() {
            return Err(self.http(response).await);
        }
        let (mut reply, text) = self.read_json(response, method).await?;
        if let Some(error) = reply.get("error").filter(|error| !error.is_null()) {
            return Err(self.json_rpc(error));
        }
        Ok((reply.get_mut("result").map(Value::take), text))
    }

    /// Sends one HTTP+JSON request and returns its JSON answer and the raw
    /// body; an answer that is not 2xx is an error with the start of its body.
    pub async fn rest_exchange(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(Value, String), CallError> {
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(self.http_status(response).await);
        }
        self.read_json(response, what).await
    }

    /// The body within the answer limits, parsed.
    async fn read_json(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<(Value, String), CallError> {
        let text = self.read_body(response).await?;
        self.check_json_values(&text)?;
        let reply: Value = serde_json::from_str(&text).map_err(|source| {
            self.malformed(format!("the {what} reply is not JSON"), &text, Some(source))
        })?;
        Ok((reply, text))
    }

    /// Sends `request`; a redirect is followed only to the same origin and
    /// only when it keeps the method and body (307, 308), see [`redirect_policy`].
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let (client, request) = request.build_split();
        let mut request = request.map_err(|source| self.transport(source))?;
        let authentication = self.auth.and_then(|auth| auth.authentication.as_ref());
        let sent_credential =
            authentication.is_some_and(|authentication| authentication.apply(&mut request));
        let response = client
            .execute(request)
            .await
            .map_err(|source| self.transport(source))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(self.unauthorized(&response, sent_credential));
        }
        if response.status().is_redirection() {
            return Err(self.redirected(&response));
        }
        Ok(response)
    }

    /// A 401 or 403, named with what the card asks for and what was sent.
    fn unauthorized(&self, response: &reqwest::Response, sent_credential: bool) -> CallError {
        let asked = self.auth.and_then(|auth| auth.security.asked());
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .map(snippet);
        CallError::Unauthorized {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            status: response.status(),
            asked: asked.unwrap_or_else(|| "no scheme in its card".to_string()),
            sent: match (
                sent_credential,
                self.auth.and_then(|auth| auth.authentication.as_ref()),
            ) {
                (true, Some(authentication)) => {
                    format!("the credential for scheme `{}`", authentication.scheme)
                }
                (false, Some(_)) => {
                    "no credential (the interface is on another origin than the agent's)"
                        .to_string()
                }
                (_, None) => "no credential".to_string(),
            },
            challenge,
        }
    }

    fn redirected(&self, response: &reqwest::Response) -> CallError {
        let header = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok());
        let to = header.and_then(|location| response.url().join(location).ok());
        let (location, why) = match &to {
            None => (
                header.unwrap_or("(no Location header)").to_string(),
                "the agent URL may be wrong",
            ),
            Some(to) if to.origin() == response.url().origin() => (
                redacted(to),
                "only a 307 or 308 keeps the request; the agent URL may be wrong",
            ),
            Some(to) => (
                redacted(to),
                "another origin would receive the step's input; configure the agent at its real URL",
            ),
        };
        CallError::Redirected {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            location,
            why,
        }
    }

    /// The body as text, never holding more than the limit: a too long
    /// `Content-Length` fails before reading, and the count stops the read.
    pub async fn read_body(&self, response: reqwest::Response) -> Result<String, CallError> {
        match read_limited(response, self.max_response_size).await {
            Ok(bytes) => Ok(String::from_utf8(bytes)
                .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())),
            Err(BodyError::TooLarge { size }) => Err(CallError::TooLarge {
                agent: self.agent.to_string(),
                skill: self.skill.to_string(),
                limit: self.max_response_size,
                size,
            }),
            Err(BodyError::Transport(source)) => Err(self.transport(source)),
        }
    }

    /// Refuses JSON whose parsed form would cost far more memory than its text.
    pub fn check_json_values(&self, text: &str) -> Result<(), CallError> {
        let (values, limit) = (json_values(text), max_json_values(self.max_response_size));
        if values <= limit {
            return Ok(());
        }
        Err(CallError::TooManyValues {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            values,
            limit,
        })
    }

    /// A reqwest failure: unreachable when the connection never opened.
    pub fn transport(&self, source: reqwest::Error) -> CallError {
        let (agent, skill) = (self.agent.to_string(), self.skill.to_string());
        if source.is_connect() || refused_or_reset(&source) {
            CallError::Unreachable {
                agent,
                skill,
                source,
            }
        } else {
            CallError::Transport {
                agent,
                skill,
                source,
            }
        }
    }

    /// An answer that is not 2xx. A client error whose body is a JSON-RPC
    /// error is reported as that error, since it says more than the status.
    pub async fn http(&self, response: reqwest::Response) -> CallError {
        let (status, retry_after, body) = error_answer(response).await;
        if status.is_client_error()
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
            && let Ok(reply) = serde_json::from_str::<Value>(&body)
            && let Some(error) = reply.get("error").filter(|error| error.is_object())
        {
            return self.json_rpc(error);
        }
        self.http_error(status, retry_after, &body)
    }

    /// An answer that is not 2xx, named by its status and the start of its body.
    pub async fn http_status(&self, response: reqwest::Response) -> CallError {
        let (status, retry_after, body) = error_answer(response).await;
        self.http_error(status, retry_after, &body)
    }

    fn http_error(
        &self,
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> CallError {
        CallError::Http {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            status,
            retry_after,
            snippet: snippet(body),
        }
    }

    pub fn malformed(
        &self,
        what: impl Into<String>,
        body: &str,
        source: Option<serde_json::Error>,
    ) -> CallError {
        CallError::Malformed {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            what: what.into(),
            snippet: snippet(body),
            source,
        }
    }

    /// A stream answered with something else than events.
    pub fn not_an_event_stream(&self, what: &str, content_type: &str, body: &str) -> CallError {
        CallError::NotAnEventStream {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            what: what.to_string(),
            content_type: content_type.to_string(),
            snippet: snippet(body),
        }
    }

    /// An error sent on a stream: a JSON-RPC error, or an HTTP+JSON error
    /// body (`{code, message}`).
    pub fn error_event(&self, json_rpc: bool, error: &Value) -> CallError {
        match self.json_rpc(error) {
            CallError::JsonRpc {
                agent,
                skill,
                code,
                message,
            } if !json_rpc => CallError::ErrorEvent {
                agent,
                skill,
                code,
                message,
            },
            other => other,
        }
    }

    pub fn json_rpc(&self, error: &Value) -> CallError {
        CallError::JsonRpc {
            agent: self.agent.to_string(),
            skill: self.skill.to_string(),
            code: error["code"].as_i64().unwrap_or_default(),
            message: match &error["message"] {
                Value::String(message) => message.clone(),
                Value::Null => error.to_string(),
                other => other.to_string(),
            },
        }
    }
}

/// The status, the delay asked for and the start of an error answer's body.
async fn error_answer(
    response: reqwest::Response,
) -> (reqwest::StatusCode, Option<Duration>, String) {
    let status = response.status();
    let retry_after = retry_after(status, response.headers());
    let body = match read_limited(response, ERROR_BODY_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    (status, retry_after, body)
}

/// `url` without its user name and password, for messages and logs.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Agent calls follow a redirect only to the same scheme, host and port, and
/// only a 307 or 308 (which keep the method and body); reqwest turns a
/// 301/302/303 of a POST into a GET, which is never what an agent call means.
/// A redirect not followed comes back as the answer and fails the call with
/// the Location named. Cards have their own rule ([`card_http_client`]).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        let keeps_request = matches!(attempt.status().as_u16(), 307 | 308);
        if same_origin && keeps_request && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Redirects followed at most, for agent calls and card fetches alike.
const MAX_REDIRECTS: usize = 5;

/// Whether the connection was refused or dropped at the socket level, which
/// reqwest does not always report as a connect error.
fn refused_or_reset(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
            );
        }
        cause = current.source();
    }
    false
}

/// The delay asked for by a 429 or 503 answer, in whole seconds (the form
/// agents use; an HTTP date is ignored).
fn retry_after(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Option<Duration> {
    let asks_to_wait = status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
    let value = headers
        .get(reqwest::header::RETRY_AFTER)
        .filter(|_| asks_to_wait)?;
    let seconds = value.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The start of a response body, on one line, for error messages.
fn snippet(body: &str) -> String {
    const LIMIT: usize = 120;
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The HTTP client of agent calls: pooled connections, short connect
/// timeout. Shared (a clone is a handle) so that all calls reuse the same
/// connections. Its TLS settings are [`crate::tls::config`]: the system's root
/// certificates are loaded at the first https connection, not here.
pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(redirect_policy()))
        .clone()
}

/// The client of card fetches: a card GET has no body, no idempotency key and
/// no credentials of pallet's, so it follows up to [`MAX_REDIRECTS`] redirects
/// of any kind, to any origin (cards are often moved with a 301 or 302).
/// reqwest drops `Authorization`, `Cookie` and `Proxy-Authorization` when a
/// redirect changes the scheme, host or port; no `Referer` is sent either.
/// Its own pool: reqwest has no redirect policy per request.
pub(crate) fn card_http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(reqwest::redirect::Policy::limited(MAX_REDIRECTS)))
        .clone()
}

fn build_client(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(redirects)
        .referer(false)
        .tls_backend_preconfigured(crate::tls::config())
        .build()
        .expect("the HTTP client configuration is static and valid")
}

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
        let work = async {
            match &agent.endpoint {
                Endpoint::A2a { interfaces } => {
                    let streaming = agent.streaming.then_some(self.streams);
                    self.call_a2a(interfaces, target, &request, &task_ids, streaming)
                        .await
                }
                Endpoint::Legacy { url } => legacy::call(&self.http, url, target, &request).await,
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
        self.bounded(target, &request, interfaces, &task_ids, work)
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
            a2a::cancel_task(&self.http, interface, target, id).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_client_builds_with_the_lazy_tls_configuration() {
        let config = crate::tls::config();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let _client = http_client();
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        let cases = [
            ("short", "short".to_string()),
            ("two\nlines", "two lines".to_string()),
            (&"x".repeat(500), format!("{}…", "x".repeat(120))),
        ];
        for (body, expected) in cases {
            assert_eq!(snippet(body), expected);
        }
    }

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
    fn retry_after_only_on_429_and_503_in_seconds() {
        let cases = [
            (429, Some("7"), Some(Duration::from_secs(7))),
            (503, Some(" 2 "), Some(Duration::from_secs(2))),
            (503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            (503, None, None),
            (500, Some("7"), None),
        ];
        for (status, header, expected) in cases {
            let mut headers = reqwest::header::HeaderMap::new();
            if let Some(value) = header {
                headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            }
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            assert_eq!(
                retry_after(status, &headers),
                expected,
                "{status} {header:?}"
            );
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
