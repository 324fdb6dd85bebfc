//! Part 3: a workflow pulled from a real registry and run, cold (empty cache)
//! and warm (cache filled, a new `Registry` as a new process would have),
//! counting registry round-trips with `Registry::read_requests()`.

use std::sync::Arc;
use std::time::Instant;

use pallet::agent::AgentClient;
use pallet::registry::{
    ArtifactKind, Provenance, PushOptions, Reference, Registry, RegistryOptions,
};
use pallet::workflow::{load_file, load_str};

use crate::Options;
use crate::agent::{EchoAgent, Protocol};
use crate::report::{RegistryRow, Report};
use crate::runs::{Shape, engine_run};

/// Pulled by requirement (tag list) and by exact version (one HEAD).
const REFERENCES: [&str; 2] = ["bench-code-generation@^1", "bench-code-generation@=1.0.0"];

pub async fn measure(options: &Options, address: &str, agent: &EchoAgent, report: &mut Report) {
    let caches = tempfile::tempdir().expect("cache tempdir");
    let file = options.fixtures.join(Shape::CodeGeneration.file());
    let loaded = load_file(&file).expect("fixture loads");
    let pusher = open(address, caches.path().join("push"));
    pusher
        .push_workflow(
            &loaded,
            "code-generation-3.yaml",
            Provenance::default(),
            PushOptions {
                force: true,
                alias: false,
            },
        )
        .await
        .expect("push the fixture to the registry");
    let client = AgentClient::new();
    let card_url = agent.card_url(Protocol::A2a);
    for text in REFERENCES {
        let reference = Reference::parse(ArtifactKind::Workflow, text).expect("reference");
        let warm_cache = caches
            .path()
            .join(format!("warm-{}", report.registry.len()));
        let mut cold = RegistryRow::new(format!("cold: pull `{text}` + resolve + run"));
        let mut warm = RegistryRow::new(format!("warm: `{text}` from the cache + run"));
        for round in 0..=options.runs {
            let cold_cache = caches
                .path()
                .join(format!("cold-{}-{round}", report.registry.len()));
            for (row, cache) in [(&mut cold, cold_cache), (&mut warm, warm_cache.clone())] {
                let started = Instant::now();
                let registry = open(address, cache);
                let pulled = registry.pull(&reference).await.expect("pull");
                let requests = registry.read_requests();
                let text = String::from_utf8(pulled.content).expect("UTF-8 workflow");
                let workflow =
                    load_str(&pulled.resolved.digest, &text).expect("pulled workflow loads");
                engine_run(
                    &client,
                    Arc::new(workflow),
                    &card_url,
                    Shape::CodeGeneration,
                )
                .await;
                let elapsed = started.elapsed();
                // Round 0 fills the warm cache; its timings are not counted.
                if round > 0 {
                    row.times.push(elapsed);
                    row.round_trips.push(requests);
                }
            }
        }
        // The target, a count rather than a timing, so smoke mode checks it too.
        assert!(
            warm.round_trips.iter().all(|&requests| requests <= 1),
            "warm pull of {text} made {:?} registry requests (at most 1 expected)",
            warm.round_trips
        );
        report.registry.push(cold);
        report.registry.push(warm);
    }
    eprintln!("measured registry pulls");
}

fn open(address: &str, cache: std::path::PathBuf) -> Registry {
    Registry::new(RegistryOptions::new(address, cache)).expect("registry client")
}
