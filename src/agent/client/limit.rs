//! The cap on concurrent requests to one agent: 100 parallel branches calling
//! one agent share at most [`DEFAULT_MAX_CONNECTIONS`] HTTP/1.1 connections
//! instead of opening 100 at once. A request past the cap waits for a slot
//! (within the step's timeout: the wait is part of the call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests in flight to one agent (scheme, host and port) at most, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// The environment variable overriding [`DEFAULT_MAX_CONNECTIONS`].
pub const MAX_CONNECTIONS_VARIABLE: &str = "PALLET_AGENT_MAX_CONNECTIONS";

/// A slot of one agent's cap: held from sending a request until its answer's
/// body has been read (it travels in the response's extensions), so the
/// connection is back in the pool when the next waiting request starts.
#[derive(Clone)]
pub(crate) struct Slot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// Waits for a slot of the agent at `url`'s origin.
pub(crate) async fn slot(url: &url::Url) -> Slot {
    let semaphore = {
        let mut agents = semaphores()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        agents
            .entry(url.origin().ascii_serialization())
            .or_insert_with(|| Arc::new(Semaphore::new(max_connections())))
            .clone()
    };
    let permit = semaphore
        .acquire_owned()
        .await
        .expect("the semaphores are never closed");
    Slot {
        _permit: Arc::new(permit),
    }
}

/// One semaphore per agent origin, for the process: the service's runs share
/// an agent's cap as they share its connections.
fn semaphores() -> &'static Mutex<HashMap<String, Arc<Semaphore>>> {
    static AGENTS: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    AGENTS.get_or_init(Mutex::default)
}

/// The cap on requests in flight per agent, from the environment once; a
/// value that does not parse is named in a warning and the default is kept.
pub fn max_connections() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| parse_max(std::env::var(MAX_CONNECTIONS_VARIABLE).ok().as_deref()))
}

fn parse_max(text: Option<&str>) -> usize {
    let Some(text) = text else {
        return DEFAULT_MAX_CONNECTIONS;
    };
    match text.trim().parse::<usize>() {
        Ok(max) if (1..=Semaphore::MAX_PERMITS).contains(&max) => max,
        _ => {
            tracing::warn!(
                "{MAX_CONNECTIONS_VARIABLE}={text:?} is not a positive number of connections: using {DEFAULT_MAX_CONNECTIONS}"
            );
            DEFAULT_MAX_CONNECTIONS
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use serde_json::{Map, json};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::agent::{AgentCard, AgentClient, CallRequest};

    /// Connections accepted, and requests in flight now and at most.
    #[derive(Default)]
    struct Counts {
        connections: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    /// A legacy agent on loopback that answers each `/execute` after `delay`,
    /// counting what it sees.
    async fn counting_agent(delay: Duration) -> (String, Arc<Counts>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let counts = shared.clone();
                let service = hyper::service::service_fn(move |_request| {
                    let counts = counts.clone();
                    async move {
                        let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        counts.most_in_flight.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        counts.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let body = json!({"jsonrpc": "2.0", "id": "1", "result": {"ok": true}});
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body.to_string()),
                        )))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (url, counts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_parallel_calls_share_the_capped_connections() {
        let (url, counts) = counting_agent(Duration::from_millis(20)).await;
        let card = json!({"name": "counted", "skills": [{"id": "echo", "description": "echo"}]});
        let card = AgentCard::parse(&format!("{url}/agent-card"), &card).unwrap();
        let client = AgentClient::new();
        let (input, cancel) = (Map::new(), CancellationToken::new());
        let calls = (0..100).map(|_| {
            client.call(
                &card,
                CallRequest {
                    skill: "echo",
                    input: &input,
                    timeout: Duration::from_secs(30),
                    cancel: &cancel,
                    idempotency_key: "key",
                    max_response_size: None,
                    on_task: None,
                    on_status: None,
                    traceparent: None,
                },
            )
        });
        for answer in futures::future::join_all(calls).await {
            assert_eq!(answer.unwrap(), json!({"ok": true}));
        }
        let most = counts.most_in_flight.load(Ordering::SeqCst);
        let connections = counts.connections.load(Ordering::SeqCst);
        assert!(most <= DEFAULT_MAX_CONNECTIONS, "{most} requests at once");
        // A slot is free as soon as its answer is read, and its connection
        // is back in the pool a moment later: a request in between opens
        // one more (rare, on a busy machine). Far from one per call.
        assert!(
            connections <= 2 * DEFAULT_MAX_CONNECTIONS,
            "{connections} connections for 100 calls"
        );
    }

    #[tokio::test]
    async fn a_call_waiting_for_a_slot_times_out_within_its_timeout() {
        let (url, _counts) = counting_agent(Duration::from_millis(500)).await;
        let card = json!({"name": "slow", "skills": [{"id": "echo", "description": "echo"}]});
        let card = AgentCard::parse(&format!("{url}/agent-card"), &card).unwrap();
        let client = AgentClient::new();
        let (input, cancel) = (Map::new(), CancellationToken::new());
        let request = |timeout| CallRequest {
            skill: "echo",
            input: &input,
            timeout,
            cancel: &cancel,
            idempotency_key: "key",
            max_response_size: None,
            on_task: None,
            on_status: None,
            traceparent: None,
        };
        let holding = (0..DEFAULT_MAX_CONNECTIONS)
            .map(|_| client.call(&card, request(Duration::from_secs(30))));
        let holding = futures::future::join_all(holding);
        let waiting = async {
            // After the others took every slot.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = std::time::Instant::now();
            let error = client
                .call(&card, request(Duration::from_millis(50)))
                .await
                .unwrap_err();
            (error, started.elapsed())
        };
        let (held, (error, waited)) = tokio::join!(holding, waiting);
        assert!(held.iter().all(Result::is_ok));
        assert!(
            matches!(error, crate::agent::CallError::Timeout { .. }),
            "{error}"
        );
        assert!(waited < Duration::from_millis(400), "waited {waited:?}");
    }

    #[test]
    fn the_cap_comes_from_the_environment_or_the_default() {
        assert_eq!(parse_max(None), 16);
        assert_eq!(parse_max(Some(" 4 ")), 4);
        assert_eq!(parse_max(Some("0")), 16);
        assert_eq!(parse_max(Some("many")), 16);
    }
}
