//! for_each, loop and on_failure against a real in-process legacy agent:
//! bounded concurrency, outputs in item order, failures collected or fast,
//! loops ending on `until` or at `max_iterations`, handlers with `error`.

use pallet::engine::{RunRecord, RunStatus, StepStatus};
use serde_json::{Value, json};

use crate::support::legacy_agent::LegacyAgent;
use crate::support::records::{run_body, step};

async fn run(body: &str, input: Value) -> (RunRecord, LegacyAgent) {
    run_body(body, input).await
}

fn outputs(record: &RunRecord, id: &str) -> Value {
    step(record, id).outputs.clone().unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_map_over_fifty_items_keeps_to_its_concurrency_and_item_order() {
    let body = "
steps:
  - id: each
    step_type: for_each
    items: '{{ workflow.input.items }}'
    max_concurrency: 4
    steps:
      - id: nap
        skill: sleep
        inputs: {ms: 20, value: '{{ item }}', at: '{{ index }}'}
";
    let items: Vec<Value> = (0..50).map(|n| json!(format!("item-{n}"))).collect();
    let (record, agent) = run(body, json!({ "items": items })).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls("sleep"), 50);
    assert_eq!(
        agent.max_in_flight(),
        4,
        "at most 4 items at once, and 4 used"
    );
    let each = outputs(&record, "each");
    assert_eq!(each["count"], 50);
    let results = each["results"].as_array().unwrap();
    for (index, result) in results.iter().enumerate() {
        let expected = json!({"ms": 20, "value": format!("item-{index}"), "at": index});
        assert_eq!(result["nap"], expected, "item {index}");
    }
    // Each item's step is recorded under its qualified id, in item order.
    let ids: Vec<&str> = record.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids[..3], ["each", "each[0]/nap", "each[1]/nap"]);
    assert_eq!(ids.len(), 51);
}

#[tokio::test]
async fn a_map_body_sees_its_own_steps_and_the_steps_before_it() {
    let body = "
steps:
  - {id: first, skill: echo, inputs: {prefix: pre}}
  - id: each
    step_type: for_each
    items: '{{ workflow.input.items }}'
    steps:
      - {id: one, skill: echo, inputs: {value: '{{ item.name }}'}}
      - {id: two, skill: echo, inputs: {joined: '{{ steps.first.outputs.prefix }}-{{ steps.one.outputs.value }}'}}
  - {id: after, skill: echo, inputs: {second: '{{ steps.each.outputs.results.1.two.joined }}'}}
";
    let input = json!({"items": [{"name": "a"}, {"name": "b"}]});
    let (record, _agent) = run(body, input).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(outputs(&record, "each[0]/two"), json!({"joined": "pre-a"}));
    assert_eq!(outputs(&record, "after"), json!({"second": "pre-b"}));
}

#[tokio::test]
async fn a_map_refuses_what_is_not_a_list_and_lists_past_its_bound() {
    let body = "
steps:
  - id: each
    step_type: for_each
    items: '{{ workflow.input.items }}'
    max_items: 3
    steps:
      - {id: one, skill: echo}
";
    let (record, agent) = run(body, json!({"items": "not a list"})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("step `each` failed: its `items` gave a string, not a list"),
        "{error}"
    );
    let (record, _) = run(body, json!({"items": [1, 2, 3, 4]})).await;
    let error = record.error.unwrap();
    assert!(
        error.contains("gave 4 items, more than its limit of 3; raise `max_items`"),
        "{error}"
    );
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn a_map_without_fail_fast_runs_every_item_and_names_the_first_failure() {
    let body = "
steps:
  - id: each
    step_type: for_each
    fail_fast: false
    max_concurrency: 1
    items: '{{ workflow.input.skills }}'
    steps:
      - id: call
        step_type: switch
        condition: '{{ item }}'
        branches:
          fail: [{id: failing, skill: fail, inputs: {message: 'no good at {{ index }}'}}]
          default: [{id: fine, skill: echo}]
  - {id: never, skill: echo}
";
    let input = json!({"skills": ["ok", "fail", "ok", "fail"]});
    let (record, agent) = run(body, input.clone()).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(agent.calls("echo"), 2, "every item ran");
    assert_eq!(agent.calls("fail"), 2);
    let error = record.error.clone().unwrap();
    assert!(
        error.starts_with("step `each` failed at item 1 (2 items failed):"),
        "{error}"
    );
    assert!(error.contains("no good at 1"), "{error}");
    assert_eq!(step(&record, "never").status, StepStatus::Skipped);

    // fail_fast (the default): item 1 fails, so items 2 and 3 never start.
    let (record, agent) = run(&body.replace("fail_fast: false", ""), input).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!((agent.calls("echo"), agent.calls("fail")), (1, 1));
}

#[tokio::test]
async fn a_loop_ends_when_until_holds_and_sees_the_previous_iteration() {
    let body = "
steps:
  - id: refine
    step_type: loop
    max_iterations: 10
    until: '{{ eq steps.draft.outputs.round 3 }}'
    steps:
      - id: draft
        skill: echo
        inputs: {round: '{{ loop.iteration }}', before: '{{ loop.previous }}'}
  - {id: after, skill: echo, inputs: {last: '{{ steps.refine.outputs.last.draft.round }}'}}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls("echo"), 4, "3 iterations and the step after");
    let refine = outputs(&record, "refine");
    assert_eq!(refine["iterations"], 3);
    assert_eq!(refine["until_met"], true);
    assert_eq!(outputs(&record, "refine[1]/draft")["before"], Value::Null);
    assert_eq!(
        outputs(&record, "refine[3]/draft")["before"],
        json!({"draft": {"round": 2, "before": {"draft": {"round": 1, "before": null}}}})
    );
    assert_eq!(outputs(&record, "after"), json!({"last": 3}));
}

#[tokio::test]
async fn a_loop_stops_at_max_iterations_with_until_unmet() {
    let body = "
steps:
  - id: refine
    step_type: loop
    max_iterations: 2
    until: '{{ steps.draft.outputs.done }}'
    steps:
      - {id: draft, skill: echo, inputs: {done: false}}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls("echo"), 2);
    let refine = outputs(&record, "refine");
    assert_eq!(
        (refine["iterations"].clone(), refine["until_met"].clone()),
        (json!(2), json!(false))
    );
}

#[tokio::test]
async fn a_failed_iteration_fails_the_loop_naming_the_iteration() {
    let body = "
steps:
  - id: refine
    step_type: loop
    max_iterations: 5
    steps:
      - id: pick
        step_type: conditional
        condition: '{{ eq loop.iteration 2 }}'
        branches:
          if_true: [{id: boom, skill: fail, inputs: {message: second round broke}}]
          if_false: [{id: fine, skill: echo}]
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(
        error.starts_with("step `refine` failed in iteration 2:"),
        "{error}"
    );
    assert!(error.contains("second round broke"), "{error}");
    assert_eq!(agent.calls("echo"), 1);
}

#[tokio::test]
async fn on_failure_runs_instead_of_the_failed_step_and_the_run_goes_on() {
    let body = "
steps:
  - id: build
    skill: fail
    inputs: {message: compiler exploded}
    on_failure:
      - {id: ticket, skill: echo, inputs: {about: '{{ error.step }}', why: '{{ error.message }}'}}
  - {id: after, skill: echo, inputs: {got: '{{ steps.build.outputs.about }}'}}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    let build = step(&record, "build");
    assert_eq!(build.status, StepStatus::Completed);
    let note = build.error.clone().unwrap();
    assert!(
        note.starts_with("handled by on_failure: step `build` failed"),
        "{note}"
    );
    let ticket = outputs(&record, "build/on_failure/ticket");
    assert_eq!(ticket["about"], "build");
    assert!(
        ticket["why"]
            .as_str()
            .unwrap()
            .contains("compiler exploded"),
        "{ticket}"
    );
    assert_eq!(outputs(&record, "after"), json!({"got": "build"}));
    assert_eq!(agent.calls("fail"), 1);
}

#[tokio::test]
async fn a_failing_handler_fails_the_step_with_both_errors() {
    let body = "
steps:
  - id: build
    skill: fail
    inputs: {message: first trouble}
    on_failure:
      - {id: fallback, skill: fail, inputs: {message: second trouble}}
  - {id: after, skill: echo}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("first trouble"), "{error}");
    assert!(
        error.contains("its on_failure handler failed too: step `fallback` failed"),
        "{error}"
    );
    assert!(error.contains("second trouble"), "{error}");
    assert_eq!(agent.calls("echo"), 0);
}

#[tokio::test]
async fn the_workflow_handler_runs_after_a_failure_and_the_run_stays_failed() {
    let body = "
steps:
  - {id: ok, skill: echo}
  - {id: broken, skill: fail, inputs: {message: disk full}}
  - {id: never, skill: echo}
on_failure:
  - {id: notify, skill: echo, inputs: {step: '{{ error.step }}', message: '{{ error.message }}'}}
";
    let (record, agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.clone().unwrap();
    assert!(error.starts_with("step `broken` failed"), "{error}");
    assert!(error.contains("disk full"), "{error}");
    let notify = outputs(&record, "on_failure/notify");
    assert_eq!(notify["step"], "broken");
    assert!(notify["message"].as_str().unwrap().contains("disk full"));
    assert_eq!(step(&record, "never").status, StepStatus::Skipped);
    assert_eq!(agent.calls("echo"), 2, "`ok` and the handler");

    // A completed run does not run the handler.
    let (record, agent) = run(&body.replace("skill: fail", "skill: echo"), json!({})).await;
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(agent.calls("echo"), 3);
    assert!(
        record
            .steps
            .iter()
            .all(|step| step.id != "on_failure/notify")
    );
}

#[tokio::test]
async fn the_workflow_handler_runs_after_the_workflow_timed_out() {
    let body = "
timeout: 0.3
steps:
  - {id: slow, skill: sleep, inputs: {ms: 2000}}
on_failure:
  - {id: notify, skill: echo, inputs: {message: '{{ error.message }}'}}
";
    let (record, _agent) = run(body, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(
        outputs(&record, "on_failure/notify")["message"],
        "workflow timed out after 300ms"
    );
}

#[tokio::test]
async fn continued_failures_in_a_map_are_reported_for_the_run() {
    let body = "
steps:
  - id: each
    step_type: for_each
    items: '{{ workflow.input.skills }}'
    steps:
      - id: call
        step_type: switch
        condition: '{{ item }}'
        continue_on_error: true
        branches:
          fail: [{id: failing, skill: fail}]
          default: [{id: fine, skill: echo}]
";
    let (record, agent) = run(body, json!({"skills": ["ok", "fail", "ok"]})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls("echo"), 2);
    assert_eq!(record.continued_failures, ["each[1]/call"]);
}
