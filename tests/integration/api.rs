//! The orchestrator HTTP service over real HTTP on a free loopback port, a
//! real SQLite file and a real legacy agent: starting runs (both body forms),
//! listing, history, approvals, errors as problem documents, auth, the
//! OpenAPI document, resuming at start, shutdown, and concurrent load.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pallet::agent::StaticDiscovery;
use pallet::api::{self, AppState, ServiceOptions};
use pallet::builtin::BuiltinWorkflows;
use pallet::engine::Engine;
use pallet::store::{ManualClock, NewRun, RunChange, RunState, RunStore};
use pallet::workflow::{DirectorySource, Sources, WorkflowSource};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::Spawned;

pub(crate) const SKILLS: [&str; 5] = [
    "create_plan",
    "generate_code",
    "review_code",
    "first",
    "last",
];

const APPROVAL_WORKFLOW: &str = "metadata: {id: approval-test, name: Approval test, version: 1.0.0}
steps:
  - {id: draft, skill: first, inputs: {text: '{{ workflow.input.text }}'}}
  - id: review
    step_type: approval
    title: Ship the draft?
    required: [ticket]
  - id: publish
    skill: last
    inputs:
      ticket: '{{ steps.review.outputs.fields.ticket }}'
";

const FAST_WORKFLOW: &str = "metadata: {id: fast-test, name: Fast test, version: 1.0.0}
steps:
  - {id: only, skill: echo, inputs: {requirements: '{{ workflow.input.requirements }}'}}
";

const TIMEOUT_WORKFLOW: &str = "metadata: {id: timeout-test, name: Timeout test, version: 1.0.0}
steps:
  - {id: gate, step_type: approval, title: Go?, timeout: 0.2, on_timeout: approve}
  - {id: after, skill: last, inputs: {approved: '{{ steps.gate.outputs.approved }}', actor: '{{ steps.gate.outputs.actor }}'}}
";

const FAILING_WORKFLOW: &str = "metadata: {id: failing-test, name: Failing test, version: 1.0.0}
steps:
  - {id: broken, skill: fail, inputs: {message: refused}}
";

const TYPED_WORKFLOW: &str = "metadata: {id: typed-test, name: Typed test, version: 1.0.0}
inputs:
  title: {type: string, maxLength: 80, description: What it is called}
  count: {type: integer, minimum: 1, default: 2}
  loud: {type: boolean, required: false}
  mode: {enum: [fast, thorough], required: false}
steps:
  - {id: only, skill: echo, inputs: {title: '{{ workflow.input.title }}', count: '{{ workflow.input.count }}', loud: '{{ workflow.input.loud }}', mode: '{{ workflow.input.mode }}'}}
";

const SLOW_WORKFLOW: &str = "metadata: {id: slow-test, name: Slow test, version: 1.0.0}
steps:
  - {id: wait, skill: sleep, inputs: {ms: 1500}}
";

/// A running service with its agent, database and shutdown switch.
pub(crate) struct Service {
    pub(crate) base: String,
    client: reqwest::Client,
    token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<Result<(), api::ApiError>>,
    /// The service store's clock: approval deadlines pass when a test moves it.
    clock: ManualClock,
}

fn write_workflows(dir: &Path) {
    let workflows = dir.join("workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    for (name, text) in [
        ("approval.yaml", APPROVAL_WORKFLOW),
        ("fast.yaml", FAST_WORKFLOW),
        ("failing.yaml", FAILING_WORKFLOW),
        ("typed.yaml", TYPED_WORKFLOW),
        ("slow.yaml", SLOW_WORKFLOW),
        ("timeout.yaml", TIMEOUT_WORKFLOW),
    ] {
        std::fs::write(workflows.join(name), text).unwrap();
    }
}

fn engine(agent: &LegacyAgent, dir: &Path) -> Engine {
    let sources: Vec<Arc<dyn WorkflowSource>> = vec![
        Arc::new(DirectorySource::new(dir.join("workflows"))),
        Arc::new(BuiltinWorkflows),
    ];
    Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url()])),
        Arc::new(Sources(sources)),
    )
    .build()
}

pub(crate) async fn start(agent: &LegacyAgent, dir: &Path, options: ServiceOptions) -> Service {
    write_workflows(dir);
    let clock = ManualClock::new();
    let store = RunStore::open(&dir.join("runs.db"))
        .unwrap()
        .with_clock(clock.clone());
    let token = options.token.clone();
    let state = AppState::new(std::sync::Arc::new(store), engine(agent, dir), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Service {
        base,
        client: crate::support::http_client(),
        token,
        stop: Some(stop),
        served,
        clock,
    }
}

impl Service {
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `METHOD path`, sent (no body).
    pub(crate) async fn send(&self, method: Method, path: &str) -> reqwest::Response {
        self.request(method, path).send().await.unwrap()
    }

    /// `POST path` with a JSON body, sent.
    async fn post_raw(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.request(Method::GET, path).send().await.unwrap()).await
    }

    /// GET the run until its status is `status` (bounded).
    pub(crate) async fn wait_for(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..400 {
            let (code, run) = self.get(&format!("/workflows/{id}")).await;
            assert_eq!(code, StatusCode::OK, "{run}");
            if run["status"] == status {
                return run;
            }
            last = run;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {id} never became {status}: {last}");
    }

    pub(crate) async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.served.await.unwrap().unwrap();
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A problem document with `status` whose detail contains `detail`.
async fn assert_problem(response: reqwest::Response, status: StatusCode, detail: &str) {
    assert_eq!(response.status(), status);
    let media = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(media, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    let found = body["detail"].as_str().unwrap_or_default();
    assert!(found.contains(detail), "detail `{found}` lacks `{detail}`");
}

#[tokio::test]
async fn both_body_forms_start_runs_that_complete() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let mut options = ServiceOptions::default();
    options
        .workflow_types
        .insert("specify".to_string(), "fast-test".to_string());
    let service = start(&agent, dir.path(), options).await;
    let bodies = [
        json!({"workflow": "fast-test", "input": {"requirements": "a factorial function"}}),
        json!({"workflow_type": "specify", "feature_description": "Add user authentication with OAuth2", "context": {"priority": "P1"}}),
    ];
    let mut outputs = Vec::new();
    for body in bodies {
        let (code, created) = service.post("/workflows", body.clone()).await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        assert_eq!(created["workflow_id"], "fast-test");
        assert!(
            ["in_progress", "completed"].contains(&created["status"].as_str().unwrap()),
            "{created}"
        );
        let id = created["id"].as_str().unwrap();
        let run = service.wait_for(id, "completed").await;
        assert_eq!(run["progress"]["percentage"], 100);
        assert_eq!(run["progress"]["steps_completed"], 1);
        assert!(
            run["time_in_state_seconds"]["in_progress"]
                .as_f64()
                .unwrap()
                >= 0.0
        );
        outputs.push(run["context"]["only"]["requirements"].clone());
    }
    assert_eq!(
        outputs,
        [
            json!("a factorial function"),
            json!("Add user authentication with OAuth2")
        ]
    );
    let (_, page) = service.get("/workflows?status=completed").await;
    let seed_run = &page["runs"][0];
    assert_eq!(seed_run["input"]["workflow_type"], "specify");
    assert_eq!(seed_run["input"]["context"]["priority"], "P1");
    assert_eq!(agent.calls("echo"), 2);
    service.shutdown().await;
}

/// `pallet serve` itself: the seed form runs the built-in code-generation
/// workflow on the built-in example agents; SIGTERM stops it cleanly.
#[tokio::test]
async fn pallet_serve_runs_the_built_in_example_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = TestContext::new();
    let refused = dir
        .pallet()
        .args(["serve", "--offline", "--addr", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("runs.db"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );

    let mut child = Spawned::spawn(
        dir.pallet()
            .args([
                "serve",
                "--offline",
                "--addr",
                "127.0.0.1:0",
                "--workflows-dir",
            ])
            .arg(dir.path().join("none"))
            .arg("--db")
            .arg(dir.path().join("runs.db"))
            .stderr(std::process::Stdio::piped()),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("serving on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        })
        .expect("the service says where it listens");
    let client = crate::support::http_client();
    let created: Value = client
        .post(format!("{base}/workflows"))
        .json(&json!({"workflow_type": "implement", "feature_description": "Create a factorial function"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["workflow_id"], "code-generation-v1", "{created}");
    let id = created["id"].as_str().unwrap();
    let mut run = Value::Null;
    for _ in 0..600 {
        run = client
            .get(format!("{base}/workflows/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["progress"]["percentage"], 100);
    child.signal(libc::SIGTERM);
    let mut status = None;
    for _ in 0..200 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = status else {
        panic!("pallet serve did not stop on SIGTERM");
    };
    assert!(status.success(), "{status}");
}

/// The ids of the completed runs, two per page, following `next_cursor`.
async fn completed_runs_page_by_page(service: &Service) -> Vec<String> {
    let mut listed = Vec::new();
    let mut path = "/workflows?status=completed&limit=2".to_string();
    for _ in 0..10 {
        let (code, page) = service.get(&path).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 2);
        for run in runs {
            assert_eq!(run["status"], "completed");
            listed.push(run["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/workflows?status=completed&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    listed
}

#[tokio::test]
async fn runs_are_listed_by_status_page_by_page_with_their_history() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let mut completed = Vec::new();
    for n in 0..5 {
        let (code, run) = service
            .post(
                "/workflows",
                json!({"workflow": "fast-test", "input": {"requirements": n}}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED);
        completed.push(run["id"].as_str().unwrap().to_string());
    }
    for id in &completed {
        service.wait_for(id, "completed").await;
    }
    let (_, waiting) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "hi"}}),
        )
        .await;
    let waiting_id = waiting["id"].as_str().unwrap();
    service.wait_for(waiting_id, "waiting_approval").await;

    let listed = completed_runs_page_by_page(&service).await;
    let mut expected = completed.clone();
    expected.sort();
    let mut found = listed.clone();
    found.sort();
    assert_eq!(found, expected, "every completed run exactly once");

    let (_, page) = service.get("/workflows?status=waiting_approval").await;
    let ids: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![waiting_id]);
    let (_, all) = service.get("/workflows").await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 6);

    let (code, history) = service
        .get(&format!("/workflows/{}/history", completed[0]))
        .await;
    assert_eq!(code, StatusCode::OK);
    let steps: Vec<String> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|transition| {
            format!(
                "{}:{}",
                transition["trigger"].as_str().unwrap(),
                transition["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "created:pending",
            "start:in_progress",
            "steps_completed:completed"
        ]
    );

    let response = service.send(Method::GET, "/workflows?status=running").await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "status `running` is not a run state",
    )
    .await;
    let response = service
        .send(Method::GET, "/workflows?cursor=garbage!")
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "cursor").await;
    service.shutdown().await;
}

/// Decisions `advance` (the advance path of a waiting run) refuses, each
/// with its problem document.
async fn refused_advances(service: &Service, advance: &str) {
    let response = service
        .post_raw(
            advance,
            &json!({"trigger": "human_approved", "phase_result": {"comment": "ok"}}),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "ticket").await;
    let response = service
        .post_raw(advance, &json!({"trigger": "agent_complete"}))
        .await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        "pallet's runner records agent completion itself",
    )
    .await;
    let response = service
        .post_raw(
            "/workflows/no-such-run/advance",
            &json!({"trigger": "agent_complete"}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "no-such-run").await;
    let response = service
        .post_raw(advance, &json!({"trigger": "agent_done"}))
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "trigger").await;
}

#[tokio::test]
async fn an_approval_is_decided_through_advance() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let body = json!({"workflow": "approval-test", "input": {"text": "draft text"}});
    let (_, created) = service.post("/workflows", body.clone()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let waiting = service.wait_for(&id, "waiting_approval").await;
    assert_eq!(waiting["approval"]["step"], "review");
    assert_eq!(waiting["progress"]["percentage"], 33);
    let advance = format!("/workflows/{id}/advance");

    refused_advances(&service, &advance).await;

    let (code, advanced) = service
        .post(
            &advance,
            json!({"trigger": "human_approved", "phase_result": {"comments": "LGTM", "fields": {"ticket": "OPS-7"}, "actor": "ada"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{advanced}");
    let run = service.wait_for(&id, "completed").await;
    assert_eq!(run["context"]["review"]["actor"], "ada");
    assert_eq!(run["context"]["review"]["comment"], "LGTM");
    assert_eq!(run["context"]["publish"]["ticket"], "OPS-7");
    let (_, history) = service.get(&format!("/workflows/{id}/history")).await;
    let approved = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|transition| transition["trigger"] == "human_approved")
        .expect("the approval is in the history");
    assert_eq!(approved["actor"], "ada");

    // A decision on a run that no longer waits conflicts with its state.
    let response = service
        .post_raw(
            &advance,
            &json!({"trigger": "human_approved", "phase_result": {"fields": {"ticket": "x"}}}),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "not waiting for approval").await;
    let response = service
        .send(Method::POST, &format!("/workflows/{id}/cancel"))
        .await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        "cannot go from `completed` to `cancelled`",
    )
    .await;

    // Rejected without rework: the run fails with the reason.
    let (_, created) = service.post("/workflows", body).await;
    let rejected_id = created["id"].as_str().unwrap().to_string();
    service.wait_for(&rejected_id, "waiting_approval").await;
    let (code, rejected) = service
        .post(
            &format!("/workflows/{rejected_id}/advance"),
            json!({"trigger": "human_rejected", "phase_result": {"comment": "not yet"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(rejected["status"], "failed");
    assert!(rejected["error"].as_str().unwrap().contains("not yet"));
    assert_eq!(agent.calls("last"), 1);
    service.shutdown().await;
}

#[tokio::test]
async fn a_running_run_is_cancelled() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let (_, created) = service
        .post("/workflows", json!({"workflow": "slow-test"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let (code, cancelled) = service
        .post(&format!("/workflows/{id}/cancel"), json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, run) = service.get(&format!("/workflows/{id}")).await;
    assert_eq!(run["status"], "cancelled");
    service.shutdown().await;
}

#[tokio::test]
async fn errors_are_problem_documents() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (method, path) in [
        (Method::GET, format!("/workflows/{unknown}")),
        (Method::GET, format!("/workflows/{unknown}/history")),
        (Method::POST, format!("/workflows/{unknown}/cancel")),
    ] {
        let response = service.send(method, &path).await;
        assert_problem(
            response,
            StatusCode::NOT_FOUND,
            &format!("no run with id `{unknown}`"),
        )
        .await;
    }
    let response = service
        .post_raw(
            &format!("/workflows/{unknown}/advance"),
            &json!({"trigger": "human_approved"}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "no run with id").await;

    let response = service
        .request(Method::POST, "/workflows")
        .header("content-type", "application/json")
        .body("{\"workflow\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "line 1 column").await;

    let invalid = [
        (
            json!({"workflow_type": "specify", "feature_description": "short"}),
            "at least 10",
        ),
        (
            json!({"workflow_type": "deploy", "feature_description": "Add OAuth2 login"}),
            "unknown workflow_type `deploy`",
        ),
        (
            json!({"workflow": "no-such-workflow"}),
            "cannot use workflow `no-such-workflow`",
        ),
        (
            json!({"workflow": "fast-test", "inputs": {}}),
            "unknown field `inputs`",
        ),
        (
            json!({"workflow": "fast-test", "input": [1]}),
            "invalid `input`",
        ),
    ];
    for (body, detail) in invalid {
        let response = service.post_raw("/workflows", &body).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, detail).await;
    }

    // Past the body limit (which leaves room over the largest input).
    let body_limit = ServiceOptions::default().body_limit();
    let large = json!({"workflow": "fast-test", "input": {"text": "x".repeat(body_limit + 1)}});
    let response = service.post_raw("/workflows", &large).await;
    assert_problem(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the limit",
    )
    .await;

    let response = service.send(Method::GET, "/nowhere").await;
    assert_problem(response, StatusCode::NOT_FOUND, "no route GET /nowhere").await;
    let response = service.send(Method::DELETE, "/workflows").await;
    assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "DELETE").await;
    let (_, all) = service.get("/workflows").await;
    assert_eq!(all["runs"], json!([]), "no invalid request created a run");
    service.shutdown().await;
}

#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let options = ServiceOptions {
        token: Some("s3cret".to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let url = |path: &str| format!("{}{path}", service.base);
    let client = &service.client;
    let response = client.get(url("/workflows")).send().await.unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "bearer token").await;
    let response = client
        .get(url("/openapi.json"))
        .bearer_auth("s3cre")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "bearer token").await;
    let response = client
        .post(url("/workflows"))
        .bearer_auth("wrong!")
        .json(&json!({"workflow": "fast-test"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "bearer token").await;
    let (code, health) = answer(client.get(url("/health")).send().await.unwrap()).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());
    let (code, created) = service
        .post(
            "/workflows",
            json!({"workflow": "fast-test", "input": {"requirements": 1}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (all, _) = service.get("/workflows").await;
    assert_eq!(all, StatusCode::OK);
    service.shutdown().await;

    let open_dir = TestContext::new();
    let open = start(&agent, open_dir.path(), ServiceOptions::default()).await;
    let (code, _) = answer(
        open.client
            .get(format!("{}/workflows", open.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "no token configured: no token needed");
    open.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let (code, document) = service.get("/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let mut routes: Vec<(String, String)> = api::routes::routes()
        .into_iter()
        .map(|route| (route.path.to_string(), route.method.to_string()))
        .collect();
    routes.sort();
    assert_eq!(api::openapi::operations(&document), routes);
    // Every documented operation answers (not 404/405) on the running server.
    for (path, method) in routes {
        let path = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = service
            .request(method.clone(), &path)
            .json(&json!({"trigger": "human_approved"}))
            .send()
            .await
            .unwrap();
        // An event stream does not end: its answering is enough.
        if response
            .headers()
            .get("content-type")
            .is_some_and(|media| media == "text/event-stream")
        {
            continue;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let routed = body["detail"].as_str().is_none_or(|detail| {
            !detail.starts_with("no route") && !detail.contains("not allowed")
        });
        assert!(routed, "{method} {path}: {body}");
    }
    service.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_running_runs_resumable_and_start_resumes_them() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let options = || ServiceOptions {
        grace: Duration::from_millis(50),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options()).await;
    let (_, created) = service
        .post("/workflows", json!({"workflow": "slow-test"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if agent.calls("sleep") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(agent.calls("sleep"), 1);
    service.shutdown().await;
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    assert_eq!(store.get(&id).unwrap().status.as_str(), "in_progress");
    // A run recorded but never started (its process died at once) is started too.
    let pending = record_fast_run(&store, "pending");
    drop(store);

    let again = start(&agent, dir.path(), options()).await;
    let run = again.wait_for(&id, "completed").await;
    let statuses: Vec<&str> = run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interrupted", "completed"]);
    let started = again.wait_for(&pending.id, "completed").await;
    assert_eq!(started["context"]["only"]["requirements"], "pending");
    let (_, history) = again
        .get(&format!("/workflows/{}/history", pending.id))
        .await;
    let resumed = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|transition| {
            transition["trigger"] == "start" && transition["metadata"]["by"] == "resume"
        })
        .count();
    assert_eq!(resumed, 1, "resumed once: {history}");
    again.shutdown().await;
}

#[tokio::test]
async fn two_hundred_concurrent_runs_all_complete() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = Arc::new(start(&agent, dir.path(), ServiceOptions::default()).await);
    let posts = (0..200).map(|n| {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .post(
                    "/workflows",
                    json!({"workflow": "fast-test", "input": {"requirements": n}}),
                )
                .await
        })
    });
    let mut ids = Vec::new();
    for post in futures::future::join_all(posts).await {
        let (code, run) = post.unwrap();
        assert_eq!(code, StatusCode::CREATED, "{run}");
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let mut completed = Vec::new();
    for _ in 0..600 {
        let (_, page) = service.get("/workflows?status=completed&limit=500").await;
        completed = page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap().to_string())
            .collect();
        if completed.len() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    completed.sort();
    assert_eq!(completed, ids, "every run completed");
    let (_, all) = service.get("/workflows?limit=500").await;
    assert_eq!(
        all["runs"].as_array().unwrap().len(),
        200,
        "no run lost or duplicated"
    );
    assert_eq!(agent.calls("echo"), 200);
    let service = Arc::into_inner(service).expect("no other handle");
    service.shutdown().await;
}

/// A run of the fast workflow recorded as another process would leave it: created, never started.
fn record_fast_run(store: &RunStore, requirements: &str) -> pallet::store::StoredRun {
    store
        .create_run(&NewRun {
            workflow_ref: "fast-test".to_string(),
            workflow_id: "fast-test".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: "fast.yaml".to_string(),
            workflow_yaml: FAST_WORKFLOW.to_string(),
            input: json!({"requirements": requirements}),
            actor: "test".to_string(),
        })
        .unwrap()
}
/// A run read between a resume's end of its approval and its next state
/// (waiting_approval with no waiting approval step) is shown, not a 409.
#[tokio::test]
async fn a_waiting_run_whose_approval_was_just_decided_is_shown() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let run = record_fast_run(&store, "in between");
    for to in [RunState::InProgress, RunState::WaitingApproval] {
        store
            .transition(&run.id, RunChange::new(to, "test", "tester"))
            .wait()
            .unwrap();
    }
    drop(store);
    let (code, view) = service.get(&format!("/workflows/{}", run.id)).await;
    assert_eq!(code, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "waiting_approval", "{view}");
    assert!(view["pending_approval"].is_null(), "{view}");
    service.shutdown().await;
}

#[tokio::test]
async fn resume_continues_interrupted_and_expired_runs_in_the_background() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let resume = |id: &str| format!("/workflows/{id}/resume");
    let response = service.send(Method::POST, &resume("no-such-run")).await;
    assert_problem(response, StatusCode::NOT_FOUND, "no-such-run").await;

    // A run another process recorded and left: resumed here, in the background.
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let left = record_fast_run(&store, "left behind");
    drop(store);
    let (code, accepted) = service.post(&resume(&left.id), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["id"], left.id.as_str());
    let run = service.wait_for(&left.id, "completed").await;
    assert_eq!(run["context"]["only"]["requirements"], "left behind");
    let response = service.send(Method::POST, &resume(&left.id)).await;
    assert_problem(response, StatusCode::CONFLICT, "has ended (completed)").await;

    // Executing in this service already: not started a second time.
    let (_, slow) = service
        .post("/workflows", json!({"workflow": "slow-test"}))
        .await;
    let slow = slow["id"].as_str().unwrap().to_string();
    let response = service.send(Method::POST, &resume(&slow)).await;
    assert_problem(response, StatusCode::CONFLICT, "already executing").await;
    assert_eq!(
        service.wait_for(&slow, "completed").await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Executed by another live process (it holds the run's lease): 409 at once,
    // not a 202 whose background resume would fail unseen.
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let owned = record_fast_run(&store, "owned elsewhere");
    assert_eq!(
        store.acquire_lease(&owned.id, "elsewhere").await.unwrap(),
        None
    );
    let response = service.send(Method::POST, &resume(&owned.id)).await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        "is being executed by another process",
    )
    .await;
    assert_eq!(store.get(&owned.id).unwrap().status, RunState::Pending);
    drop(store);

    // Waiting for an approval: 409; once its deadline passed, on_timeout applies.
    let (_, waiting) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "x"}}),
        )
        .await;
    let waiting = waiting["id"].as_str().unwrap().to_string();
    service.wait_for(&waiting, "waiting_approval").await;
    let response = service.send(Method::POST, &resume(&waiting)).await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        "waits for approval at step `review`",
    )
    .await;
    let (_, gated) = service
        .post("/workflows", json!({"workflow": "timeout-test"}))
        .await;
    let gated = gated["id"].as_str().unwrap().to_string();
    service.wait_for(&gated, "waiting_approval").await;
    service.clock.advance(Duration::from_millis(300));
    let (code, accepted) = service.post(&resume(&gated), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let run = service.wait_for(&gated, "completed").await;
    assert_eq!(run["result"], json!({"approved": true, "actor": "timeout"}));
    service.shutdown().await;
}

/// The `/metrics` page as a scraper reads it: (series with labels, value),
/// checked line by line against the text format.
fn parse_metrics(page: &str) -> (Vec<String>, std::collections::HashMap<String, f64>) {
    let name = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$"#,
    )
    .unwrap();
    let mut typed = Vec::new();
    let mut values = std::collections::HashMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            typed.push(family.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let captures = name
            .captures(line)
            .unwrap_or_else(|| panic!("not the text format: {line:?}"));
        let family = captures[1]
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed
                .iter()
                .any(|typed| typed == family || typed == &captures[1]),
            "{line}: no # TYPE before"
        );
        let value: f64 = captures[5].parse().unwrap_or_else(|_| panic!("{line}"));
        let series = line.rsplit_once(' ').unwrap().0.to_string();
        assert!(values.insert(series, value).is_none(), "{line}: twice");
    }
    (typed, values)
}

#[tokio::test]
async fn metrics_count_runs_and_steps_and_need_the_token() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    let options = ServiceOptions {
        token: Some(token.to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    for n in 0..3 {
        let (code, run) = service
            .post(
                "/workflows",
                json!({"workflow": "fast-test", "input": {"requirements": format!("r{n}")}}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{run}");
        service
            .wait_for(run["id"].as_str().unwrap(), "completed")
            .await;
    }
    let (_, waiting) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "t"}}),
        )
        .await;
    service
        .wait_for(waiting["id"].as_str().unwrap(), "waiting_approval")
        .await;

    let (_, failing) = service
        .post(
            "/workflows",
            json!({"workflow": "failing-test", "input": {}}),
        )
        .await;
    service
        .wait_for(failing["id"].as_str().unwrap(), "failed")
        .await;

    let anonymous = crate::support::http_client()
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The engine's events reach the metrics a moment after the runs' ends.
    let mut values = std::collections::HashMap::new();
    for _ in 0..200 {
        let response = service.send(Method::GET, "/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let page = response.text().await.unwrap();
        let (typed, parsed) = parse_metrics(&page);
        for family in [
            "pallet_runs",
            "pallet_runs_executing",
            "pallet_queue_depth",
            "pallet_step_duration_seconds",
            "pallet_agent_call_errors_total",
            "pallet_store_write_seconds",
        ] {
            assert!(typed.contains(&family.to_string()), "{family}: {page}");
        }
        values = parsed;
        if values.get(r#"pallet_step_duration_seconds_count{skill="echo",status="completed"}"#)
            == Some(&3.0)
            && values.contains_key(
                r#"pallet_step_duration_seconds_count{skill="first",status="completed"}"#,
            )
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let value = |series: &str| {
        *values
            .get(series)
            .unwrap_or_else(|| panic!("{series} in {values:?}"))
    };
    assert_eq!(value(r#"pallet_runs{status="completed"}"#), 3.0);
    assert_eq!(value(r#"pallet_runs{status="waiting_approval"}"#), 1.0);
    assert_eq!(value(r#"pallet_runs{status="failed"}"#), 1.0);
    assert_eq!(
        value(r#"pallet_agent_call_errors_total{agent="helper",kind="agent_reported"}"#),
        1.0
    );
    // Every run above was written: the write latency histogram saw them.
    let writes = value("pallet_store_write_seconds_count");
    assert!(writes >= 4.0, "{writes}");
    let within = value(r#"pallet_store_write_seconds_bucket{le="5"}"#);
    assert!(within > 0.0 && within <= value(r#"pallet_store_write_seconds_bucket{le="+Inf"}"#));
    assert!(value("pallet_store_write_seconds_sum") > 0.0);
    assert_eq!(value("pallet_runs_executing"), 0.0);
    assert_eq!(value("pallet_queue_depth"), 0.0);
    let echo = r#"skill="echo",status="completed""#;
    assert_eq!(
        value(&format!("pallet_step_duration_seconds_count{{{echo}}}")),
        3.0
    );
    assert_eq!(
        value(&format!(
            "pallet_step_duration_seconds_bucket{{{echo},le=\"+Inf\"}}"
        )),
        3.0
    );
    // Buckets are cumulative.
    let mut previous = 0.0;
    for bound in ["0.005", "0.01", "0.1", "1", "10", "300"] {
        let count = value(&format!(
            "pallet_step_duration_seconds_bucket{{{echo},le=\"{bound}\"}}"
        ));
        assert!(count >= previous && count <= 3.0, "le={bound}: {count}");
        previous = count;
    }
    assert!(value(&format!("pallet_step_duration_seconds_sum{{{echo}}}")) > 0.0);
    service.shutdown().await;
}

/// Every agent call of a run carries a W3C `traceparent` whose trace id is
/// the run's id (its hex digits) and whose span is the call's own.
#[tokio::test]
async fn agent_calls_carry_the_runs_trace() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = TestContext::new();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let (_, run) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "t"}}),
        )
        .await;
    let id = run["id"].as_str().unwrap();
    service.wait_for(id, "waiting_approval").await;
    let (code, _) = service
        .post(
            &format!("/workflows/{id}/advance"),
            json!({"trigger": "human_approved", "phase_result": {"fields": {"ticket": "T-1"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    service.wait_for(id, "completed").await;
    let traces = agent.traces();
    assert_eq!(traces.len(), 2, "{traces:?}");
    let trace = id.replace('-', "");
    for header in &traces {
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", trace.as_str(), "01"),
            "{header}"
        );
        assert!(parts[2].len() == 16 && parts[2].bytes().all(|byte| byte.is_ascii_hexdigit()));
    }
    assert_ne!(traces[0], traces[1], "one span per call");
    service.shutdown().await;
}
