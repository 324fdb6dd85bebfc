//! Benchmark of `pallet serve` with several workers on one PostgreSQL
//! database (1, 2 and 3 workers), next to one worker on SQLite; not a test, it
//! asserts no timing. Run it through `scripts/bench-workers.sh [RUNS] [STEPS]`,
//! which builds it and the release `pallet` binary:
//!
//! `bench_workers [RUNS] [STEPS] [--pallet PATH] [--out DIR]`
//! (defaults 2000, 10, `target/release/pallet`, `target/bench`)
//!
//! It starts a PostgreSQL 15 cluster of its own (`pg_config --bindir`) in a
//! temp directory on a free loopback port, with the server's default
//! durability (fsync and synchronous commit on), and the benchmark harness's
//! echo agent (`bench/agent.rs`, legacy protocol) in this process, which
//! answers every call at once. It writes two workflows of skill `echo` (1 step
//! and STEPS steps, each step echoing the previous step's output). For each
//! configuration (SQLite with 1 worker, then PostgreSQL with 1, 2 and 3
//! workers, each on a fresh database) it starts the workers as child processes
//! (`pallet serve --offline --addr 127.0.0.1:0 ...`) and measures:
//!
//! - **runs/s accepted**: RUNS runs of the STEPS-step workflow posted
//!   round-robin over the workers, 64 requests in flight; RUNS / the time
//!   until every `POST /workflows` got its 201;
//! - **runs/s completed**: RUNS / the time from the first post until every one
//!   of those runs has ended (the database's run statuses, counted every 20 ms);
//! - **median latency** of 100 runs of each workflow one after another
//!   (interleaved, round-robin over the workers, each polled every 1 ms with
//!   `GET /workflows/{id}`): `completed_at - created_at` of the run as the
//!   service recorded it;
//! - **added ms per step**: (median STEPS steps - median 1 step) / (STEPS - 1).
//!
//! Each configuration first completes 10 runs per worker (connections, the
//! workflow's first load). At its end the database is audited: runs started by
//! more than one executor (`executor_starts > 1`) and step attempts beyond one
//! per step are noted under the table, as are runs that did not complete,
//! failed POSTs and worker output other than the startup and stop lines.
//!
//! The table is printed and written to OUT/workers.md, the figures to
//! OUT/workers.json, each worker's output to OUT/workers-logs/. Every process
//! it started is stopped at the end, also on an error or Ctrl-C: the workers by
//! their PIDs (they also get SIGTERM should this process die, PR_SET_PDEATHSIG),
//! PostgreSQL by its supervisor once this process's end of a pipe closes.

// The harness's agent; only its legacy card is used here.
#[allow(dead_code)]
#[path = "bench/agent.rs"]
mod agent;

// The tests' PostgreSQL harness; here with the server's default durability.
#[allow(dead_code)]
#[path = "../tests/integration/support/postgres.rs"]
mod cluster;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::DateTime;
use futures::StreamExt;
use serde_json::{Value, json};

/// `POST /workflows` requests in flight at once.
const POSTS_IN_FLIGHT: usize = 64;
/// Runs of each workflow in the latency part.
const LATENCY_RUNS: usize = 100;
/// How often the throughput part counts the ended runs.
const COUNT_EVERY: Duration = Duration::from_millis(20);
/// How often the latency part asks for its run.
const RUN_POLL_EVERY: Duration = Duration::from_millis(1);
/// Runs per worker completed before each configuration is measured.
const WARM_UP_RUNS: usize = 10;
/// The throughput part gives up when no run ends for this long.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// How long a worker may take to print its address, or to stop after SIGTERM.
const WORKER_LIMIT: Duration = Duration::from_secs(40);
/// The ids of the two workflows.
const ONE_STEP: &str = "bench-workers-1-step";
const MANY_STEPS: &str = "bench-workers-n-steps";

struct Options {
    runs: usize,
    steps: usize,
    pallet: PathBuf,
    out: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        runs: 2000,
        steps: 10,
        pallet: PathBuf::from("target/release/pallet"),
        out: PathBuf::from("target/bench"),
    };
    let mut numbers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pallet" => options.pallet = args.next().unwrap_or_else(|| usage()).into(),
            "--out" => options.out = args.next().unwrap_or_else(|| usage()).into(),
            number => numbers.push(number.parse::<usize>().unwrap_or_else(|_| usage())),
        }
    }
    match numbers[..] {
        [] => {}
        [runs] => options.runs = runs,
        [runs, steps] => (options.runs, options.steps) = (runs, steps),
        _ => usage(),
    }
    if options.runs == 0 || options.steps < 2 {
        eprintln!("error: RUNS must be at least 1 and STEPS at least 2");
        usage();
    }
    options
}

fn usage() -> ! {
    eprintln!("usage: bench_workers [RUNS] [STEPS] [--pallet PATH] [--out DIR]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let options = options();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::spawn(stop_on_signal());
    let started = Instant::now();
    if let Err(error) = run(&options).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
    eprintln!(
        "bench_workers took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

async fn run(options: &Options) -> anyhow::Result<()> {
    let pallet = std::fs::canonicalize(&options.pallet)
        .with_context(|| format!("the pallet binary {}", options.pallet.display()))?;
    let logs = options.out.join("workers-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("pallet-bench-workers-")
        .tempdir()
        .context("create a temp directory")?;
    let _ = SCRATCH.set(scratch.path().to_path_buf());
    let workflows = scratch.path().join("workflows");
    write_workflows(&workflows, options.steps)?;

    let agent = agent::EchoAgent::start().await;
    let agent_url = agent.card_url(agent::Protocol::Legacy);
    eprintln!("echo agent at {agent_url}");
    let cluster = cluster::start(&[], cluster::Tls::Off).map_err(|message| anyhow!(message))?;
    let server = describe(&cluster);
    eprintln!("PostgreSQL on 127.0.0.1:{}: {server}", cluster.port());
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(POSTS_IN_FLIGHT)
        .build()
        .context("build the HTTP client")?;

    let mut configurations = vec![Configuration {
        name: "SQLite".to_string(),
        workers: 1,
        database: Database::Sqlite(scratch.path().join("runs.db")),
    }];
    for workers in 1..=3 {
        configurations.push(Configuration {
            name: "PostgreSQL".to_string(),
            workers,
            database: Database::Postgres,
        });
    }
    let setup = Setup {
        client: &client,
        options,
        pallet: &pallet,
        workflows: &workflows,
        agent: &agent_url,
    };
    let mut results = Vec::new();
    for configuration in &configurations {
        let label = configuration.label();
        eprintln!("== {label}");
        // Each PostgreSQL configuration on a database of its own, dropped after.
        let database = match configuration.database {
            Database::Sqlite(_) => None,
            Database::Postgres => Some(cluster.database()),
        };
        let url = match (&configuration.database, &database) {
            (Database::Sqlite(path), _) => path.display().to_string(),
            (Database::Postgres, database) => database.as_ref().expect("created above").url.clone(),
        };
        let mut workers = Workers::start(&setup, &url, configuration, &logs)?;
        let measured = measure(&setup, &workers, configuration, &cluster, database.as_ref()).await;
        let stopped = workers.stop();
        let mut result = measured?;
        result.worker_exits = stopped;
        result.log_lines = workers.unexpected_lines();
        result.log_sample = workers.unexpected_sample();
        eprintln!(
            "   accepted {:.0}/s, completed {:.0}/s, median {:.2} / {:.2} ms, {} unexpected log lines",
            result.accepted_per_s,
            result.completed_per_s,
            result.latency_one.median,
            result.latency_many.median,
            result.log_lines
        );
        results.push(result);
    }

    let report = Report {
        options,
        server: &server,
        results: &results,
    };
    let table = report.markdown();
    println!("{table}");
    std::fs::write(options.out.join("workers.md"), &table).context("write workers.md")?;
    let text = serde_json::to_string_pretty(&report.json()).context("results as JSON")?;
    std::fs::write(options.out.join("workers.json"), text).context("write workers.json")?;
    eprintln!(
        "table in {}, figures in {}, worker logs in {}",
        options.out.join("workers.md").display(),
        options.out.join("workers.json").display(),
        logs.display()
    );
    drop(cluster);
    drop(agent);
    Ok(())
}

fn write_workflows(dir: &Path, steps: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (id, count) in [(ONE_STEP, 1), (MANY_STEPS, steps)] {
        let mut text = format!(
            "# Written by examples/bench_workers.rs.\nmetadata:\n  id: {id}\n  name: {count} echo steps\n  version: 1.0.0\n\nsteps:\n"
        );
        for step in 0..count {
            let value = match step {
                0 => "{{ workflow.input.n }}".to_string(),
                _ => format!("{{{{ steps.s{:03}.outputs.value }}}}", step - 1),
            };
            text.push_str(&format!(
                "  - id: s{step:03}\n    skill: echo\n    inputs:\n      value: \"{value}\"\n"
            ));
        }
        let path = dir.join(format!("{id}.yaml"));
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

struct Configuration {
    name: String,
    workers: usize,
    database: Database,
}

impl Configuration {
    fn label(&self) -> String {
        let plural = if self.workers == 1 { "" } else { "s" };
        format!("{}, {} worker{plural}", self.name, self.workers)
    }
}

enum Database {
    /// The file.
    Sqlite(PathBuf),
    /// A database of its own in the cluster.
    Postgres,
}

/// What every configuration shares.
struct Setup<'a> {
    client: &'a reqwest::Client,
    options: &'a Options,
    pallet: &'a Path,
    workflows: &'a Path,
    agent: &'a str,
}

#[derive(Default)]
struct Latency {
    /// Milliseconds, `completed_at - created_at` as the service recorded them.
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
    /// Milliseconds from before the POST until this process saw the run completed.
    client_median: f64,
    /// Runs that did not complete with the expected result.
    wrong: usize,
}

struct Measured {
    audit: Audit,
    label: String,
    name: String,
    workers: usize,
    accepted_per_s: f64,
    completed_per_s: f64,
    /// Runs of the throughput part that ended otherwise than completed, or never.
    not_completed: usize,
    /// POSTs not answered 201 (each retried is not: they count as lost).
    post_errors: usize,
    first_post_error: Option<String>,
    latency_one: Latency,
    latency_many: Latency,
    worker_exits: Vec<String>,
    log_lines: usize,
    log_sample: Vec<String>,
}

impl Measured {
    fn added_ms_per_step(&self, steps: usize) -> f64 {
        (self.latency_many.median - self.latency_one.median) / (steps - 1) as f64
    }
}

async fn measure(
    setup: &Setup<'_>,
    workers: &Workers,
    configuration: &Configuration,
    cluster: &cluster::Cluster,
    database: Option<&cluster::TestDatabase>,
) -> anyhow::Result<Measured> {
    let open = || match (&configuration.database, database) {
        (Database::Sqlite(path), _) => Counter::sqlite(path),
        (Database::Postgres, Some(database)) => Counter::postgres(cluster.port(), database.name()),
        (Database::Postgres, None) => Err(anyhow!("no database for {}", configuration.label())),
    };
    let bases = workers.bases();
    let warm_up = WARM_UP_RUNS * bases.len();
    let (_, errors, first) = post_runs(setup.client, &bases, MANY_STEPS, warm_up).await;
    if errors > 0 {
        bail!(
            "warm-up: {errors} of {warm_up} POSTs failed: {}",
            first.unwrap_or_default()
        );
    }
    let warm = wait_for_runs(&open, warm_up)?;
    if warm.completed < warm_up as i64 {
        bail!(
            "warm-up: only {} of {warm_up} runs completed",
            warm.completed
        );
    }

    // Throughput.
    let runs = setup.options.runs;
    let started = Instant::now();
    let (posted, post_errors, first_post_error) =
        post_runs(setup.client, &bases, MANY_STEPS, runs).await;
    let accepted = started.elapsed();
    let expected = warm_up + runs - post_errors;
    let ended = wait_for_runs(&open, expected)?;
    let completed = started.elapsed();
    let completed_runs = (ended.completed - warm_up as i64).max(0) as usize;
    if ended.at_least < expected {
        eprintln!(
            "   gave up waiting: {} of {expected} runs ended ({:?})",
            ended.at_least, ended.by_status
        );
    }

    // Latency, the two workflows interleaved run by run.
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut one_client = Vec::new();
    let mut many_client = Vec::new();
    let (mut one_wrong, mut many_wrong) = (0, 0);
    for index in 0..LATENCY_RUNS {
        let base = &bases[index % bases.len()];
        let n = 1_000_000 + index as i64;
        match one_run(setup.client, base, ONE_STEP, n).await? {
            Some((server, client)) => {
                one.push(server);
                one_client.push(client);
            }
            None => one_wrong += 1,
        }
        match one_run(setup.client, base, MANY_STEPS, n).await? {
            Some((server, client)) => {
                many.push(server);
                many_client.push(client);
            }
            None => many_wrong += 1,
        }
    }
    let audit = off_runtime(|| open()?.audit())?;
    Ok(Measured {
        audit,
        label: configuration.label(),
        name: configuration.name.clone(),
        workers: configuration.workers,
        accepted_per_s: posted as f64 / accepted.as_secs_f64(),
        completed_per_s: completed_runs as f64 / completed.as_secs_f64(),
        not_completed: runs - completed_runs,
        post_errors,
        first_post_error,
        latency_one: latency(one, &one_client, one_wrong),
        latency_many: latency(many, &many_client, many_wrong),
        worker_exits: Vec::new(),
        log_lines: 0,
        log_sample: Vec::new(),
    })
}

fn latency(mut server: Vec<f64>, client: &[f64], wrong: usize) -> Latency {
    server.sort_by(f64::total_cmp);
    let mut client = client.to_vec();
    client.sort_by(f64::total_cmp);
    Latency {
        median: quantile(&server, 0.5),
        p90: quantile(&server, 0.9),
        min: server.first().copied().unwrap_or(f64::NAN),
        max: server.last().copied().unwrap_or(f64::NAN),
        client_median: quantile(&client, 0.5),
        wrong,
    }
}

/// Of sorted values; the mean of the two middle ones for an even median.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// Posts `count` runs of `workflow` round-robin over `bases`, at most
/// [`POSTS_IN_FLIGHT`] at once: the runs answered 201, the others, the first
/// failure.
async fn post_runs(
    client: &reqwest::Client,
    bases: &[String],
    workflow: &str,
    count: usize,
) -> (usize, usize, Option<String>) {
    let answers = futures::stream::iter(0..count)
        .map(|index| {
            let url = format!("{}/workflows", bases[index % bases.len()]);
            let body = json!({"workflow": workflow, "input": {"n": index}});
            async move {
                let response = client.post(url).json(&body).send().await;
                match response {
                    Ok(response) if response.status() == reqwest::StatusCode::CREATED => Ok(()),
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        Err(format!("{status}: {text}"))
                    }
                    Err(error) => Err(format!("{error:#}")),
                }
            }
        })
        .buffer_unordered(POSTS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let posted = answers.iter().filter(|answer| answer.is_ok()).count();
    let first = answers.into_iter().find_map(Result::err);
    (posted, count - posted, first)
}

/// One run of `workflow`, waited for: its `completed_at - created_at` and the
/// time this process saw, in ms; `None` when it did not complete with `n`.
async fn one_run(
    client: &reqwest::Client,
    base: &str,
    workflow: &str,
    n: i64,
) -> anyhow::Result<Option<(f64, f64)>> {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/workflows"))
        .json(&json!({"workflow": workflow, "input": {"n": n}}))
        .send()
        .await
        .context("POST /workflows")?;
    if response.status() != reqwest::StatusCode::CREATED {
        let status = response.status();
        bail!("POST /workflows: {status}: {}", response.text().await?);
    }
    let created: Value = response.json().await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id in {created}"))?
        .to_string();
    let url = format!("{base}/workflows/{id}");
    let run = loop {
        let run: Value = client.get(&url).send().await?.json().await?;
        if matches!(
            run["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break run;
        }
        if started.elapsed() > STALL_LIMIT {
            eprintln!(
                "   run {id} did not end within {STALL_LIMIT:?}: {}",
                run["status"]
            );
            return Ok(None);
        }
        tokio::time::sleep(RUN_POLL_EVERY).await;
    };
    let seen = started.elapsed().as_secs_f64() * 1000.0;
    if run["status"] != "completed" || run["result"]["value"] != n {
        eprintln!(
            "   run {id} ended {} with result {} (error {})",
            run["status"], run["result"], run["error"]
        );
        return Ok(None);
    }
    let at = |field: &str| {
        run[field]
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .ok_or_else(|| anyhow!("run {id} has no {field}: {run}"))
    };
    let recorded = at("completed_at")? - at("created_at")?;
    let recorded = recorded.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    Ok(Some((recorded, seen)))
}

/// Counts the runs of the STEPS-step workflow by status, in the database.
enum Counter {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

#[derive(Debug, Default)]
struct Ended {
    completed: i64,
    /// Runs ended in any way.
    at_least: usize,
    by_status: Vec<(String, i64)>,
}

const COUNT_SQL: &str =
    "SELECT status, count(*) FROM runs WHERE workflow_id = $1 GROUP BY status ORDER BY status";

const AUDIT_SQL: &str = "SELECT (SELECT count(*) FROM runs), \
     (SELECT count(*) FROM runs WHERE executor_starts > 1), \
     (SELECT count(*) FROM step_attempts) \
     - (SELECT count(*) FROM (SELECT DISTINCT run_id, step_id FROM step_attempts) AS steps)";

/// What the database tells of every run of a configuration.
#[derive(Debug, Default)]
struct Audit {
    runs: i64,
    /// Runs started by more than one executor (`executor_starts > 1`).
    restarted: i64,
    /// Step attempts beyond one per step (none, with an agent that never fails).
    extra_attempts: i64,
}

impl Counter {
    fn sqlite(path: &Path) -> anyhow::Result<Counter> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(path, flags)
            .with_context(|| format!("open {} read-only", path.display()))?;
        connection.busy_timeout(Duration::from_secs(5))?;
        Ok(Counter::Sqlite(connection))
    }

    fn postgres(port: u16, database: &str) -> anyhow::Result<Counter> {
        let client = postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=pallet dbname={database}"),
            postgres::NoTls,
        )
        .with_context(|| format!("connect to database {database}"))?;
        Ok(Counter::Postgres(Box::new(client)))
    }

    /// Of all runs: how many there are, how many more than one executor
    /// started, and the step attempts beyond the first of each step.
    fn audit(&mut self) -> anyhow::Result<Audit> {
        let numbers: (i64, i64, i64) = match self {
            Counter::Sqlite(connection) => connection.query_row(AUDIT_SQL, [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?,
            Counter::Postgres(client) => {
                let row = client.query_one(AUDIT_SQL, &[])?;
                (row.get(0), row.get(1), row.get(2))
            }
        };
        Ok(Audit {
            runs: numbers.0,
            restarted: numbers.1,
            extra_attempts: numbers.2,
        })
    }

    fn count(&mut self) -> anyhow::Result<Ended> {
        let by_status: Vec<(String, i64)> = match self {
            Counter::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(&COUNT_SQL.replace("$1", "?1"))?;
                let rows =
                    statement.query_map([MANY_STEPS], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            }
            Counter::Postgres(client) => client
                .query(COUNT_SQL, &[&MANY_STEPS])?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
        };
        let count = |status: &str| {
            by_status
                .iter()
                .filter(|(name, _)| name == status)
                .map(|(_, count)| *count)
                .sum::<i64>()
        };
        Ok(Ended {
            completed: count("completed"),
            at_least: (count("completed") + count("failed") + count("cancelled")) as usize,
            by_status,
        })
    }
}

/// Counts every [`COUNT_EVERY`] (on a connection of its own, `open`ed)
/// until `expected` runs have ended, or none ended for [`STALL_LIMIT`]; the
/// last count. Blocks the calling task meanwhile.
fn wait_for_runs(
    open: &(impl Fn() -> anyhow::Result<Counter> + Sync),
    expected: usize,
) -> anyhow::Result<Ended> {
    off_runtime(|| {
        let mut counter = open()?;
        let mut progress = Instant::now();
        let mut last = 0;
        loop {
            let ended = counter.count()?;
            if ended.at_least >= expected || progress.elapsed() > STALL_LIMIT {
                return Ok(ended);
            }
            if ended.at_least != last {
                (last, progress) = (ended.at_least, Instant::now());
            }
            std::thread::sleep(COUNT_EVERY);
        }
    })
}

/// Runs `work` on a thread of its own and waits for it: the synchronous
/// `postgres` client (connecting, querying, closing) runs a runtime of its
/// own, which panics inside the benchmark's.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

// ---------------------------------------------------------------- workers

/// PIDs of the running workers, for [`stop_on_signal`].
static WORKER_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The temp directory, removed by [`stop_on_signal`] (else on drop).
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

fn worker_pids() -> std::sync::MutexGuard<'static, Vec<u32>> {
    WORKER_PIDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On Ctrl-C or SIGTERM: stops the workers (SIGTERM, SIGKILL after 10 s),
/// removes the temp directory and exits; exiting closes PostgreSQL's lifeline.
async fn stop_on_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("interrupted: stopping the workers and PostgreSQL");
    let pids: Vec<i32> = worker_pids().iter().map(|&pid| pid as i32).collect();
    for &pid in &pids {
        // SAFETY: kill only sends a signal, to a child this process started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = pids;
    while !left.is_empty() && Instant::now() < deadline {
        // SAFETY: waitpid with WNOHANG only reaps a child of this process.
        left.retain(|&pid| unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in &left {
        // SAFETY: as above; these children ignored SIGTERM for 10 s.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    if let Some(scratch) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(scratch);
    }
    std::process::exit(130);
}

struct Worker {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    log: Option<std::thread::JoinHandle<()>>,
}

/// The workers of one configuration, stopped on drop.
struct Workers {
    workers: Vec<Worker>,
    /// Output lines other than the startup and stop lines, of all workers.
    unexpected: Arc<AtomicUsize>,
    sample: Arc<Mutex<Vec<String>>>,
}

/// Lines a worker prints when all is well.
fn expected_line(line: &str) -> bool {
    line.starts_with("offline: ") || line.starts_with("serving on ") || line == "stopped"
}

impl Workers {
    /// Starts `configuration.workers` workers on `url`; each one's output
    /// goes to a file in `logs`.
    fn start(
        setup: &Setup<'_>,
        url: &str,
        configuration: &Configuration,
        logs: &Path,
    ) -> anyhow::Result<Workers> {
        let mut workers = Workers {
            workers: Vec::new(),
            unexpected: Arc::default(),
            sample: Arc::default(),
        };
        let stem = format!(
            "{}-{}",
            configuration.name.to_lowercase(),
            configuration.workers
        );
        for index in 0..configuration.workers {
            let log = logs.join(format!("{stem}-worker{}.log", index + 1));
            let worker = workers.spawn(setup, url, &log)?;
            eprintln!(
                "   worker {} at {} (log {})",
                index + 1,
                worker.base,
                log.display()
            );
            workers.workers.push(worker);
        }
        Ok(workers)
    }

    /// Spawned from the main thread only: PR_SET_PDEATHSIG fires when the
    /// thread that spawned the child ends.
    fn spawn(&self, setup: &Setup<'_>, url: &str, log_path: &Path) -> anyhow::Result<Worker> {
        let log =
            File::create(log_path).with_context(|| format!("create {}", log_path.display()))?;
        let mut command = Command::new(setup.pallet);
        command
            .args(["serve", "--offline", "--addr", "127.0.0.1:0", "--db", url])
            .arg("--workflows-dir")
            .arg(setup.workflows)
            .args(["--agent", setup.agent])
            .env_remove("PALLET_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", setup.pallet.display()))?;
        worker_pids().push(child.id());
        let stderr = child.stderr.take().expect("piped stderr");
        let (address_sender, address) = mpsc::channel();
        let (unexpected, sample) = (self.unexpected.clone(), self.sample.clone());
        let thread = std::thread::spawn(move || {
            let mut log = log;
            let mut address_sender = Some(address_sender);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if let Some(rest) = line.strip_prefix("serving on http://")
                    && let Some(sender) = address_sender.take()
                {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = sender.send(format!("http://{address}"));
                }
                if !expected_line(&line) {
                    unexpected.fetch_add(1, Ordering::Relaxed);
                    let mut sample = sample
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if sample.len() < 10 {
                        sample.push(line);
                    }
                }
            }
        });
        let mut worker = Worker {
            child,
            base: String::new(),
            log: Some(thread),
        };
        match address.recv_timeout(WORKER_LIMIT) {
            Ok(base) => {
                worker.base = base;
                Ok(worker)
            }
            Err(_) => {
                // SAFETY: kill only sends a signal, to the child just started.
                unsafe { libc::kill(worker.child.id() as i32, libc::SIGTERM) };
                let status = stop_worker(&mut worker);
                let text = std::fs::read_to_string(log_path).unwrap_or_default();
                Err(anyhow!(
                    "a worker printed no address ({status}); its output:\n{text}"
                ))
            }
        }
    }

    fn bases(&self) -> Vec<String> {
        self.workers
            .iter()
            .map(|worker| worker.base.clone())
            .collect()
    }

    /// SIGTERM to each, then waits for all; how each ended.
    fn stop(&mut self) -> Vec<String> {
        for worker in &self.workers {
            // SAFETY: kill only sends a signal, to a child this process started.
            unsafe { libc::kill(worker.child.id() as i32, libc::SIGTERM) };
        }
        self.workers
            .drain(..)
            .map(|mut worker| stop_worker(&mut worker))
            .collect()
    }

    fn unexpected_lines(&self) -> usize {
        self.unexpected.load(Ordering::Relaxed)
    }

    fn unexpected_sample(&self) -> Vec<String> {
        self.sample
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to [`WORKER_LIMIT`] for a worker sent SIGTERM, then SIGKILL;
/// how it ended.
fn stop_worker(worker: &mut Worker) -> String {
    let pid = worker.child.id();
    let deadline = Instant::now() + WORKER_LIMIT;
    let status = loop {
        match worker.child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                break format!("killed after {WORKER_LIMIT:?} (SIGTERM ignored)");
            }
            Err(error) => break format!("wait failed: {error}"),
        }
    };
    worker_pids().retain(|&other| other != pid);
    // The pipe closed with the process; the thread ends at its end.
    if let Some(thread) = worker.log.take() {
        let _ = thread.join();
    }
    status
}

/// The server's version and durability settings, in a few words.
fn describe(cluster: &cluster::Cluster) -> String {
    let show = |setting: &str| cluster.psql("postgres", &format!("SHOW {setting}"));
    format!(
        "PostgreSQL {}, fsync {}, synchronous_commit {}, full_page_writes {}, wal_sync_method {}",
        show("server_version"),
        show("fsync"),
        show("synchronous_commit"),
        show("full_page_writes"),
        show("wal_sync_method")
    )
}

// ----------------------------------------------------------------- report

struct Report<'a> {
    options: &'a Options,
    server: &'a str,
    results: &'a [Measured],
}

impl Report<'_> {
    fn sqlite(&self) -> Option<&Measured> {
        self.results.iter().find(|result| result.name == "SQLite")
    }

    fn markdown(&self) -> String {
        let steps = self.options.steps;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut text = format!(
            "`pallet serve` workers (release build, {cores} cores): {} runs of a {steps}-step \
             workflow posted round-robin over the workers, {POSTS_IN_FLIGHT} requests in flight; \
             latency: the median of {LATENCY_RUNS} runs one after another (created_at to \
             completed_at). Echo agent (legacy protocol) answering at once, in the benchmark \
             process; everything on 127.0.0.1. PostgreSQL: a local cluster with default \
             durability ({}); SQLite: one file in the same temp file system.\n\n",
            self.options.runs, self.server
        );
        text.push_str(&format!(
            "| configuration | workers | runs/s accepted | runs/s completed | completed/s vs SQLite \
             | median latency 1 step (ms) | median latency {steps} steps (ms) | added ms per step |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        for result in self.results {
            let ratio = match self.sqlite() {
                Some(sqlite) => format!("{:.2}×", result.completed_per_s / sqlite.completed_per_s),
                None => "-".to_string(),
            };
            text.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {ratio} | {:.2} | {:.2} | {:.2} |\n",
                result.name,
                result.workers,
                result.accepted_per_s,
                result.completed_per_s,
                result.latency_one.median,
                result.latency_many.median,
                result.added_ms_per_step(steps)
            ));
        }
        let mut notes = Vec::new();
        for result in self.results {
            let label = &result.label;
            if result.not_completed > 0 {
                notes.push(format!(
                    "{label}: {} runs did not complete",
                    result.not_completed
                ));
            }
            if result.post_errors > 0 {
                notes.push(format!(
                    "{label}: {} POSTs failed, the first: {}",
                    result.post_errors,
                    result.first_post_error.as_deref().unwrap_or_default()
                ));
            }
            let wrong = result.latency_one.wrong + result.latency_many.wrong;
            if wrong > 0 {
                notes.push(format!(
                    "{label}: {wrong} latency runs did not complete as expected"
                ));
            }
            if result.log_lines > 0 {
                notes.push(format!(
                    "{label}: {} unexpected lines in the workers' output, e.g. {:?}",
                    result.log_lines,
                    result
                        .log_sample
                        .first()
                        .map(String::as_str)
                        .unwrap_or_default()
                ));
            }
            if result.audit.restarted > 0 || result.audit.extra_attempts > 0 {
                notes.push(format!(
                    "{label}: of {} runs, {} were started by more than one executor; {} step attempts beyond one per step",
                    result.audit.runs, result.audit.restarted, result.audit.extra_attempts
                ));
            }
            for exit in result
                .worker_exits
                .iter()
                .filter(|exit| !exit.contains("exit status: 0"))
            {
                notes.push(format!("{label}: a worker ended with {exit}"));
            }
        }
        if notes.is_empty() {
            text.push_str("\nAll runs completed with the expected results; the workers logged nothing unexpected.\n");
        } else {
            text.push('\n');
            for note in notes {
                text.push_str(&format!("- {note}\n"));
            }
        }
        text
    }

    fn json(&self) -> Value {
        let steps = self.options.steps;
        let latency = |latency: &Latency| {
            json!({
                "median_ms": latency.median,
                "p90_ms": latency.p90,
                "min_ms": latency.min,
                "max_ms": latency.max,
                "client_median_ms": latency.client_median,
                "not_as_expected": latency.wrong,
            })
        };
        let configurations: Vec<Value> = self
            .results
            .iter()
            .map(|result| {
                json!({
                    "configuration": result.name,
                    "workers": result.workers,
                    "runs_per_s_accepted": result.accepted_per_s,
                    "runs_per_s_completed": result.completed_per_s,
                    "completed_vs_sqlite": self.sqlite().map(|sqlite| result.completed_per_s / sqlite.completed_per_s),
                    "latency_1_step": latency(&result.latency_one),
                    "latency_n_steps": latency(&result.latency_many),
                    "added_ms_per_step": result.added_ms_per_step(steps),
                    "runs_not_completed": result.not_completed,
                    "runs_in_database": result.audit.runs,
                    "runs_started_by_several_executors": result.audit.restarted,
                    "extra_step_attempts": result.audit.extra_attempts,
                    "post_errors": result.post_errors,
                    "first_post_error": result.first_post_error,
                    "worker_exits": result.worker_exits,
                    "unexpected_log_lines": result.log_lines,
                    "unexpected_log_sample": result.log_sample,
                })
            })
            .collect();
        json!({
            "runs": self.options.runs,
            "steps": steps,
            "posts_in_flight": POSTS_IN_FLIGHT,
            "latency_runs": LATENCY_RUNS,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "postgres": self.server,
            "configurations": configurations,
        })
    }
}
