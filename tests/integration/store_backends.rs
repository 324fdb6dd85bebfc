//! One store suite for both run databases: every shared test is a function
//! of `&dyn Backend`, and [`both!`] makes two tests of it, `sqlite::NAME` (a
//! `RunStore` file in a temp directory) and `postgres::NAME` (a `PgStore` on
//! a fresh database of the harness's cluster), so a failure names the
//! backend. The PostgreSQL-only tests at the end cover what has no SQLite
//! counterpart: workers migrating one database at once, a newer schema, and a
//! database that cannot be reached.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Utc};
use pallet::agent::{AgentTask, Binding, Interface, Version};
use pallet::engine::{StepRecord, StepStatus, StepTask};
use pallet::error::chain_of;
use pallet::store::events::{EventCursor, EventScope};
use pallet::store::lease::Owner;
use pallet::store::postgres::{PgStore, redacted};
use pallet::store::{
    Attempt, AttemptStatus, Backend, Clock, InvalidTransition, NewRun, RerunOf, ReusedAttempt,
    RunChange, RunState, RunStore, StoreError, clock::timestamp, digest,
};
use serde_json::{Value, json};

use crate::support::postgres::cluster;

/// A backend and what keeps its database alive (a temp directory, a test
/// database); the store goes first.
struct Fixture {
    store: Arc<dyn Backend>,
    _guard: Box<dyn Any>,
}

impl Fixture {
    fn store(&self) -> &dyn Backend {
        &*self.store
    }
}

/// A clock that does not move: every stamp is the same instant.
#[derive(Clone, Copy)]
struct StoppedClock(DateTime<Utc>);

impl Clock for StoppedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn open_sqlite(clock: Option<StoppedClock>) -> Fixture {
    let directory = tempfile::tempdir().expect("a temp directory");
    let store = RunStore::open(&directory.path().join("runs.db"))
        .unwrap_or_else(|error| panic!("open the SQLite store: {}", chain_of(&error)));
    let store = match clock {
        Some(clock) => store.with_clock(clock),
        None => store,
    };
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(directory),
    }
}

fn open_postgres(clock: Option<StoppedClock>) -> Fixture {
    let database = cluster().database();
    let store = PgStore::open(&database.url)
        .unwrap_or_else(|error| panic!("open the PostgreSQL store: {}", chain_of(&error)));
    let store = match clock {
        Some(clock) => store.with_clock(clock),
        None => store,
    };
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(database),
    }
}

/// `sqlite::NAME` and `postgres::NAME` for each test function `NAME(&dyn
/// Backend)`: `sync` ones are plain tests, `async` ones run on tokio, and
/// `stopped_clock` ones get a store whose clock stands still.
macro_rules! both {
    (
        sync: [$($sync:ident),* $(,)?],
        async: [$($async:ident),* $(,)?],
        stopped_clock: [$($stopped:ident),* $(,)?] $(,)?
    ) => {
        both!(@backend sqlite, open_sqlite, [$($sync),*], [$($async),*], [$($stopped),*]);
        both!(@backend postgres, open_postgres, [$($sync),*], [$($async),*], [$($stopped),*]);
    };
    (@backend $backend:ident, $open:ident, [$($sync:ident),*], [$($async:ident),*], [$($stopped:ident),*]) => {
        mod $backend {
            $(
                #[test]
                fn $sync() {
                    let fixture = super::$open(None);
                    super::$sync(fixture.store());
                }
            )*
            $(
                #[tokio::test]
                async fn $async() {
                    let fixture = super::$open(None);
                    super::$async(fixture.store()).await;
                }
            )*
            $(
                #[test]
                fn $stopped() {
                    let clock = super::StoppedClock(chrono::Utc::now());
                    let fixture = super::$open(Some(clock));
                    super::$stopped(fixture.store());
                }
            )*
        }
    };
}

both! {
    sync: [
        a_created_run_reads_back_as_it_was_stored,
        the_state_machine_refuses_and_a_refusal_writes_nothing,
        a_run_created_started_and_leased_in_one_write,
        runs_list_newest_first_and_pages_cover_each_run_once,
        attempts_are_numbered_per_step_and_feed_the_run,
        a_step_starts_only_while_the_run_is_in_progress,
        a_decision_completes_the_approval_and_supersedes_the_rework,
        a_decision_with_a_refused_change_writes_nothing,
        leases_are_taken_renewed_released_and_abandoned,
        an_executor_that_lost_its_lease_writes_nothing,
        an_execution_ends_and_releases_its_lease_in_one_write,
        a_run_ended_without_a_live_executor_cancels_its_running_attempts,
        interrupted_attempts_keep_their_tasks_for_a_reattach,
        failures_with_an_on_failure_attempt_are_handled_failures,
        a_rerun_records_its_origin_and_the_reused_attempts,
        statuses_errors_and_executor_starts,
        unknown_runs_are_not_found,
        text_an_agent_sent_is_stored_as_it_came,
        an_ended_run_takes_no_lease,
        every_change_is_an_event_read_in_commit_order,
    ],
    async: [
        queued_writes_of_a_run_apply_in_the_order_they_were_queued,
    ],
    stopped_clock: [
        runs_created_at_one_instant_list_and_page_by_id,
    ],
}

// Helpers.

fn new_run(input: Value) -> NewRun {
    NewRun {
        workflow_ref: "store-test".to_string(),
        workflow_id: "store-test".to_string(),
        workflow_version: "1.0.0".to_string(),
        workflow_source: "store-test.yaml".to_string(),
        workflow_yaml: "metadata: {id: store-test}\nsteps: []\n".to_string(),
        input,
        actor: "tester".to_string(),
    }
}

fn change(to: RunState, trigger: &str) -> RunChange<'_> {
    RunChange::new(to, trigger, "tester")
}

/// A new run, moved to `in_progress` as its own write; its id.
fn running(store: &dyn Backend) -> String {
    let id = store.create_run(&new_run(json!({}))).unwrap().id;
    store
        .transition(&id, change(RunState::InProgress, "started"))
        .wait()
        .unwrap();
    id
}

fn record(
    step: &str,
    status: StepStatus,
    outputs: Option<Value>,
    error: Option<&str>,
) -> StepRecord {
    let now = timestamp(Utc::now());
    StepRecord {
        id: step.to_string(),
        skill: Some("skill".to_string()),
        status,
        inputs: Some(json!({"y": 1, "b": 2})),
        outputs,
        error: error.map(str::to_string),
        attempts: 1,
        agent: Some("agent-a".to_string()),
        child: None,
        status_messages: Vec::new(),
        started_at: now.clone(),
        ended_at: now,
        duration_ms: 0.0,
    }
}

fn completed(step: &str, outputs: Value) -> StepRecord {
    record(step, StepStatus::Completed, Some(outputs), None)
}

fn failed(step: &str, error: Option<&str>) -> StepRecord {
    record(step, StepStatus::Failed, None, error)
}

/// A task accepted over A2A 1.0 JSON-RPC, sent with the key `key-ID` (as the
/// store's own tests build it).
fn task(id: &str) -> StepTask {
    StepTask {
        agent: "agent-a".to_string(),
        task: AgentTask {
            id: id.to_string(),
            interface: Interface {
                url: "http://127.0.0.1:1/rpc".to_string(),
                version: Version::V1_0,
                binding: Binding::JsonRpc,
            },
        },
        idempotency_key: format!("key-{id}"),
        reattached_from: None,
    }
}

fn start(store: &dyn Backend, id: &str, step: &str) {
    store
        .start_attempt(id, step, AttemptStatus::Running, None)
        .wait()
        .unwrap_or_else(|error| panic!("start {step}: {}", chain_of(&error)));
}

fn finish(store: &dyn Backend, id: &str, record: &StepRecord) -> RunState {
    store
        .finish_attempt(id, record, None)
        .wait()
        .unwrap_or_else(|error| panic!("finish {}: {}", record.id, chain_of(&error)))
}

/// (from, to, trigger) of the run's history.
fn history(store: &dyn Backend, id: &str) -> Vec<(Option<RunState>, RunState, String)> {
    store
        .history(id)
        .unwrap()
        .into_iter()
        .map(|transition| (transition.from, transition.to, transition.trigger))
        .collect()
}

/// (step, attempt number, status) of the run's attempts.
fn attempts(store: &dyn Backend, id: &str) -> Vec<(String, u32, AttemptStatus)> {
    store
        .attempts(id)
        .unwrap()
        .into_iter()
        .map(|attempt| (attempt.step_id, attempt.attempt, attempt.status))
        .collect()
}

fn row(step: &str, attempt: u32, status: AttemptStatus) -> (String, u32, AttemptStatus) {
    (step.to_string(), attempt, status)
}

fn ids(runs: &[pallet::store::StoredRun]) -> Vec<String> {
    runs.iter().map(|run| run.id.clone()).collect()
}

fn lost<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::LeaseLost { .. })),
        "{what} with a lost lease: {result:?}"
    );
}

/// Every page of `list_page(status, limit, ...)` in turn, until an empty one.
fn all_pages(store: &dyn Backend, status: Option<RunState>, limit: u32) -> Vec<Vec<String>> {
    all_pages_of(store, status, None, limit)
}

/// [`all_pages`] of one workflow's runs.
fn all_pages_of(
    store: &dyn Backend,
    status: Option<RunState>,
    workflow: Option<&str>,
    limit: u32,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .list_page(
                status,
                workflow,
                limit,
                after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
            )
            .unwrap();
        assert!(page.len() <= limit as usize, "a page longer than its limit");
        let Some(last) = page.last() else {
            return pages;
        };
        after = Some((last.created_at.clone(), last.id.clone()));
        pages.push(ids(&page));
        assert!(pages.len() < 100, "paging does not end");
    }
}

/// The events after `before` once at least `count` are visible (or after 20 s).
fn visible(
    store: &dyn Backend,
    before: EventCursor,
    count: usize,
) -> Vec<pallet::store::events::Event> {
    let started = std::time::Instant::now();
    loop {
        let events = store.events_after(before, &EventScope::All, 1000).unwrap();
        if events.len() >= count || started.elapsed() > std::time::Duration::from_secs(20) {
            return events;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

// The shared tests.

/// Case 1: A run reads back as created: pending, its input byte for byte (key
/// order included), its `created` transition from no state.
fn a_created_run_reads_back_as_it_was_stored(store: &dyn Backend) {
    let input_text =
        r#"{"z":1,"a":{"y":[1,2.5,-3],"b":null},"m":"ünï \"quoted\"","big":18446744073709551615}"#;
    let input: Value = serde_json::from_str(input_text).unwrap();
    let run = NewRun {
        actor: "alice".to_string(),
        ..new_run(input)
    };
    let created = store.create_run(&run).unwrap();
    assert_eq!(created.status, RunState::Pending);

    let stored = store.get(&created.id).unwrap();
    assert_eq!(stored.id, created.id);
    assert_eq!(stored.status, RunState::Pending);
    assert_eq!(serde_json::to_string(&stored.input).unwrap(), input_text);
    assert_eq!(stored.workflow_ref, run.workflow_ref);
    assert_eq!(stored.workflow_id, run.workflow_id);
    assert_eq!(stored.workflow_version, run.workflow_version);
    assert_eq!(stored.workflow_source, run.workflow_source);
    assert_eq!(stored.workflow_yaml, run.workflow_yaml);
    assert_eq!(stored.workflow_digest, digest(&run.workflow_yaml));
    assert_eq!(stored.current_step, None);
    assert_eq!(stored.context, json!({}));
    assert_eq!(stored.result, None);
    assert_eq!(stored.error, None);
    assert_eq!(stored.completed_at, None);
    assert!(stored.rerun_of.is_none());
    assert_eq!(stored.updated_at, stored.created_at);
    // RFC 3339 UTC with microseconds: `2025-01-02T03:04:05.123456Z`.
    assert_eq!(stored.created_at.len(), 27, "{}", stored.created_at);
    assert!(stored.created_at.ends_with('Z'), "{}", stored.created_at);

    let transitions = store.history(&created.id).unwrap();
    assert_eq!(transitions.len(), 1);
    let created_transition = &transitions[0];
    assert_eq!(created_transition.from, None);
    assert_eq!(created_transition.to, RunState::Pending);
    assert_eq!(created_transition.trigger, "created");
    assert_eq!(created_transition.actor, "alice");
    assert_eq!(created_transition.metadata, json!({}));
    assert_eq!(created_transition.at, stored.created_at);
}

/// Case 2: The state machine: allowed changes are written with what they
/// record; a refused one (also any change of an ended run) writes nothing.
fn the_state_machine_refuses_and_a_refusal_writes_nothing(store: &dyn Backend) {
    let id = store.create_run(&new_run(json!({}))).unwrap().id;
    let from = store
        .transition(&id, change(RunState::InProgress, "started"))
        .wait()
        .unwrap();
    assert_eq!(from, RunState::Pending);

    let refused = store
        .transition(&id, change(RunState::Pending, "back"))
        .wait();
    assert!(
        matches!(
            refused,
            Err(StoreError::Transition(InvalidTransition {
                from: RunState::InProgress,
                to: RunState::Pending
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        history(store, &id),
        [
            (None, RunState::Pending, "created".to_string()),
            (
                Some(RunState::Pending),
                RunState::InProgress,
                "started".to_string()
            ),
        ]
    );
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);

    let mut done = change(RunState::Completed, "steps_completed");
    done.result = Some(serde_json::from_str(r#"{"z":[1,2],"a":"x"}"#).unwrap());
    done.metadata = serde_json::from_str(r#"{"y":true,"b":1}"#).unwrap();
    done.error = Some("kept".to_string());
    assert_eq!(
        store.transition(&id, done).wait().unwrap(),
        RunState::InProgress
    );
    let ended = store.get(&id).unwrap();
    assert_eq!(ended.status, RunState::Completed);
    assert_eq!(
        serde_json::to_string(ended.result.as_ref().unwrap()).unwrap(),
        r#"{"z":[1,2],"a":"x"}"#
    );
    assert_eq!(ended.error.as_deref(), Some("kept"));
    let completed_at = ended
        .completed_at
        .clone()
        .expect("an ended run's completed_at");
    let last = store.history(&id).unwrap().pop().unwrap();
    assert_eq!(last.at, completed_at);
    assert_eq!(last.actor, "tester");
    assert_eq!(
        serde_json::to_string(&last.metadata).unwrap(),
        r#"{"y":true,"b":1}"#
    );

    // An ended run changes no more, whatever the change.
    for to in RunState::ALL {
        let refused = store.transition(&id, change(to, "again")).wait();
        assert!(
            matches!(
                refused,
                Err(StoreError::Transition(InvalidTransition {
                    from: RunState::Completed,
                    ..
                }))
            ),
            "completed -> {to}: {refused:?}"
        );
    }
    assert_eq!(store.history(&id).unwrap().len(), 3);
    let after = store.get(&id).unwrap();
    assert_eq!(after.status, RunState::Completed);
    assert_eq!(after.completed_at.as_deref(), Some(completed_at.as_str()));
}

/// Case 3: Created, started and (with a token) leased to this process at once.
fn a_run_created_started_and_leased_in_one_write(store: &dyn Backend) {
    let run = new_run(json!({"a": 1}));
    let id = store
        .create_started_run(&run, change(RunState::InProgress, "start"), Some("token"))
        .wait()
        .unwrap();
    let stored = store.get(&id).unwrap();
    assert_eq!(stored.status, RunState::InProgress);
    assert_eq!(stored.input, json!({"a": 1}));
    assert_eq!(
        history(store, &id),
        [
            (None, RunState::Pending, "created".to_string()),
            (
                Some(RunState::Pending),
                RunState::InProgress,
                "start".to_string()
            ),
        ]
    );
    let lease = store.live_lease(&id).unwrap().expect("the new run's lease");
    assert_eq!(lease.token, "token");
    assert_eq!(&lease.owner, Owner::current());
    assert!(lease.expires_at > Utc::now());
    assert_eq!(store.executor_starts(&id).unwrap(), 1);

    // Without a token: created and started, nobody executes it yet.
    let other = store
        .create_started_run(&run, change(RunState::InProgress, "start"), None)
        .wait()
        .unwrap();
    assert_ne!(other, id);
    assert_eq!(store.get(&other).unwrap().status, RunState::InProgress);
    assert!(store.live_lease(&other).unwrap().is_none());
    assert_eq!(store.executor_starts(&other).unwrap(), 0);

    // A start the state machine refuses creates nothing.
    let before = store.list(None, 100).unwrap().len();
    let refused = store
        .create_started_run(&run, change(RunState::Completed, "start"), Some("t"))
        .wait();
    assert!(
        matches!(refused, Err(StoreError::Transition(_))),
        "{refused:?}"
    );
    assert_eq!(store.list(None, 100).unwrap().len(), before);
}

/// Case 4: Newest first, filtered by status; pages after `(created_at, id)`
/// cover every run exactly once.
fn runs_list_newest_first_and_pages_cover_each_run_once(store: &dyn Backend) {
    let mut created = Vec::new();
    for n in 0..7 {
        let run = store.create_run(&new_run(json!({"n": n}))).unwrap();
        if n % 2 == 0 {
            store
                .transition(&run.id, change(RunState::InProgress, "started"))
                .wait()
                .unwrap();
        }
        created.push(run);
    }
    for pair in created.windows(2) {
        assert!(pair[0].created_at <= pair[1].created_at, "stamps go back");
    }
    // Newest first; the same instant by id (ascending for `list`,
    // descending for `list_page`, as both backends order them).
    let mut newest_first = created.clone();
    newest_first.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let listed = store.list(None, 100).unwrap();
    assert_eq!(ids(&listed), ids(&newest_first));
    assert_eq!(listed[0].input, json!({"n": 6}));
    assert_eq!(ids(&store.list(None, 3).unwrap()), ids(&newest_first[..3]));
    let in_progress: Vec<String> = newest_first
        .iter()
        .filter(|run| run.input["n"].as_i64().unwrap() % 2 == 0)
        .map(|run| run.id.clone())
        .collect();
    assert_eq!(in_progress.len(), 4);
    assert_eq!(
        ids(&store.list(Some(RunState::InProgress), 100).unwrap()),
        in_progress
    );
    assert_eq!(store.list(Some(RunState::Pending), 100).unwrap().len(), 3);
    assert!(store.list(Some(RunState::Failed), 100).unwrap().is_empty());

    let mut paged_order = created.clone();
    paged_order.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let pages = all_pages(store, None, 3);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), ids(&paged_order));
    let pages = all_pages(store, Some(RunState::InProgress), 3);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    let mut seen = pages.concat();
    let mut expected = in_progress.clone();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

/// 4b. Runs stamped at one instant: `created_at` ties, the id orders.
fn runs_created_at_one_instant_list_and_page_by_id(store: &dyn Backend) {
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(store.create_run(&new_run(json!({"n": n}))).unwrap());
    }
    assert!(
        created
            .iter()
            .all(|run| run.created_at == created[0].created_at),
        "a stopped clock stamps one instant"
    );
    let mut by_id: Vec<String> = ids(&created);
    by_id.sort();
    assert_eq!(ids(&store.list(None, 100).unwrap()), by_id);
    let pages = all_pages(store, None, 2);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1],
        "{pages:?}"
    );
    by_id.reverse();
    assert_eq!(pages.concat(), by_id);
}

/// Case 5: Attempts in the order they started, numbered per step; the latest
/// completed attempt gives the outputs; the run's current step and context
/// follow the attempts.
fn attempts_are_numbered_per_step_and_feed_the_run(store: &dyn Backend) {
    let id = running(store);
    let created_at = store.get(&id).unwrap().created_at;
    start(store, &id, "one");
    assert_eq!(
        finish(store, &id, &completed("one", json!({"n": 1}))),
        RunState::InProgress
    );
    start(store, &id, "one");
    let mut boom = failed("one", Some("boom"));
    boom.status_messages = vec!["working".to_string(), "almost".to_string()];
    finish(store, &id, &boom);
    let started_at = timestamp(Utc::now() - chrono::Duration::seconds(5));
    let status = store
        .record_attempt(
            &id,
            &started_at,
            &completed("one", serde_json::from_str(r#"{"z":3,"a":0}"#).unwrap()),
            None,
        )
        .wait()
        .unwrap();
    assert_eq!(status, RunState::InProgress);
    let two_at = timestamp(Utc::now() - chrono::Duration::seconds(1));
    store
        .start_attempt_at(&id, "two", AttemptStatus::Running, &two_at, None)
        .wait()
        .unwrap();

    assert_eq!(
        attempts(store, &id),
        [
            row("one", 1, AttemptStatus::Completed),
            row("one", 2, AttemptStatus::Failed),
            row("one", 3, AttemptStatus::Completed),
            row("two", 1, AttemptStatus::Running),
        ]
    );
    let all: Vec<Attempt> = store.attempts(&id).unwrap();
    assert_eq!(all[0].output, Some(json!({"n": 1})));
    assert_eq!(
        serde_json::to_string(all[0].inputs.as_ref().unwrap()).unwrap(),
        r#"{"y":1,"b":2}"#
    );
    assert_eq!(all[0].agent.as_deref(), Some("agent-a"));
    assert!(all[0].ended_at.is_some());
    assert_eq!(all[1].error.as_deref(), Some("boom"));
    assert_eq!(all[1].output, None);
    assert_eq!(all[1].status_message.as_deref(), Some("almost"));
    assert_eq!(all[2].started_at, started_at);
    assert!(all[2].ended_at.is_some());
    assert_eq!(all[3].started_at, two_at);
    assert_eq!(all[3].ended_at, None);
    assert!(all.iter().all(|attempt| attempt.reused_from.is_none()));

    let outputs = store.completed_outputs(&id).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(
        serde_json::to_string(&outputs["one"]).unwrap(),
        r#"{"z":3,"a":0}"#
    );
    assert_eq!(
        store.previous_attempts(&id).unwrap(),
        HashMap::from([("one".to_string(), 3), ("two".to_string(), 1)])
    );
    let run = store.get(&id).unwrap();
    assert_eq!(run.current_step.as_deref(), Some("two"));
    assert_eq!(run.context, json!({"one": {"z": 3, "a": 0}}));
    assert!(run.updated_at > created_at);

    // Interrupted and waiting attempts do not count towards the key.
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 1);
    store
        .start_attempt(&id, "gate", AttemptStatus::Waiting, None)
        .wait()
        .unwrap();
    assert_eq!(
        store.previous_attempts(&id).unwrap(),
        HashMap::from([("one".to_string(), 3)])
    );
    start(store, &id, "two");
    finish(store, &id, &completed("two", json!({"m": 2})));
    assert_eq!(
        attempts(store, &id)[3..],
        [
            row("two", 1, AttemptStatus::Interrupted),
            row("gate", 1, AttemptStatus::Waiting),
            row("two", 2, AttemptStatus::Completed),
        ]
    );
    assert_eq!(
        store.previous_attempts(&id).unwrap(),
        HashMap::from([("one".to_string(), 3), ("two".to_string(), 1)])
    );
    let run = store.get(&id).unwrap();
    assert_eq!(run.current_step.as_deref(), Some("two"));
    assert_eq!(
        run.context,
        json!({"one": {"z": 3, "a": 0}, "two": {"m": 2}})
    );
    // A finish finds no open attempt of a step that is not running: nothing changes.
    finish(store, &id, &completed("two", json!({"m": 3})));
    assert_eq!(
        store.completed_outputs(&id).unwrap()["two"],
        json!({"m": 2})
    );
}

/// 5b. A start is refused (NotRunning) once the run is not in progress; a
/// finish is still recorded and answers the status.
fn a_step_starts_only_while_the_run_is_in_progress(store: &dyn Backend) {
    let pending = store.create_run(&new_run(json!({}))).unwrap().id;
    let refused = store
        .start_attempt(&pending, "one", AttemptStatus::Running, None)
        .wait();
    assert!(
        matches!(
            refused,
            Err(StoreError::NotRunning {
                status: RunState::Pending,
                ..
            })
        ),
        "{refused:?}"
    );

    let id = running(store);
    // This process executes the run: its attempts are its own to end.
    assert_eq!(store.acquire_lease(&id, "executor").wait().unwrap(), None);
    start(store, &id, "one");
    store
        .transition(&id, change(RunState::Cancelled, "cancelled"))
        .wait()
        .unwrap();
    assert_eq!(
        attempts(store, &id),
        [row("one", 1, AttemptStatus::Running)]
    );
    assert_eq!(
        finish(store, &id, &completed("one", json!({"n": 1}))),
        RunState::Cancelled
    );
    let refused = store
        .start_attempt(&id, "two", AttemptStatus::Running, None)
        .wait();
    assert!(
        matches!(
            refused,
            Err(StoreError::NotRunning {
                status: RunState::Cancelled,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        attempts(store, &id),
        [row("one", 1, AttemptStatus::Completed)]
    );
    assert!(store.attempts(&pending).unwrap().is_empty());
}

/// Case 6: A decision: the waiting approval becomes completed with it, the
/// rework's completed attempts are superseded, the change applies.
fn a_decision_completes_the_approval_and_supersedes_the_rework(store: &dyn Backend) {
    let id = running(store);
    start(store, &id, "draft");
    finish(store, &id, &completed("draft", json!({"text": "v1"})));
    start(store, &id, "check");
    finish(store, &id, &completed("check", json!({"ok": true})));
    start(store, &id, "keep");
    finish(store, &id, &completed("keep", json!({"kept": 1})));
    store
        .start_attempt(&id, "review", AttemptStatus::Waiting, None)
        .wait()
        .unwrap();
    store
        .transition(&id, change(RunState::WaitingApproval, "approval_requested"))
        .wait()
        .unwrap();

    let decision_text = r#"{"approved":false,"comment":"redo","actor":"alice"}"#;
    let decision: Value = serde_json::from_str(decision_text).unwrap();
    let rework = ["draft".to_string(), "check".to_string()];
    store
        .decide(
            &id,
            "review",
            &decision,
            &rework,
            change(RunState::InProgress, "rejected"),
        )
        .wait()
        .unwrap();

    assert_eq!(
        attempts(store, &id),
        [
            row("draft", 1, AttemptStatus::Superseded),
            row("check", 1, AttemptStatus::Superseded),
            row("keep", 1, AttemptStatus::Completed),
            row("review", 1, AttemptStatus::Completed),
        ]
    );
    let review = store.attempts(&id).unwrap().pop().unwrap();
    assert_eq!(
        serde_json::to_string(review.output.as_ref().unwrap()).unwrap(),
        decision_text
    );
    assert!(review.ended_at.is_some());
    let outputs = store.completed_outputs(&id).unwrap();
    assert_eq!(
        outputs,
        HashMap::from([
            ("keep".to_string(), json!({"kept": 1})),
            ("review".to_string(), decision.clone()),
        ])
    );
    let run = store.get(&id).unwrap();
    assert_eq!(run.status, RunState::InProgress);
    assert_eq!(
        run.context,
        json!({"keep": {"kept": 1}, "review": decision})
    );
    assert_eq!(
        history(store, &id).pop().unwrap(),
        (
            Some(RunState::WaitingApproval),
            RunState::InProgress,
            "rejected".to_string()
        )
    );

    // The rework runs again; a decision on a step with no waiting attempt
    // is recorded as its next attempt.
    start(store, &id, "draft");
    finish(store, &id, &completed("draft", json!({"text": "v2"})));
    store
        .transition(&id, change(RunState::WaitingApproval, "approval_requested"))
        .wait()
        .unwrap();
    store
        .decide(
            &id,
            "review",
            &json!({"approved": true}),
            &[],
            change(RunState::InProgress, "approved"),
        )
        .wait()
        .unwrap();
    let all = attempts(store, &id);
    assert_eq!(
        all[4..],
        [
            row("draft", 2, AttemptStatus::Completed),
            row("review", 2, AttemptStatus::Completed),
        ]
    );
    let outputs = store.completed_outputs(&id).unwrap();
    assert_eq!(outputs["draft"], json!({"text": "v2"}));
    assert_eq!(outputs["review"], json!({"approved": true}));
    assert!(!outputs.contains_key("check"));
}

/// 6b. A decision whose change the state machine refuses writes nothing.
fn a_decision_with_a_refused_change_writes_nothing(store: &dyn Backend) {
    let id = running(store);
    start(store, &id, "draft");
    finish(store, &id, &completed("draft", json!({"text": "v1"})));
    store
        .start_attempt(&id, "review", AttemptStatus::Waiting, None)
        .wait()
        .unwrap();
    store
        .transition(&id, change(RunState::WaitingApproval, "approval_requested"))
        .wait()
        .unwrap();
    let before = (
        attempts(store, &id),
        store.completed_outputs(&id).unwrap(),
        history(store, &id),
    );
    let refused = store
        .decide(
            &id,
            "review",
            &json!({"approved": false}),
            &["draft".to_string()],
            change(RunState::Pending, "rejected"),
        )
        .wait();
    assert!(
        matches!(
            refused,
            Err(StoreError::Transition(InvalidTransition {
                from: RunState::WaitingApproval,
                to: RunState::Pending
            }))
        ),
        "{refused:?}"
    );
    let after = (
        attempts(store, &id),
        store.completed_outputs(&id).unwrap(),
        history(store, &id),
    );
    assert_eq!(after, before);
    assert_eq!(store.get(&id).unwrap().status, RunState::WaitingApproval);
    assert_eq!(
        store.attempts(&id).unwrap()[1].output,
        None,
        "the refused decision was recorded"
    );
}

/// Case 7: The lease: taken when free, answered with the holder when held (also
/// to this process under another token), renewed only by its token;
/// released clears the starts, abandoned leaves the start counted.
fn leases_are_taken_renewed_released_and_abandoned(store: &dyn Backend) {
    let id = running(store);
    assert!(store.live_lease(&id).unwrap().is_none());
    assert_eq!(store.executor_starts(&id).unwrap(), 0);

    assert_eq!(store.acquire_lease(&id, "first").wait().unwrap(), None);
    assert_eq!(store.executor_starts(&id).unwrap(), 1);
    let lease = store
        .live_lease(&id)
        .unwrap()
        .expect("the lease just taken");
    assert_eq!(lease.token, "first");
    assert_eq!(&lease.owner, Owner::current());

    let holder = store
        .acquire_lease(&id, "second")
        .wait()
        .unwrap()
        .expect("a live process holds the lease");
    assert_eq!(holder.token, "first");
    assert_eq!(&holder.owner, Owner::current());
    assert_eq!(
        store.executor_starts(&id).unwrap(),
        1,
        "a refused take counts no start"
    );

    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(store.renew_lease(&id, "first").wait().unwrap());
    assert!(!store.renew_lease(&id, "second").wait().unwrap());
    let renewed = store.live_lease(&id).unwrap().unwrap();
    assert_eq!(renewed.token, "first");
    assert!(
        renewed.expires_at > lease.expires_at,
        "the renewal extends it"
    );
    assert_eq!(renewed.since, lease.since, "a renewal is no new lease");

    store.release_lease(&id, "first").wait().unwrap();
    assert!(store.live_lease(&id).unwrap().is_none());
    assert_eq!(store.executor_starts(&id).unwrap(), 0);
    assert!(!store.renew_lease(&id, "first").wait().unwrap());

    // An executor that panicked gives the lease up as a crash would.
    assert_eq!(store.acquire_lease(&id, "third").wait().unwrap(), None);
    store.abandon_lease(&id, "third").wait().unwrap();
    assert!(store.live_lease(&id).unwrap().is_none());
    assert_eq!(store.executor_starts(&id).unwrap(), 1);
    assert_eq!(store.acquire_lease(&id, "fourth").wait().unwrap(), None);
    assert_eq!(store.executor_starts(&id).unwrap(), 2);
    store.release_lease(&id, "fourth").wait().unwrap();
    assert_eq!(store.executor_starts(&id).unwrap(), 0);
}

/// 7b. Every write of an executor whose lease was taken over is refused
/// (LeaseLost) and writes nothing.
fn an_executor_that_lost_its_lease_writes_nothing(store: &dyn Backend) {
    let id = running(store);
    assert_eq!(store.acquire_lease(&id, "old").wait().unwrap(), None);
    store
        .start_attempt(&id, "one", AttemptStatus::Running, Some("old"))
        .wait()
        .unwrap();
    // Taken over (here: released and taken again under another token).
    store.release_lease(&id, "old").wait().unwrap();
    assert_eq!(store.acquire_lease(&id, "new").wait().unwrap(), None);
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 1);
    store
        .start_attempt(&id, "one", AttemptStatus::Running, Some("new"))
        .wait()
        .unwrap();
    let before = (store.attempts(&id).unwrap(), history(store, &id));

    let old = Some("old");
    lost(
        "start_attempt",
        store
            .start_attempt(&id, "two", AttemptStatus::Running, old)
            .wait(),
    );
    lost(
        "start_attempt_at",
        store
            .start_attempt_at(
                &id,
                "two",
                AttemptStatus::Running,
                &timestamp(Utc::now()),
                old,
            )
            .wait(),
    );
    lost(
        "finish_attempt",
        store
            .finish_attempt(&id, &completed("one", json!({"by": "old"})), old)
            .wait(),
    );
    lost(
        "record_attempt",
        store
            .record_attempt(
                &id,
                &timestamp(Utc::now()),
                &completed("two", json!({})),
                old,
            )
            .wait(),
    );
    lost(
        "record_task",
        store.record_task(&id, "one", &task("t-old"), old).wait(),
    );
    lost(
        "step_status",
        store
            .step_status(&id, "one", "from the old one", old)
            .wait(),
    );
    lost(
        "end_execution",
        store
            .end_execution(&id, change(RunState::Failed, "error"), "old")
            .wait(),
    );

    let (before_attempts, before_history) = before;
    let after = store.attempts(&id).unwrap();
    assert_eq!(
        attempts(store, &id),
        [
            row("one", 1, AttemptStatus::Interrupted),
            row("one", 2, AttemptStatus::Running),
        ]
    );
    assert_eq!(after.len(), before_attempts.len());
    assert_eq!(after[1].task_id, None);
    assert_eq!(after[1].status_message, None);
    assert_eq!(after[1].output, None);
    assert_eq!(history(store, &id), before_history);
    assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
    assert_eq!(store.live_lease(&id).unwrap().unwrap().token, "new");

    // The owner's writes go through; its end releases the lease.
    let new = Some("new");
    store
        .record_task(&id, "one", &task("t-new"), new)
        .wait()
        .unwrap();
    store
        .step_status(&id, "one", "working", new)
        .wait()
        .unwrap();
    let one = store.attempts(&id).unwrap().pop().unwrap();
    assert_eq!(one.task_id.as_deref(), Some("t-new"));
    assert_eq!(one.status_message.as_deref(), Some("working"));
    store
        .finish_attempt(&id, &completed("one", json!({"by": "new"})), new)
        .wait()
        .unwrap();
    store
        .end_execution(&id, change(RunState::Completed, "steps_completed"), "new")
        .wait()
        .unwrap();
    assert_eq!(store.get(&id).unwrap().status, RunState::Completed);
    assert_eq!(store.live_lease(&id).unwrap(), None);
    assert_eq!(store.executor_starts(&id).unwrap(), 0);
    assert_eq!(
        store.completed_outputs(&id).unwrap()["one"],
        json!({"by": "new"})
    );
}

/// Case 8: An execution's end applies its change and releases its lease in one
/// write; the attempts it left running are cancelled (no executor is left).
fn an_execution_ends_and_releases_its_lease_in_one_write(store: &dyn Backend) {
    let id = running(store);
    assert_eq!(store.acquire_lease(&id, "exec").wait().unwrap(), None);
    store
        .start_attempt(&id, "one", AttemptStatus::Running, Some("exec"))
        .wait()
        .unwrap();
    let mut fail = change(RunState::Failed, "error");
    fail.error = Some("agent down".to_string());
    let from = store.end_execution(&id, fail, "exec").wait().unwrap();
    assert_eq!(from, RunState::InProgress);
    let run = store.get(&id).unwrap();
    assert_eq!(run.status, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("agent down"));
    assert!(run.completed_at.is_some());
    assert!(store.live_lease(&id).unwrap().is_none());
    assert_eq!(store.executor_starts(&id).unwrap(), 0);
    let one = store.attempts(&id).unwrap().pop().unwrap();
    assert_eq!(one.status, AttemptStatus::Cancelled);
    assert!(one.ended_at.is_some());
    assert_eq!(
        one.error.as_deref(),
        Some("the run ended (failed) while this attempt was in flight")
    );
    assert_eq!(
        history(store, &id).pop().unwrap(),
        (
            Some(RunState::InProgress),
            RunState::Failed,
            "error".to_string()
        )
    );

    // A refused change releases nothing: the end is one write.
    let other = running(store);
    assert_eq!(store.acquire_lease(&other, "exec").wait().unwrap(), None);
    let refused = store
        .end_execution(&other, change(RunState::Pending, "back"), "exec")
        .wait();
    assert!(
        matches!(refused, Err(StoreError::Transition(_))),
        "{refused:?}"
    );
    assert_eq!(store.live_lease(&other).unwrap().unwrap().token, "exec");
    assert_eq!(store.executor_starts(&other).unwrap(), 1);
    assert_eq!(store.get(&other).unwrap().status, RunState::InProgress);
    // A pause is no end: its attempts stay as they are.
    store
        .start_attempt(&other, "gate", AttemptStatus::Waiting, Some("exec"))
        .wait()
        .unwrap();
    store
        .end_execution(
            &other,
            change(RunState::WaitingApproval, "approval_requested"),
            "exec",
        )
        .wait()
        .unwrap();
    assert_eq!(store.get(&other).unwrap().status, RunState::WaitingApproval);
    assert!(store.live_lease(&other).unwrap().is_none());
    assert_eq!(
        attempts(store, &other),
        [row("gate", 1, AttemptStatus::Waiting)]
    );
}

/// 8b. A terminal change with no live executor cancels the attempts left
/// running, and only those.
fn a_run_ended_without_a_live_executor_cancels_its_running_attempts(store: &dyn Backend) {
    let id = running(store);
    start(store, &id, "done");
    finish(store, &id, &completed("done", json!({})));
    start(store, &id, "left");
    start(store, &id, "also-left");
    store
        .transition(&id, change(RunState::Cancelled, "cancelled"))
        .wait()
        .unwrap();
    assert_eq!(
        attempts(store, &id),
        [
            row("done", 1, AttemptStatus::Completed),
            row("left", 1, AttemptStatus::Cancelled),
            row("also-left", 1, AttemptStatus::Cancelled),
        ]
    );
    let all = store.attempts(&id).unwrap();
    assert_eq!(all[0].error, None);
    assert_eq!(
        all[1].error.as_deref(),
        Some("the run ended (cancelled) while this attempt was in flight")
    );
    assert_eq!(all[1].ended_at, store.get(&id).unwrap().completed_at);
}

/// Case 9: A restart marks the attempts left running interrupted; the task of
/// the newest interrupted attempt is found again.
fn interrupted_attempts_keep_their_tasks_for_a_reattach(store: &dyn Backend) {
    let id = running(store);
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 0);
    // `slow`: a task, then a resume that died before the agent answered.
    start(store, &id, "slow");
    store
        .record_task(&id, "slow", &task("t-1"), None)
        .wait()
        .unwrap();
    store
        .step_status(&id, "slow", "halfway", None)
        .wait()
        .unwrap();
    start(store, &id, "other");
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 2);
    start(store, &id, "slow");
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 1);
    // `done`: its task ended with the attempt; `quick`: never had one.
    start(store, &id, "done");
    store
        .record_task(&id, "done", &task("t-2"), None)
        .wait()
        .unwrap();
    finish(store, &id, &completed("done", json!({})));
    start(store, &id, "quick");
    assert_eq!(store.interrupt_running(&id).wait().unwrap(), 1);

    let mut expected = task("t-1");
    expected.reattached_from = Some(1);
    assert_eq!(
        store.interrupted_tasks(&id).unwrap(),
        HashMap::from([("slow".to_string(), expected)])
    );
    let all = store.attempts(&id).unwrap();
    let slow = &all[0];
    assert_eq!(slow.status, AttemptStatus::Interrupted);
    assert!(slow.ended_at.is_some());
    assert_eq!(slow.task_id.as_deref(), Some("t-1"));
    assert_eq!(slow.idempotency_key.as_deref(), Some("key-t-1"));
    assert_eq!(slow.status_message.as_deref(), Some("halfway"));
    assert_eq!(
        serde_json::to_string(slow.task_interface.as_ref().unwrap()).unwrap(),
        r#"{"url":"http://127.0.0.1:1/rpc","version":"1.0","binding":"JSONRPC"}"#
    );
    assert_eq!(
        attempts(store, &id),
        [
            row("slow", 1, AttemptStatus::Interrupted),
            row("other", 1, AttemptStatus::Interrupted),
            row("slow", 2, AttemptStatus::Interrupted),
            row("done", 1, AttemptStatus::Completed),
            row("quick", 1, AttemptStatus::Interrupted),
        ]
    );

    // The reattached attempt records where its task came from; once it
    // runs, the step has no interrupted task any more.
    start(store, &id, "slow");
    let mut reattached = task("t-1");
    reattached.reattached_from = Some(1);
    store
        .record_task(&id, "slow", &reattached, None)
        .wait()
        .unwrap();
    assert_eq!(store.attempts(&id).unwrap()[5].reattached_from, Some(1));
    assert!(store.interrupted_tasks(&id).unwrap().is_empty());
}

/// 9b. A step whose latest attempt failed and whose `on_failure` handler
/// started is a handled failure.
fn failures_with_an_on_failure_attempt_are_handled_failures(store: &dyn Backend) {
    let id = running(store);
    let run_step = |step: &str, record: StepRecord| {
        start(store, &id, step);
        finish(store, &id, &record);
    };
    run_step("fetch", failed("fetch", Some("timeout")));
    run_step(
        "fetch/on_failure/notify",
        completed("fetch/on_failure/notify", json!({})),
    );
    // No error recorded: it reads as `failed`.
    run_step("bare", failed("bare", None));
    run_step(
        "bare/on_failure/x",
        completed("bare/on_failure/x", json!({})),
    );
    // Failed without a handler (`fet` is a prefix of `fetch`, not its handler).
    run_step("fet", failed("fet", Some("no handler")));
    // Failed, handled, then completed on a later attempt.
    run_step("retried", failed("retried", Some("first try")));
    run_step(
        "retried/on_failure/x",
        completed("retried/on_failure/x", json!({})),
    );
    run_step("retried", completed("retried", json!({})));
    assert_eq!(
        store.handled_failures(&id).unwrap(),
        HashMap::from([
            ("fetch".to_string(), "timeout".to_string()),
            ("bare".to_string(), "failed".to_string()),
        ])
    );
}

/// Case 10: A rerun records where it came from and starts with the attempts it
/// takes over, as attempt 1 of each step.
fn a_rerun_records_its_origin_and_the_reused_attempts(store: &dyn Backend) {
    let original = running(store);
    start(store, &original, "one");
    finish(
        store,
        &original,
        &completed("one", serde_json::from_str(r#"{"z":1,"a":2}"#).unwrap()),
    );
    let source = store.attempts(&original).unwrap().remove(0);
    let reused = vec![ReusedAttempt {
        step_id: "one".to_string(),
        inputs: source.inputs.clone(),
        output: source.output.clone(),
        agent: source.agent.clone(),
        started_at: source.started_at.clone(),
        ended_at: source.ended_at.clone(),
        reused_from: original.clone(),
    }];
    let of = RerunOf {
        run_id: original.clone(),
        from_step: "two".to_string(),
    };
    let id = store
        .create_rerun(
            &new_run(json!({"again": true})),
            (of.clone(), reused),
            change(RunState::InProgress, "rerun"),
            Some("token"),
        )
        .wait()
        .unwrap();
    assert_ne!(id, original);
    let run = store.get(&id).unwrap();
    assert_eq!(run.rerun_of, Some(of));
    assert_eq!(run.status, RunState::InProgress);
    assert_eq!(run.current_step.as_deref(), Some("one"));
    assert_eq!(run.context, json!({"one": {"z": 1, "a": 2}}));
    assert!(store.get(&original).unwrap().rerun_of.is_none());
    assert_eq!(
        history(store, &id),
        [
            (None, RunState::Pending, "created".to_string()),
            (
                Some(RunState::Pending),
                RunState::InProgress,
                "rerun".to_string()
            ),
        ]
    );
    let taken = store.attempts(&id).unwrap();
    assert_eq!(taken.len(), 1);
    let one = &taken[0];
    assert_eq!((one.step_id.as_str(), one.attempt), ("one", 1));
    assert_eq!(one.status, AttemptStatus::Completed);
    assert_eq!(one.reused_from.as_deref(), Some(original.as_str()));
    assert_eq!(one.started_at, source.started_at);
    assert_eq!(one.ended_at, source.ended_at);
    assert_eq!(one.agent, source.agent);
    assert_eq!(one.inputs, source.inputs);
    assert_eq!(
        serde_json::to_string(one.output.as_ref().unwrap()).unwrap(),
        r#"{"z":1,"a":2}"#
    );
    assert_eq!(
        store.completed_outputs(&id).unwrap(),
        HashMap::from([("one".to_string(), json!({"z": 1, "a": 2}))])
    );
    assert_eq!(
        store.previous_attempts(&id).unwrap(),
        HashMap::from([("one".to_string(), 1)])
    );
    assert_eq!(store.live_lease(&id).unwrap().unwrap().token, "token");
    assert_eq!(store.executor_starts(&id).unwrap(), 1);
    // Its own steps go on from there.
    start(store, &id, "two");
    assert_eq!(
        attempts(store, &id),
        [
            row("one", 1, AttemptStatus::Completed),
            row("two", 1, AttemptStatus::Running),
        ]
    );
    assert_eq!(
        attempts(store, &original),
        [row("one", 1, AttemptStatus::Completed)]
    );
}

/// Case 11: Statuses of the runs that exist, the error a run is left with, and
/// the count of executions that never ended.
fn statuses_errors_and_executor_starts(store: &dyn Backend) {
    let pending = store.create_run(&new_run(json!({}))).unwrap().id;
    let busy = running(store);
    let cancelled = running(store);
    store
        .transition(&cancelled, change(RunState::Cancelled, "cancelled"))
        .wait()
        .unwrap();
    let asked = [
        pending.clone(),
        busy.clone(),
        cancelled.clone(),
        "no-such-run".to_string(),
    ];
    assert_eq!(
        store.statuses(&asked).unwrap(),
        HashMap::from([
            (pending.clone(), RunState::Pending),
            (busy.clone(), RunState::InProgress),
            (cancelled.clone(), RunState::Cancelled),
        ])
    );
    assert!(store.statuses(&[]).unwrap().is_empty());

    store.set_error(&busy, "left for a human").unwrap();
    assert_eq!(
        store.get(&busy).unwrap().error.as_deref(),
        Some("left for a human")
    );
    store.set_error(&busy, "crashed 3 times").unwrap();
    let run = store.get(&busy).unwrap();
    assert_eq!(run.error.as_deref(), Some("crashed 3 times"));
    assert_eq!(run.status, RunState::InProgress);
    assert_eq!(history(store, &busy).len(), 2, "an error is no transition");
    assert_eq!(store.get(&pending).unwrap().error, None);

    assert_eq!(store.executor_starts(&pending).unwrap(), 0);
    for token in ["a", "b", "c"] {
        assert_eq!(store.acquire_lease(&busy, token).wait().unwrap(), None);
        store.abandon_lease(&busy, token).wait().unwrap();
    }
    assert_eq!(store.executor_starts(&busy).unwrap(), 3);
    assert_eq!(store.executor_starts(&cancelled).unwrap(), 0);
}

/// Case 12: A run that does not exist.
fn unknown_runs_are_not_found(store: &dyn Backend) {
    let not_found = |what: &str, error: Option<StoreError>| {
        assert!(
            matches!(&error, Some(StoreError::NotFound { id }) if id == "no-such-run"),
            "{what}: {error:?}"
        );
    };
    not_found("get", store.get("no-such-run").err());
    not_found("history", store.history("no-such-run").err());
    not_found(
        "transition",
        store
            .transition("no-such-run", change(RunState::InProgress, "started"))
            .wait()
            .err(),
    );
    not_found(
        "start_attempt",
        store
            .start_attempt("no-such-run", "one", AttemptStatus::Running, None)
            .wait()
            .err(),
    );
    // Reads of a run's parts find none.
    assert!(store.attempts("no-such-run").unwrap().is_empty());
    assert!(store.completed_outputs("no-such-run").unwrap().is_empty());
    assert!(store.live_lease("no-such-run").unwrap().is_none());
    assert!(store.executor_starts("no-such-run").is_err());
    // The real run next to it is untouched.
    let id = running(store);
    assert!(store.attempts(&id).unwrap().is_empty());
}

/// 12b. Text an agent chose (its error and status messages, its task id)
/// is stored as it came, control characters and all: `\u0000` is valid
/// JSON, so a hostile or broken agent can send U+0000 in any of them.
/// PostgreSQL `text` cannot hold U+0000: it is stored as U+FFFD there (the
/// rest as it came); SQLite keeps it.
fn text_an_agent_sent_is_stored_as_it_came(store: &dyn Backend) {
    let id = running(store);
    let sent = "nul:\u{0} bell:\u{7} ünï";
    let odd = match store.location().starts_with("postgres") {
        true => "nul:\u{FFFD} bell:\u{7} ünï",
        false => sent,
    };
    start(store, &id, "one");
    let mut task = task("t-1");
    task.task.id = format!("task {sent}");
    let recorded = store.record_task(&id, "one", &task, None).wait();
    assert!(
        recorded.is_ok(),
        "record_task: {}",
        recorded.map_err(|error| chain_of(&error)).unwrap_err()
    );
    let status = store
        .step_status(&id, "one", &format!("status {sent}"), None)
        .wait();
    assert!(
        status.is_ok(),
        "step_status: {}",
        status.map_err(|error| chain_of(&error)).unwrap_err()
    );
    let mut end = failed("one", Some(&format!("error {sent}")));
    end.status_messages = vec![format!("last {sent}")];
    let finished = store.finish_attempt(&id, &end, None).wait();
    assert!(
        finished.is_ok(),
        "finish_attempt: {}",
        finished.map_err(|error| chain_of(&error)).unwrap_err()
    );
    let one = store.attempts(&id).unwrap().remove(0);
    assert_eq!(one.status, AttemptStatus::Failed);
    assert_eq!(one.task_id, Some(format!("task {odd}")));
    assert_eq!(one.error, Some(format!("error {odd}")));
    assert_eq!(one.status_message, Some(format!("last {odd}")));
    // The run ends with the step's error.
    let mut fail = change(RunState::Failed, "error");
    fail.error = Some(format!("step `one` failed: error {sent}"));
    let ended = store.transition(&id, fail).wait();
    assert!(
        ended.is_ok(),
        "transition: {}",
        ended.map_err(|error| chain_of(&error)).unwrap_err()
    );
    let run = store.get(&id).unwrap();
    assert_eq!(run.status, RunState::Failed);
    assert_eq!(run.error, Some(format!("step `one` failed: error {odd}")));
}

/// Case 13: Writes queued without waiting apply in the order they were queued:
/// each finish (awaited first) ends the attempt its start (not yet awaited)
/// opened, and a lease taken in the same queue binds the writes after it.
async fn queued_writes_of_a_run_apply_in_the_order_they_were_queued(store: &dyn Backend) {
    let id = running(store);
    let acquired = store.acquire_lease(&id, "exec");
    let mut queued = Vec::new();
    for step in ["one", "two", "three"] {
        let started = store.start_attempt(&id, step, AttemptStatus::Running, Some("exec"));
        let finished =
            store.finish_attempt(&id, &completed(step, json!({"step": step})), Some("exec"));
        queued.push((step, started, finished));
    }
    let status = store.step_status(&id, "three", "late", Some("exec"));
    let ended = store.end_execution(&id, change(RunState::Completed, "steps_completed"), "exec");
    for (step, started, finished) in queued {
        assert_eq!(finished.await.unwrap(), RunState::InProgress, "{step}");
        started.await.unwrap();
    }
    assert_eq!(ended.await.unwrap(), RunState::InProgress);
    status.await.unwrap();
    assert_eq!(acquired.await.unwrap(), None);
    assert_eq!(
        attempts(store, &id),
        [
            row("one", 1, AttemptStatus::Completed),
            row("two", 1, AttemptStatus::Completed),
            row("three", 1, AttemptStatus::Completed),
        ]
    );
    let run = store.get(&id).unwrap();
    assert_eq!(run.status, RunState::Completed);
    assert_eq!(run.context["two"], json!({"step": "two"}));
    assert!(store.live_lease(&id).unwrap().is_none());
    assert_eq!(store.executor_starts(&id).unwrap(), 0);

    // `settled` answers once every write queued before it is done, whatever run.
    let others: Vec<String> = (0..4).map(|_| running(store)).collect();
    let dropped: Vec<_> = others
        .iter()
        .map(|other| store.transition(other, change(RunState::Cancelled, "cancelled")))
        .collect();
    drop(dropped);
    store.settled().await.unwrap();
    let statuses = store.statuses(&others).unwrap();
    assert!(
        others
            .iter()
            .all(|other| statuses[other] == RunState::Cancelled),
        "{statuses:?}"
    );
}

// PostgreSQL only.

/// Two workers starting at once on one new database: both open it, one
/// migrates, and the schema is applied once; they share the runs.
#[test]
fn postgres_two_workers_opening_at_once_migrate_once() {
    let database = cluster().database();
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (url, barrier) = (database.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::open(&url)
            })
        })
        .collect();
    let stores: Vec<PgStore> = workers
        .into_iter()
        .map(|worker| match worker.join().expect("the opening thread") {
            Ok(store) => store,
            Err(error) => panic!("a worker could not open: {}", chain_of(&error)),
        })
        .collect();
    // Each migration once, in order (two at the time of writing).
    let versions = "SELECT count(*) = max(version) AND count(*) >= 2 FROM schema_version";
    assert_eq!(cluster().psql(database.name(), versions), "t");
    let count = "SELECT count(*) FROM schema_version";
    let applied = cluster().psql(database.name(), count);
    // A worker started later finds it done.
    let later = PgStore::open(&database.url).unwrap();
    assert_eq!(cluster().psql(database.name(), count), applied);
    let id = stores[0].create_run(&new_run(json!({"n": 1}))).unwrap().id;
    assert_eq!(stores[1].get(&id).unwrap().input, json!({"n": 1}));
    assert_eq!(later.get(&id).unwrap().status, RunState::Pending);
}

/// A database migrated by a newer pallet is refused, and nothing is written to it.
#[test]
fn postgres_a_newer_schema_is_refused() {
    let database = cluster().database();
    let store = PgStore::open(&database.url).unwrap();
    let id = store.create_run(&new_run(json!({}))).unwrap().id;
    drop(store);
    cluster().psql(
        database.name(),
        "INSERT INTO schema_version (version, applied_at) VALUES (99, '2099-01-01T00:00:00.000000Z')",
    );
    let error = match PgStore::open(&database.url) {
        Ok(_) => panic!("a database at schema version 99 was opened"),
        Err(error) => error,
    };
    let StoreError::TooNew { found, known } = error else {
        panic!("expected TooNew, got {}", chain_of(&error));
    };
    assert_eq!(found, 99);
    assert!((1..99).contains(&known), "known {known}");
    let message = chain_of(&error);
    assert!(message.contains("99"), "{message}");
    assert!(message.contains(&format!("({known})")), "{message}");
    assert_eq!(
        cluster().psql(
            database.name(),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version"
        ),
        (1..=known)
            .map(|version| version.to_string())
            .chain(["99".to_string()])
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        cluster().psql(
            database.name(),
            &format!("SELECT status FROM runs WHERE id = '{id}'")
        ),
        "pending"
    );
}

/// A database that does not exist: the error names the URL (without its
/// password) and the server's reason.
#[test]
fn postgres_a_missing_database_fails_with_the_servers_reason() {
    let port = cluster().port();
    let url = format!("postgres://pallet:not-the-password@127.0.0.1:{port}/no_such_database");
    let error = match PgStore::open(&url) {
        Ok(_) => panic!("a database that does not exist was opened"),
        Err(error) => error,
    };
    assert!(
        matches!(&error, StoreError::PgConnect { url: shown, .. } if *shown == redacted(&url)),
        "{error:?}"
    );
    let message = chain_of(&error);
    assert!(message.contains(&redacted(&url)), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}/no_such_database")),
        "{message}"
    );
    assert!(
        message.contains("database \"no_such_database\" does not exist"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
}

/// Nobody listens on the port: the error names the URL and the refusal.
#[test]
fn postgres_an_unreachable_server_fails_with_the_reason() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://pallet@127.0.0.1:{port}/pallet");
    let error = match PgStore::open(&url) {
        Ok(_) => panic!("a server on a closed port answered"),
        Err(error) => error,
    };
    let message = chain_of(&error);
    assert!(matches!(error, StoreError::PgConnect { .. }), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

/// A write that waited for the run's row while another worker took the
/// lease over (and committed) checks the lease as it is after the wait, not
/// as it was when the write began.
#[test]
fn postgres_a_write_waiting_for_the_run_sees_a_lease_taken_over_meanwhile() {
    let database = cluster().database();
    let store = PgStore::open(&database.url).unwrap();
    let id = running(&store);
    assert_eq!(store.acquire_lease(&id, "old").wait().unwrap(), None);
    let mut other = ::postgres::Client::connect(&database.url, ::postgres::NoTls).unwrap();
    let mut takeover = other.transaction().unwrap();
    takeover
        .query("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&id])
        .unwrap();
    takeover
        .execute(
            "UPDATE run_leases SET token = 'new' WHERE run_id = $1",
            &[&id],
        )
        .unwrap();
    let write = store.start_attempt(&id, "one", AttemptStatus::Running, Some("old"));
    // Until the write's first statement waits for the row.
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        database.name()
    );
    let started = std::time::Instant::now();
    while cluster().psql("postgres", &waiting) != "1" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the write never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    takeover.commit().unwrap();
    lost("start_attempt", write.wait());
    assert!(store.attempts(&id).unwrap().is_empty(), "nothing written");
}

/// Connections the server dropped (a restart, a proxy's idle cut, an
/// administrator's `pg_terminate_backend`) are replaced: no read or write
/// fails for it.
#[test]
fn postgres_broken_connections_are_replaced_without_failing_a_call() {
    let database = cluster().database();
    let store = PgStore::open(&database.url).unwrap();
    let first = store.create_run(&new_run(json!({"n": 0}))).unwrap().id;
    // Every connection in use once, so each holds a live session.
    for _ in 0..pallet::store::postgres::CONNECTIONS {
        store.list(None, 10).unwrap();
    }
    let terminated = cluster().psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
            database.name()
        ),
    );
    assert!(terminated.parse::<u32>().unwrap() >= 1, "{terminated}");
    let mut ids = vec![first.clone()];
    for n in 1..=8 {
        match store.create_run(&new_run(json!({"n": n}))) {
            Ok(run) => ids.push(run.id),
            Err(error) => panic!("write {n} after the cut: {}", chain_of(&error)),
        }
    }
    for _ in 0..pallet::store::postgres::CONNECTIONS {
        assert_eq!(store.list(None, 20).unwrap().len(), 9);
    }
    assert_eq!(store.get(&first).unwrap().input, json!({"n": 0}));
    assert_eq!(store.statuses(&ids).unwrap().len(), 9);
}

/// TLS to the database as libpq's `sslmode` means it, against the harness's
/// cluster (TLS on, a certificate for `localhost` from a CA of its own).
#[test]
fn postgres_tls_follows_libpqs_sslmode() {
    let ca = cluster().ca_file();
    let other_ca = cluster().other_ca_file();
    let ca = ca.display().to_string();
    let other_ca = other_ca.display().to_string();
    let encrypted = |database: &crate::support::postgres::TestDatabase| {
        cluster().psql(
            "postgres",
            &format!(
                "SELECT string_agg(DISTINCT s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}'",
                database.name()
            ),
        )
    };
    let opened = |query: &str, localhost: bool| {
        let database = cluster().database();
        let mut url = format!("{}{query}", database.url);
        if localhost {
            url = url.replacen("127.0.0.1", "localhost", 1);
        }
        let store = PgStore::open(&url);
        let session = match &store {
            Ok(_) => encrypted(&database),
            Err(_) => String::new(),
        };
        (store.map(drop).map_err(|error| chain_of(&error)), session)
    };
    let works = |query: &str, localhost: bool, tls: &str| {
        let (store, session) = opened(query, localhost);
        if let Err(error) = store {
            panic!("{query}: {error}");
        }
        assert_eq!(session, tls, "{query}: the session's ssl");
    };
    works("", false, "true");
    works("?sslmode=prefer", false, "true");
    works("?sslmode=disable", false, "false");
    works("?sslmode=require", false, "true");
    // The certificate names localhost, not 127.0.0.1: only verify-full minds.
    works(
        &format!("?sslmode=verify-ca&sslrootcert={ca}"),
        false,
        "true",
    );
    works(&format!("?sslmode=require&sslrootcert={ca}"), false, "true");
    works(
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
        true,
        "true",
    );
    let fails = |query: &str, localhost: bool, parts: &[&str]| {
        let (store, _) = opened(query, localhost);
        let Err(error) = store else {
            panic!("{query}: opened");
        };
        for part in parts {
            assert!(error.contains(part), "{query}: {part:?} in {error}");
        }
        assert!(!error.contains("secret"), "{error}");
    };
    fails(
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
        false,
        &[
            "cannot connect to the run database",
            "certificate not valid for name \"127.0.0.1\"",
        ],
    );
    fails(
        &format!("?sslmode=verify-ca&sslrootcert={other_ca}"),
        false,
        &["certificate", "UnknownIssuer"],
    );
    fails(
        "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        false,
        &[
            "cannot set up TLS to the run database",
            "/nonexistent/ca.pem",
        ],
    );
    fails(
        "?sslmode=verify-ca",
        false,
        &["cannot set up TLS", "verify-ca needs sslrootcert=FILE"],
    );
    fails(
        "?sslmode=require&sslrootcert=system",
        false,
        &[
            "cannot set up TLS",
            "sslrootcert=system needs sslmode=verify-full",
        ],
    );
    fails(
        "?sslmode=always",
        false,
        &["cannot set up TLS", "sslmode `always`", "verify-full"],
    );
    // What the TLS parameters are taken out of stays as written:
    // percent-encoded options, a list of hosts, a Unix socket directory.
    let database = cluster().database();
    let (port, name) = (cluster().port(), database.name());
    let socket = cluster()
        .socket_dir()
        .display()
        .to_string()
        .replace('/', "%2F");
    let mut stores = Vec::new();
    for url in [
        format!(
            "postgres://pallet@127.0.0.1:{port}/{name}?options=-c%20statement_timeout%3D5s&application_name=my%20app&sslmode=require"
        ),
        format!("postgres://pallet@127.0.0.1:1,127.0.0.1:{port}/{name}?sslmode=prefer"),
        format!("postgres://pallet@/{name}?host={socket}&port={port}&sslmode=prefer"),
    ] {
        match PgStore::open(&url) {
            Ok(store) => stores.push(store),
            Err(error) => panic!("{url}: {}", chain_of(&error)),
        }
    }
    // Decoded as libpq decodes it (not `my+app`).
    assert_eq!(
        cluster().psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND application_name = 'my app'")
        ),
        "1"
    );
    drop(stores);
}

/// A loopback proxy to the cluster that, once armed, passes the next
/// `COMMIT` on to the server and then resets the client's connection (as a
/// network failure would, after the server got the commit).
struct CommitCutter {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl CommitCutter {
    fn start(server_port: u16) -> CommitCutter {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trigger = armed.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", server_port))
                else {
                    return;
                };
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                // Set once the commit went by: its answer never reaches the client.
                let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let answered = cut.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 65536];
                    while let Ok(read) = from_server.read(&mut buffer) {
                        if read == 0
                            || answered.load(Ordering::SeqCst)
                            || to_client.write_all(&buffer[..read]).is_err()
                        {
                            break;
                        }
                    }
                });
                let trigger = trigger.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 65536];
                    while let Ok(read) = client.read(&mut buffer) {
                        let commit = buffer[..read].windows(6).any(|bytes| bytes == b"COMMIT");
                        let cutting = commit && trigger.swap(false, Ordering::SeqCst);
                        cut.store(cutting, Ordering::SeqCst);
                        if read == 0 || server.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                        if cutting {
                            // Let the server commit, then reset (linger 0, close).
                            std::thread::sleep(std::time::Duration::from_millis(300));
                            let linger = libc::linger {
                                l_onoff: 1,
                                l_linger: 0,
                            };
                            // SAFETY: a valid socket and a properly sized option value.
                            unsafe {
                                libc::setsockopt(
                                    client.as_raw_fd(),
                                    libc::SOL_SOCKET,
                                    libc::SO_LINGER,
                                    (&raw const linger).cast(),
                                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                                );
                            }
                            drop(client);
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CommitCutter { port, armed }
    }
}

/// A connection lost during a commit the server made: the write is
/// reported as of unknown outcome, not made a second time on a new
/// connection.
#[test]
fn postgres_a_commit_cut_off_is_not_made_twice() {
    let database = cluster().database();
    let cutter = CommitCutter::start(cluster().port());
    let url = format!(
        "postgres://pallet@127.0.0.1:{}/{}?sslmode=disable",
        cutter.port,
        database.name()
    );
    let store = PgStore::open(&url).unwrap();
    let id = running(&store);
    cutter
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let cut = store
        .start_attempt(&id, "one", AttemptStatus::Running, None)
        .wait();
    match cut {
        Err(StoreError::PgCommitUnknown(_)) => {}
        other => panic!("expected PgCommitUnknown, got {other:?}"),
    }
    let message = chain_of(&cut.unwrap_err());
    assert!(
        message.contains("whether the write was stored is unknown"),
        "{message}"
    );
    // The server had committed it: stored once.
    assert_eq!(
        attempts(&store, &id),
        vec![row("one", 1, AttemptStatus::Running)]
    );
    // The next write goes through on a new connection.
    finish(&store, &id, &completed("one", json!({"ok": true})));
    assert_eq!(
        attempts(&store, &id),
        vec![row("one", 1, AttemptStatus::Completed)]
    );
}

/// Renewals asked for at once go out together; each is answered for its
/// own lease: renewed, taken over (false), or its row locked elsewhere.
#[test]
fn postgres_renewals_in_one_batch_answer_each_lease() {
    let database = cluster().database();
    let store = PgStore::open(&database.url).unwrap();
    let ids: Vec<String> = (0..40).map(|_| running(&store)).collect();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            store.acquire_lease(id, &format!("t{n}")).wait().unwrap(),
            None
        );
    }
    let expiry = |id: &str| {
        cluster().psql(
            database.name(),
            &format!("SELECT expires_at FROM run_leases WHERE run_id = '{id}'"),
        )
    };
    let before: Vec<String> = ids.iter().map(|id| expiry(id)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Another session holds the last lease's row.
    let mut other = ::postgres::Client::connect(&database.url, ::postgres::NoTls).unwrap();
    let mut holding = other.transaction().unwrap();
    holding
        .query(
            "SELECT 1 FROM run_leases WHERE run_id = $1 FOR UPDATE",
            &[&ids[39]],
        )
        .unwrap();
    let pending: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            // The first one under a token it does not hold.
            let token = if n == 0 {
                "stranger".to_string()
            } else {
                format!("t{n}")
            };
            store.renew_lease(id, &token)
        })
        .collect();
    let answers: Vec<Result<bool, StoreError>> = pending.into_iter().map(|p| p.wait()).collect();
    holding.rollback().unwrap();
    assert!(matches!(answers[0], Ok(false)), "{:?}", answers[0]);
    for (n, answer) in answers.iter().enumerate().take(39).skip(1) {
        assert!(matches!(answer, Ok(true)), "{n}: {answer:?}");
        assert!(expiry(&ids[n]) > before[n], "{n}: the expiry moved on");
    }
    match &answers[39] {
        Err(error @ StoreError::LeaseBusy { .. }) => {
            assert!(chain_of(error).contains("tried again at the next tick"))
        }
        other => panic!("a locked lease row: {other:?}"),
    }
    assert_eq!(
        expiry(&ids[0]),
        before[0],
        "a stranger's renewal changes nothing"
    );
    assert_eq!(expiry(&ids[39]), before[39]);
    // Next tick, the row free again: renewed.
    assert!(store.renew_lease(&ids[39], "t39").wait().unwrap());
}

/// A run that ended (here: completed by one executor) takes no new lease:
/// an executor that read it before the end finds it ended, and no lease is
/// left behind for a crash to strand (no claim looks at ended runs).
fn an_ended_run_takes_no_lease(store: &dyn Backend) {
    let id = running(store);
    assert_eq!(store.acquire_lease(&id, "first").wait().unwrap(), None);
    store
        .end_execution(&id, change(RunState::Completed, "completed"), "first")
        .wait()
        .unwrap();
    match store.acquire_lease(&id, "late").wait() {
        Err(error @ StoreError::Ended { .. }) => {
            let message = chain_of(&error);
            assert!(message.contains("has ended (completed)"), "{message}");
        }
        other => panic!("a lease on a completed run: {other:?}"),
    }
    assert_eq!(store.live_lease(&id).unwrap(), None);
    assert!(!store.renew_lease(&id, "late").wait().unwrap());
}

/// Transitions, attempt status changes and status messages are events, read
/// in order from a cursor, by run or workflow; an unchanged status is none.
fn every_change_is_an_event_read_in_commit_order(store: &dyn Backend) {
    let before = store.last_event().unwrap();
    let id = running(store);
    start(store, &id, "one");
    store
        .step_status(&id, "one", "halfway", None)
        .wait()
        .unwrap();
    store
        .step_status(&id, "one", "halfway", None)
        .wait()
        .unwrap();
    finish(store, &id, &completed("one", json!({"x": 1})));
    start(store, &id, "two");
    finish(store, &id, &failed("two", Some("boom")));
    store
        .transition(&id, change(RunState::Failed, "step_failed"))
        .wait()
        .unwrap();
    let mut other = new_run(json!({}));
    other.workflow_id = "other-workflow".to_string();
    let other = store.create_run(&other).unwrap().id;

    // On PostgreSQL events show once every older transaction of the cluster
    // ended (other tests' databases share it): bounded wait until all are.
    let all_written = visible(store, before, 9);
    assert_eq!(all_written.len(), 9, "{all_written:?}");
    let events = store
        .events_after(before, &EventScope::Run(id.clone()), 100)
        .unwrap();
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|event| (event.kind.as_str(), event.step_id.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("run.created", None),
            ("run.in_progress", None),
            ("step.running", Some("one")),
            ("step.message", Some("one")),
            ("step.completed", Some("one")),
            ("step.running", Some("two")),
            ("step.failed", Some("two")),
            ("run.failed", None),
        ]
    );
    let cursors: Vec<EventCursor> = events.iter().map(|event| event.cursor).collect();
    assert!(
        cursors.windows(2).all(|pair| pair[0] < pair[1]),
        "{cursors:?}"
    );
    assert!(
        events
            .iter()
            .all(|event| event.run_id == id && event.workflow_id == "store-test")
    );
    assert_eq!(events[1].data["from"], "pending");
    assert_eq!(events[1].data["trigger"], "started");
    assert_eq!(events[1].data["actor"], "tester");
    assert_eq!(events[3].data["status_message"], "halfway");
    assert_eq!(events[4].data["agent"], "agent-a");
    assert_eq!(events[4].data["attempt"], 1);
    assert_eq!(events[6].data["error"], "boom");
    assert!(
        events.iter().all(|event| event.at.ends_with('Z')),
        "{events:?}"
    );

    // Resuming after an event gives exactly the rest; a page stops at its limit.
    let rest = store
        .events_after(cursors[4], &EventScope::Run(id.clone()), 100)
        .unwrap();
    assert_eq!(rest, events[5..]);
    let page = store
        .events_after(before, &EventScope::Run(id.clone()), 3)
        .unwrap();
    assert_eq!(page, events[..3]);
    // All scopes see the other workflow's run after this one's; a workflow scope only its own.
    let all = store.events_after(before, &EventScope::All, 100).unwrap();
    assert_eq!(all.len(), events.len() + 1);
    assert_eq!(all.last().unwrap().run_id, other);
    assert_eq!(store.last_event().unwrap(), all.last().unwrap().cursor);
    let theirs = store
        .events_after(
            before,
            &EventScope::Workflow("other-workflow".to_string()),
            100,
        )
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].kind, "run.created");
    // Runs list by workflow too.
    assert_eq!(
        all_pages_of(store, None, Some("other-workflow"), 10),
        [[other.clone()]]
    );
    assert_eq!(
        all_pages_of(store, Some(RunState::Failed), Some("store-test"), 10),
        [[id.clone()]]
    );
    assert!(
        store
            .events_after(store.last_event().unwrap(), &EventScope::All, 100)
            .unwrap()
            .is_empty()
    );
}

/// An event id taken before another's but committed after it is not
/// skipped: nothing of a later transaction is read while an earlier one may
/// still commit, and then both come in (transaction, id) order.
#[test]
fn postgres_events_are_read_in_commit_order_not_id_order() {
    let database = cluster().database();
    let store = PgStore::open(&database.url).unwrap();
    let first = running(&store);
    // Its two events visible first (other tests' transactions may hold them back).
    let before = visible(&store, EventCursor::default(), 2)
        .last()
        .unwrap()
        .cursor;
    let mut other = ::postgres::Client::connect(&database.url, ::postgres::NoTls).unwrap();
    let mut early = other.transaction().unwrap();
    // Takes its event id (and transaction id) now, commits last.
    early
        .execute(
            "INSERT INTO transitions (run_id, from_status, to_status, trigger, actor, at) VALUES ($1, 'in_progress', 'in_progress', 'early', 'tester', 'now')",
            &[&first],
        )
        .unwrap();
    let second = running(&store);
    assert!(
        store
            .events_after(before, &EventScope::All, 100)
            .unwrap()
            .is_empty(),
        "a later transaction's events read while an earlier one is open"
    );
    early.commit().unwrap();
    let events = visible(&store, before, 3);
    let order: Vec<(&str, &str)> = events
        .iter()
        .map(|event| (event.run_id.as_str(), event.kind.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (first.as_str(), "run.in_progress"),
            (second.as_str(), "run.created"),
            (second.as_str(), "run.in_progress"),
        ]
    );
    assert!(events[0].data["trigger"] == "early");
    // It took the lower id and committed last: a reader by id alone would
    // have passed it by after reading the second run's events.
    assert!(events[0].cursor.id < events[1].cursor.id, "{events:?}");
}
