//! One run of one workflow: the step tree walked in order, containers
//! included, with the outputs map and the step records updated in place.
//! Finding the agents first: `run/agents.rs` (then the steps are checked
//! against their schemas: `engine/shapes.rs`); rendering templates: `run/templates.rs`.

mod agents;
mod iterate;
mod recover;
mod templates;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::record::Clock;
use super::{
    ApprovalRequest, Durable, Engine, Event, Nesting, RunRecord, RunStatus, StepRecord, StepStatus,
};
use crate::agent::AgentCard;
use crate::template::Renderer;
use crate::workflow::{LoadedWorkflow, Step, StepKind, Workflow};

/// Why a step did not complete.
#[derive(Debug)]
pub(super) struct Failure {
    pub message: String,
    /// Stopped by cancellation (fail-fast, workflow timeout, Ctrl-C) rather than failed.
    pub cancelled: bool,
    /// Paused at an approval step that has no decision yet.
    pub waiting: bool,
}

impl Failure {
    pub fn failed(message: String) -> Failure {
        Failure {
            message,
            cancelled: false,
            waiting: false,
        }
    }

    pub fn cancelled(step: &Step) -> Failure {
        Failure {
            message: format!("step `{}` was cancelled", step.id),
            cancelled: true,
            waiting: false,
        }
    }

    pub fn waiting(step: &Step) -> Failure {
        Failure {
            message: format!("step `{}` waits for approval", step.id),
            cancelled: false,
            waiting: true,
        }
    }
}

/// What a step learnt on its way, for its record.
#[derive(Default)]
pub(super) struct StepDetails {
    pub inputs: Option<Value>,
    pub attempts: u32,
    pub agent: Option<String>,
    pub child: Option<Box<RunRecord>>,
    pub status_messages: Vec<String>,
}

pub(super) struct State {
    /// step id -> outputs, as templates see them.
    outputs: HashMap<String, Value>,
    /// In start order; a slot is reserved when a step starts and filled when it ends.
    records: Vec<Option<StepRecord>>,
    /// Steps whose failure `continue_on_error` let the run go past.
    continued: Vec<String>,
}

pub(super) struct Run<'e> {
    pub engine: &'e Engine,
    pub id: String,
    /// Ids of the workflows from the top-level one down to this one.
    pub chain: Vec<String>,
    pub event_prefix: String,
    /// Shared with the run's iterations, as are the input and the renderer.
    pub agents: Arc<HashMap<String, Vec<Arc<AgentCard>>>>,
    input: Arc<Value>,
    renderer: Arc<Renderer>,
    /// When the workflow's timeout passes: a template render stops there too.
    deadline: Option<tokio::time::Instant>,
    state: Mutex<State>,
    pub durable: Option<&'e Durable>,
    /// What this run executes: an approval request names its steps.
    workflow: Arc<LoadedWorkflow>,
    /// The run an iteration's steps belong to: templates read the outputs
    /// of its steps (and of its own outer runs) after this run's own.
    outer: Option<&'e Run<'e>>,
    /// The locals templates read (`item`, `index`, `loop`), inner ones
    /// shadowing outer ones; `None` outside any iteration.
    locals: Option<Map<String, Value>>,
}

/// Workflows of more steps have their preflight work (compiling templates,
/// the schema check) done on a blocking thread: it is CPU work that grows
/// with the workflow, and on the runtime a few big ones at once would stall
/// every other task (the service's `/health`). A small one is done in place,
/// without a thread hop.
const INLINE_STEPS: usize = 200;

async fn off_runtime<T: Send + 'static>(
    loaded: &Arc<LoadedWorkflow>,
    big: bool,
    work: impl FnOnce(&LoadedWorkflow) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    if !big {
        return work(loaded);
    }
    let loaded = loaded.clone();
    tokio::task::spawn_blocking(move || work(&loaded))
        .await
        .unwrap_or_else(|error| Err(format!("the run's preflight stopped: {error}")))
}

pub(super) async fn execute(
    engine: &Engine,
    loaded: Arc<LoadedWorkflow>,
    input: Value,
    cancel: CancellationToken,
    nesting: Nesting,
    durable: Option<&Durable>,
) -> RunRecord {
    let clock = Clock::start();
    let workflow = &loaded.workflow;
    let mut record = RunRecord {
        run_id: durable.map_or_else(
            || uuid::Uuid::new_v4().to_string(),
            |durable| durable.run_id.clone(),
        ),
        workflow_id: workflow.metadata.id.clone(),
        workflow_version: workflow.metadata.version.to_string(),
        workflow_source: loaded.origin.clone(),
        input,
        status: RunStatus::Failed,
        steps: Vec::new(),
        output: None,
        error: None,
        continued_failures: Vec::new(),
        started_at: clock.started_at(),
        ended_at: String::new(),
        duration_ms: 0.0,
    };
    let big = workflow.all_steps().len() > INLINE_STEPS;
    let prepared = match off_runtime(&loaded, big, |loaded| loaded.renderer()).await {
        Ok(renderer) => match agents_for_workflow(engine, workflow).await {
            // Before any step: the steps against the schemas those agents publish.
            Ok(agents) => off_runtime(&loaded, big, move |loaded| {
                super::shapes::check_schemas(loaded, &agents).map(|()| agents)
            })
            .await
            .map(|agents| (renderer, agents)),
            Err(error) => Err(error),
        },
        Err(error) => Err(format!(
            "workflow `{}` has invalid templates: {error}",
            workflow.metadata.id,
        )),
    };
    match prepared {
        Ok((renderer, agents)) => {
            let mut chain = nesting.callers;
            chain.push(workflow.metadata.id.clone());
            let run = Run {
                engine,
                id: record.run_id.clone(),
                chain,
                event_prefix: nesting.event_prefix,
                agents: Arc::new(agents),
                input: Arc::new(std::mem::take(&mut record.input)),
                renderer,
                deadline: workflow
                    .timeout
                    .map(|limit| tokio::time::Instant::now() + limit),
                state: Mutex::new(State {
                    // Completed steps' outputs feed the templates of the steps still to run.
                    outputs: durable
                        .map(|durable| durable.completed.clone())
                        .unwrap_or_default(),
                    records: Vec::new(),
                    continued: Vec::new(),
                }),
                durable,
                workflow: loaded.clone(),
                outer: None,
                locals: None,
            };
            run.drive(workflow, &cancel, &mut record).await;
            record.input = Arc::unwrap_or_clone(run.input);
            let state = run
                .state
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            record.steps = state.records.into_iter().flatten().collect();
            record.continued_failures = state.continued;
        }
        Err(message) => {
            // Nothing ran, yet the record still shows every step.
            record.steps = workflow.all_steps().into_iter().map(skipped).collect();
            record.error = Some(message);
        }
    }
    (record.ended_at, record.duration_ms) = clock.stop();
    record
}

use self::agents::agents_for_workflow;
use self::recover::recoverable;

impl Run<'_> {
    /// Run the top-level steps under the workflow timeout and fill in the run's outcome.
    async fn drive(&self, workflow: &Workflow, cancel: &CancellationToken, record: &mut RunRecord) {
        let root = cancel.child_token();
        let work = self.sequence(&workflow.steps, &root);
        let mut timed_out = false;
        let outcome = match workflow.timeout {
            None => work.await,
            Some(limit) => {
                tokio::pin!(work);
                tokio::select! {
                    outcome = &mut work => outcome,
                    () = tokio::time::sleep(limit) => {
                        timed_out = true;
                        // Let in-flight calls see the cancellation and end their tasks.
                        root.cancel();
                        work.await
                    }
                }
            }
        };
        let failed = match outcome {
            Ok(last) => {
                record.status = RunStatus::Completed;
                record.output = Some(last.map_or_else(|| json!({}), |step| self.outputs_of(step)));
                None
            }
            Err(_) if timed_out => {
                let limit = workflow.timeout.unwrap_or_default();
                Some(format!(
                    "workflow timed out after {}",
                    humantime::format_duration(limit)
                ))
            }
            Err(failure) if failure.waiting => {
                record.status = RunStatus::WaitingApproval;
                None
            }
            Err(failure) if failure.cancelled && cancel.is_cancelled() => {
                record.status = RunStatus::Cancelled;
                record.error = Some("run cancelled".to_string());
                None
            }
            Err(failure) => Some(failure.message),
        };
        if let Some(message) = failed {
            // The run stays failed; a failing handler adds its own failure.
            let problem = self.cleanup(workflow, &message, cancel).await;
            record.error = Some(match problem {
                Some(problem) => format!("{message}; {problem}"),
                None => message,
            });
        }
    }

    /// Steps one after the other; the first failure skips the rest.
    /// Returns the last step that ran.
    pub(super) fn sequence<'s>(
        &'s self,
        steps: &'s [Step],
        cancel: &'s CancellationToken,
    ) -> BoxFuture<'s, Result<Option<&'s Step>, Failure>> {
        Box::pin(async move {
            for (index, step) in steps.iter().enumerate() {
                if let Err(failure) = self.step(step, cancel).await {
                    self.skip_all(&steps[index + 1..]);
                    return Err(failure);
                }
            }
            Ok(steps.last())
        })
    }

    /// Run one step; a failure its `on_failure` handler recovers is not one.
    pub(super) fn step<'s>(
        &'s self,
        step: &'s Step,
        cancel: &'s CancellationToken,
    ) -> BoxFuture<'s, Result<(), Failure>> {
        Box::pin(async move {
            if !cancel.is_cancelled() && self.completed_before(step).is_none() {
                // A falsy guard skips the step with everything nested in it.
                if let Some(value) = self.guard(step)?
                    && !crate::template::is_truthy(&value)
                {
                    let slot = self.reserve_slot();
                    let mut record = skipped(step);
                    record.inputs = Some(json!({ "if": value }));
                    // Journaled like a finished step: `runs show` lists the skip.
                    let started = self.journal(step, |journal| journal.step_started(&step.id));
                    let journaled = match started.await {
                        Ok(()) => {
                            self.journal(step, |journal| journal.step_finished(&record))
                                .await
                        }
                        Err(failure) => Err(failure),
                    };
                    self.finish(step, slot, record);
                    step.children().for_each(|child| self.skip(child));
                    return journaled;
                }
            }
            let outcome = match self.step_once(step, cancel).await {
                // Boxed: only a failed step needs its room (2 KB), and every
                // step in flight holds this future.
                Err(failure) if recoverable(step, &failure) => {
                    Box::pin(self.recover(step, failure, cancel)).await
                }
                outcome => outcome,
            };
            match outcome {
                // Recorded as failed; a cancellation or a pause is not swallowed.
                Err(failure)
                    if step.continue_on_error && !failure.cancelled && !failure.waiting =>
                {
                    self.lock().continued.push(self.event_name(step));
                    Ok(())
                }
                outcome => outcome,
            }
        })
    }

    fn step_once<'s>(
        &'s self,
        step: &'s Step,
        cancel: &'s CancellationToken,
    ) -> BoxFuture<'s, Result<(), Failure>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                self.skip(step);
                return Err(Failure::cancelled(step));
            }
            if let Some(outputs) = self.completed_before(step) {
                let slot = self.reserve_slot();
                self.finish(step, slot, restored(step, outputs));
                return Ok(());
            }
            // Killed inside its handler: the recorded failure goes to the
            // handler again, the failed call is not made again.
            if let Some(message) = self.handled_failure_before(step) {
                let slot = self.reserve_slot();
                let mut record = skipped(step);
                record.status = StepStatus::Failed;
                record.error = Some(message.clone());
                self.finish(step, slot, record);
                return Err(Failure::failed(message));
            }
            if step.step_type == crate::workflow::StepType::Approval {
                return self.await_approval(step).await;
            }
            // Queued, not awaited: the write overlaps the step's work, and the
            // writer applies it before the step's finish. A crash before it
            // lands leaves no attempt, so the step runs again with the same key.
            let started = self.journal(step, |journal| journal.step_started(&step.id));
            let clock = Clock::start();
            let slot = self.reserve_slot();
            let kind = step.kind();
            let skill = match kind {
                StepKind::Call { skill } => Some(skill.to_string()),
                _ => None,
            };
            self.engine.emit(|| Event::StepStarted {
                step: self.event_name(step),
                skill: skill.clone(),
            });
            let mut details = StepDetails::default();
            let result = match kind {
                StepKind::Call { skill } => self.call(step, skill, cancel, &mut details).await,
                StepKind::Parallel { steps } => self.parallel(step, steps, cancel).await,
                StepKind::Conditional { if_true, if_false } => {
                    self.conditional(step, if_true, if_false, cancel, &mut details)
                        .await
                }
                StepKind::Switch { cases } => self.switch(step, cases, cancel, &mut details).await,
                StepKind::Approval => Err(Failure::waiting(step)),
                StepKind::ForEach { body } => self.for_each(step, body, cancel, &mut details).await,
                StepKind::Loop {
                    body,
                    max_iterations,
                } => {
                    self.repeat(step, body, max_iterations, cancel, &mut details)
                        .await
                }
            };
            let (ended_at, duration_ms) = clock.stop();
            let mut record = StepRecord {
                id: step.id.clone(),
                skill,
                status: StepStatus::Completed,
                inputs: details.inputs,
                outputs: None,
                error: None,
                attempts: details.attempts,
                agent: details.agent,
                child: details.child,
                status_messages: details.status_messages,
                started_at: clock.started_at(),
                ended_at,
                duration_ms,
            };
            let result = match result {
                Ok(outputs) => {
                    record.outputs = Some(outputs.clone());
                    self.lock().outputs.insert(step.id.clone(), outputs);
                    Ok(())
                }
                Err(failure) => {
                    // Waiting: an approval in its child run (or nested deeper) waits.
                    (record.status, record.error) = if failure.waiting {
                        (StepStatus::Waiting, None)
                    } else if failure.cancelled {
                        (StepStatus::Cancelled, Some(failure.message.clone()))
                    } else {
                        (StepStatus::Failed, Some(failure.message.clone()))
                    };
                    Err(failure)
                }
            };
            // Awaited before the next step starts: a completed step is never
            // lost to a crash, and a run cancelled elsewhere meanwhile starts no
            // further step. A start that was refused has no attempt to finish.
            let journaled = match started.await {
                Ok(()) => {
                    self.journal(step, |journal| journal.step_finished(&record))
                        .await
                }
                Err(failure) => Err(failure),
            };
            self.finish(step, slot, record);
            result.and(journaled)
        })
    }

    /// The stored outputs of a step an earlier process completed.
    fn completed_before(&self, step: &Step) -> Option<Value> {
        self.durable?.completed.get(&step.id).cloned()
    }

    fn handled_failure_before(&self, step: &Step) -> Option<String> {
        if step.on_failure.is_empty() {
            return None;
        }
        self.durable?.handled_failures.get(&step.id).cloned()
    }

    /// Attempts of this step made by earlier processes (0 without a journal).
    pub(super) fn previous_attempts(&self, step: &Step) -> u32 {
        self.durable
            .and_then(|durable| durable.previous_attempts.get(&step.id).copied())
            .unwrap_or(0)
    }

    /// An approval step without a recorded decision: pause the run (durable
    /// runs) or fail it (nothing could record a decision).
    async fn await_approval(&self, step: &Step) -> Result<(), Failure> {
        if self.durable.is_none() {
            let slot = self.reserve_slot();
            let message = format!(
                "approval step `{}` needs a durable run (a run store) to wait for a decision",
                step.id
            );
            let mut record = skipped(step);
            record.status = StepStatus::Failed;
            record.error = Some(message.clone());
            self.finish(step, slot, record);
            return Err(Failure::failed(message));
        }
        self.journal(step, |journal| journal.approval_waiting(&step.id))
            .await?;
        let slot = self.reserve_slot();
        let mut record = skipped(step);
        record.status = StepStatus::Waiting;
        // The waiting attempt keeps what deciding needs: the store has the
        // text of the top-level workflow only, not that of a child run.
        let request = ApprovalRequest::new(step, &self.workflow.workflow.steps);
        record.inputs = serde_json::to_value(request).ok();
        self.journal(step, |journal| journal.step_finished(&record))
            .await?;
        self.finish(step, slot, record);
        Err(Failure::waiting(step))
    }

    /// Call the journal of a durable run: the write is queued at once and is
    /// committed when the returned future resolves. Its error fails the step.
    fn journal(
        &self,
        step: &Step,
        write: impl FnOnce(&dyn super::Journal) -> super::JournalWrite,
    ) -> impl Future<Output = Result<(), Failure>> + 'static {
        let written = self.durable.map(|durable| write(durable.journal.as_ref()));
        let id = step.id.clone();
        async move {
            let Some(written) = written else {
                return Ok(());
            };
            written.await.map_err(|error| {
                Failure::failed(format!(
                    "step `{id}` failed: cannot record its progress: {error}"
                ))
            })
        }
    }

    pub(super) fn outputs_of(&self, step: &Step) -> Value {
        self.lock()
            .outputs
            .get(&step.id)
            .cloned()
            .unwrap_or_else(|| json!({}))
    }

    /// `{id: outputs}` of those `steps` that completed, in their order.
    pub(super) fn outputs_by_id(&self, steps: &[Step]) -> Map<String, Value> {
        let state = self.lock();
        steps
            .iter()
            .filter_map(|step| Some((step.id.clone(), state.outputs.get(&step.id)?.clone())))
            .collect()
    }

    /// Record steps that will not run, with everything nested in them.
    pub(super) fn skip_all(&self, steps: &[Step]) {
        for step in steps {
            self.skip(step);
        }
    }

    fn skip(&self, step: &Step) {
        let slot = self.reserve_slot();
        self.finish(step, slot, skipped(step));
        for child in step.children() {
            self.skip(child);
        }
    }

    fn reserve_slot(&self) -> usize {
        let mut state = self.lock();
        state.records.push(None);
        state.records.len() - 1
    }

    fn finish(&self, step: &Step, slot: usize, record: StepRecord) {
        if let Some(observer) = &self.engine.observer {
            observer.step_finished(&record);
        }
        self.engine.emit(|| Event::StepFinished {
            step: self.event_name(step),
            record: Box::new(record.clone()),
        });
        self.lock().records[slot] = Some(record);
    }

    pub(super) fn event_name(&self, step: &Step) -> String {
        format!("{}{}", self.event_prefix, step.id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-updated: every update is one call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The record of a step completed by an earlier process: not run again.
fn restored(step: &Step, outputs: Value) -> StepRecord {
    let mut record = skipped(step);
    record.status = StepStatus::Completed;
    record.outputs = Some(outputs);
    record
}

/// The record of a step that did not run.
fn skipped(step: &Step) -> StepRecord {
    let now = Clock::start().started_at();
    StepRecord {
        id: step.id.clone(),
        skill: match step.kind() {
            StepKind::Call { skill } => Some(skill.to_string()),
            _ => None,
        },
        status: StepStatus::Skipped,
        inputs: None,
        outputs: None,
        error: None,
        attempts: 0,
        agent: None,
        child: None,
        status_messages: Vec::new(),
        started_at: now.clone(),
        ended_at: now,
        duration_ms: 0.0,
    }
}
