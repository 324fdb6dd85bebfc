//! A step's templates (its condition and inputs) rendered against the run's
//! state, stopped at the step's or the workflow's deadline.

use serde_json::{Map, Value};

use super::{Failure, Run};
use crate::error::chain_of;
use crate::template::{RenderLimit, Scope, TemplateError};
use crate::workflow::Step;

impl Run<'_> {
    pub(in crate::engine) fn condition(&self, step: &Step) -> Result<Value, Failure> {
        let state = self.lock();
        let scope = Scope {
            input: &self.input,
            steps: &state.outputs,
            locals: None,
        };
        let deadline = self.render_deadline(step);
        self.renderer
            .condition_until(&step.id, &scope, deadline)
            .map_err(|error| self.template_failure(step, "condition", &error))
    }

    /// When a render of `step`'s templates must stop: its own timeout from
    /// now, or the workflow's if that comes first.
    fn render_deadline(&self, step: &Step) -> Option<std::time::Instant> {
        let own = tokio::time::Instant::now() + step.timeout();
        let deadline = self.deadline.map_or(own, |workflow| workflow.min(own));
        Some(deadline.into_std())
    }

    /// A template error as the step's failure; a render stopped by a timeout
    /// says which one.
    fn template_failure(&self, step: &Step, what: &str, error: &TemplateError) -> Failure {
        let timed_out = matches!(
            error,
            TemplateError::Limit {
                limit: RenderLimit::Deadline,
                ..
            }
        );
        let workflow_first = self.deadline.is_some_and(|workflow| {
            workflow <= tokio::time::Instant::now() + std::time::Duration::from_millis(1)
        });
        let message = match (timed_out, workflow_first) {
            (true, true) => format!(
                "step `{}` failed: the workflow timed out while its {what} rendered",
                step.id
            ),
            (true, false) => format!(
                "step `{}` timed out after {} while its {what} rendered",
                step.id,
                humantime::format_duration(step.timeout())
            ),
            (false, _) => format!("step `{}` has a bad {what}: {}", step.id, chain_of(error)),
        };
        Failure::failed(message)
    }

    pub(in crate::engine) fn render_inputs(
        &self,
        step: &Step,
    ) -> Result<Map<String, Value>, Failure> {
        let state = self.lock();
        let scope = Scope {
            input: &self.input,
            steps: &state.outputs,
            locals: None,
        };
        let deadline = self.render_deadline(step);
        self.renderer
            .inputs_until(&step.id, &scope, deadline)
            .map_err(|error| match error {
                TemplateError::Limit {
                    limit: RenderLimit::Deadline,
                    ..
                } => self.template_failure(step, "inputs", &error),
                _ => Failure::failed(format!(
                    "step `{}` has bad inputs: {}",
                    step.id,
                    chain_of(&error)
                )),
            })
    }
}
