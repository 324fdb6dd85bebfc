//! A step's templates (its condition and inputs) rendered against the run's
//! state, stopped at the step's or the workflow's deadline.

use serde_json::{Map, Value};

use super::{Failure, Run};
use crate::error::chain_of;
use crate::template::{RenderLimit, Scope, TemplateError};
use crate::workflow::{Step, StepType};

impl Run<'_> {
    /// A step's `condition` (or the for_each `items`, or the loop `until`, which
    /// take the condition's place) resolved against this run's state.
    pub(in crate::engine) fn condition(&self, step: &Step) -> Result<Value, Failure> {
        let deadline = self.render_deadline(step);
        let what = match step.step_type {
            StepType::ForEach => "items",
            StepType::Loop => "until condition",
            _ => "condition",
        };
        self.with_scope(|scope| self.renderer.condition_until(&step.id, scope, deadline))
            .map_err(|error| self.template_failure(step, what, &error))
    }

    /// A step's `if:` guard resolved against this run's state (`None`: no guard).
    pub(in crate::engine) fn guard(&self, step: &Step) -> Result<Option<Value>, Failure> {
        let deadline = self.render_deadline(step);
        self.with_scope(|scope| self.renderer.guard_until(&step.id, scope, deadline))
            .map_err(|error| self.template_failure(step, "`if`", &error))
    }

    /// `read` with the scope templates see here: this run's outputs, then
    /// those of the runs around it (an iteration's), and the locals.
    fn with_scope<T>(&self, read: impl FnOnce(&Scope) -> T) -> T {
        let state = self.lock();
        let outer_states: Vec<_> = std::iter::successors(self.outer, |run| run.outer)
            .map(Run::lock)
            .collect();
        let outer: Vec<_> = outer_states.iter().map(|state| &state.outputs).collect();
        let scope = Scope {
            input: &self.input,
            steps: &state.outputs,
            locals: self.locals.as_ref(),
            outer: &outer,
        };
        read(&scope)
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
        let deadline = self.render_deadline(step);
        self.with_scope(|scope| self.renderer.inputs_until(&step.id, scope, deadline))
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
