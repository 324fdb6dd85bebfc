//! pallet's benchmark harness (issue 6, parts 1-3). Run it through
//! `scripts/bench.sh`, which builds it with the `pallet` binary, starts a
//! registry and passes their locations:
//!
//! `bench --pallet PATH [--baseline PATH] [--registry HOST:PORT] [--runs N] [--smoke] [--out DIR]`
//!
//! It starts an echo agent (A2A 1.0 and legacy) in-process, then measures the
//! floor (plain reqwest), the engine in-process and the `pallet` binary as a
//! whole process on the same fixtures, interleaved run by run, checks every
//! run's output, and writes `results.md` and `results.json` to the out dir.
//! `--smoke` runs each case twice and only checks the outputs.
//!
//! `bench --serve` only starts the echo agent and prints its two card URLs,
//! for profiling one `pallet run` by hand (perf, valgrind); Ctrl-C stops it.

mod agent;
mod floor;
mod registry;
mod report;
mod runs;
mod stats;

use std::path::PathBuf;

use agent::EchoAgent;

pub struct Options {
    pallet: PathBuf,
    /// An earlier `pallet` binary whose startup figures are measured alongside.
    baseline: Option<PathBuf>,
    registry: Option<String>,
    runs: usize,
    smoke: bool,
    out: PathBuf,
    fixtures: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        pallet: PathBuf::new(),
        baseline: None,
        registry: None,
        runs: 15,
        smoke: false,
        out: PathBuf::from("target/bench"),
        fixtures: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--pallet" => options.pallet = value().into(),
            "--registry" => options.registry = Some(value()),
            "--baseline" => options.baseline = Some(value().into()),
            "--runs" => options.runs = value().parse().unwrap_or_else(|_| usage("--runs N")),
            "--out" => options.out = value().into(),
            "--fixtures" => options.fixtures = value().into(),
            "--smoke" => options.smoke = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if options.pallet.as_os_str().is_empty() {
        usage("--pallet PATH is required");
    }
    if options.smoke {
        options.runs = 2;
    }
    options
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "error: {problem}\nusage: bench --pallet PATH [--baseline PATH] [--registry HOST:PORT] [--runs N] [--smoke] [--out DIR] [--fixtures DIR]"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        let agent = EchoAgent::start().await;
        println!("{}", agent.card_url(agent::Protocol::A2a));
        println!("{}", agent.card_url(agent::Protocol::Legacy));
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    let options = options();
    std::fs::create_dir_all(&options.out).expect("create the out directory");
    // Each benchmark starts on fresh databases: one left by another baseline
    // binary may have a schema this one does not know.
    for name in runs::DATABASES {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(options.out.join(format!("{name}{suffix}")));
        }
    }
    let agent = EchoAgent::start().await;
    let mut report = report::Report::default();
    runs::breakdown(&options, &agent, &mut report).await;
    runs::per_step(&options, &agent, &mut report).await;
    runs::startup(&options, &agent, &mut report).await;
    match &options.registry {
        Some(address) => registry::measure(&options, address, &agent, &mut report).await,
        None => eprintln!("no --registry given: registry figures skipped"),
    }
    let table = report.markdown(&options);
    println!("{table}");
    std::fs::write(options.out.join("results.md"), &table).expect("write results.md");
    let json = serde_json::to_string_pretty(&report.json(&options)).expect("results as JSON");
    std::fs::write(options.out.join("results.json"), json).expect("write results.json");
    eprintln!(
        "{}: all runs completed with the expected outputs; results in {}",
        if options.smoke { "smoke" } else { "bench" },
        options.out.display()
    );
}
