//! One exchange with an agent ([`Target`]): sending within the redirect and
//! authentication rules, reading the answer within its limits, and turning
//! every failure into a [`CallError`] that names the agent and the skill.

use std::time::Duration;

use serde_json::Value;

use super::CallError;
use super::http::redacted;
use crate::agent::answer::{BodyError, drain, json_values, max_json_values, read_limited};
use crate::agent::auth::Auth;

/// How much of an error answer (HTTP 4xx/5xx) is read: enough for its message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Who is being called, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub agent: &'a str,
    pub skill: &'a str,
    /// The most bytes one answer's body may have.
    pub max_response_size: u64,
    /// What the card asks for and the header to send, if any.
    pub auth: Option<&'a Auth>,
    /// The W3C `traceparent` sent with each request, if any.
    pub traceparent: Option<&'a str>,
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
    /// It waits first for a slot of the agent's connection cap
    /// ([`super::limit`]), which the answer holds until it is dropped.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let (client, request) = request.build_split();
        let mut request = request.map_err(|source| self.transport(source))?;
        let authentication = self.auth.and_then(|auth| auth.authentication.as_ref());
        let sent_credential =
            authentication.is_some_and(|authentication| authentication.apply(&mut request));
        if let Some(value) = self
            .traceparent
            .and_then(|value| reqwest::header::HeaderValue::from_str(value).ok())
        {
            request.headers_mut().insert("traceparent", value);
        }
        let slot = super::limit::slot(request.url()).await;
        let mut response = client
            .execute(request)
            .await
            .map_err(|source| self.transport(source))?;
        response.extensions_mut().insert(slot);
        let status = response.status();
        let refused = if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
        {
            self.unauthorized(&response, sent_credential)
        } else if response.status().is_redirection() {
            self.redirected(&response)
        } else {
            return Ok(response);
        };
        // Read to its end, the connection serves the next request.
        drain(response, ERROR_BODY_LIMIT).await;
        Err(refused)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
