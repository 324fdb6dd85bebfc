//! The service under attack, over real sockets on loopback: heavy requests
//! must not freeze it, slow or idle connections must not exhaust it, load is
//! refused with 429 before memory runs out, a broken store shows in
//! `/health`, bad references are client errors, and tokens are checked as
//! RFC 6750 says.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pallet::agent::StaticDiscovery;
use pallet::api::{AdmissionLimits, AppState, ServiceOptions};
use pallet::engine::Engine;
use pallet::registry::{Provenance, Registry, RegistryOptions, RegistrySource};
use pallet::store::RunStore;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{SKILLS, start};
use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::process::{Running, output_within};
use crate::support::registry::TestRegistry;

fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let options = ServiceOptions {
        token: Some(TOKEN.to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let client = http_client();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = client
            .get(format!("{}/workflows", service.base))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let response = client
        .get(format!("{}/workflows", service.base))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    service.shutdown().await;
}

/// A whitespace-only, one-character or spaced token does not guard a
/// service listening beyond loopback: `pallet serve` refuses to start.
#[tokio::test]
async fn pallet_serve_refuses_weak_tokens_beyond_loopback() {
    let home = TestContext::new();
    for (token, problem) in [
        ("   ", "contains whitespace"),
        ("x", "has 1 characters; it needs at least 16"),
        ("0123456789 abcdef", "contains whitespace"),
    ] {
        let mut command = home.pallet();
        command
            .args(["serve", "--offline", "--addr", "0.0.0.0:0"])
            .env("PALLET_API_TOKEN", token);
        let output =
            tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(10)))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("pallet serve started with token {token:?}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{token:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "refusing to listen on 0.0.0.0:0: PALLET_API_TOKEN {problem}"
            )),
            "{token:?}: {stderr}"
        );
        assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
    }
}

/// A workflow that waits for approval first (so its runs do not execute
/// thousands of steps) and is big enough that loading it takes a while.
fn heavy_workflow(steps: usize) -> String {
    let mut text = String::from(
        "metadata: {id: heavy-v1, name: Heavy, version: 1.0.0}\nsteps:\n  - {id: gate, step_type: approval, title: Go?}\n",
    );
    for index in 0..steps {
        let previous = match index {
            0 => "workflow.input.requirements".to_string(),
            _ => format!("steps.s{}.outputs.result", index - 1),
        };
        text.push_str(&format!(
            "  - {{id: s{index}, skill: echo, inputs: {{x: '{{{{ {previous} }}}}', y: '{{{{ steps.gate.outputs.approved }}}}'}}}}\n"
        ));
    }
    text
}

/// Served in-process over a real registry (every POST pulls and loads the
/// workflow again), on a runtime of two threads as on a small machine.
async fn start_over_registry(
    agent: &LegacyAgent,
    registry: &TestRegistry,
    dir: &Path,
    options: ServiceOptions,
) -> (
    String,
    oneshot::Sender<()>,
    JoinHandle<Result<(), pallet::api::ApiError>>,
) {
    let registry = Arc::new(
        Registry::new(RegistryOptions::new(&registry.address, dir.join("cache"))).unwrap(),
    );
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url()])),
        Arc::new(RegistrySource::new(registry, false)),
    )
    .build();
    let store = RunStore::open(&dir.join("runs.db")).unwrap();
    let state = AppState::new(std::sync::Arc::new(store), engine, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(pallet::api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    (base, stop, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_heavy_workflows_load() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let test_registry = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heavy.yaml");
    std::fs::write(&file, heavy_workflow(5000)).unwrap();
    let pusher = Registry::new(RegistryOptions::new(
        &test_registry.address,
        dir.path().join("push-cache"),
    ))
    .unwrap();
    pusher
        .push_workflow_file(
            &file,
            Provenance::default(),
            pallet::registry::PushOptions {
                force: false,
                alias: true,
            },
        )
        .await
        .unwrap();
    let (base, stop, served) = start_over_registry(
        &agent,
        &test_registry,
        dir.path(),
        ServiceOptions::default(),
    )
    .await;
    let client = http_client();
    let posts: Vec<_> = (0..8)
        .map(|_| {
            let request = client
                .post(format!("{base}/workflows"))
                .json(&json!({"workflow": "heavy-v1", "input": {"requirements": "x"}}));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    while posts.iter().any(|post| !post.is_finished()) {
        let asked = Instant::now();
        let health = tokio::time::timeout(
            Duration::from_secs(30),
            client.get(format!("{base}/health")).send(),
        )
        .await
        .expect("health answers")
        .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), StatusCode::CREATED);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "/health took {slowest:?} while workflows loaded"
    );
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

/// `pallet serve` with few file descriptors (256, soft and hard), a low
/// connection limit and a short header timeout for the test.
fn serve_with_few_descriptors(home: &TestContext) -> (Running, String) {
    use std::os::unix::process::CommandExt;
    let mut command = home.pallet();
    command
        .args(["serve", "--offline", "--addr", "127.0.0.1:0"])
        .args(["--max-connections", "100", "--header-timeout", "2s"])
        .arg("--workflows-dir")
        .arg(home.join("none"))
        .arg("--db")
        .arg(home.join("runs.db"));
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    Running::until_line(command, "serving on ")
}

/// Sends the start of a request, then one header line every 300 ms, until
/// the server closes the connection; returns how long that took.
async fn drip(address: String) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.ok()?;
    let _ = stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: pallet\r\n")
        .await;
    let mut buffer = [0u8; 256];
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b"X-Drip: 1\r\n").await.is_err() {
            return Some(started.elapsed());
        }
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(started.elapsed());
        }
    }
    None
}

/// GET /health on fresh connections until one answers (bounded).
async fn health_within(base: &str, limit: Duration) -> Option<Duration> {
    let client = http_client_builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dripping_connections_neither_exhaust_nor_hold_the_service() {
    let home = TestContext::new();
    let (mut service, base) = serve_with_few_descriptors(&home);
    let address = base.trim_start_matches("http://").to_string();
    let drips: Vec<_> = (0..300)
        .map(|_| tokio::spawn(drip(address.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = health_within(&base, Duration::from_secs(8)).await;
    assert!(
        answered.is_some(),
        "/health never answered beside 300 dripping connections"
    );
    // Every dripping connection is closed: at once past the limit, else
    // after the header timeout (2 s), however slowly it keeps sending.
    for drip in drips {
        let closed = drip
            .await
            .unwrap()
            .expect("a dripping connection stays open");
        assert!(closed < Duration::from_secs(6), "{closed:?}");
    }
    let alone = drip(address.clone()).await.expect("closed");
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(6)).contains(&alone),
        "a dripping connection was closed after {alone:?}, not the 2 s header timeout"
    );
    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: pallet\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = vec![0u8; 4096];
    let mut answer = Vec::new();
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buffer))
            .await
            .expect("the idle connection is closed")
            .unwrap_or(0);
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let status = tokio::task::spawn_blocking(move || {
        let status = service.terminate(Duration::from_secs(10));
        drop(service);
        status
    })
    .await
    .unwrap();
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}

/// A store that refuses every new run (a real SQLite trigger, as a full disk
/// would): `/health` says so with 503 until a run is recorded again.
#[tokio::test]
async fn health_is_degraded_while_the_store_cannot_record_runs() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let service = start(&agent, dir.path(), ServiceOptions::default()).await;
    let (code, health) = service.get("/health").await;
    assert_eq!(
        (code, health["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    let database = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    database
        .execute_batch("CREATE TRIGGER full BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END;")
        .unwrap();
    let body = json!({"workflow": "fast-test", "input": {"requirements": "x"}});
    let (code, _) = service.post("/workflows", body.clone()).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    let (code, health) = service.get("/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "degraded");
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.contains("database or disk is full (test)"),
        "{reason}"
    );
    database.execute_batch("DROP TRIGGER full;").unwrap();
    let (code, _) = service.post("/workflows", body).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, health) = service.get("/health").await;
    assert_eq!(
        (code, health["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    service.shutdown().await;
}

/// A path or control characters where a workflow reference belongs is the
/// client's mistake: 422 naming `/workflow` and the accepted forms, and no
/// ERROR (nor raw escape sequence) in the service's log.
#[tokio::test]
async fn a_malformed_workflow_reference_is_a_client_error() {
    let home = TestContext::new();
    let mut command = home.pallet();
    command
        .args([
            "serve",
            "--offline",
            "--addr",
            "127.0.0.1:0",
            "--workflows-dir",
        ])
        .arg(home.join("none"))
        .arg("--db")
        .arg(home.join("runs.db"));
    let (service, base) = Running::until_line(command, "serving on ");
    let client = http_client();
    for reference in ["../../../etc/passwd", "demo\u{1b}[31m-v1", "demo@latest"] {
        let response = client
            .post(format!("{base}/workflows"))
            .json(&json!({"workflow": reference}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference:?}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["pointer"], "/workflow", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with("invalid `/workflow`: "), "{detail}");
        assert!(
            detail.contains("accepted forms: ID, ID@REQUIREMENT"),
            "{detail}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = service.stderr.lock().unwrap().join("\n");
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

async fn post_raw(base: &str, body: serde_json::Value) -> reqwest::Response {
    http_client()
        .post(format!("{base}/workflows"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Past the bound on executing runs, or on their inputs' bytes, a run is
/// refused with 429, `Retry-After` and the limit by name; once the runs
/// have finished, runs are accepted again. One input over its own cap is 413.
#[tokio::test]
async fn runs_past_the_admission_limits_are_refused_until_others_finish() {
    let agent = LegacyAgent::start("helper", &SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let options = ServiceOptions {
        admission: AdmissionLimits {
            max_active_runs: 2,
            max_inflight_input_bytes: 3_000,
            max_input_bytes: 2_000,
            ..AdmissionLimits::default()
        },
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let slow = |text: &str| json!({"workflow": "slow-test", "input": {"text": text}});
    let mut started = Vec::new();
    for _ in 0..2 {
        let (code, run) = service.post("/workflows", slow("x")).await;
        assert_eq!(code, StatusCode::CREATED, "{run}");
        started.push(run["id"].as_str().unwrap().to_string());
    }
    let refused = post_raw(&service.base, slow("x")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "2");
    let problem: serde_json::Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "2 runs are executing, the limit (--max-active-runs, PALLET_MAX_ACTIVE_RUNS)"
        ),
        "{detail}"
    );
    let oversized = post_raw(&service.base, slow(&"y".repeat(2_100))).await;
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    for id in &started {
        service.wait_for(id, "completed").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let big = "z".repeat(1_600);
    let (code, first) = service.post("/workflows", slow(&big)).await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let refused = post_raw(&service.base, slow(&big)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let problem: serde_json::Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("(--max-inflight-input-bytes, PALLET_MAX_INFLIGHT_INPUT_BYTES)"),
        "{detail}"
    );
    service
        .wait_for(first["id"].as_str().unwrap(), "completed")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, _) = service.post("/workflows", slow(&big)).await;
    assert_eq!(code, StatusCode::CREATED);
    service.shutdown().await;
}
