//! on_failure handlers. A step's handler runs its steps instead of the
//! failed step, as a run of their own under `STEP/on_failure/` with
//! `{{ error.message }}` and `{{ error.step }}` bound; when it completes the
//! step counts as completed with the outputs of the handler's last step. The
//! workflow's handler runs once the run has failed (cleanup, notify), under
//! `on_failure/`, and the run stays failed.
//!
//! A recovered step is journaled as one more attempt, completed, so a resume
//! neither runs it nor its handler again. Killed while its handler ran, a
//! resume hands the recorded failure to the handler again
//! (`Durable::handled_failures`) without calling the failed step again.

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Failure, Run};
use crate::engine::{Event, StepStatus};
use crate::workflow::{Step, Workflow};

/// A failure a handler takes over: not a pause, not a cancellation.
pub(super) fn recoverable(step: &Step, failure: &Failure) -> bool {
    !step.on_failure.is_empty() && !failure.waiting && !failure.cancelled
}

impl Run<'_> {
    pub(super) async fn recover(
        &self,
        step: &Step,
        failure: Failure,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let error = json!({ "message": failure.message, "step": self.event_name(step) });
        let prefix = format!("{}/on_failure/", step.id);
        let ended = self
            .body(&step.on_failure, prefix, [("error", error)], None, cancel)
            .await;
        self.adopt(ended.records);
        let handled = match ended.outcome {
            Ok(mut outputs) => step
                .on_failure
                .last()
                .and_then(|last| outputs.remove(&last.id))
                .unwrap_or_else(|| json!({})),
            Err(handler) => {
                return Err(Failure {
                    message: format!(
                        "{}; its on_failure handler failed too: {}",
                        failure.message, handler.message
                    ),
                    ..handler
                });
            }
        };
        let record = {
            let mut state = self.lock();
            state.outputs.insert(step.id.clone(), handled.clone());
            let own = state
                .records
                .iter_mut()
                .rev()
                .flatten()
                .find(|record| record.id == step.id);
            own.map(|record| {
                record.status = StepStatus::Completed;
                record.error = Some(format!("handled by on_failure: {}", failure.message));
                record.outputs = Some(handled);
                record.clone()
            })
        };
        let Some(record) = record else {
            return Ok(());
        };
        self.engine.emit(|| Event::StepFinished {
            step: self.event_name(step),
            record: Box::new(record.clone()),
        });
        let started = self.journal(step, |journal| journal.step_started(&step.id));
        started.await?;
        self.journal(step, |journal| journal.step_finished(&record))
            .await
    }

    /// The workflow's on_failure handler after the run failed with `message`:
    /// what went wrong in it, if anything. It runs also after the workflow
    /// timed out, not after a cancellation.
    pub(super) async fn cleanup(
        &self,
        workflow: &Workflow,
        message: &str,
        cancel: &CancellationToken,
    ) -> Option<String> {
        if workflow.on_failure.is_empty() || cancel.is_cancelled() {
            return None;
        }
        let failed_step = {
            let state = self.lock();
            state
                .records
                .iter()
                .flatten()
                .find(|record| matches!(record.status, StepStatus::Failed | StepStatus::Cancelled))
                .map_or(Value::Null, |record| json!(record.id))
        };
        let error = json!({ "message": message, "step": failed_step });
        // Each handler step is bounded by its own timeout, even after the
        // workflow's has passed.
        let ended = self
            .body_until(
                &workflow.on_failure,
                "on_failure/".to_string(),
                [("error", error)],
                None,
                None,
                &cancel.child_token(),
            )
            .await;
        self.adopt(ended.records);
        ended.outcome.err().map(|failure| {
            format!(
                "the workflow's on_failure handler failed too: {}",
                failure.message
            )
        })
    }
}
