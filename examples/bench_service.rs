//! Load benchmark of the orchestrator service (not a test): N runs started at
//! once over HTTP against an in-process fast legacy agent, measuring the
//! memory per in-flight run and the latency the service adds per step.
//!
//! `cargo run --example bench_service -- [RUNS] [AGENT_DELAY_MS] [STEPS]`
//! (defaults 1000, 200, 3), or `scripts/bench-service.sh`.
//!
//! Memory per run: (peak resident memory while all runs are in flight minus
//! the resident memory before) / RUNS. The agent lives in the same process,
//! so its share (one parked request per in-flight run) is included.
//! Added latency per step: (run duration from `created_at` to `completed_at`
//! minus STEPS x AGENT_DELAY_MS) / STEPS, from the stored timestamps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use pallet::agent::{AgentClient, StaticDiscovery};
use pallet::api::{self, AppState, ServiceOptions};
use pallet::engine::{DirectorySource, Engine};
use pallet::store::RunStore;
use serde_json::{Value, json};

struct Settings {
    runs: usize,
    delay: Duration,
    steps: usize,
}

fn settings() -> Settings {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u64| {
        args.next()
            .map(|text| {
                text.parse()
                    .expect("arguments are RUNS AGENT_DELAY_MS STEPS")
            })
            .unwrap_or(default)
    };
    Settings {
        runs: next(1000) as usize,
        delay: Duration::from_millis(next(200)),
        steps: next(3) as usize,
    }
}

/// A legacy-protocol agent whose one skill `work` waits, then echoes.
async fn start_agent(delay: Duration) -> String {
    // A backlog above the run count: every run's step connects at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8192).unwrap();
    let card = Json(
        json!({"name": "bench", "url": format!("http://{}", listener.local_addr().unwrap()), "skills": [{"id": "work", "description": "wait then echo"}]}),
    );
    let app = Router::new()
        .route("/agent-card", get(move || async move { card }))
        .route(
            "/execute",
            post(move |Json(request): Json<Value>| async move {
                tokio::time::sleep(delay).await;
                Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}))
            }),
        );
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Resident memory of this process in KiB (Linux).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

fn seconds_between(start: &str, end: &str) -> f64 {
    let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
    (parse(end) - parse(start)).num_microseconds().unwrap() as f64 / 1e6
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

#[tokio::main]
async fn main() {
    let settings = settings();
    let dir = tempfile::tempdir().unwrap();
    let steps: String = (0..settings.steps)
        .map(|index| {
            format!(
                "  - {{id: s{index}, skill: work, inputs: {{n: '{{{{ workflow.input.n }}}}'}}}}\n"
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("bench.yaml"),
        format!("metadata: {{id: bench, name: Bench, version: 1.0.0}}\nsteps:\n{steps}"),
    )
    .unwrap();
    let agent = start_agent(settings.delay).await;
    let engine = Engine {
        discovery: Arc::new(StaticDiscovery::new(vec![agent])),
        client: AgentClient::new(),
        workflows: Arc::new(DirectorySource::new(dir.path().to_path_buf())),
        events: None,
    };
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let state = AppState::new(store, engine, ServiceOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()
        .unwrap();

    // Warm up (connection, workflow lookup, agent card), then measure the baseline.
    run_batch(&client, &base, 1).await;
    let baseline = resident_kib();
    let started = Instant::now();
    let ids = run_batch(&client, &base, settings.runs).await;
    let accepted = started.elapsed();
    let mut peak = resident_kib();
    // Poll cheaply (one row) so the benchmark adds little load of its own.
    for _ in 0..6000 {
        peak = peak.max(resident_kib());
        let mut live = 0;
        for status in ["pending", "in_progress"] {
            let page: Value = client
                .get(format!("{base}/workflows?limit=1&status={status}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            live += page["runs"].as_array().map_or(0, Vec::len);
        }
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    let runs = all_runs(&client, &base).await;
    let ours: Vec<&Value> = runs
        .iter()
        .filter(|run| ids.contains(&run["id"].as_str().unwrap_or_default().to_string()))
        .collect();
    let completed = ours
        .iter()
        .filter(|run| run["status"] == "completed")
        .count();
    let expected = settings.delay.as_secs_f64() * settings.steps as f64;
    let mut added: Vec<f64> = ours
        .iter()
        .filter(|run| run["status"] == "completed")
        .map(|run| {
            let duration = seconds_between(
                run["created_at"].as_str().unwrap(),
                run["completed_at"].as_str().unwrap(),
            );
            (duration - expected) / settings.steps as f64 * 1000.0
        })
        .collect();
    added.sort_by(f64::total_cmp);
    println!("runs started at once      {}", settings.runs);
    println!(
        "completed                 {completed} (others: {})",
        ours.len() - completed
    );
    println!("all accepted (201) in     {:.2} s", accepted.as_secs_f64());
    println!("all finished in           {:.2} s", total.as_secs_f64());
    println!(
        "memory per in-flight run  {:.1} KiB (resident {} -> peak {} KiB)",
        peak.saturating_sub(baseline) as f64 / settings.runs as f64,
        baseline,
        peak
    );
    if let Some(run) = ours.iter().find(|run| run["status"] != "completed") {
        println!("first failure             {}", run["error"]);
    }
    if !added.is_empty() {
        println!(
            "added latency per step    median {:.1} ms, p95 {:.1} ms, max {:.1} ms (agent step {} ms, {} steps)",
            percentile(&added, 0.5),
            percentile(&added, 0.95),
            added[added.len() - 1],
            settings.delay.as_millis(),
            settings.steps
        );
    }
}

/// Start `count` runs at once; their ids.
async fn run_batch(client: &reqwest::Client, base: &str, count: usize) -> Vec<String> {
    let posts = (0..count).map(|n| {
        let client = client.clone();
        let url = format!("{base}/workflows");
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"workflow": "bench", "input": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::CREATED);
            let run: Value = response.json().await.unwrap();
            run["id"].as_str().unwrap().to_string()
        })
    });
    futures::future::join_all(posts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Every run, following the cursor.
async fn all_runs(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/workflows?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return runs,
        }
    }
}
