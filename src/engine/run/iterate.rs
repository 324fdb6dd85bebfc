//! for_each and loop steps. Each iteration runs the body as a [`Run`] of its
//! own: its own step outputs (so `steps.ID` inside the body is this
//! iteration's), the locals (`item`/`index`, `loop`), events and journal
//! entries under `STEP[N]/` (for_each: N is `index`, from 0; loop: N is
//! `loop.iteration`, from 1), and the outer run's outputs readable after its
//! own. A durable run that stops mid-way restores the iterations' completed
//! steps from the journal, so they are not run again.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, stream};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Failure, Run, State, StepDetails};
use crate::engine::StepRecord;
use crate::template::is_truthy;
use crate::workflow::{DEFAULT_MAX_ITEMS, Step};

/// How one iteration ended: the body's outputs by step id when it completed,
/// and (loop) the value of `until`.
pub(super) struct Iteration {
    pub outcome: Result<Map<String, Value>, Failure>,
    pub until: Value,
    /// The records of its steps, under their qualified ids.
    pub records: Vec<StepRecord>,
}

impl Run<'_> {
    pub(in crate::engine) async fn for_each(
        &self,
        step: &Step,
        body: &[Step],
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let items = match self.condition(step)? {
            Value::Array(items) => items,
            other => {
                return Err(Failure::failed(format!(
                    "step `{}` failed: its `items` gave {}, not a list",
                    step.id,
                    kind_of(&other)
                )));
            }
        };
        let limit = step.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
        if items.len() > limit {
            return Err(Failure::failed(format!(
                "step `{}` failed: its `items` gave {} items, more than its limit of {limit}; raise `max_items` (at most {}) or split the list",
                step.id,
                items.len(),
                crate::workflow::limits::MAX_ITEMS
            )));
        }
        details.inputs = Some(json!({ "items": items.len() }));
        let fail_fast = step.fail_fast.unwrap_or(true);
        let concurrency = step.max_concurrency.unwrap_or(items.len()).max(1);
        // Cancelling the group stops the other items, not the rest of the run.
        let group = cancel.child_token();
        let iterations = items.into_iter().enumerate().map(|(index, item)| {
            let locals = [("item", item), ("index", json!(index))];
            let group = &group;
            async move {
                let prefix = format!("{}[{index}]/", step.id);
                let ended = self.body(body, prefix, locals, None, group).await;
                (index, ended)
            }
        });
        let mut running = stream::iter(iterations).buffer_unordered(concurrency);
        let mut results = Vec::new();
        // Items end in any order; their records join the run's in item order.
        let mut records = Vec::new();
        let (mut failed, mut waiting, mut cancelled) = (Vec::new(), None, false);
        while let Some((index, ended)) = running.next().await {
            records.push((index, ended.records));
            match ended.outcome {
                Ok(outputs) => results.push((index, Value::Object(outputs))),
                Err(failure) if failure.cancelled => cancelled = true,
                // A paused item lets the others finish their work.
                Err(failure) if failure.waiting => {
                    waiting.get_or_insert(failure);
                }
                Err(failure) => {
                    if fail_fast {
                        group.cancel();
                    }
                    failed.push((index, failure.message));
                }
            }
        }
        drop(running);
        records.sort_by_key(|(index, _)| *index);
        self.adopt(records.into_iter().flat_map(|(_, records)| records));
        if !failed.is_empty() {
            failed.sort_by_key(|(index, _)| *index);
            let (first, message) = &failed[0];
            let others = match failed.len() {
                1 => String::new(),
                count => format!(" ({} items failed)", count),
            };
            return Err(Failure::failed(format!(
                "step `{}` failed at item {first}{others}: {message}",
                step.id
            )));
        }
        if let Some(failure) = waiting {
            return Err(failure);
        }
        if cancelled {
            return Err(Failure::cancelled(step));
        }
        results.sort_by_key(|(index, _)| *index);
        let results: Vec<Value> = results.into_iter().map(|(_, outputs)| outputs).collect();
        Ok(json!({ "count": results.len(), "results": results }))
    }

    /// The body again and again, until `until` holds after an iteration or
    /// `max_iterations` ran; a failed iteration fails the step.
    pub(in crate::engine) async fn repeat(
        &self,
        step: &Step,
        body: &[Step],
        max_iterations: u32,
        cancel: &CancellationToken,
        details: &mut StepDetails,
    ) -> Result<Value, Failure> {
        let mut previous = Value::Null;
        for iteration in 1..=max_iterations {
            if cancel.is_cancelled() {
                return Err(Failure::cancelled(step));
            }
            let locals = [(
                "loop",
                json!({ "iteration": iteration, "previous": previous }),
            )];
            let prefix = format!("{}[{iteration}]/", step.id);
            let ended = self.body(body, prefix, locals, Some(step), cancel).await;
            self.adopt(ended.records);
            previous = Value::Object(ended.outcome.map_err(|failure| Failure {
                message: format!(
                    "step `{}` failed in iteration {iteration}: {}",
                    step.id, failure.message
                ),
                ..failure
            })?);
            let met = is_truthy(&ended.until);
            details.inputs = Some(json!({ "iterations": iteration, "until": ended.until }));
            if met || iteration == max_iterations {
                return Ok(json!({ "iterations": iteration, "until_met": met, "last": previous }));
            }
        }
        // The schema requires max_iterations ≥ 1, so the loop returned.
        Ok(json!({ "iterations": 0, "until_met": false, "last": previous }))
    }

    /// Steps run as a run of their own (an iteration's body, an on_failure
    /// handler): their events, journal entries and records under `prefix`,
    /// `locals` bound; then `until_of`'s `until` read in their scope.
    pub(super) async fn body<const N: usize>(
        &self,
        body: &[Step],
        prefix: String,
        locals: [(&str, Value); N],
        until_of: Option<&Step>,
        cancel: &CancellationToken,
    ) -> Iteration {
        self.body_until(body, prefix, locals, until_of, self.deadline, cancel)
            .await
    }

    /// [`Run::body`] with its own render deadline (the workflow's handler
    /// runs after the workflow's deadline passed).
    pub(super) async fn body_until<const N: usize>(
        &self,
        body: &[Step],
        prefix: String,
        locals: [(&str, Value); N],
        until_of: Option<&Step>,
        deadline: Option<tokio::time::Instant>,
        cancel: &CancellationToken,
    ) -> Iteration {
        let durable = self.durable.map(|durable| durable.scoped(prefix.clone()));
        let mut bound = self.locals.clone().unwrap_or_default();
        for (name, value) in locals {
            bound.insert(name.to_string(), value);
        }
        let run = Run {
            engine: self.engine,
            id: self.id.clone(),
            chain: self.chain.clone(),
            event_prefix: format!("{}{prefix}", self.event_prefix),
            agents: Arc::clone(&self.agents),
            input: Arc::clone(&self.input),
            renderer: Arc::clone(&self.renderer),
            deadline,
            state: Mutex::new(State {
                outputs: durable
                    .as_ref()
                    .map(|durable| durable.completed.clone())
                    .unwrap_or_default(),
                records: Vec::new(),
                continued: Vec::new(),
            }),
            durable: durable.as_ref(),
            workflow: Arc::clone(&self.workflow),
            outer: Some(self),
            locals: Some(bound),
        };
        let mut outcome = run.sequence(body, cancel).await.map(|_| ());
        let until = match (&outcome, until_of.filter(|step| step.until.is_some())) {
            (Ok(()), Some(step)) => match run.condition(step) {
                Ok(value) => value,
                Err(failure) => {
                    outcome = Err(failure);
                    Value::Null
                }
            },
            _ => Value::Null,
        };
        let outputs = outcome.map(|()| run.outputs_by_id(body));
        let state = run
            .state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Already named with the iteration's prefix: the run reports them all.
        self.lock().continued.extend(state.continued);
        let records = state
            .records
            .into_iter()
            .flatten()
            .map(|mut record| {
                record.id = format!("{prefix}{}", record.id);
                record
            })
            .collect();
        Iteration {
            outcome: outputs,
            until,
            records,
        }
    }

    /// Iterations' step records into this run's.
    pub(super) fn adopt(&self, records: impl IntoIterator<Item = StepRecord>) {
        self.lock().records.extend(records.into_iter().map(Some));
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
