//! What differs between A2A versions and bindings: the requests' shapes and
//! where they go, and the answers read back into one shape, the 1.0 JSON
//! objects (`{task}` or `{message}`, parts `{data}` / `{text}`), so the task
//! lifecycle in the parent module is written once.
//!
//! | kind              | send                 | get task               | cancel                        |
//! |-------------------|----------------------|------------------------|-------------------------------|
//! | 1.0 JSON-RPC      | `SendMessage`        | `GetTask`              | `CancelTask`                  |
//! | 1.0 HTTP+JSON     | `POST /message:send` | `GET /tasks/{id}`      | `POST /tasks/{id}:cancel`     |
//! | 0.3 JSON-RPC      | `message/send`       | `tasks/get`            | `tasks/cancel`                |
//! | 0.3 HTTP+JSON     | `POST /v1/message:send` | `GET /v1/tasks/{id}` | `POST /v1/tasks/{id}:cancel` |
//!
//! 0.3's HTTP+JSON binding writes the protobuf JSON of its time: message
//! parts under `content`, data parts as `{data: {data: ..}}`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::agent::card::{Binding, Interface, Version};
use crate::agent::client::{CallError, CallRequest, Target};

mod answers;

pub(super) use answers::{Sent, Update};

/// 1.0 requests name the version; without it a 1.0 agent assumes 0.3.
const VERSION_HEADER: (&str, &str) = ("A2A-Version", "1.0");
/// The media type of 1.0's HTTP+JSON binding; 0.3 used plain JSON.
const A2A_JSON: &str = "application/a2a+json";
/// The media type of streams (Server-Sent Events), on every kind.
const EVENT_STREAM: &str = "text/event-stream";

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// One interface of one agent, for one call.
#[derive(Clone, Copy)]
pub(super) struct Wire<'a> {
    pub http: &'a reqwest::Client,
    pub interface: &'a Interface,
    pub target: Target<'a>,
}

impl Wire<'_> {
    /// Sends the skill's input as one data part with `metadata.skillId` (on
    /// the message and the request) and asks for the task at once rather than
    /// its end, so that a long skill is polled and can be cancelled.
    pub async fn send_message(
        &self,
        request: &CallRequest<'_>,
    ) -> Result<(Sent, String), CallError> {
        let params = self.message_params(request);
        let (mut result, body) = match self.interface.binding {
            Binding::JsonRpc => self.rpc(Method::Send, params).await?,
            Binding::HttpJson => {
                let url = self.rest_url(&["message:send"]);
                self.rest(self.http.post(url), Some(&params), "message:send")
                    .await?
            }
        };
        let sent = match self.interface.version {
            Version::V0_3 => self.sent_03(&mut result, &body)?,
            Version::V1_0 => self.sent(&mut result, &body)?,
        };
        Ok((sent, body))
    }

    /// The parameters of a send, streaming or not: one data part with
    /// `metadata.skillId`, the task asked for at once (streams ignore it).
    fn message_params(&self, request: &CallRequest<'_>) -> Value {
        let metadata = json!({"skillId": request.skill, "idempotencyKey": request.idempotency_key});
        let message_id = uuid::Uuid::new_v4().to_string();
        let (message, configuration) = match (self.interface.version, self.interface.binding) {
            (Version::V1_0, _) => (
                json!({"messageId": message_id, "role": "ROLE_USER",
                       "parts": [{"data": request.input, "mediaType": "application/json"}],
                       "metadata": metadata}),
                json!({"returnImmediately": true, "historyLength": 0}),
            ),
            (Version::V0_3, Binding::JsonRpc) => (
                json!({"kind": "message", "messageId": message_id, "role": "user",
                       "parts": [{"kind": "data", "data": request.input}],
                       "metadata": metadata}),
                json!({"blocking": false, "historyLength": 0}),
            ),
            (Version::V0_3, Binding::HttpJson) => (
                json!({"messageId": message_id, "role": "ROLE_USER",
                       "content": [{"data": {"data": request.input}}],
                       "metadata": metadata}),
                json!({"blocking": false, "historyLength": 0}),
            ),
        };
        json!({
            "message": message,
            "configuration": configuration,
            "metadata": {"skillId": request.skill},
        })
    }

    /// Sends the message as [`Wire::send_message`] does, asking for a stream
    /// of the task's events (SSE) instead of the task.
    pub async fn send_streaming(
        &self,
        request: &CallRequest<'_>,
    ) -> Result<reqwest::Response, CallError> {
        let params = self.message_params(request);
        match self.interface.binding {
            Binding::JsonRpc => self.rpc_stream(Method::Stream, params).await,
            Binding::HttpJson => {
                let url = self.rest_url(&["message:stream"]);
                let request = self.rest_request(self.http.post(url), Some(&params));
                self.open_stream(request, "message:stream").await
            }
        }
    }

    /// A new stream of the events of the task `id`, starting with the task as it is.
    pub async fn subscribe(&self, id: &str) -> Result<reqwest::Response, CallError> {
        match self.interface.binding {
            Binding::JsonRpc => self.rpc_stream(Method::Subscribe, json!({"id": id})).await,
            Binding::HttpJson => {
                let url = self.rest_url(&["tasks", &format!("{id}:subscribe")]);
                let request = self.rest_request(self.http.post(url), Some(&json!({})));
                self.open_stream(request, "tasks/subscribe").await
            }
        }
    }

    /// The task `id` as it is now, in the 1.0 shape.
    pub async fn get_task(&self, id: &str) -> Result<(Value, String), CallError> {
        let (mut task, body) = match self.interface.binding {
            Binding::JsonRpc => {
                self.rpc(Method::Get, json!({"id": id, "historyLength": 0}))
                    .await?
            }
            Binding::HttpJson => {
                let mut url = self.rest_url(&["tasks", id]);
                url.query_pairs_mut().append_pair("historyLength", "0");
                self.rest(self.http.get(url), None, "tasks/get").await?
            }
        };
        self.normalize_task(&mut task);
        Ok((task, body))
    }

    /// Asks the agent to stop the task `id`.
    pub async fn cancel_task(&self, id: &str) -> Result<(), CallError> {
        match self.interface.binding {
            Binding::JsonRpc => self.rpc(Method::Cancel, json!({"id": id})).await?,
            Binding::HttpJson => {
                let url = self.rest_url(&["tasks", &format!("{id}:cancel")]);
                self.rest(self.http.post(url), Some(&json!({})), "tasks/cancel")
                    .await?
            }
        };
        Ok(())
    }

    /// One JSON-RPC exchange; returns the `result` object and the raw body.
    async fn rpc(&self, method: Method, params: Value) -> Result<(Value, String), CallError> {
        let name = method.name(self.interface.version);
        let body = rpc_body(name, params);
        let request = self.versioned(self.http.post(&self.interface.url));
        let (result, text) = self.target.json_rpc_exchange(request, &body, name).await?;
        match result {
            Some(result) if result.is_object() => Ok((result, text)),
            _ => Err(self.target.malformed(
                format!("the {name} reply has no `result` object"),
                &text,
                None,
            )),
        }
    }

    /// A JSON-RPC request whose answer is a stream of events.
    async fn rpc_stream(
        &self,
        method: Method,
        params: Value,
    ) -> Result<reqwest::Response, CallError> {
        let name = method.name(self.interface.version);
        let request = self
            .versioned(self.http.post(&self.interface.url))
            .json(&rpc_body(name, params));
        self.open_stream(request, name).await
    }

    /// Sends a request for a stream: an answer that is not 2xx or not
    /// `text/event-stream` is an error (a JSON-RPC error reply as that error).
    async fn open_stream(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, CallError> {
        let request = request.header(reqwest::header::ACCEPT, EVENT_STREAM);
        let response = self.target.send(request).await?;
        if !response.status().is_success() {
            return Err(match self.interface.binding {
                Binding::JsonRpc => self.target.http(response).await,
                Binding::HttpJson => self.target.http_status(response).await,
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("(none)")
            .to_string();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case(EVENT_STREAM) {
            return Ok(response);
        }
        let body = self.target.read_body(response).await?;
        if let Ok(reply) = serde_json::from_str::<Value>(&body)
            && let Some(error) = reply.get("error").filter(|error| error.is_object())
        {
            return Err(self.target.json_rpc(error));
        }
        Err(self.target.not_an_event_stream(what, &content_type, &body))
    }

    /// An HTTP+JSON request with the version's content type and `body`.
    fn rest_request(
        &self,
        request: reqwest::RequestBuilder,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let content_type = match self.interface.version {
            Version::V1_0 => A2A_JSON,
            Version::V0_3 => "application/json",
        };
        let mut request = self.versioned(request).header(
            reqwest::header::ACCEPT,
            format!("{content_type}, application/json"),
        );
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_string());
        }
        request
    }

    /// One HTTP+JSON exchange; the answer must be a JSON object.
    async fn rest(
        &self,
        request: reqwest::RequestBuilder,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(Value, String), CallError> {
        let request = self.rest_request(request, body);
        let (answer, text) = self.target.rest_exchange(request, what).await?;
        if !answer.is_object() {
            return Err(self.target.malformed(
                format!("the {what} answer is not a JSON object"),
                &text,
                None,
            ));
        }
        Ok((answer, text))
    }

    fn versioned(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.interface.version {
            Version::V1_0 => request.header(VERSION_HEADER.0, VERSION_HEADER.1),
            Version::V0_3 => request,
        }
    }

    /// The interface URL with `segments` appended (each percent-encoded), under
    /// `/v1` for 0.3.
    fn rest_url(&self, segments: &[&str]) -> url::Url {
        let mut url = url::Url::parse(&self.interface.url)
            .expect("interface URLs were resolved to absolute URLs when the card was read");
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            if self.interface.version == Version::V0_3 {
                path.push("v1");
            }
            path.extend(segments);
        }
        url
    }
}

fn rpc_body(method: &str, params: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": REQUEST_ID.fetch_add(1, Ordering::Relaxed),
        "method": method,
        "params": params,
    })
}

#[derive(Clone, Copy)]
enum Method {
    Send,
    Get,
    Cancel,
    Stream,
    Subscribe,
}

impl Method {
    fn name(self, version: Version) -> &'static str {
        match (version, self) {
            (Version::V1_0, Method::Send) => "SendMessage",
            (Version::V1_0, Method::Get) => "GetTask",
            (Version::V1_0, Method::Cancel) => "CancelTask",
            (Version::V0_3, Method::Send) => "message/send",
            (Version::V0_3, Method::Get) => "tasks/get",
            (Version::V0_3, Method::Cancel) => "tasks/cancel",
            (Version::V1_0, Method::Stream) => "SendStreamingMessage",
            (Version::V1_0, Method::Subscribe) => "SubscribeToTask",
            (Version::V0_3, Method::Stream) => "message/stream",
            (Version::V0_3, Method::Subscribe) => "tasks/resubscribe",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        agent: "agent",
        skill: "skill",
        max_response_size: 1 << 20,
        auth: None,
        traceparent: None,
    };

    pub(super) fn wire(interface: &Interface) -> Wire<'_> {
        static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        Wire {
            http: HTTP.get_or_init(crate::agent::client::http_client),
            interface,
            target: TARGET,
        }
    }

    pub(super) fn interface(url: &str, version: Version, binding: Binding) -> Interface {
        Interface {
            url: url.into(),
            version,
            binding,
        }
    }

    #[test]
    fn rest_urls_per_version_with_encoded_task_ids() {
        let cases = [
            (
                "http://h:1/",
                Version::V1_0,
                &["message:send"][..],
                "http://h:1/message:send",
            ),
            (
                "http://h:1/a2a",
                Version::V1_0,
                &["tasks", "a/b c:cancel"][..],
                "http://h:1/a2a/tasks/a%2Fb%20c:cancel",
            ),
            (
                "http://h:1",
                Version::V0_3,
                &["message:send"][..],
                "http://h:1/v1/message:send",
            ),
            (
                "http://h:1/rest/",
                Version::V0_3,
                &["tasks", "t-1"][..],
                "http://h:1/rest/v1/tasks/t-1",
            ),
        ];
        for (base, version, segments, expected) in cases {
            let interface = interface(base, version, Binding::HttpJson);
            assert_eq!(wire(&interface).rest_url(segments).as_str(), expected);
        }
    }
}
