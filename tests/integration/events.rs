//! The live events API over real HTTP (`pallet::api` on a free loopback
//! port, a real SQLite file, a real legacy agent): a run's stream from its
//! creation to its `end`, a reconnect with `Last-Event-ID` that misses and
//! repeats nothing, `/events` filtered by workflow, the stream bound and the
//! errors. The PostgreSQL ordering is in `store_backends`.

use std::time::Duration;

use pallet::api::ServiceOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Service, start};
use crate::support::legacy_agent::LegacyAgent;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: Value,
}

/// A stream being read: the response and the bytes not yet parsed.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(service: &Service, path: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = service.request(Method::GET, path);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or None once the server closed the stream; comments
    /// (keep-alives) are skipped. Panics after 20 s without one.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        message.id = Some(value.trim().to_string());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        message.event = Some(value.trim().to_string());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() && message.id.is_none() && message.event.is_none() {
                    continue; // a comment
                }
                message.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(message);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Events until one of `kind` for `step` (any step when None).
    async fn until(&mut self, kind: &str, step: Option<&str>) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await.unwrap_or_else(|| {
                panic!("the stream ended before {kind}: {seen:#?}");
            });
            let done = message.data["type"] == kind
                && step.is_none_or(|step| message.data["step_id"] == step);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Every event until the server ends the stream.
    async fn rest(&mut self) -> Vec<Message> {
        let mut seen = Vec::new();
        while let Some(message) = self.next().await {
            seen.push(message);
        }
        seen
    }
}

fn kinds(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|message| match &message.event {
            Some(event) => event.clone(),
            None => format!(
                "{}{}",
                message.data["type"].as_str().unwrap(),
                message.data["step_id"]
                    .as_str()
                    .map(|step| format!(" {step}"))
                    .unwrap_or_default()
            ),
        })
        .collect()
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| message.id.clone())
        .collect()
}

#[tokio::test]
async fn a_run_stream_resumes_after_last_event_id_and_ends_with_the_run() {
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let (code, run) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "t"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let path = format!("/workflows/{id}/events");

    // From its creation to the approval it waits for; then the client goes away.
    let mut stream = Stream::open(&service, &path, None).await;
    let first = stream.until("step.waiting", Some("review")).await;
    drop(stream);
    assert_eq!(
        kinds(&first),
        [
            "run.created",
            "run.in_progress",
            "step.running draft",
            "step.completed draft",
            "step.waiting review",
        ]
    );
    assert!(
        first
            .iter()
            .all(|message| message.data["run_id"] == id.as_str())
    );
    assert_eq!(first[1].data["data"]["trigger"], "start");
    let last = first.last().unwrap().id.clone().unwrap();

    // Decided while nobody listens; the reconnect gets exactly what followed.
    let (code, decided) = service
        .post(
            &format!("/workflows/{id}/advance"),
            json!({"trigger": "human_approved", "phase_result": {"fields": {"ticket": "OPS-1"}, "actor": "ada"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{decided}");
    let mut stream = Stream::open(&service, &path, Some(&last)).await;
    let second = stream.rest().await;
    let second_kinds = kinds(&second);
    assert_eq!(second_kinds.last().map(String::as_str), Some("end"));
    assert!(
        second_kinds.contains(&"step.completed review".to_string()),
        "{second_kinds:?}"
    );
    assert!(
        second_kinds.contains(&"step.completed publish".to_string()),
        "{second_kinds:?}"
    );
    assert!(
        second_kinds.contains(&"run.completed".to_string()),
        "{second_kinds:?}"
    );

    // Together they are the whole story as a new stream tells it, once each.
    let mut whole = Stream::open(&service, &path, None).await;
    let whole = whole.rest().await;
    let mut joined = ids(&first);
    joined.extend(ids(&second));
    assert_eq!(joined, ids(&whole));
    assert_eq!(kinds(&whole).last().map(String::as_str), Some("end"));
    let approval = whole.iter().find(|message| {
        message.data["type"] == "run.in_progress" && message.data["data"]["actor"] == "ada"
    });
    assert!(
        approval.is_some(),
        "the decision's transition names its actor: {whole:#?}"
    );

    // An ended run's stream, resumed at its end, just ends.
    let mut after_end = Stream::open(&service, &path, whole[whole.len() - 2].id.as_deref()).await;
    assert_eq!(kinds(&after_end.rest().await), ["end"]);
    service.shutdown().await;
}

#[tokio::test]
async fn events_of_one_workflow_arrive_live_and_resume_with_after() {
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    // A run before the stream opens is not replayed: `/events` starts now.
    let (_, earlier) = service
        .post(
            "/workflows",
            json!({"workflow": "fast-test", "input": {"requirements": "early"}}),
        )
        .await;
    service
        .wait_for(earlier["id"].as_str().unwrap(), "completed")
        .await;

    let mut stream = Stream::open(&service, "/events?workflow=fast-test", None).await;
    let (_, other) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "t"}}),
        )
        .await;
    service
        .wait_for(other["id"].as_str().unwrap(), "waiting_approval")
        .await;
    let (_, run) = service
        .post(
            "/workflows",
            json!({"workflow": "fast-test", "input": {"requirements": "live"}}),
        )
        .await;
    let id = run["id"].as_str().unwrap();
    let seen = stream.until("run.completed", None).await;
    assert_eq!(
        kinds(&seen),
        [
            "run.created",
            "run.in_progress",
            "step.running only",
            "step.completed only",
            "run.completed"
        ]
    );
    assert!(
        seen.iter()
            .all(|message| message.data["run_id"] == id
                && message.data["workflow_id"] == "fast-test")
    );
    drop(stream);

    // `after` replays what followed an event, for clients that set no header.
    let mut again = Stream::open(
        &service,
        &format!(
            "/events?workflow=fast-test&after={}",
            seen[2].id.as_deref().unwrap()
        ),
        None,
    )
    .await;
    let replayed = again.until("run.completed", None).await;
    assert_eq!(ids(&replayed), ids(&seen[3..]));
    // `after=0` replays from the first event: the earlier run's creation comes first.
    let mut from_start = Stream::open(&service, "/events?workflow=fast-test&after=0", None).await;
    let first = from_start.next().await.unwrap();
    assert_eq!(first.data["run_id"], earlier["id"]);
    assert_eq!(first.data["type"], "run.created");
    service.shutdown().await;
}

#[tokio::test]
async fn event_streams_refuse_bad_ids_unknown_runs_and_more_than_the_limit() {
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let options = ServiceOptions {
        max_event_streams: 1,
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let problem = |response: reqwest::Response, status: StatusCode, detail: &'static str| async move {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        let found = body["detail"].as_str().unwrap_or_default().to_string();
        assert!(found.contains(detail), "`{found}` lacks `{detail}`");
    };
    let bad = service
        .request(Method::GET, "/events")
        .header("Last-Event-ID", "12x")
        .send()
        .await
        .unwrap();
    problem(
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`12x` is not an event id",
    )
    .await;
    for beyond in ["999999", "5.3"] {
        let response = service
            .request(Method::GET, "/events")
            .header("Last-Event-ID", beyond)
            .send()
            .await
            .unwrap();
        problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "after the newest event",
        )
        .await;
    }
    let unknown = service
        .send(
            Method::GET,
            "/workflows/00000000-0000-4000-8000-000000000000/events",
        )
        .await;
    problem(
        unknown,
        StatusCode::NOT_FOUND,
        "00000000-0000-4000-8000-000000000000",
    )
    .await;
    let both = service.send(Method::GET, "/events?run=a&workflow=b").await;
    problem(both, StatusCode::UNPROCESSABLE_ENTITY, "not both").await;
    let unknown_field = service.send(Method::GET, "/events?since=1").await;
    problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY, "since").await;

    let open = Stream::open(&service, "/events", None).await;
    let over = service.send(Method::GET, "/events").await;
    assert!(over.headers().contains_key("retry-after"));
    problem(over, StatusCode::TOO_MANY_REQUESTS, "--max-event-streams").await;
    drop(open);
    // The permit comes back once the server sees the client gone.
    let mut reopened = None;
    for _ in 0..100 {
        let response = service.send(Method::GET, "/events").await;
        if response.status() == StatusCode::OK {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reopened.is_some(),
        "a closed stream's permit never came back"
    );
    drop(reopened);
    // Shutdown ends the open streams instead of waiting out the grace period.
    let _open = Stream::open(&service, "/events?after=0", None).await;
    tokio::time::timeout(Duration::from_secs(10), service.shutdown())
        .await
        .expect("shutdown with an open stream");
}
