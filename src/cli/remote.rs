//! The durable-run commands against a running `pallet serve` (`--server URL`):
//! the same commands, output and exit status as against the local database,
//! over the service's HTTP API.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use url::Url;

use super::render::BadInput;
use super::runs::{DurableCommand, ServerArgs, actor, parse_fields, parse_status};
use super::runs_args::RunsCommand;
use super::runs_render;
use crate::store::RunState;

/// The service's largest page of `GET /workflows`.
const PAGE_LIMIT: u32 = 500;
/// How often a continuing run is looked at until it ends or waits.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("--server `{url}` is not a service address: {problem}")]
    BadUrl { url: String, problem: &'static str },
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

/// A running service and how to authenticate to it.
pub struct Remote {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

/// `--server` as the service's base URL: http(s), a host, nothing after the port.
fn parse_server(text: &str) -> Result<Url, RemoteError> {
    let bad = |problem| RemoteError::BadUrl {
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

impl Remote {
    /// The service named by `--server`/`PALLET_SERVER`, if any.
    pub fn from_args(args: &ServerArgs) -> anyhow::Result<Option<Remote>> {
        let Some(text) = args.server.as_deref().filter(|text| !text.is_empty()) else {
            return Ok(None);
        };
        let base = parse_server(text).map_err(|error| {
            BadInput::new(error.to_string()).hint("e.g. --server http://127.0.0.1:8080")
        })?;
        // https needs a TLS provider installed before the client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Some(Remote {
            base,
            http,
            token: args.token.clone().filter(|token| !token.is_empty()),
        }))
    }

    fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        let request = self.http.get(self.url(segments)).query(query);
        self.send(request).await
    }

    async fn post(&self, segments: &[&str], body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.post(self.url(segments));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let url = self.base.as_str().trim_end_matches('/').to_string();
        let response = request
            .send()
            .await
            .map_err(|source| RemoteError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response
                .json()
                .await
                .map_err(|source| RemoteError::NotJson { url, source })?);
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|problem| problem["detail"].as_str().map(str::to_string))
            .unwrap_or(body);
        let error = RemoteError::Answered {
            url,
            status,
            detail,
        };
        Err(answered_error(error, status, self.token.is_some()))
    }

    /// Look at run `id` until it ends or waits for an approval that has not
    /// expired, as the local commands return once the run stops in this process.
    async fn settle(&self, id: &str, mut view: Value) -> anyhow::Result<Value> {
        while !settled(&view) {
            tokio::time::sleep(POLL_INTERVAL).await;
            view = self.get(&["workflows", id], &[]).await?;
        }
        Ok(view)
    }
}

fn settled(view: &Value) -> bool {
    match runs_render::status_of(view) {
        Some(RunState::Pending | RunState::InProgress) => false,
        Some(RunState::WaitingApproval) => view["approval"]["expired"] != true,
        _ => true,
    }
}

/// The service refused: its client errors are the user's input (exit 2),
/// with the hints the local commands give.
fn answered_error(error: RemoteError, status: StatusCode, had_token: bool) -> anyhow::Error {
    if !status.is_client_error() {
        return error.into();
    }
    let hint = match status {
        StatusCode::UNAUTHORIZED if had_token => {
            Some("PALLET_API_TOKEN is not the token the service was started with")
        }
        StatusCode::UNAUTHORIZED => {
            Some("set PALLET_API_TOKEN to the token the service was started with")
        }
        StatusCode::NOT_FOUND => Some("list runs with `pallet runs --server URL`"),
        StatusCode::CONFLICT => Some("see the run's state with `pallet runs show ID --server URL`"),
        _ => None,
    };
    let mut bad = BadInput::new(error.to_string());
    bad.hint = hint.map(str::to_string);
    bad.into()
}

pub async fn command(remote: &Remote, command: DurableCommand) -> anyhow::Result<ExitCode> {
    match command {
        DurableCommand::Runs(args) => {
            match args.command {
                None => {
                    let status = parse_status(args.status.as_deref())?;
                    let runs = list(remote, status, args.limit).await?;
                    runs_render::print_list(&runs, args.json)?;
                }
                Some(RunsCommand::Show { id }) => {
                    let view = remote.get(&["workflows", &id], &[]).await?;
                    runs_render::print_view(&view, args.json)?;
                }
                Some(RunsCommand::History { id }) => {
                    let history = remote.get(&["workflows", &id, "history"], &[]).await?;
                    runs_render::print_history(&history["transitions"], args.json)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Cancel(args) => {
            let view = remote
                .post(&["workflows", &args.id, "cancel"], None)
                .await?;
            if args.json {
                runs_render::print_json(&view)?;
            } else {
                errln!("run {} cancelled", args.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Approve(args) => {
            let fields = parse_fields(&args.fields)?;
            let body = advance_body(true, actor(args.actor)?, args.comment, fields);
            continue_run(remote, &args.id, "advance", Some(body), args.engine.json).await
        }
        DurableCommand::Reject(args) => {
            let body = advance_body(false, actor(args.actor)?, args.comment, Map::new());
            continue_run(remote, &args.id, "advance", Some(body), args.engine.json).await
        }
        DurableCommand::Resume(args) => {
            continue_run(remote, &args.id, "resume", None, args.engine.json).await
        }
    }
}

/// `POST /workflows/{id}/advance`'s body for a decision.
fn advance_body(
    approved: bool,
    actor: String,
    comment: Option<String>,
    fields: Map<String, Value>,
) -> Value {
    let trigger = if approved {
        "human_approved"
    } else {
        "human_rejected"
    };
    json!({
        "trigger": trigger,
        "phase_result": {"actor": actor, "comment": comment, "fields": fields},
    })
}

/// Post `action` for run `id`, follow the run until it ends or waits, report it.
async fn continue_run(
    remote: &Remote,
    id: &str,
    action: &str,
    body: Option<Value>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let view = remote.post(&["workflows", id, action], body).await?;
    let view = remote.settle(id, view).await?;
    runs_render::report(&view, json)?;
    Ok(runs_render::exit_code(&view))
}

/// Up to `limit` runs, newest first, over as many pages as needed.
async fn list(remote: &Remote, status: Option<RunState>, limit: u32) -> anyhow::Result<Value> {
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    while runs.len() < limit as usize {
        let wanted = (limit - runs.len() as u32).min(PAGE_LIMIT);
        let mut query = vec![("limit", wanted.to_string())];
        if let Some(status) = status {
            query.push(("status", status.as_str().to_string()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let mut page = remote.get(&["workflows"], &query).await?;
        if let Some(found) = page["runs"].as_array_mut() {
            runs.append(found);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    Ok(Value::Array(runs))
}

#[cfg(test)]
mod tests {
    use super::*;

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
