//! Container steps: parallel, conditional and switch.

use futures::{StreamExt, stream};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::run::{Failure, Run, StepDetails};
use crate::template::is_truthy;
use crate::workflow::Step;

impl Run<'_> {
    pub(super) async fn parallel(
        &self,
        step: &Step,
        children: &[Step],
        cancel: &CancellationToken,
    ) -> Result<Value, Failure> {
        let fail_fast = step.fail_fast.unwrap_or(true);
        let limit = step.max_concurrency.unwrap_or(children.len()).max(1);
        // Cancelling the group stops the siblings without touching the rest of the run.
        let group = cancel.child_token();
        // Boxed futures start nothing until polled, so the limit holds.
        let branches: Vec<_> = children
            .iter()
            .map(|child| self.step(child, &group))
            .collect();
        let mut results = stream::iter(branches).buffer_unordered(limit);
        let mut failed: Option<Failure> = None;
        let mut waiting: Option<Failure> = None;
        let mut cancelled = false;
        while let Some(result) = results.next().await {
            match result {
                Ok(()) => {}
                Err(failure) if failure.cancelled => cancelled = true,
                // A branch paused for approval lets its siblings finish their work.
                Err(failure) if failure.waiting => {
                    waiting.get_or_insert(failure);
                }
                Err(failure) => {
                    if fail_fast {
                        group.cancel();
                    }
                    failed.get_or_insert(failure);
                }
            }
        }
        drop(results);
        // A real failure outranks a pause: the run fails rather than waits.
        if let Some(failure) = failed.or(waiting) {
            return Err(failure);
        }
        if cancelled {
            return Err(Failure::cancelled(step));
        }
        Ok(Value::Object(self.outputs_by_id(children)))
    }

    pub(super) async fn conditional(
        &self,
        step: &Step,
        if_true: &[Step],
        if_false: &[Step],
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let value = self.condition(step)?;
        let (taken, other) = if is_truthy(&value) {
            (if_true, if_false)
        } else {
            (if_false, if_true)
        };
        details.inputs = Some(json!({ "condition": value }));
        let outcome = self.sequence(taken, cancel).await;
        self.skip_all(other);
        Ok(outcome?.map_or_else(|| json!({}), |last| self.outputs_of(last)))
    }

    pub(super) async fn switch(
        &self,
        step: &Step,
        cases: &IndexMap<String, Vec<Step>>,
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let value = self.condition(step)?;
        let name = case_name(&value);
        let taken = cases
            .get_key_value(&name)
            .or_else(|| cases.get_key_value("default"))
            .map(|(key, steps)| (key.as_str(), steps.as_slice()));
        details.inputs = Some(json!({ "condition": value }));
        let outcome = match taken {
            Some((_, steps)) => self.sequence(steps, cancel).await,
            None => Ok(None),
        };
        for (key, steps) in cases {
            if taken.is_none_or(|(taken_key, _)| taken_key != key) {
                self.skip_all(steps);
            }
        }
        Ok(outcome?.map_or_else(|| json!({}), |last| self.outputs_of(last)))
    }
}

/// A switch condition's value as a case name: strings as they are, other
/// scalars in their JSON form (`3`, `true`, `null`). Whole floats lose their
/// `.0`, since A2A agents send every number as a double.
fn case_name(value: &Value) -> String {
    crate::template::value_to_text(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names() {
        let cases = [
            (json!("code_generation"), "code_generation"),
            (json!(3), "3"),
            (json!(2.5), "2.5"),
            (json!(3.0), "3"),
            (json!(-4.0), "-4"),
            (json!(1e20), "1e+20"),
            (json!(true), "true"),
            (json!(null), "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(case_name(&value), expected, "{value}");
        }
    }
}
