//! A client of the service's HTTP API, for the durable-run commands with
//! `--server URL`: the requests and answers are the types of `types.rs`
//! that the routes use, the runs' views are kept as JSON (the CLI prints
//! them as it prints the local database's).

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::types::{AdvanceRequest, History, ListQuery, RunsPage};
use crate::store::RunState;

/// The service's largest page of `GET /workflows`.
const PAGE_LIMIT: u32 = 500;
/// How often a continuing run is looked at until it ends or waits.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server `{url}` is not a service address: {problem}")]
    BadUrl { url: String, problem: &'static str },
    #[error("cannot set up the HTTP client")]
    Setup(#[source] reqwest::Error),
    #[error(
        "cannot reach pallet serve at {url} (is `pallet serve` running there? check --server or PALLET_SERVER)"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("pallet serve at {url} answered HTTP {status}: {detail}")]
    Answered {
        url: String,
        status: StatusCode,
        detail: String,
    },
    #[error("the answer of pallet serve at {url} is not JSON")]
    NotJson {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    pub fn is_bad_url(&self) -> bool {
        matches!(self, ClientError::BadUrl { .. })
    }

    /// The HTTP status of a refusal by the service.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A running service and how to authenticate to it.
pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

/// `server` as the service's base URL: http(s), a host, nothing after the port.
fn parse_server(text: &str) -> Result<Url, ClientError> {
    let bad = |problem| ClientError::BadUrl {
        url: text.to_string(),
        problem,
    };
    let url = Url::parse(text).map_err(|_| bad("not a URL such as http://127.0.0.1:8080"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it carries credentials; pass the token in PALLET_API_TOKEN",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "it has a path, query or fragment; give only http://HOST:PORT",
        ));
    }
    Ok(url)
}

/// `segments` under `base`, each percent-encoded (a run id cannot add a path).
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

impl ApiClient {
    /// The service at `server` (`http://HOST:PORT`), sending `token` as bearer token.
    pub fn new(server: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        let base = parse_server(server)?;
        // https needs a TLS provider installed before the client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(ApiClient { base, http, token })
    }

    /// Whether requests carry a token (a 401 then means a wrong one).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Up to `limit` runs, newest first, over as many pages as needed.
    pub async fn list(
        &self,
        status: Option<RunState>,
        limit: u32,
    ) -> Result<Vec<Value>, ClientError> {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        while runs.len() < limit as usize {
            let query = ListQuery {
                status: status.map(|status| status.as_str().to_string()),
                limit: Some((limit - runs.len() as u32).min(PAGE_LIMIT)),
                cursor: cursor.take(),
                workflow: None,
            };
            let request = self.http.get(self.url(&["workflows"])).query(&query);
            let mut page: RunsPage<Value> = self.send(request).await?;
            runs.append(&mut page.runs);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(runs)
    }

    /// `GET /workflows/{id}`: the run's view.
    pub async fn show(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(&["workflows", id]))).await
    }

    /// `GET /workflows/{id}/history`.
    pub async fn history(&self, id: &str) -> Result<History<Value>, ClientError> {
        let url = self.url(&["workflows", id, "history"]);
        self.send(self.http.get(url)).await
    }

    /// `POST /workflows/{id}/cancel`: the cancelled run's view.
    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        let url = self.url(&["workflows", id, "cancel"]);
        self.send(self.http.post(url)).await
    }

    /// `POST /workflows/{id}/advance`: the run's view once decided.
    pub async fn advance(&self, id: &str, request: &AdvanceRequest) -> Result<Value, ClientError> {
        let url = self.url(&["workflows", id, "advance"]);
        self.send(self.http.post(url).json(request)).await
    }

    /// `POST /workflows/{id}/resume`: the run's view.
    pub async fn resume(&self, id: &str) -> Result<Value, ClientError> {
        let url = self.url(&["workflows", id, "resume"]);
        self.send(self.http.post(url)).await
    }

    /// `POST /workflows/{id}/rerun`: the new run's view.
    pub async fn rerun(&self, id: &str, from: &str) -> Result<Value, ClientError> {
        let url = self.url(&["workflows", id, "rerun"]);
        let request = super::types::RerunRequest {
            from: from.to_string(),
        };
        self.send(self.http.post(url).json(&request)).await
    }

    /// Look at run `id` until it ends or waits for an approval that has not
    /// expired, as the local commands return once the run stops in this process.
    pub async fn settle(&self, id: &str, mut view: Value) -> Result<Value, ClientError> {
        while !settled(&view) {
            tokio::time::sleep(POLL_INTERVAL).await;
            view = self.show(id).await?;
        }
        Ok(view)
    }

    fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let url = self.base.as_str().trim_end_matches('/').to_string();
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|source| ClientError::NotJson { url, source });
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|problem| problem["detail"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(ClientError::Answered {
            url,
            status,
            detail,
        })
    }
}

fn settled(view: &Value) -> bool {
    match view["status"].as_str().and_then(RunState::parse) {
        Some(RunState::Pending | RunState::InProgress) => false,
        Some(RunState::WaitingApproval) => view["approval"]["expired"] != true,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_bare_http_address_is_a_server() {
        let cases = [
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080/")),
            ("http://127.0.0.1:8080/", Some("http://127.0.0.1:8080/")),
            ("https://pallet.example", Some("https://pallet.example/")),
            ("127.0.0.1:8080", None),
            ("localhost:8080", None),
            ("ftp://127.0.0.1", None),
            ("http://127.0.0.1:8080/api", None),
            ("http://127.0.0.1:8080/?x=1", None),
            ("http://127.0.0.1:8080/#top", None),
            ("http://user:secret@127.0.0.1:8080", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let found = parse_server(text).ok().map(String::from);
            assert_eq!(found.as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn paths_are_segments_under_the_base() {
        let base = parse_server("http://127.0.0.1:1").unwrap();
        let url = endpoint(&base, &["workflows", "a/b?c", "history"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/workflows/a%2Fb%3Fc/history"
        );
    }

    #[test]
    fn a_run_settles_when_it_ends_or_waits_anew() {
        let cases = [
            (json!({"status": "in_progress"}), false),
            (json!({"status": "pending"}), false),
            (
                json!({"status": "waiting_approval", "approval": {"expired": true}}),
                false,
            ),
            (
                json!({"status": "waiting_approval", "approval": {"expired": false}}),
                true,
            ),
            (json!({"status": "completed"}), true),
            (json!({"status": "failed"}), true),
            (json!({"status": "cancelled"}), true),
        ];
        for (view, expected) in cases {
            assert_eq!(settled(&view), expected, "{view}");
        }
    }
}
