//! The engine's [`Journal`] for one durable run: each call queues a write to
//! the run database and hands back its answer to await.

use std::sync::Arc;

use futures::FutureExt;

use crate::engine::{Journal, JournalWrite, StepRecord, StepTask};
use crate::store::{AttemptStatus, Backend, Pending, RunState, StoreError};

pub struct RunJournal {
    pub store: Arc<dyn Backend>,
    pub run_id: String,
    /// The executor's lease token: its writes are refused once another
    /// process took the run over.
    pub lease: Option<String>,
}

/// The engine sees a store error as its message chain.
fn answer(pending: Pending<()>) -> JournalWrite {
    pending
        .map(|result| result.map_err(|error| crate::error::chain_of(&error)))
        .boxed()
}

impl Journal for RunJournal {
    fn step_started(&self, step_id: &str) -> JournalWrite {
        answer(self.store.start_attempt(
            &self.run_id,
            step_id,
            AttemptStatus::Running,
            self.lease.as_deref(),
        ))
    }

    /// Fails when the run is no longer in progress (cancelled elsewhere while
    /// the step ran), so the engine starts no further step.
    fn step_finished(&self, record: &StepRecord) -> JournalWrite {
        let finished = self
            .store
            .finish_attempt(&self.run_id, record, self.lease.as_deref());
        let id = self.run_id.clone();
        async move {
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
        answer(
            self.store
                .record_task(&self.run_id, step_id, task, self.lease.as_deref()),
        )
    }

    fn step_status(&self, step_id: &str, message: &str) -> JournalWrite {
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
