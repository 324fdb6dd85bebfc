//! The engine's [`Journal`] for one durable run: each call queues a write to
//! the run database and hands back its answer to await.
//!
//! One write per step: a step's start is not written when it starts but with
//! its end, as one whole attempt ([`Backend::record_attempt`]), unless the
//! step outlives [`START_DEFERRED`] (then the start is written alone, so a
//! view shows the step running and a crash leaves it `interrupted`) or its
//! agent accepts a task or reports a status first (written with the start,
//! so a resume can reattach). A crash before a deferred start is written
//! leaves no attempt: the step runs again with the same idempotency key, as
//! the engine already allows for a start still queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;

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
    /// step id -> its start, while the engine runs it.
    starts: Arc<Mutex<HashMap<String, Start>>>,
}

/// A running step's start.
enum Start {
    /// Not written yet; stamped when the step started.
    Deferred { at: String },
    /// Queued alone; its answer for the engine.
    Written(Pending<()>),
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
            starts: Arc::default(),
        }
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Start>> {
        lock(&self.starts)
    }

    /// Queue the deferred start of `step_id`, if it still is: under the lock,
    /// so whatever the caller queues next for the step lands after it.
    fn write_start(&self, starts: &mut HashMap<String, Start>, step_id: &str) {
        write_start(
            self.store.as_ref(),
            &self.run_id,
            self.lease.as_deref(),
            starts,
            step_id,
        );
    }
}

fn lock(
    starts: &Mutex<HashMap<String, Start>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Start>> {
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
    if let Some(Start::Deferred { at }) = starts.get(step_id) {
        let written = store.start_attempt_at(run_id, step_id, AttemptStatus::Running, at, lease);
        starts.insert(step_id.to_string(), Start::Written(written));
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
                self.lease.as_deref(),
            ));
        };
        {
            let mut starts = self.starts();
            // A start left over (not expected: the engine finishes a step before
            // it runs again) is written first, in order.
            self.write_start(&mut starts, step_id);
            starts.insert(step_id.to_string(), Start::Deferred { at });
        }
        let (store, run_id, lease, starts) = (
            self.store.clone(),
            self.run_id.clone(),
            self.lease.clone(),
            Arc::downgrade(&self.starts),
        );
        let step = step_id.to_string();
        runtime.spawn(async move {
            tokio::time::sleep(START_DEFERRED).await;
            if let Some(starts) = starts.upgrade() {
                write_start(
                    store.as_ref(),
                    &run_id,
                    lease.as_deref(),
                    &mut lock(&starts),
                    &step,
                );
            }
        });
        self.start_answer(step_id)
    }

    /// Fails when the run is no longer in progress (cancelled elsewhere while
    /// the step ran), so the engine starts no further step.
    fn step_finished(&self, record: &StepRecord) -> JournalWrite {
        let lease = self.lease.as_deref();
        let (started, finished) = {
            let mut starts = self.starts();
            match starts.remove(&record.id) {
                Some(Start::Deferred { at }) => (
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

    fn task_accepted(&self, step_id: &str, task: &StepTask) -> JournalWrite {
        let mut starts = self.starts();
        self.write_start(&mut starts, step_id);
        answer(
            self.store
                .record_task(&self.run_id, step_id, task, self.lease.as_deref()),
        )
    }

    fn step_status(&self, step_id: &str, message: &str) -> JournalWrite {
        let mut starts = self.starts();
        self.write_start(&mut starts, step_id);
        answer(
            self.store
                .step_status(&self.run_id, step_id, message, self.lease.as_deref()),
        )
    }

    fn approval_waiting(&self, step_id: &str) -> JournalWrite {
        let (store, run_id, step_id) =
            (self.store.clone(), self.run_id.clone(), step_id.to_string());
        let lease = self.lease.clone();
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
                match starts.remove(&step) {
                    Some(Start::Written(written)) => Some(written),
                    // Still deferred: the finish writes it.
                    Some(deferred) => {
                        starts.insert(step, deferred);
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
