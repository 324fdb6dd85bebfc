//! The engine's [`Journal`] for one durable run: each call queues a write to
//! the run database and hands back its answer to await.
//!
//! One write per step: a step's start is not written when it starts but with
//! its end, as one whole attempt ([`Backend::record_attempt`]), unless the
//! step outlives [`START_DEFERRED`] (then the start is written alone, by one
//! task per run that looks every half of it, so a
//! view shows the step running and a crash leaves it `interrupted`) or its
//! agent reports a status first. A task the agent accepted meanwhile is kept
//! with the deferred start and written with it (so a resume can reattach to
//! any task older than the deferral), or with the end, in the same
//! transaction. A crash before a deferred start is written leaves no
//! attempt: the step runs again with the same idempotency key, as the
//! engine already allows for a start still queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::engine::{Journal, JournalWrite, StepRecord, StepTask};
use crate::store::{AttemptStatus, Backend, Pending, RunState, StoreError, clock};

/// How long a step's start may wait to be written with its end. Short
/// against what a person watching `pallet runs show` notices; long against
/// a step whose agent answers at once (its start then costs no commit).
pub const START_DEFERRED: Duration = Duration::from_millis(20);

pub struct RunJournal {
    store: Arc<dyn Backend>,
    run_id: String,
    /// The executor's lease token: its writes are refused once another
    /// process took the run over.
    lease: Option<String>,
    /// Set once the executor gave its lease up (see `lease::HeldLease::lost`).
    given_up: Arc<AtomicBool>,
    starts: Arc<Mutex<Starts>>,
}

/// The token the writes of an executor that gave its lease up carry: no
/// lease has it (tokens are UUIDs), so the store refuses them, and the
/// steps it stopped stay `running` for the next owner to interrupt and
/// reattach, not `cancelled`.
const GIVEN_UP: &str = "given-up";

/// The token a write carries now: `lease`, or [`GIVEN_UP`] once `given_up`.
fn carried<'a>(lease: Option<&'a str>, given_up: &AtomicBool) -> Option<&'a str> {
    match given_up.load(Ordering::SeqCst) {
        true => Some(GIVEN_UP),
        false => lease,
    }
}

#[derive(Default)]
struct Starts {
    /// step id -> its start, while the engine runs it.
    steps: HashMap<String, Start>,
    /// Whether the task that writes the starts due is running.
    flushing: bool,
}

/// A running step's start.
enum Start {
    /// Not written yet; stamped `at` (as stored) when the step started,
    /// `since`; the task its agent accepted meanwhile, if any.
    Deferred {
        at: String,
        since: Instant,
        task: Option<StepTask>,
    },
    /// Queued (with its task, if one was kept); the answer for the engine.
    Written(BoxFuture<'static, Result<(), StoreError>>),
}

/// The engine sees a store error as its message chain.
fn answer(pending: Pending<()>) -> JournalWrite {
    pending
        .map(|result| result.map_err(|error| crate::error::chain_of(&error)))
        .boxed()
}

impl RunJournal {
    pub fn new(store: Arc<dyn Backend>, run_id: String, lease: Option<String>) -> RunJournal {
        RunJournal {
            store,
            run_id,
            lease,
            given_up: Arc::default(),
            starts: Arc::default(),
        }
    }

    /// This journal with `given_up`, set when its executor's lease is lost.
    pub fn with_given_up(mut self, given_up: Arc<AtomicBool>) -> RunJournal {
        self.given_up = given_up;
        self
    }

    /// The token this journal's writes carry.
    fn lease(&self) -> Option<&str> {
        carried(self.lease.as_deref(), &self.given_up)
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, Starts> {
        lock(&self.starts)
    }

    /// Queue the deferred start of `step_id`, if it still is: under the lock,
    /// so whatever the caller queues next for the step lands after it.
    fn write_start(&self, starts: &mut HashMap<String, Start>, step_id: &str) {
        write_start(
            self.store.as_ref(),
            &self.run_id,
            self.lease(),
            starts,
            step_id,
        );
    }
}

fn lock(starts: &Mutex<Starts>) -> std::sync::MutexGuard<'_, Starts> {
    // A map of plain values: a panic elsewhere leaves it usable.
    starts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_start(
    store: &dyn Backend,
    run_id: &str,
    lease: Option<&str>,
    starts: &mut HashMap<String, Start>,
    step_id: &str,
) {
    if let Some(Start::Deferred { at, task, .. }) = starts.get(step_id) {
        let started = store.start_attempt_at(run_id, step_id, AttemptStatus::Running, at, lease);
        // Queued right behind the start: the same transaction, as a rule.
        let task = task
            .as_ref()
            .map(|task| store.record_task(run_id, step_id, task, lease));
        let written = async move {
            started.await?;
            match task {
                Some(task) => task.await,
                None => Ok(()),
            }
        };
        starts.insert(step_id.to_string(), Start::Written(written.boxed()));
    }
}

impl Journal for RunJournal {
    /// Answers at once while the start is deferred (the engine awaits this
    /// after the step's work, before its finish); a start written meanwhile
    /// answers with that write's answer.
    fn step_started(&self, step_id: &str) -> JournalWrite {
        let at = clock::timestamp(self.store.clock().now());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Nothing to write it later: written now.
            return answer(self.store.start_attempt_at(
                &self.run_id,
                step_id,
                AttemptStatus::Running,
                &at,
                self.lease(),
            ));
        };
        let mut starts = self.starts();
        // A start left over (not expected: the engine finishes a step before
        // it runs again) is written first, in order.
        self.write_start(&mut starts.steps, step_id);
        let since = Instant::now();
        let deferred = Start::Deferred {
            at,
            since,
            task: None,
        };
        starts.steps.insert(step_id.to_string(), deferred);
        if !starts.flushing {
            starts.flushing = true;
            runtime.spawn(write_due_starts(
                self.store.clone(),
                self.run_id.clone(),
                (self.lease.clone(), self.given_up.clone()),
                Arc::downgrade(&self.starts),
            ));
        }
        drop(starts);
        self.start_answer(step_id)
    }

    /// Fails when the run is no longer in progress (cancelled elsewhere while
    /// the step ran), so the engine starts no further step.
    fn step_finished(&self, record: &StepRecord) -> JournalWrite {
        let lease = self.lease();
        let (started, finished) = {
            let mut starts = self.starts();
            // A kept task goes in with its start, queued right before the end.
            if matches!(
                starts.steps.get(&record.id),
                Some(Start::Deferred { task: Some(_), .. })
            ) {
                self.write_start(&mut starts.steps, &record.id);
            }
            match starts.steps.remove(&record.id) {
                Some(Start::Deferred { at, .. }) => (
                    None,
                    self.store.record_attempt(&self.run_id, &at, record, lease),
                ),
                Some(Start::Written(written)) => (
                    Some(written),
                    self.store.finish_attempt(&self.run_id, record, lease),
                ),
                None => (None, self.store.finish_attempt(&self.run_id, record, lease)),
            }
        };
        let id = self.run_id.clone();
        async move {
            if let Some(started) = started {
                started
                    .await
                    .map_err(|error| crate::error::chain_of(&error))?;
            }
            match finished.await {
                Ok(RunState::InProgress) => Ok(()),
                Ok(status) => Err(StoreError::NotRunning { id, status }),
                Err(error) => Err(error),
            }
            .map_err(|error| crate::error::chain_of(&error))
        }
        .boxed()
    }

    /// Kept with the step's start while that is deferred (answered at once);
    /// else written now.
    fn task_accepted(&self, step_id: &str, task: &StepTask) -> JournalWrite {
        let mut starts = self.starts();
        if let Some(Start::Deferred { task: kept, .. }) = starts.steps.get_mut(step_id) {
            *kept = Some(task.clone());
            return Box::pin(std::future::ready(Ok(())));
        }
        answer(
            self.store
                .record_task(&self.run_id, step_id, task, self.lease()),
        )
    }

    fn step_status(&self, step_id: &str, message: &str) -> JournalWrite {
        let mut starts = self.starts();
        self.write_start(&mut starts.steps, step_id);
        answer(
            self.store
                .step_status(&self.run_id, step_id, message, self.lease()),
        )
    }

    fn approval_waiting(&self, step_id: &str) -> JournalWrite {
        let (store, run_id, step_id) =
            (self.store.clone(), self.run_id.clone(), step_id.to_string());
        let lease = self.lease().map(str::to_string);
        async move {
            // Resuming a waiting run re-enters the step: keep the first wait (its deadline).
            let read_id = run_id.clone();
            let attempts = super::blocking(store.as_ref(), move |store| store.attempts(&read_id))
                .await
                .map_err(|error| crate::error::chain_of(&error))?;
            let waiting = attempts.iter().any(|attempt| {
                attempt.step_id == step_id && attempt.status == AttemptStatus::Waiting
            });
            if waiting {
                return Ok(());
            }
            answer(store.start_attempt(&run_id, &step_id, AttemptStatus::Waiting, lease.as_deref()))
                .await
        }
        .boxed()
    }
}

impl RunJournal {
    /// What the engine awaits for the start of `step_id` (after the step's
    /// work): nothing while it is deferred, else the written start's answer,
    /// taken over from the map (the finish then only writes the end).
    fn start_answer(&self, step_id: &str) -> JournalWrite {
        let starts = self.starts.clone();
        let step = step_id.to_string();
        async move {
            let written = {
                let mut starts = lock(&starts);
                match starts.steps.remove(&step) {
                    Some(Start::Written(written)) => Some(written),
                    // Still deferred: the finish writes it.
                    Some(deferred) => {
                        starts.steps.insert(step, deferred);
                        None
                    }
                    None => None,
                }
            };
            match written {
                Some(written) => written
                    .await
                    .map_err(|error| crate::error::chain_of(&error)),
                None => Ok(()),
            }
        }
        .boxed()
    }
}

/// The task that writes the starts deferred for [`START_DEFERRED`]: it looks
/// every half of it (one wake-up per 10 ms of a run, not a timer per step)
/// and ends when no start is deferred, or the journal is gone.
async fn write_due_starts(
    store: Arc<dyn Backend>,
    run_id: String,
    (lease, given_up): (Option<String>, Arc<AtomicBool>),
    starts: Weak<Mutex<Starts>>,
) {
    loop {
        tokio::time::sleep(START_DEFERRED / 2).await;
        let Some(starts) = starts.upgrade() else {
            return;
        };
        let mut starts = lock(&starts);
        let due: Vec<String> = starts
            .steps
            .iter()
            .filter(|(_, start)| {
                matches!(start, Start::Deferred { since, .. } if since.elapsed() >= START_DEFERRED)
            })
            .map(|(step, _)| step.clone())
            .collect();
        let lease = carried(lease.as_deref(), &given_up);
        for step in due {
            write_start(store.as_ref(), &run_id, lease, &mut starts.steps, &step);
        }
        let deferred = starts
            .steps
            .values()
            .any(|start| matches!(start, Start::Deferred { .. }));
        if !deferred {
            starts.flushing = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::StepStatus;
    use crate::store::test_task as task;
    use crate::store::{NewRun, RunChange, RunStore};

    fn record(step: &str) -> StepRecord {
        StepRecord {
            id: step.to_string(),
            skill: Some("s".to_string()),
            status: StepStatus::Completed,
            inputs: Some(json!({})),
            outputs: Some(json!({"step": step})),
            error: None,
            attempts: 1,
            agent: Some("a".to_string()),
            child: None,
            status_messages: Vec::new(),
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 0.0,
        }
    }

    /// A journal over a run in progress, its store and the run's id.
    fn journal() -> (RunJournal, RunStore, tempfile::TempDir, String) {
        let directory = tempfile::tempdir().unwrap();
        let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
        let run = NewRun {
            workflow_ref: "w".to_string(),
            workflow_id: "w".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: "w.yaml".to_string(),
            workflow_yaml: "steps: []".to_string(),
            input: json!({}),
            actor: "test".to_string(),
        };
        let start = RunChange::new(RunState::InProgress, "start", "test");
        let id = store.create_started_run(&run, start, None).wait().unwrap();
        let journal = RunJournal::new(Arc::new(store.clone()), id.clone(), None);
        (journal, store, directory, id)
    }

    fn statuses(store: &RunStore, id: &str) -> Vec<(String, AttemptStatus)> {
        store
            .attempts(id)
            .unwrap()
            .into_iter()
            .map(|attempt| (attempt.step_id, attempt.status))
            .collect()
    }

    #[tokio::test]
    async fn a_quick_step_is_one_write_and_a_slow_one_shows_running() {
        let (journal, store, _directory, id) = journal();
        let started = journal.step_started("quick");
        assert!(
            statuses(&store, &id).is_empty(),
            "the start waits for the end"
        );
        started.await.unwrap();
        journal.step_finished(&record("quick")).await.unwrap();
        assert_eq!(
            statuses(&store, &id),
            [("quick".to_string(), AttemptStatus::Completed)]
        );

        let started = journal.step_started("slow");
        tokio::time::sleep(START_DEFERRED * 3).await;
        store.settled().await.unwrap();
        assert_eq!(
            statuses(&store, &id)[1],
            ("slow".to_string(), AttemptStatus::Running),
            "a step that outlives the deferral is shown running"
        );
        started.await.unwrap();
        journal.step_finished(&record("slow")).await.unwrap();
        let attempts = store.attempts(&id).unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[1].status, AttemptStatus::Completed);
        assert_eq!(attempts[1].attempt, 1);
    }

    #[tokio::test]
    async fn a_task_waits_with_its_deferred_start_and_is_kept_on_the_attempt() {
        let (journal, store, _directory, id) = journal();
        let started = journal.step_started("quick");
        journal
            .task_accepted("quick", &task("t-quick"))
            .await
            .unwrap();
        store.settled().await.unwrap();
        assert!(
            statuses(&store, &id).is_empty(),
            "a quick step's task is written with its end"
        );
        started.await.unwrap();
        journal.step_finished(&record("quick")).await.unwrap();
        let attempts = store.attempts(&id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, AttemptStatus::Completed);
        assert_eq!(attempts[0].task_id.as_deref(), Some("t-quick"));
        assert_eq!(attempts[0].idempotency_key.as_deref(), Some("key-t-quick"));

        let started = journal.step_started("slow");
        journal
            .task_accepted("slow", &task("t-slow"))
            .await
            .unwrap();
        tokio::time::sleep(START_DEFERRED * 3).await;
        store.settled().await.unwrap();
        let running = &store.attempts(&id).unwrap()[1];
        assert_eq!(
            (running.status, running.task_id.as_deref()),
            (AttemptStatus::Running, Some("t-slow")),
            "a step that outlives the deferral shows running with its task, for a resume to reattach"
        );
        started.await.unwrap();
        journal.step_finished(&record("slow")).await.unwrap();
        let attempts = store.attempts(&id).unwrap();
        assert_eq!(attempts[1].status, AttemptStatus::Completed);
        assert_eq!(attempts[1].task_id.as_deref(), Some("t-slow"));
    }

    #[tokio::test]
    async fn a_status_report_writes_the_start_before_it() {
        let (journal, store, _directory, id) = journal();
        let started = journal.step_started("one");
        journal.step_status("one", "working").await.unwrap();
        let attempts = store.attempts(&id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, AttemptStatus::Running);
        assert_eq!(attempts[0].status_message.as_deref(), Some("working"));
        started.await.unwrap();
        journal.step_finished(&record("one")).await.unwrap();
        assert_eq!(
            statuses(&store, &id),
            [("one".to_string(), AttemptStatus::Completed)]
        );
    }
}
