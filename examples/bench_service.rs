//! Load benchmark of the orchestrator service (issue 6, part 4; not a test).
//!
//! `cargo run --example bench_service -- [RUNS] [AGENT_DELAY_MS] [STEPS]`
//! (defaults 1000, 200, 3) measures one size; `-- --sizes 1000,10000
//! [AGENT_DELAY_MS] [STEPS]` measures each size in a fresh process and prints
//! a table, also written to `target/bench/service.md` and `service.json`.
//! `scripts/bench-service.sh` runs either.
//!
//! The service runs in this process on a fresh database; the agent (legacy
//! protocol, one skill `work`) runs in a child process (this example with
//! `--agent`), so the memory and file descriptors measured are the service's.
//! The agent holds every call until the benchmark releases it, then waits
//! AGENT_DELAY_MS and echoes. It records when each call arrives and when it
//! answers (wall clock, microseconds). What is reported:
//!
//! - **runs accepted per second**: RUNS / the time until every
//!   `POST /workflows` got its 201 (at most 256 requests in flight);
//! - **added latency to the first agent call**: from just before a run's
//!   `POST /workflows` is sent to its first step's call arriving at the agent;
//! - **memory per in-flight run**: once all RUNS first calls wait in the agent,
//!   (resident memory − resident memory before the batch) / RUNS. With
//!   `PALLET_AGENT_MAX_CONNECTIONS=N` set, the cap is kept: once N calls wait
//!   in the agent and memory has settled (the other runs wait for a
//!   connection), the same quotient; give AGENT_DELAY_MS 0 then, as N calls
//!   at a time work off the rest;
//! - **runs completed per second**: RUNS / the time from the release until
//!   no run is pending or in progress (polled every 250 ms, so a lower bound);
//! - **added latency per step**: from the agent's answer to step k to the
//!   arrival of step k+1's call, after the release.
//!
//! Both processes raise their soft open-file limit to the hard limit: each
//! waiting run holds one connection to the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use pallet::agent::StaticDiscovery;
use pallet::api::{self, AppState, ServiceOptions};
use pallet::engine::Engine;
use pallet::store::RunStore;
use pallet::workflow::DirectorySource;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

/// POSTs in flight at once: enough to keep the service busy, few enough that
/// the benchmark's own connections do not eat the open-file limit.
const POSTS_IN_FLIGHT: usize = 256;

struct Settings {
    sizes: Vec<usize>,
    table: bool,
    delay_ms: u64,
    steps: usize,
    /// The per-agent cap on requests in flight: the caller's
    /// (`PALLET_AGENT_MAX_CONNECTIONS`), else lifted (every run holds a call).
    cap: usize,
}

fn settings(mut args: Vec<String>) -> Settings {
    let table = args.first().is_some_and(|arg| arg == "--sizes");
    let sizes = if table {
        args.remove(0);
        let list = args.remove(0);
        list.split(',')
            .map(|size| size.parse().expect("--sizes N,N,..."))
            .collect()
    } else {
        vec![
            args.first()
                .map_or(1000, |runs| runs.parse().expect("RUNS")),
        ]
    };
    let rest = if table {
        &args[..]
    } else {
        args.get(1..).unwrap_or(&[])
    };
    let number = |index: usize, default: u64| {
        rest.get(index)
            .map_or(default, |text| text.parse().expect("AGENT_DELAY_MS STEPS"))
    };
    Settings {
        sizes,
        table,
        delay_ms: number(0, 200),
        steps: number(1, 3) as usize,
        // Read after `main` lifted it, unless the caller set it.
        cap: pallet::agent::max_connections(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let limit = raise_open_file_limit();
    // The test agent holds every call until all runs wait on it, so the
    // per-agent cap on requests in flight (16 by default) is lifted to admit
    // them all, as it must be for a service whose runs wait on one slow agent.
    // A cap set by the caller is kept: then that many calls wait in the
    // agent and the other runs wait for a connection.
    if std::env::var_os(pallet::agent::MAX_CONNECTIONS_VARIABLE).is_none() {
        // SAFETY: no other thread runs yet (the runtime starts below).
        unsafe { std::env::set_var(pallet::agent::MAX_CONNECTIONS_VARIABLE, "1000000") };
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.first().is_some_and(|arg| arg == "--agent") {
        return runtime.block_on(agent::serve(args[1].parse().expect("--agent DELAY_MS")));
    }
    let settings = settings(args);
    if settings.table {
        return table(&settings);
    }
    let result = runtime.block_on(measure(settings.sizes[0], &settings, limit));
    if std::env::var_os("BENCH_SERVICE_JSON").is_some() {
        println!("{result}");
    } else {
        print_one(&result);
    }
}

/// Raises the soft limit on open files to the hard limit; the limit now.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// One size per child process (a fresh heap for each), then the table.
fn table(settings: &Settings) {
    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for size in &settings.sizes {
        eprintln!("measuring {size} runs at once ...");
        let output = std::process::Command::new(&exe)
            .args([
                size.to_string(),
                settings.delay_ms.to_string(),
                settings.steps.to_string(),
            ])
            .env("BENCH_SERVICE_JSON", "1")
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let result: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|_| panic!("the {size}-run measurement failed: {text}"));
        results.push(result);
    }
    let markdown = markdown(&results, settings);
    println!("{markdown}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("service.md"), &markdown).unwrap();
    std::fs::write(
        out.join("service.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    eprintln!("results in {}", out.display());
}

fn markdown(results: &[Value], settings: &Settings) -> String {
    let mut text = format!(
        "Service load: a {}-step workflow on a legacy agent that holds each call until all runs wait, then answers after {} ms. {} build.\n\n",
        settings.steps,
        settings.delay_ms,
        if cfg!(debug_assertions) {
            "Debug"
        } else {
            "Release"
        }
    );
    text.push_str("| runs at once | calls held at the agent | completed | accepted per second | completed per second | POST to first agent call, p50 / p99 (ms) | memory per in-flight run (KiB) | added latency per step, p50 / p99 (ms) | open-file limit |\n");
    text.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for result in results {
        text.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | {} |\n",
            result["runs"],
            result["calls_held_at_agent"],
            result["completed"],
            result["accepted_per_second"].as_f64().unwrap_or_default(),
            result["completed_per_second"].as_f64().unwrap_or_default(),
            result["first_call_ms"]["p50"].as_f64().unwrap_or_default(),
            result["first_call_ms"]["p99"].as_f64().unwrap_or_default(),
            result["kib_per_run"].as_f64().unwrap_or_default(),
            result["step_ms"]["p50"].as_f64().unwrap_or_default(),
            result["step_ms"]["p99"].as_f64().unwrap_or_default(),
            result["open_file_limit"],
        ));
    }
    text
}

fn print_one(result: &Value) {
    println!("{}", serde_json::to_string_pretty(result).unwrap());
}

fn workflow_text(steps: usize) -> String {
    let steps: String = (0..steps)
        .map(|index| {
            format!(
                "  - {{id: s{index}, skill: work, inputs: {{n: '{{{{ workflow.input.n }}}}', step: {index}}}}}\n"
            )
        })
        .collect();
    format!("metadata: {{id: bench, name: Bench, version: 1.0.0}}\nsteps:\n{steps}")
}

async fn measure(runs: usize, settings: &Settings, limit: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.yaml"), workflow_text(settings.steps)).unwrap();
    let agent = agent::Child::start(settings.delay_ms);
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url.clone()])),
        Arc::new(DirectorySource::new(dir.path().to_path_buf())),
    )
    .build();
    let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
    let state = AppState::new(
        std::sync::Arc::new(store),
        engine,
        ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(POSTS_IN_FLIGHT)
        .build()
        .unwrap();

    eprintln!("agent at {}, service at {base}", agent.url);
    // Warm up (connections, workflow lookup, agent card), then the baseline.
    wait_until_ended(&client, &base, &start_runs(&client, &base, 1, 0).await.0).await;
    agent.post(&client, "/hold").await;
    let baseline = resident_kib();
    let started = Instant::now();
    let (ids, sent_at) = start_runs(&client, &base, runs, 1).await;
    let accepted = started.elapsed();
    eprintln!("{runs} runs accepted in {:.1} s", accepted.as_secs_f64());
    let at_agent = settings.cap.min(runs);
    let waiting = agent.wait_for_calls(&client, at_agent, 0).await;
    if at_agent < runs {
        // The others have no call to show: wait until they are all parked.
        settle().await;
    }
    let in_flight = resident_kib();
    eprintln!("{waiting} first calls waiting in the agent; released");
    agent.post(&client, "/release").await;
    let released = Instant::now();
    let ended = wait_until_ended(&client, &base, &ids).await;
    let completing = released.elapsed();
    let calls = agent.calls(&client).await;
    let completed = ended.iter().filter(|run| run["status"] == "completed");
    let completed = completed.count();
    let failure = ended
        .iter()
        .find(|run| run["status"] != "completed")
        .map(|run| run["error"].clone());
    let mut first_call: Vec<f64> = sent_at
        .iter()
        .filter_map(|(n, sent)| Some((calls.get(&(*n, 0))?.0 - sent) as f64 / 1000.0))
        .collect();
    let mut step: Vec<f64> = calls
        .iter()
        .filter(|((n, _), _)| *n > 0)
        .filter_map(|((n, index), (arrived, _))| {
            let previous = calls.get(&(*n, index.checked_sub(1)?))?;
            Some((arrived - previous.1) as f64 / 1000.0)
        })
        .collect();
    json!({
        "runs": runs,
        "completed": completed,
        "first_failure": failure,
        "accepted_per_second": runs as f64 / accepted.as_secs_f64(),
        "accepted_in_s": accepted.as_secs_f64(),
        "completed_per_second": completed as f64 / completing.as_secs_f64(),
        "first_calls_waiting": waiting,
        "calls_held_at_agent": at_agent,
        "first_call_ms": percentiles(&mut first_call),
        "kib_per_run": in_flight.saturating_sub(baseline) as f64 / runs as f64,
        "resident_kib": {"before": baseline, "all_waiting": in_flight},
        "step_ms": percentiles(&mut step),
        "agent_delay_ms": settings.delay_ms,
        "steps": settings.steps,
        "open_file_limit": limit,
    })
}

fn percentiles(values: &mut [f64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let at = |fraction: f64| values[((values.len() - 1) as f64 * fraction).round() as usize];
    json!({"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "count": values.len()})
}

/// Waits (at most 60 s) until resident memory grows by less than 0.2 %
/// in half a second: the runs not at the agent have reached their wait.
async fn settle() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = resident_kib();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = resident_kib();
        if now.abs_diff(last) * 500 < last {
            return;
        }
        last = now;
    }
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

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Starts `count` runs numbered from `first`; their ids and when each POST was sent.
async fn start_runs(
    client: &reqwest::Client,
    base: &str,
    count: usize,
    first: usize,
) -> (Vec<String>, Vec<(u64, i64)>) {
    let gate = Arc::new(Semaphore::new(POSTS_IN_FLIGHT));
    let posts = (first..first + count).map(|n| {
        let (client, gate) = (client.clone(), gate.clone());
        let url = format!("{base}/workflows");
        tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let sent = now_micros();
            let response = client
                .post(url)
                .json(&json!({"workflow": "bench", "input": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::CREATED);
            let run: Value = response.json().await.unwrap();
            (run["id"].as_str().unwrap().to_string(), (n as u64, sent))
        })
    });
    futures::future::join_all(posts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .unzip()
}

/// Polls (cheaply: one row per status) until no run is pending or in
/// progress; then the final records of `ids`.
async fn wait_until_ended(client: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while Instant::now() < deadline {
        let mut live = 0;
        for status in ["pending", "in_progress"] {
            let url = format!("{base}/workflows?limit=1&status={status}");
            let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            live += page["runs"].as_array().map_or(0, Vec::len);
        }
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let runs = all_runs(client, base).await;
    let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    runs.into_iter()
        .filter(|run| run["id"].as_str().is_some_and(|id| ids.contains(id)))
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

/// The test agent: a child process, so its memory and sockets are not the service's.
mod agent {
    use super::*;

    /// (run number, step index) -> (arrived, answered), microseconds since the epoch.
    type Calls = HashMap<(u64, u64), (i64, i64)>;

    #[derive(Clone)]
    struct Shared {
        calls: Arc<Mutex<Calls>>,
        /// `true` while calls are held.
        held: watch::Sender<bool>,
        delay: Duration,
    }

    pub async fn serve(delay_ms: u64) {
        // A backlog above what one batch opens at once (the kernel caps it at somaxconn).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(65535).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let card = json!({"name": "bench", "url": url, "skills": [{"id": "work", "description": "wait then echo"}]});
        let shared = Shared {
            calls: Arc::default(),
            held: watch::channel(false).0,
            delay: Duration::from_millis(delay_ms),
        };
        let app = Router::new()
            .route("/agent-card", get(move || async move { Json(card) }))
            .route("/execute", post(execute))
            .route(
                "/hold",
                post(|State(shared): State<Shared>| async move {
                    shared.held.send_replace(true);
                }),
            )
            .route(
                "/release",
                post(|State(shared): State<Shared>| async move {
                    shared.held.send_replace(false);
                }),
            )
            .route("/calls", get(calls))
            .with_state(shared);
        println!("{url}");
        axum::serve(listener, app).await.unwrap();
    }

    async fn execute(State(shared): State<Shared>, Json(request): Json<Value>) -> Json<Value> {
        let arrived = now_micros();
        let key = (
            run_number(&request["params"]["n"]),
            request["params"]["step"].as_u64().unwrap_or_default(),
        );
        shared.calls.lock().unwrap().insert(key, (arrived, 0));
        let mut held = shared.held.subscribe();
        let _ = held.wait_for(|held| !held).await;
        tokio::time::sleep(shared.delay).await;
        let answered = now_micros();
        shared
            .calls
            .lock()
            .unwrap()
            .insert(key, (arrived, answered));
        Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}))
    }

    /// The run's number as the template rendered it (a number, or text).
    fn run_number(value: &Value) -> u64 {
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            .unwrap_or(u64::MAX)
    }

    async fn calls(State(shared): State<Shared>) -> Json<Value> {
        let calls = shared.calls.lock().unwrap();
        let list: Vec<Value> = calls
            .iter()
            .map(|((n, step), (arrived, answered))| json!([n, step, arrived, answered]))
            .collect();
        Json(Value::Array(list))
    }

    /// The agent process, stopped when dropped.
    pub struct Child {
        process: std::process::Child,
        pub url: String,
    }

    impl Child {
        pub fn start(delay_ms: u64) -> Child {
            let mut process = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--agent", &delay_ms.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            let stdout = process.stdout.take().unwrap();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
            Child {
                process,
                url: line.trim().to_string(),
            }
        }

        pub async fn post(&self, client: &reqwest::Client, path: &str) {
            let response = client
                .post(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }

        pub async fn calls(&self, client: &reqwest::Client) -> Calls {
            let list: Vec<(u64, u64, i64, i64)> = client
                .get(format!("{}/calls", self.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list.into_iter()
                .map(|(n, step, arrived, answered)| ((n, step), (arrived, answered)))
                .collect()
        }

        /// Waits (up to 10 minutes) until `count` runs' step `step` calls arrived; how many did.
        pub async fn wait_for_calls(
            &self,
            client: &reqwest::Client,
            count: usize,
            step: u64,
        ) -> usize {
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                let arrived = self
                    .calls(client)
                    .await
                    .keys()
                    .filter(|(n, index)| *index == step && *n > 0)
                    .count();
                if arrived >= count || Instant::now() > deadline {
                    return arrived;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}
