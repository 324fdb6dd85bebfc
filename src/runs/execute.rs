//! One execution of a durable run: hold its lease, hand the engine what
//! earlier executions recorded, and record where the engine stopped.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::lease::HeldLease;
use super::{
    Outcome, RunError, RunJournal, Runner, TRIGGER_COMPLETED, TRIGGER_ERROR, TRIGGER_WAITING,
    blocking,
};
use crate::engine::{Durable, RunRecord, RunStatus, StepTask};
use crate::store::{RunChange, RunState, StoreError};
use crate::workflow::LoadedWorkflow;

/// What earlier executions of a run recorded (nothing, for a new run).
#[derive(Default)]
pub(super) struct Earlier {
    completed: HashMap<String, Value>,
    previous_attempts: HashMap<String, u32>,
    interrupted_tasks: HashMap<String, StepTask>,
    handled_failures: HashMap<String, String>,
}

impl Earlier {
    /// What a new rerun starts with: the outputs of the steps it took over.
    pub(super) fn reused(completed: HashMap<String, Value>) -> Earlier {
        Earlier {
            completed,
            ..Earlier::default()
        }
    }
}

impl Runner<'_> {
    /// Run the engine over the stored run and record where it ended; with
    /// `claimed`, under the lease a claim of this process took.
    pub(super) async fn execute(
        &self,
        id: &str,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
        claimed: Option<HeldLease>,
    ) -> Result<Outcome, RunError> {
        // The lease first: a live owner's `running` attempts are not interrupted.
        let cancel = cancel.child_token();
        let acquired = match claimed {
            // Renewals that find it lost cancel the parent of `cancel`.
            Some(lease) => Ok(lease),
            None => HeldLease::acquire(self.store, id, cancel.clone())
                .await
                .map_err(|error| match error {
                    // Ended by another process since this one read it.
                    StoreError::Ended { id, status } => RunError::Ended { id, status },
                    other => other.into(),
                })?,
        };
        let lease = match acquired {
            Ok(lease) => lease,
            Err(holder) => {
                return Err(RunError::Leased {
                    id: id.to_string(),
                    host: holder.owner.host,
                    pid: holder.owner.pid,
                    since: holder.since,
                });
            }
        };
        // Attempts still `running` belong to a process that died: run them again.
        let run_id = id.to_string();
        let earlier = blocking(self.store, move |store| {
            store.interrupt_running(&run_id).wait()?;
            Ok::<_, StoreError>(Earlier {
                completed: store.completed_outputs(&run_id)?,
                previous_attempts: store.previous_attempts(&run_id)?,
                interrupted_tasks: store.interrupted_tasks(&run_id)?,
                handled_failures: store.handled_failures(&run_id)?,
            })
        })
        .await?;
        self.execute_leased(id, workflow, input, cancel, lease, earlier)
            .await
    }

    /// Run the engine over the stored run whose lease this process holds,
    /// given what earlier executions recorded, and record where it ended.
    pub(super) async fn execute_leased(
        &self,
        id: &str,
        workflow: Arc<LoadedWorkflow>,
        input: Value,
        cancel: CancellationToken,
        lease: HeldLease,
        earlier: Earlier,
    ) -> Result<Outcome, RunError> {
        let durable = Durable {
            run_id: id.to_string(),
            journal: Arc::new(
                RunJournal::new(
                    self.store.shared(),
                    id.to_string(),
                    Some(lease.token().to_string()),
                )
                .with_given_up(lease.lost_flag()),
            ),
            completed: earlier.completed,
            previous_attempts: earlier.previous_attempts,
            interrupted_tasks: earlier.interrupted_tasks,
            handled_failures: earlier.handled_failures,
        };
        let record = self
            .engine
            .run_durable(workflow, input, cancel, &durable)
            .await;
        if lease.lost() {
            // The new owner records the run from now on; this executor's start
            // is taken back (it did not crash).
            lease.release().await;
            return Err(RunError::LeaseLost { id: id.to_string() });
        }
        if matches!(record.status, RunStatus::Cancelled) && self.interrupt.is_cancelled() {
            // A graceful stop, not a crash: the start is not counted against the run.
            lease.release().await;
            return Err(RunError::Interrupted { id: id.to_string() });
        }
        // The end and the lease's release are one write: whoever sees the new
        // status (an approver, say) may continue the run at once.
        let ended = self
            .store
            .end_execution(id, self.final_change(&record), lease.token())
            .await;
        // Also when the end could not be stored: another process may go on.
        match ended {
            Ok(_) => lease.released_with_end(),
            Err(_) => lease.release().await,
        }
        let recorded = match ended {
            Err(StoreError::LeaseLost { .. }) => {
                return Err(RunError::LeaseLost { id: id.to_string() });
            }
            // Cancelled meanwhile by another process: the stored state stands.
            Ok(_) | Err(StoreError::Transition(_)) => {
                let run_id = id.to_string();
                blocking(self.store, move |store| store.get(&run_id)).await
            }
            Err(error) => Err(error),
        };
        match recorded {
            Ok(run) => Ok(Outcome {
                run,
                record: Some(record),
            }),
            Err(source) => Err(RunError::Unrecorded {
                id: id.to_string(),
                record: Box::new(record),
                source,
            }),
        }
    }

    /// The status change that records where the engine stopped.
    fn final_change(&self, record: &RunRecord) -> RunChange<'_> {
        let mut change = match record.status {
            RunStatus::Completed => {
                RunChange::new(RunState::Completed, TRIGGER_COMPLETED, "pallet")
            }
            RunStatus::Failed => RunChange::new(RunState::Failed, TRIGGER_ERROR, "pallet"),
            RunStatus::Cancelled => RunChange::new(RunState::Cancelled, "cancelled", &self.actor),
            RunStatus::WaitingApproval => {
                RunChange::new(RunState::WaitingApproval, TRIGGER_WAITING, "pallet")
            }
        };
        change.result = record.output.clone();
        change.error = record.error.clone();
        change
    }
}
