//! Parts 1 and 2: per-step overhead against the floor, and whole-process
//! startup. Every run's output is checked, so a fast wrong run cannot pass.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pallet::agent::{AgentClient, StaticDiscovery};
use pallet::engine::Engine;
use pallet::workflow::Sources;
use pallet::workflow::{LoadedWorkflow, load_file};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Options;
use crate::agent::{EchoAgent, Protocol};
use crate::floor::Floor;
use crate::report::{PerStep, Report};
use crate::stats::Samples;

const SEED: &str = "bench-seed";

/// The workflow shapes of part 1.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    CodeGeneration,
    Sequential100,
    Parallel100,
    OneStep,
}

impl Shape {
    pub fn file(self) -> &'static str {
        match self {
            Shape::CodeGeneration => "code-generation-3.yaml",
            Shape::Sequential100 => "sequential-100.yaml",
            Shape::Parallel100 => "parallel-100.yaml",
            Shape::OneStep => "one-step.yaml",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Shape::CodeGeneration => "3-step code generation",
            Shape::Sequential100 => "100 sequential steps",
            Shape::Parallel100 => "1 parallel step, 100 branches",
            Shape::OneStep => "1 step",
        }
    }

    pub fn steps(self) -> usize {
        match self {
            Shape::CodeGeneration => 3,
            Shape::Sequential100 | Shape::Parallel100 => 100,
            Shape::OneStep => 1,
        }
    }

    /// The floor's equivalent of one run; panics on a wrong answer.
    async fn floor(self, floor: &Floor) {
        match self {
            Shape::Parallel100 => {
                let outputs = floor.parallel(100, SEED).await;
                assert_eq!(outputs[42], json!({"value": SEED, "branch": 42}));
            }
            shape => {
                let output = floor.sequential(shape.steps(), SEED).await;
                assert_eq!(output, json!({"value": SEED}));
            }
        }
    }

    /// Panics unless `record` (a run record as JSON) completed with the expected output.
    pub fn check(self, record: &Value) {
        let label = self.label();
        assert_eq!(record["status"], "completed", "{label}: {record}");
        let output = &record["output"];
        match self {
            Shape::CodeGeneration => assert_eq!(
                output,
                &json!({"result": {"code": SEED, "language": "python"}}),
                "{label}"
            ),
            Shape::Sequential100 | Shape::OneStep => {
                assert_eq!(output, &json!({"value": SEED}), "{label}")
            }
            Shape::Parallel100 => {
                assert_eq!(output.as_object().map(|o| o.len()), Some(100), "{label}");
                assert_eq!(
                    output["b042"],
                    json!({"value": SEED, "branch": 42}),
                    "{label}"
                );
            }
        }
        let steps = record["steps"].as_array().expect("steps");
        let all = self.steps() + usize::from(matches!(self, Shape::Parallel100));
        assert_eq!(steps.len(), all, "{label}: step records");
        assert!(
            steps.iter().all(|step| step["status"] == "completed"),
            "{label}"
        );
    }
}

pub fn input() -> Value {
    json!({"seed": SEED})
}

/// One in-process run on a fresh discovery (as a new process would), checked.
pub async fn engine_run(
    client: &AgentClient,
    workflow: Arc<LoadedWorkflow>,
    card_url: &str,
    shape: Shape,
) {
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![card_url.to_string()])),
        Arc::new(Sources(Vec::new())),
    )
    .client(client.clone())
    .build();
    let record = engine
        .run(workflow, input(), CancellationToken::new())
        .await;
    shape.check(&serde_json::to_value(&record).expect("record as JSON"));
}

/// The run databases of the `pallet` binary and of the baseline one, in the out dir.
pub const DATABASES: [&str; 2] = ["bench.db", "bench-baseline.db"];

/// `pallet run` of `file` as a whole process, checked.
pub fn process_run(options: &Options, file: &Path, card_url: &str, shape: Shape) {
    process_run_with(options, &options.pallet, file, card_url, shape);
}

/// [`process_run`] with the binary `pallet`.
fn process_run_with(options: &Options, pallet: &Path, file: &Path, card_url: &str, shape: Shape) {
    let out = options.out.join("run-out");
    let output = Command::new(pallet)
        .args([
            "-q",
            "run",
            "--json",
            "--input",
            &format!("seed={SEED}"),
            "--file",
        ])
        .arg(file)
        .arg("--agent")
        .arg(card_url)
        .arg("--out")
        .arg(&out)
        // Runs are recorded as users' are, but not in the user's own database;
        // a baseline binary may know an older schema, so it has its own.
        .arg("--db")
        .arg(options.out.join(if pallet == options.pallet {
            DATABASES[0]
        } else {
            DATABASES[1]
        }))
        .stdin(Stdio::null())
        .output()
        .expect("spawn pallet");
    assert!(
        output.status.success(),
        "pallet run {}: {}\n{}",
        file.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let record: Value =
        serde_json::from_slice(&output.stdout).expect("pallet run --json prints JSON");
    shape.check(&record);
}

pub async fn per_step(options: &Options, agent: &EchoAgent, report: &mut Report) {
    let client = AgentClient::new();
    for protocol in [Protocol::A2a, Protocol::Legacy] {
        let card_url = agent.card_url(protocol);
        let floor = Floor::new(&agent.base, card_url.clone(), protocol);
        for shape in [
            Shape::CodeGeneration,
            Shape::Sequential100,
            Shape::Parallel100,
        ] {
            let file = options.fixtures.join(shape.file());
            let workflow = Arc::new(load_file(&file).expect("fixture loads"));
            let mut row = PerStep::new(shape, protocol);
            // The first round warms connections and caches and is not counted.
            for round in 0..=options.runs {
                let started = Instant::now();
                shape.floor(&floor).await;
                let floor_time = started.elapsed();
                // A fresh client, as a new process has: new connections, TLS roots loaded.
                let started = Instant::now();
                shape
                    .floor(&Floor::new(&agent.base, card_url.clone(), protocol))
                    .await;
                let cold_floor_time = started.elapsed();
                let started = Instant::now();
                engine_run(&client, workflow.clone(), &card_url, shape).await;
                let engine_time = started.elapsed();
                let started = Instant::now();
                process_run(options, &file, &card_url, shape);
                let process_time = started.elapsed();
                let baseline_time = options.baseline.as_ref().map(|baseline| {
                    let started = Instant::now();
                    process_run_with(options, baseline, &file, &card_url, shape);
                    started.elapsed()
                });
                if round > 0 {
                    if let Some(time) = baseline_time {
                        row.baseline.push(time);
                    }
                    row.floor.push(floor_time);
                    row.cold_floor.push(cold_floor_time);
                    row.engine.push(engine_time);
                    row.process.push(process_time);
                }
            }
            eprintln!("measured {} over {}", shape.label(), protocol.name());
            report.per_step.push(row);
        }
    }
}

/// Part 2: the process alone, validation of 100 steps, a 1-step and a 100-step run; with
/// `--baseline PATH`, the same for that binary, interleaved round by round.
pub async fn startup(options: &Options, agent: &EchoAgent, report: &mut Report) {
    let mut binaries = vec![(String::new(), options.pallet.clone())];
    if let Some(baseline) = &options.baseline {
        binaries.push((" (baseline binary)".to_string(), baseline.clone()));
    }
    let mut samples: Vec<[Samples; 5]> = binaries.iter().map(|_| Default::default()).collect();
    for round in 0..=options.runs {
        for ((_, pallet), samples) in binaries.iter().zip(samples.iter_mut()) {
            let times = startup_round(options, pallet, agent);
            if round > 0 {
                for (samples, time) in samples.iter_mut().zip(times) {
                    samples.push(time);
                }
            }
        }
    }
    for ((suffix, _), [version, validate, a2a, legacy, sequential]) in binaries.iter().zip(samples)
    {
        report.startup.extend([
            (
                format!("`pallet --version` (process start and exit){suffix}"),
                version,
            ),
            (
                format!("`pallet validate` of the 100-step workflow{suffix}"),
                validate,
            ),
            (
                format!("`pallet run` of a 1-step workflow, A2A 1.0{suffix}"),
                a2a,
            ),
            (
                format!("`pallet run` of a 1-step workflow, legacy{suffix}"),
                legacy,
            ),
            (
                format!("`pallet run` of the 100-step workflow, legacy{suffix}"),
                sequential,
            ),
        ]);
    }
    eprintln!("measured startup and validation");
}

/// One round of part 2 with binary `pallet`: --version, validate, a 1-step
/// run per protocol, a 100-step legacy run (its end: output files, database).
fn startup_round(options: &Options, pallet: &Path, agent: &EchoAgent) -> [Duration; 5] {
    let sequential = options.fixtures.join(Shape::Sequential100.file());
    let one_step = options.fixtures.join(Shape::OneStep.file());
    let started = Instant::now();
    let status = Command::new(pallet)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .expect("spawn pallet");
    assert!(status.success(), "pallet --version: {status}");
    let version = started.elapsed();
    let started = Instant::now();
    let status = Command::new(pallet)
        .arg("validate")
        .arg(&sequential)
        .stdout(Stdio::null())
        .status()
        .expect("spawn pallet");
    assert!(
        status.success(),
        "pallet validate {}: {status}",
        sequential.display()
    );
    let validate = started.elapsed();
    let mut runs = [Duration::ZERO; 2];
    for (time, protocol) in runs.iter_mut().zip([Protocol::A2a, Protocol::Legacy]) {
        let started = Instant::now();
        process_run_with(
            options,
            pallet,
            &one_step,
            &agent.card_url(protocol),
            Shape::OneStep,
        );
        *time = started.elapsed();
    }
    let started = Instant::now();
    process_run_with(
        options,
        pallet,
        &sequential,
        &agent.card_url(Protocol::Legacy),
        Shape::Sequential100,
    );
    [version, validate, runs[0], runs[1], started.elapsed()]
}

/// Where a process's time goes, piece by piece, in-process: called before
/// anything else loads a workflow, so the first load pays any one-time setup
/// (the schema is compiled into the binary, so it should cost no more than the next).
pub async fn breakdown(options: &Options, agent: &EchoAgent, report: &mut Report) {
    let file = options.fixtures.join(Shape::Sequential100.file());
    let mut first_load = Samples::default();
    let started = Instant::now();
    let workflow = Arc::new(load_file(&file).expect("fixture loads"));
    first_load.push(started.elapsed());
    let (mut load, mut renderer, mut client, mut json, mut files) = Default::default();
    let record = {
        let engine = Engine::builder(
            Arc::new(StaticDiscovery::new(vec![agent.card_url(Protocol::Legacy)])),
            Arc::new(Sources(Vec::new())),
        )
        .build();
        engine
            .run(workflow.clone(), input(), CancellationToken::new())
            .await
    };
    Shape::Sequential100.check(&serde_json::to_value(&record).expect("record as JSON"));
    let out = options.out.join("breakdown-out");
    for _ in 0..options.runs {
        time(&mut load, || load_file(&file).expect("fixture loads"));
        time(&mut renderer, || {
            pallet::template::Renderer::new(workflow.workflow.template_sites())
                .expect("templates compile")
        });
        time(&mut client, || {
            reqwest::Client::builder().build().expect("client")
        });
        time(&mut json, || {
            serde_json::to_string_pretty(&record).expect("record as JSON")
        });
        time(&mut files, || write_like_out_dir(&out, &record));
    }
    report.breakdown = vec![
        (
            "load + validate the 100-step workflow, first in a process".to_string(),
            first_load,
        ),
        (
            "load + validate the 100-step workflow, again".to_string(),
            load,
        ),
        (
            "compile its templates (`Renderer::new`, 100 steps)".to_string(),
            renderer,
        ),
        (
            "build a reqwest client (loads the system's TLS roots)".to_string(),
            client,
        ),
        ("its run record as pretty JSON (`--json`)".to_string(), json),
        (
            "write its 102 files as `--out` does (run.json, metadata, one per step)".to_string(),
            files,
        ),
    ];
    eprintln!("measured the breakdown");
}

fn time<T>(samples: &mut Samples, work: impl FnOnce() -> T) {
    let started = Instant::now();
    let result = work();
    samples.push(started.elapsed());
    drop(result);
}

/// What `pallet run --out DIR` does with a record: clear the step files, then
/// one pretty JSON file for the run, its metadata and each step.
fn write_like_out_dir(dir: &Path, record: &pallet::engine::RunRecord) {
    let steps = dir.join("steps");
    if steps.is_dir() {
        std::fs::remove_dir_all(&steps).expect("clear step files");
    }
    std::fs::create_dir_all(&steps).expect("create the steps directory");
    std::fs::write(dir.join("run.json"), pretty(record)).expect("write run.json");
    std::fs::write(dir.join("metadata.json"), pretty(&record.workflow_id))
        .expect("write metadata.json");
    for step in &record.steps {
        std::fs::write(steps.join(format!("{}.json", step.id)), pretty(step))
            .expect("write a step file");
    }
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("serializable") + "\n"
}
