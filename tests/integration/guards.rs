//! `if:` guards and `continue_on_error` against a real in-process legacy
//! agent: a falsy guard skips the step (and what is nested in it) without
//! calling the agent, a tolerated reference to a skipped step renders, and a
//! continued failure lets the run go on and complete.

use pallet::engine::{RunRecord, RunStatus, StepStatus};
use pallet::workflow::load_str;
use serde_json::{Value, json};

use crate::support::legacy_agent::LegacyAgent;
use crate::support::records::{run_body, step};

async fn run(body: &str, input: Value) -> (RunRecord, LegacyAgent) {
    run_body(body, input).await
}

const GUARDED: &str = "
steps:
  - id: maybe
    if: '{{ workflow.input.flag }}'
    skill: echo
    inputs: {said: hello}
  - id: box
    if: '{{ workflow.input.flag }}'
    step_type: parallel
    branches:
      steps:
        - {id: inner, skill: echo}
  - id: after
    skill: echo
    inputs: {text: '{{#if steps.maybe}}said {{ steps.maybe.outputs.said }}{{else}}nothing{{/if}}'}
";

#[tokio::test]
async fn a_falsy_guard_skips_the_step_and_what_it_contains() {
    let (record, agent) = run(GUARDED, json!({"flag": false})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let maybe = step(&record, "maybe");
    assert_eq!(maybe.status, StepStatus::Skipped);
    assert_eq!(maybe.inputs, Some(json!({"if": false})));
    assert_eq!(step(&record, "box").status, StepStatus::Skipped);
    assert_eq!(step(&record, "inner").status, StepStatus::Skipped);
    // Only `after` called the agent; it read the skipped step as absent.
    assert_eq!(agent.calls("echo"), 1);
    assert_eq!(
        step(&record, "after").outputs,
        Some(json!({"text": "nothing"}))
    );
    // A missing value reads as false, too.
    let (record, agent) = run(GUARDED, json!({})).await;
    assert_eq!(step(&record, "maybe").inputs, Some(json!({"if": null})));
    assert_eq!(agent.calls("echo"), 1);
}

#[tokio::test]
async fn a_truthy_guard_runs_the_step() {
    let (record, agent) = run(GUARDED, json!({"flag": "yes"})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(step(&record, "maybe").status, StepStatus::Completed);
    assert_eq!(step(&record, "inner").status, StepStatus::Completed);
    assert_eq!(agent.calls("echo"), 3);
    assert_eq!(
        step(&record, "after").outputs,
        Some(json!({"text": "said hello"}))
    );
}

#[tokio::test]
async fn a_continued_failure_is_recorded_and_the_run_goes_on() {
    let body = "
steps:
  - id: fan
    step_type: parallel
    branches:
      steps:
        - {id: broken, skill: fail, continue_on_error: true, inputs: {message: no good}}
        - {id: slow, skill: sleep, inputs: {ms: 100}}
  - id: next
    skill: echo
    inputs: {seen: '{{#if steps.broken}}yes{{else}}no{{/if}}'}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let broken = step(&record, "broken");
    assert_eq!(broken.status, StepStatus::Failed);
    assert!(
        broken
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no good"),
        "{broken:?}"
    );
    // fail_fast did not cancel the sibling.
    assert_eq!(step(&record, "slow").status, StepStatus::Completed);
    assert_eq!(record.continued_failures, vec!["broken".to_string()]);
    assert_eq!(agent.calls("echo"), 1);
    assert_eq!(step(&record, "next").outputs, Some(json!({"seen": "no"})));
}

#[tokio::test]
async fn a_reference_to_a_guarded_step_must_tolerate_its_absence() {
    let text = "metadata: {id: g, name: G, version: 1.0.0}
steps:
  - {id: maybe, if: '{{ workflow.input.flag }}', skill: echo}
  - {id: after, skill: echo, inputs: {x: '{{ steps.maybe.outputs.said }}'}}
  - {id: guarded, if: '{{ steps.maybe.outputs.said }}', skill: echo, inputs: {x: '{{ steps.maybe.outputs.said }}'}}
";
    let error = format!("{:?}", load_str("g.yaml", text).unwrap_err());
    assert!(
        error.contains("step `after` refers to `maybe`, which may be skipped: it has an `if:`"),
        "{error}"
    );
    assert!(error.contains("{{#if steps.maybe}}"), "{error}");
    assert!(!error.contains("step `guarded`"), "{error}");
}
