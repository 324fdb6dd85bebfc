//! Several `pallet serve` processes on one real PostgreSQL database (the
//! harness's own cluster) are one service: runs posted to any worker are
//! executed by some worker, a worker killed with SIGKILL loses its runs to
//! the others without a completed step being sent again, and approvals and
//! cancels reach the run wherever it executes. The agent is a real legacy
//! agent in this process that records every call it gets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::TestContext;
use crate::support::legacy_agent::LegacyAgent;
use crate::support::pallet::Spawned;
use crate::support::postgres::{TestDatabase, cluster};

const TWO_STEPS: &str = "metadata: {id: workers-test, name: Workers test, version: 1.0.0}
steps:
  - {id: one, skill: sleep, inputs: {ms: 10, n: '{{ workflow.input.n }}', step: one}}
  - {id: two, skill: echo, inputs: {n: '{{ workflow.input.n }}', step: two}}
";

const APPROVAL: &str = "metadata: {id: workers-approval, name: Workers approval, version: 1.0.0}
steps:
  - {id: draft, skill: echo, inputs: {text: draft}}
  - {id: review, step_type: approval, title: Ship it?}
  - {id: publish, skill: echo, inputs: {approved: '{{ steps.review.outputs.approved }}'}}
";

const SLOW: &str = "metadata: {id: workers-slow, name: Workers slow, version: 1.0.0}
steps:
  - {id: wait, skill: sleep, inputs: {ms: '{{ workflow.input.ms }}'}}
";

/// One `pallet serve` worker; killed with its group when dropped.
struct Worker {
    process: Spawned,
    base: String,
    /// What it logged (drained all along, so its pipe never fills).
    log: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn pid(&self) -> i32 {
        self.process.pid()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// The scratch directory, its workflows, the database and the agent the workers share.
struct Setup {
    dir: TestContext,
    db: TestDatabase,
    agent: LegacyAgent,
}

impl Setup {
    async fn new() -> Setup {
        let dir = TestContext::new();
        for (name, text) in [
            ("two.yaml", TWO_STEPS),
            ("approval.yaml", APPROVAL),
            ("slow.yaml", SLOW),
        ] {
            dir.write(format!("workflows/{name}"), text);
        }
        Setup {
            dir,
            db: cluster().database(),
            agent: LegacyAgent::start("workers-agent", &[]).await,
        }
    }

    /// A worker executing at most `max_active` runs at once.
    fn worker(&self, max_active: u32) -> Worker {
        self.worker_with(max_active, &[])
    }

    /// [`Setup::worker`] with more arguments of `pallet serve`.
    fn worker_with(&self, max_active: u32, more: &[&str]) -> Worker {
        let mut process = Spawned::spawn(
            self.dir
                .pallet()
                .args(["serve", "--offline", "--addr", "127.0.0.1:0", "--db"])
                .arg(&self.db.url)
                .arg("--workflows-dir")
                .arg(self.dir.join("workflows"))
                .args(["--agent", &self.agent.url()])
                .args(["--max-active-runs", &max_active.to_string()])
                .args(more)
                .env("RUST_LOG", "pallet=info")
                .stderr(std::process::Stdio::piped()),
        );
        let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("the worker stopped before serving:\n{}", seen.join("\n"));
            };
            if let Some(rest) = line.strip_prefix("serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            seen.push(line);
        };
        let log = Arc::new(Mutex::new(seen));
        let drained = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                drained.lock().unwrap().push(line);
            }
        });
        Worker { process, base, log }
    }

    fn sql(&self, query: &str) -> String {
        cluster().psql(self.db.name(), query)
    }

    fn count(&self, query: &str) -> usize {
        self.sql(query)
            .parse()
            .unwrap_or_else(|_| panic!("a count: {query}"))
    }
}

async fn post(client: &reqwest::Client, base: &str, body: &Value) -> Result<Value, String> {
    let response = client
        .post(format!("{base}/workflows"))
        .json(body)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|error| error.to_string())?;
    match status.as_u16() {
        201 => Ok(body),
        _ => Err(format!("{status}: {body}")),
    }
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `done` every 50 ms for at most `limit`; panics with `what` and `log` after.
async fn wait_until(
    limit: Duration,
    what: &str,
    log: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what} within {limit:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_complete_2000_runs_though_one_is_killed_midway() {
    const RUNS: usize = 2000;
    const MAX_ACTIVE: u32 = 40;
    let setup = Setup::new().await;
    let mut workers: Vec<Worker> = (0..3).map(|_| setup.worker(MAX_ACTIVE)).collect();
    let client = crate::support::http_client();
    let bases = Arc::new(Mutex::new(
        workers
            .iter()
            .map(|worker| worker.base.clone())
            .collect::<Vec<_>>(),
    ));

    // Posted round-robin, 16 at a time, in the background; a post the killed
    // worker cannot answer goes to the next worker.
    let posting = {
        let (client, bases) = (client.clone(), bases.clone());
        tokio::spawn(
            futures::stream::iter(0..RUNS)
                .map(move |n| {
                    let (client, bases) = (client.clone(), bases.clone());
                    async move {
                        let body = json!({"workflow": "workers-test", "input": {"n": n}});
                        let mut last = String::new();
                        for offset in 0..9 {
                            let base = {
                                let bases = bases.lock().unwrap();
                                bases[(n + offset) % bases.len()].clone()
                            };
                            match post(&client, &base, &body).await {
                                Ok(run) => return run["id"].as_str().unwrap().to_string(),
                                Err(error) => last = error,
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        panic!("run {n} could not be posted: {last}");
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<String>>(),
        )
    };

    // Killed mid-load while it holds leases: it has runs in flight.
    let victim = workers[1].pid();
    let holds = format!("SELECT count(*) FROM run_leases WHERE pid = {victim}");
    wait_until(
        Duration::from_secs(120),
        "worker 1 executes runs mid-load",
        || workers[1].log(),
        || setup.count("SELECT count(*) FROM runs") >= RUNS / 4 && setup.count(&holds) > 0,
    )
    .await;
    workers[1].process.signal(libc::SIGKILL);
    let killed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let _ = workers[1].process.wait();
    // At most what it could execute at once was orphaned (its leases are
    // taken over at once: its process is gone).
    let orphaned = MAX_ACTIVE as usize;
    workers[1] = setup.worker(MAX_ACTIVE);
    bases.lock().unwrap()[1] = workers[1].base.clone();
    let ids = posting.await.unwrap();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), RUNS);

    let logs = || {
        let tails: Vec<String> = workers
            .iter()
            .map(|worker| {
                let log = worker.log();
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            })
            .collect();
        format!(
            "runs: {}\nattempts: {}\nleases: {}\n{}",
            setup.sql("SELECT status, count(*) FROM runs GROUP BY 1"),
            setup.sql("SELECT status, count(*) FROM step_attempts GROUP BY 1"),
            setup.sql("SELECT pid, count(*) FROM run_leases GROUP BY 1"),
            tails.join("\n---\n")
        )
    };
    // A post whose worker died after creating the run and before answering
    // was sent again: that input has two runs (the client's retry, not the service's).
    wait_until(
        Duration::from_secs(300),
        "every run completes",
        logs,
        || {
            setup.count("SELECT count(*) FROM runs WHERE status <> 'completed'") == 0
                && setup.count("SELECT count(DISTINCT input) FROM runs") == RUNS
        },
    )
    .await;
    let total = setup.count("SELECT count(*) FROM runs");
    let runs_of: BTreeMap<String, usize> = setup
        .sql("SELECT input::json->>'n', count(*) FROM runs GROUP BY 1")
        .lines()
        .map(|line| {
            let (n, count) = line.split_once('|').unwrap();
            (n.to_string(), count.parse().unwrap())
        })
        .collect();

    // At the agent: every step of every run arrived under one idempotency
    // key of its own; a key that came twice is a step that was in flight when
    // its worker died, sent again by the worker that took the run over.
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut by_key: BTreeMap<String, ((String, String), usize)> = BTreeMap::new();
    for (key, params) in setup.agent.sent() {
        assert!(
            !key.is_empty(),
            "a call without an idempotency key: {params}"
        );
        let step = (text(&params["n"]), text(&params["step"]));
        let entry = by_key.entry(key).or_insert((step.clone(), 0));
        assert_eq!(entry.0, step, "one key for two steps");
        entry.1 += 1;
    }
    let mut keys_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (step, _) in by_key.values() {
        *keys_of.entry(step.clone()).or_default() += 1;
    }
    assert_eq!(keys_of.len(), 2 * RUNS, "every step reached the agent");
    for ((n, step), keys) in &keys_of {
        assert_eq!(
            *keys, runs_of[n],
            "step {step} of input {n}: one send (one key) per run"
        );
    }
    let resent: Vec<&(String, String)> = by_key
        .values()
        .filter(|(_, sends)| *sends > 1)
        .map(|(step, _)| step)
        .collect();
    assert!(
        by_key.values().all(|(_, sends)| *sends <= 2),
        "a step sent three times"
    );
    // Only steps in flight at the kill: none that had completed before it
    // (a step's start may not be written yet when it is sent, see
    // `runs::journal`, so an in-flight step need not have an attempt row).
    assert!(
        resent.len() <= orphaned,
        "{} steps sent again, at most {orphaned} runs were orphaned",
        resent.len()
    );
    let completed_at: BTreeMap<(String, String), String> = setup
        .sql("SELECT r.input::json->>'n', a.step_id, max(a.ended_at) FROM step_attempts a JOIN runs r ON r.id = a.run_id WHERE a.status = 'completed' GROUP BY 1, 2")
        .lines()
        .map(|line| {
            let mut fields = line.split('|');
            let mut next = || fields.next().unwrap().to_string();
            ((next(), next()), next())
        })
        .collect();
    for step in &resent {
        assert!(
            completed_at[*step] > killed_at,
            "{step:?} completed at {} before the kill at {killed_at}, and was sent again",
            completed_at[*step]
        );
    }

    // In the database: every run's history and attempts are whole.
    assert!(
        total - RUNS <= orphaned + 16,
        "{total} runs for {RUNS} posts"
    );
    assert_eq!(
        setup.count("SELECT count(*) FROM step_attempts WHERE status = 'completed'"),
        2 * total
    );
    assert_eq!(
        setup.count("SELECT count(*) FROM (SELECT run_id, step_id FROM step_attempts WHERE status = 'completed' GROUP BY 1, 2 HAVING count(*) > 1) twice"),
        0
    );
    assert_eq!(
        setup.count("SELECT count(*) FROM runs r WHERE (SELECT string_agg(to_status, ',' ORDER BY id) FROM transitions t WHERE t.run_id = r.id) <> 'pending,in_progress,completed'"),
        0,
        "every history is created, started, completed"
    );
    assert_eq!(
        setup.count("SELECT count(*) FROM step_attempts WHERE status = 'running'"),
        0
    );
    assert_eq!(
        setup.count("SELECT count(*) FROM run_leases"),
        0,
        "no lease is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_decided_on_another_worker_continues_the_run() {
    let setup = Setup::new().await;
    let (first, second) = (setup.worker(10), setup.worker(10));
    let client = crate::support::http_client();
    let run = post(
        &client,
        &first.base,
        &json!({"workflow": "workers-approval"}),
    )
    .await
    .unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let status = |base: &str| {
        let url = format!("{base}/workflows/{id}");
        let client = client.clone();
        async move {
            get(&client, url).await["status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let started = Instant::now();
    while status(&second.base).await != "waiting_approval" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let decided = client
        .post(format!("{}/workflows/{id}/advance", second.base))
        .json(&json!({"trigger": "human_approved", "phase_result": {"actor": "ada"}}))
        .send()
        .await
        .unwrap();
    assert!(
        decided.status().is_success(),
        "{}",
        decided.text().await.unwrap()
    );
    while status(&first.base).await != "completed" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}\n---\n{}",
            first.log(),
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = get(&client, format!("{}/workflows/{id}", first.base)).await;
    assert_eq!(shown["context"]["publish"]["approved"], true, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_another_worker_stops_the_execution() {
    let setup = Setup::new().await;
    let (first, second) = (setup.worker(10), setup.worker(10));
    let client = crate::support::http_client();
    let run = post(
        &client,
        &first.base,
        &json!({"workflow": "workers-slow", "input": {"ms": 60000}}),
    )
    .await
    .unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let running =
        format!("SELECT count(*) FROM step_attempts WHERE run_id = '{id}' AND status = 'running'");
    wait_until(
        Duration::from_secs(30),
        "the step runs",
        || first.log(),
        || setup.count(&running) == 1,
    )
    .await;
    let executor = setup.sql(&format!("SELECT pid FROM run_leases WHERE run_id = '{id}'"));
    let cancelled = client
        .post(format!("{}/workflows/{id}/cancel", second.base))
        .send()
        .await
        .unwrap();
    assert!(
        cancelled.status().is_success(),
        "{}",
        cancelled.text().await.unwrap()
    );
    // The executor's engine stops, records its attempt as cancelled and
    // gives the lease up, long before the agent's minute is over.
    let stopped = format!(
        "SELECT count(*) FROM step_attempts WHERE run_id = '{id}' AND status = 'cancelled'"
    );
    let logs = || format!("{}\n---\n{}", first.log(), second.log());
    wait_until(
        Duration::from_secs(10),
        "the executing worker stops the step",
        logs,
        || {
            setup.count(&stopped) == 1
                && setup.count(&format!(
                    "SELECT count(*) FROM run_leases WHERE run_id = '{id}'"
                )) == 0
        },
    )
    .await;
    let executed_by = [&first, &second]
        .into_iter()
        .find(|worker| worker.pid().to_string() == executor)
        .unwrap();
    assert!(
        executed_by.log().contains("its execution here stops"),
        "{}",
        executed_by.log()
    );
    assert_eq!(
        setup.sql(&format!("SELECT status FROM runs WHERE id = '{id}'")),
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_posted_to_a_full_worker_is_executed_by_another() {
    let setup = Setup::new().await;
    let full = setup.worker(1);
    let client = crate::support::http_client();
    let busy = post(
        &client,
        &full.base,
        &json!({"workflow": "workers-slow", "input": {"ms": 60000}}),
    )
    .await
    .unwrap();
    let busy = busy["id"].as_str().unwrap().to_string();
    let leased = |id: &str| setup.sql(&format!("SELECT pid FROM run_leases WHERE run_id = '{id}'"));
    wait_until(
        Duration::from_secs(30),
        "the first run executes",
        || full.log(),
        || !leased(&busy).is_empty(),
    )
    .await;
    // No room on `full`: the run is accepted and queued, and nobody executes it yet.
    let queued = post(
        &client,
        &full.base,
        &json!({"workflow": "workers-slow", "input": {"ms": 10}}),
    )
    .await
    .unwrap();
    let queued = queued["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        setup.sql(&format!("SELECT status FROM runs WHERE id = '{queued}'")),
        "in_progress"
    );
    assert_eq!(
        leased(&queued),
        "",
        "queued, not executed, while no worker has room"
    );
    // A worker with room claims it.
    let idle = setup.worker(4);
    wait_until(
        Duration::from_secs(30),
        "the idle worker executes the queued run",
        || idle.log(),
        || setup.sql(&format!("SELECT status FROM runs WHERE id = '{queued}'")) == "completed",
    )
    .await;
    assert!(
        idle.log().contains(&format!("run {queued} claimed")),
        "{}",
        idle.log()
    );
    assert!(
        !full.log().contains(&format!("run {queued} claimed")),
        "{}",
        full.log()
    );
}

/// `pallet run`, `runs`, `approve` and `cancel` against the PostgreSQL database of the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_records_in_and_reads_from_postgres() {
    let setup = Setup::new().await;
    let agent = setup.agent.url();
    let pallet = |arguments: &[&str]| {
        let output = setup
            .dir
            .pallet()
            .args(arguments)
            .args(["--db", &setup.db.url])
            .output()
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let file = setup.dir.join("workflows/approval.yaml");
    let file = file.to_str().unwrap();
    // The agent answers on the runtime's other threads meanwhile.
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        pallet(&[
            "run",
            "--offline",
            "--file",
            file,
            "--agent",
            &agent,
            "--json",
        ])
    });
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let record: Value = serde_json::from_str(&stdout).unwrap();
    let id = record["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"))
        .to_string();
    assert_eq!(
        setup.sql(&format!("SELECT status FROM runs WHERE id = '{id}'")),
        "waiting_approval"
    );

    let listed =
        tokio::task::block_in_place(|| pallet(&["runs", "--status", "waiting_approval", "--json"]));
    assert!(listed.1.contains(&id), "{listed:?}");

    let approved =
        tokio::task::block_in_place(|| pallet(&["approve", &id, "--offline", "--agent", &agent]));
    assert_eq!(approved.0, Some(0), "{approved:?}");
    assert_eq!(
        setup.sql(&format!("SELECT status FROM runs WHERE id = '{id}'")),
        "completed"
    );
    assert_eq!(
        setup.sql(&format!(
            "SELECT string_agg(to_status, ',' ORDER BY id) FROM transitions WHERE run_id = '{id}'"
        )),
        "pending,in_progress,waiting_approval,in_progress,completed"
    );
}

#[test]
fn a_postgres_url_nobody_answers_is_a_clear_error() {
    let dir = TestContext::new();
    // A free port: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://pallet:secret@127.0.0.1:{port}/runs");
    let output = dir.pallet().args(["runs", "--db", &url]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot connect to the run database postgres://pallet:***@127.0.0.1:{port}/runs"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password is not shown: {stderr}"
    );
    assert!(stderr.contains("check that the server runs"), "{stderr}");
}

/// A claimed run whose stored workflow does not load in the claiming worker
/// (as when an older worker meets a run a newer one started) is tried a
/// bounded number of times, then left with the reason for a human, instead
/// of being claimed again on every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_workflow_does_not_load_is_left_with_the_reason() {
    let setup = Setup::new().await;
    let full = setup.worker(1);
    let client = crate::support::http_client();
    let slow = json!({"workflow": "workers-slow", "input": {"ms": 60000}});
    let busy = post(&client, &full.base, &slow).await.unwrap();
    let busy = busy["id"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "the first run executes",
        || full.log(),
        || {
            setup.count(&format!(
                "SELECT count(*) FROM run_leases WHERE run_id = '{busy}'"
            )) == 1
        },
    )
    .await;
    let queued = post(&client, &full.base, &slow).await.unwrap();
    let queued = queued["id"].as_str().unwrap().to_string();
    // What a newer pallet might store: a workflow this one cannot read.
    setup.sql(&format!(
        "UPDATE runs SET workflow_yaml = 'metadata: [unclosed' WHERE id = '{queued}'"
    ));
    let other = setup.worker(4);
    let column = |name: &str| setup.sql(&format!("SELECT {name} FROM runs WHERE id = '{queued}'"));
    wait_until(
        Duration::from_secs(30),
        "the reason is recorded on the run",
        || other.log(),
        || !column("error").is_empty(),
    )
    .await;
    // Ten claim ticks later, still no more tries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let claims = other
        .log()
        .matches(&format!("run {queued} claimed"))
        .count();
    assert_eq!(claims, 2, "tried twice, then left alone:\n{}", other.log());
    assert_eq!(column("executor_starts"), "2");
    assert_eq!(column("status"), "in_progress");
    let error = column("error");
    for part in [
        "workflow",
        "this worker cannot execute the run",
        "pallet resume",
    ] {
        assert!(error.contains(part), "{part:?} in {error:?}");
    }
    assert_eq!(
        setup.count(&format!(
            "SELECT count(*) FROM run_leases WHERE run_id = '{queued}'"
        )),
        0,
        "no lease left behind"
    );
    assert_eq!(
        setup.agent.calls("sleep"),
        1,
        "only the first run called the agent"
    );
}

/// A worker whose renewals fail (here: another session holds the run's rows
/// locked, so each renewal times out) stops executing the run before its
/// lease can expire, so that no other worker takes the run over while it
/// still executes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_renew_a_lease_stops_before_it_expires() {
    let setup = Setup::new().await;
    let worker = setup.worker(4);
    let client = crate::support::http_client();
    let run = post(
        &client,
        &worker.base,
        &json!({"workflow": "workers-slow", "input": {"ms": 120000}}),
    )
    .await
    .unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let lease = |column: &str| {
        setup.sql(&format!(
            "SELECT {column} FROM run_leases WHERE run_id = '{id}'"
        ))
    };
    wait_until(
        Duration::from_secs(30),
        "the run executes",
        || worker.log(),
        || !lease("expires_at").is_empty(),
    )
    .await;
    // Blocked right after a renewal: the worst case, a whole renewal period
    // less before the expiry than when blocked before the first one.
    wait_until(
        Duration::from_secs(30),
        "the lease is renewed",
        || worker.log(),
        || lease("renewed_at") != lease("acquired_at"),
    )
    .await;
    let expires_at = chrono::DateTime::parse_from_rfc3339(&lease("expires_at")).unwrap();
    // The sync client runs its own runtime: on a thread of its own.
    let (url, run_id) = (setup.db.url.clone(), id.clone());
    let (unlock, unlocked) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let blocker = std::thread::spawn(move || {
        let mut session = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let mut transaction = session.transaction().unwrap();
        for table in ["runs WHERE id", "run_leases WHERE run_id"] {
            let sql = format!("SELECT 1 FROM {table} = $1 FOR UPDATE");
            transaction.query(&sql, &[&run_id]).unwrap();
        }
        locked.send(()).unwrap();
        let _ = unlocked.recv();
        transaction.rollback().unwrap();
    });
    is_locked.recv().unwrap();
    let stopped = "stopping its execution here before the lease expires";
    wait_until(
        Duration::from_secs(40),
        "the worker gives the run up",
        || worker.log(),
        || worker.log().contains(stopped),
    )
    .await;
    let now = chrono::Utc::now();
    unlock.send(()).unwrap();
    blocker.join().unwrap();
    assert!(
        now < expires_at,
        "stopped at {now}, after the lease's expiry {expires_at}:\n{}",
        worker.log()
    );
    // Once the database answers again, the stopped step was left for the
    // next execution (not recorded as cancelled), which sends it again
    // under the same idempotency key.
    let attempts = || {
        setup.sql(&format!(
            "SELECT string_agg(status, ',' ORDER BY id) FROM step_attempts WHERE run_id = '{id}'"
        ))
    };
    wait_until(
        Duration::from_secs(40),
        "the run is executed again",
        || format!("{}\n{}", attempts(), worker.log()),
        || attempts() == "interrupted,running" && setup.agent.sent().len() == 2,
    )
    .await;
    let keys: Vec<String> = setup.agent.sent().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys[0], keys[1], "the same Idempotency-Key");
    assert_eq!(
        setup.sql(&format!("SELECT status FROM runs WHERE id = '{id}'")),
        "in_progress"
    );
}

/// The queue of a shared database is bounded: a worker without room stores
/// new runs for the others only while fewer than `--max-queued-runs` wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_worker_refuses_runs_past_the_queue_bound() {
    let setup = Setup::new().await;
    let full = setup.worker_with(1, &["--max-queued-runs", "2"]);
    let client = crate::support::http_client();
    let slow = json!({"workflow": "workers-slow", "input": {"ms": 60000}});
    post(&client, &full.base, &slow).await.unwrap();
    for queued in 1..=2 {
        post(&client, &full.base, &slow)
            .await
            .unwrap_or_else(|error| panic!("queued run {queued}: {error}"));
    }
    let response = client
        .post(format!("{}/workflows", full.base))
        .json(&slow)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    let detail = body.to_string();
    for part in ["2 runs already wait", "--max-queued-runs", "retry later"] {
        assert!(detail.contains(part), "{part:?} in {detail}");
    }
    assert_eq!(
        setup.count("SELECT count(*) FROM runs"),
        3,
        "the refused run is not stored"
    );
}
