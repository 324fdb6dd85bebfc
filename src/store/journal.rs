//! The engine's [`Journal`] for one stored run.

use crate::engine::{Journal, StepRecord};

use super::RunStore;

pub struct RunJournal {
    pub store: RunStore,
    pub run_id: String,
}

impl Journal for RunJournal {
    fn step_started(&self, step_id: &str) -> Result<(), String> {
        self.store
            .start_attempt(&self.run_id, step_id, "running")
            .map_err(|error| crate::engine::chain_of(&error))
    }

    fn step_finished(&self, record: &StepRecord) -> Result<(), String> {
        self.store
            .finish_attempt(&self.run_id, record)
            .map_err(|error| crate::engine::chain_of(&error))
    }

    fn approval_waiting(&self, step_id: &str) -> Result<(), String> {
        // Resuming a waiting run re-enters the step: keep the first wait (its deadline).
        let waiting = self
            .store
            .attempts(&self.run_id)
            .map_err(|error| crate::engine::chain_of(&error))?
            .iter()
            .any(|attempt| attempt.step_id == step_id && attempt.status == "waiting");
        if waiting {
            return Ok(());
        }
        self.store
            .start_attempt(&self.run_id, step_id, "waiting")
            .map_err(|error| crate::engine::chain_of(&error))
    }
}
