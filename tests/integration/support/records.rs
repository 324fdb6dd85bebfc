//! Running a workflow body in process against one fresh legacy agent, and
//! finding step records in the result: shared by the language tests.

use std::sync::Arc;

use pallet::agent::StaticDiscovery;
use pallet::engine::{Engine, RunRecord, StepRecord};
use pallet::workflow::{DirectorySource, load_str};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::legacy_agent::LegacyAgent;

/// Run the workflow with the given top-level keys (`steps:` and others)
/// against one fresh agent offering the test skills.
pub async fn run_body(body: &str, input: Value) -> (RunRecord, LegacyAgent) {
    let agent = LegacyAgent::start("helper", &[]).await;
    let empty = tempfile::tempdir().unwrap();
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent.url()])),
        Arc::new(DirectorySource::new(empty.path())),
    )
    .build();
    let text = format!("metadata: {{id: body, name: Body, version: 1.0.0}}\n{body}");
    let loaded = load_str("body.yaml", &text).unwrap_or_else(|error| panic!("{error:?}\n{text}"));
    let record = engine
        .run(Arc::new(loaded), input, CancellationToken::new())
        .await;
    (record, agent)
}

/// The record of step `id` (a qualified id for iterations); panics with the
/// whole record when there is none.
pub fn step<'a>(record: &'a RunRecord, id: &str) -> &'a StepRecord {
    record
        .steps
        .iter()
        .find(|step| step.id == id)
        .unwrap_or_else(|| panic!("no record of step {id}: {record:#?}"))
}
