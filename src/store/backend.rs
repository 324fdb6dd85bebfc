//! The seam between the run lifecycle (`runs`) and a run database: what the
//! lifecycle, the engine's journal and the lease policy need from it.
//! [`RunStore`] (SQLite) implements it here; PostgreSQL is to be the second.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::events::{Event, EventCursor, EventScope};
use super::lease::Lease;
use super::{
    Attempt, AttemptStatus, Clock, NewRun, Pending, RerunOf, ReusedAttempt, RunChange, RunState,
    RunStore, StoreError, StoredRun, Transition,
};
use crate::engine::{StepRecord, StepTask};

/// What a worker's claim took ([`Backend::claim`]).
#[derive(Debug, Default)]
pub struct Claims {
    /// (run id, lease token) of the runs leased to this process: execute them.
    pub leased: Vec<(String, String)>,
    /// Runs whose executors crashed `max_starts` times: not leased, left for a human.
    pub crashed: Vec<String>,
    /// A moment before the leases' expiry was stamped (their holder's
    /// renewals count from it, see `runs::lease::HeldLease::adopt`).
    pub taken_from: Option<std::time::Instant>,
}

/// A run database as the run lifecycle uses it.
///
/// Sync or async follows the writer-thread design: every write is queued and
/// answered with a [`Pending`], which async code awaits (no runtime thread
/// waits on the database) and sync code [`Pending::wait`]s for; a backend
/// answers it once the write is committed, in the order the writes were
/// queued. Reads are synchronous and short (SQLite reads run on reader
/// connections beside the writer); async callers run them on blocking
/// threads through [`Backend::shared`] (`runs::blocking`). A backend whose
/// client is async sends its answers through a `Pending` all the same.
///
/// `lease`, where a write takes one, is the executor's lease token: the
/// write is refused ([`StoreError::LeaseLost`]) once another process holds
/// the run's lease. `None` writes regardless.
pub trait Backend: Send + Sync + 'static {
    /// A handle to the same database that outlives the borrow (for blocking
    /// threads, a lease's renewal task and the engine's journal).
    fn shared(&self) -> Arc<dyn Backend>;
    /// The database's clock: what it stamps, and what deadlines are checked against.
    fn clock(&self) -> &dyn Clock;
    /// Where the database is, for messages (a path, or a URL without its password).
    fn location(&self) -> String;
    /// Whether several services may share this database as workers of one
    /// service, claiming each other's runs ([`Backend::claim`]).
    fn distributed(&self) -> bool {
        false
    }

    // Runs and their state machine.
    /// A new run, `pending`.
    fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError>;
    /// A new run moved on by `start` at once, and with `lease` its lease
    /// taken by this process under that token: one write. Answers its id.
    fn create_started_run(
        &self,
        run: &NewRun,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String>;
    /// [`Backend::create_started_run`] of a rerun: the run records `rerun.0`
    /// (where it came from) and starts with the completed attempts `rerun.1`.
    fn create_rerun(
        &self,
        run: &NewRun,
        rerun: (RerunOf, Vec<ReusedAttempt>),
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String>;
    fn get(&self, id: &str) -> Result<StoredRun, StoreError>;
    /// Newest first.
    fn list(&self, status: Option<RunState>, limit: u32) -> Result<Vec<StoredRun>, StoreError>;
    /// One page of runs, newest first: those after `after` (the `created_at`
    /// and id of the last run of the previous page), at most `limit`.
    fn list_page(
        &self,
        status: Option<RunState>,
        workflow: Option<&str>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError>;
    /// The status of each of `ids` that exists.
    fn statuses(&self, ids: &[String]) -> Result<HashMap<String, RunState>, StoreError>;
    /// Executions of run `id` that took its lease and never released it (crashed).
    fn executor_starts(&self, id: &str) -> Result<u32, StoreError>;
    /// Record why a run is left as it is.
    fn set_error(&self, id: &str, error: &str) -> Result<(), StoreError>;
    /// The status changes of run `id`, oldest first.
    fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError>;
    /// Check `change` against the state machine and write it; answers the
    /// state the run was in.
    fn transition(&self, id: &str, change: RunChange) -> Pending<RunState>;
    /// Record the decision on the waiting approval `step_id` as its
    /// completed attempt, supersede the completed attempts of `rerun`, and
    /// apply `change`: all or nothing.
    fn decide(
        &self,
        id: &str,
        step_id: &str,
        decision: &Value,
        rerun: &[String],
        change: RunChange,
    ) -> Pending<()>;
    /// Apply `change` (where the execution stopped) and release `lease`, in one write.
    fn end_execution(&self, id: &str, change: RunChange, lease: &str) -> Pending<RunState>;

    // Step attempts: what the engine's journal writes, and what a resume reads.
    /// Every attempt of every step, in the order they started.
    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError>;
    /// A new attempt of `step_id`; refused unless the run is in progress.
    fn start_attempt(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        lease: Option<&str>,
    ) -> Pending<()>;
    /// [`Backend::start_attempt`] stamped `at` (a start written after it happened).
    fn start_attempt_at(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        at: &str,
        lease: Option<&str>,
    ) -> Pending<()>;
    /// A whole attempt (started `started_at`, ended as `record` says) whose
    /// start was not written: one write; answers the run's status.
    fn record_attempt(
        &self,
        id: &str,
        started_at: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState>;
    /// End the open attempt of the record's step; answers the run's status.
    fn finish_attempt(
        &self,
        id: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState>;
    /// Keep the agent's task with the running attempt of `step_id`.
    fn record_task(
        &self,
        id: &str,
        step_id: &str,
        task: &StepTask,
        lease: Option<&str>,
    ) -> Pending<()>;
    /// The latest status message of the running attempt of `step_id`.
    fn step_status(
        &self,
        id: &str,
        step_id: &str,
        message: &str,
        lease: Option<&str>,
    ) -> Pending<()>;
    /// Mark attempts left `running` (by a process that stopped) `interrupted`;
    /// answers how many.
    fn interrupt_running(&self, id: &str) -> Pending<usize>;
    /// step id -> outputs of its latest completed attempt.
    fn completed_outputs(&self, id: &str) -> Result<HashMap<String, Value>, StoreError>;
    /// step id -> attempts that count towards the idempotency key.
    fn previous_attempts(&self, id: &str) -> Result<HashMap<String, u32>, StoreError>;
    /// step id -> the agent's task of its interrupted attempt, to reattach to.
    fn interrupted_tasks(&self, id: &str) -> Result<HashMap<String, StepTask>, StoreError>;
    /// step id -> error of its failed attempt, where its on_failure handler started.
    fn handled_failures(&self, id: &str) -> Result<HashMap<String, String>, StoreError>;

    // Leases: one executor per run.
    /// Take the lease on run `id` for this process under `token`; answers the
    /// live lease of another process instead when one holds it.
    fn acquire_lease(&self, id: &str, token: &str) -> Pending<Option<Lease>>;
    /// Extend the lease held under `token`; false when it is no longer ours.
    fn renew_lease(&self, id: &str, token: &str) -> Pending<bool>;
    fn release_lease(&self, id: &str, token: &str) -> Pending<()>;
    /// Give the lease up but leave its start counted, as a crash would.
    fn abandon_lease(&self, id: &str, token: &str) -> Pending<()>;
    /// The lease of whoever executes run `id` now, if it is live.
    fn live_lease(&self, id: &str) -> Result<Option<Lease>, StoreError>;
    /// Lease to this process up to `limit` runs waiting for a worker
    /// (`pending` or `in_progress`, no live lease), oldest first; a run whose
    /// executors crashed `max_starts` times is reported instead. Only a
    /// [`Backend::distributed`] database has a queue; others claim nothing.
    fn claim(&self, limit: usize, max_starts: u32) -> Pending<Claims>;
    /// How many runs of the queue wait for a worker (runs `pending` or
    /// `in_progress` that nobody holds, and not left for a human), counted
    /// up to `limit`. Only a [`Backend::distributed`] database has a queue.
    fn queued(&self, _limit: usize) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// How many runs are in each state (states without runs left out).
    fn count_by_status(&self) -> Result<HashMap<RunState, u64>, StoreError>;
    /// Up to `limit` events of `scope` after `after`, in commit order.
    fn events_after(
        &self,
        after: EventCursor,
        scope: &EventScope,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// The cursor of the newest event a reader can see.
    fn last_event(&self) -> Result<EventCursor, StoreError>;

    /// Answers once every write queued before it is done.
    fn settled(&self) -> Pending<()>;
    /// Finish what is queued and close the database (a process about to exit).
    fn close(&self);
}

/// The SQLite implementation is [`RunStore`]'s own methods (which the CLI and
/// tests call directly); these forward to them.
impl Backend for RunStore {
    fn shared(&self) -> Arc<dyn Backend> {
        Arc::new(self.clone())
    }
    fn clock(&self) -> &dyn Clock {
        RunStore::clock(self)
    }
    fn location(&self) -> String {
        self.path().display().to_string()
    }
    fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError> {
        RunStore::create_run(self, run)
    }
    fn create_started_run(
        &self,
        run: &NewRun,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        RunStore::create_started_run(self, run, start, lease)
    }
    fn create_rerun(
        &self,
        run: &NewRun,
        rerun: (RerunOf, Vec<ReusedAttempt>),
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        RunStore::create_rerun(self, run, Some(rerun), start, lease)
    }
    fn get(&self, id: &str) -> Result<StoredRun, StoreError> {
        RunStore::get(self, id)
    }
    fn list(&self, status: Option<RunState>, limit: u32) -> Result<Vec<StoredRun>, StoreError> {
        RunStore::list(self, status, limit)
    }
    fn list_page(
        &self,
        status: Option<RunState>,
        workflow: Option<&str>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError> {
        RunStore::list_page(self, status, workflow, limit, after)
    }
    fn statuses(&self, ids: &[String]) -> Result<HashMap<String, RunState>, StoreError> {
        RunStore::statuses(self, ids)
    }
    fn executor_starts(&self, id: &str) -> Result<u32, StoreError> {
        RunStore::executor_starts(self, id)
    }
    fn set_error(&self, id: &str, error: &str) -> Result<(), StoreError> {
        RunStore::set_error(self, id, error)
    }
    fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError> {
        RunStore::history(self, id)
    }
    fn transition(&self, id: &str, change: RunChange) -> Pending<RunState> {
        RunStore::transition(self, id, change)
    }
    fn decide(
        &self,
        id: &str,
        step_id: &str,
        decision: &Value,
        rerun: &[String],
        change: RunChange,
    ) -> Pending<()> {
        RunStore::decide(self, id, step_id, decision, rerun, change)
    }
    fn end_execution(&self, id: &str, change: RunChange, lease: &str) -> Pending<RunState> {
        RunStore::end_execution(self, id, change, lease)
    }
    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        RunStore::attempts(self, id)
    }
    fn start_attempt(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        lease: Option<&str>,
    ) -> Pending<()> {
        RunStore::start_attempt(self, id, step_id, status, lease)
    }
    fn start_attempt_at(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        at: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        RunStore::start_attempt_at(self, id, step_id, status, at, lease)
    }
    fn record_attempt(
        &self,
        id: &str,
        started_at: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        RunStore::record_attempt(self, id, started_at, record, lease)
    }
    fn finish_attempt(
        &self,
        id: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        RunStore::finish_attempt(self, id, record, lease)
    }
    fn record_task(
        &self,
        id: &str,
        step_id: &str,
        task: &StepTask,
        lease: Option<&str>,
    ) -> Pending<()> {
        RunStore::record_task(self, id, step_id, task, lease)
    }
    fn step_status(
        &self,
        id: &str,
        step_id: &str,
        message: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        RunStore::step_status(self, id, step_id, message, lease)
    }
    fn interrupt_running(&self, id: &str) -> Pending<usize> {
        RunStore::interrupt_running(self, id)
    }
    fn completed_outputs(&self, id: &str) -> Result<HashMap<String, Value>, StoreError> {
        RunStore::completed_outputs(self, id)
    }
    fn previous_attempts(&self, id: &str) -> Result<HashMap<String, u32>, StoreError> {
        RunStore::previous_attempts(self, id)
    }
    fn interrupted_tasks(&self, id: &str) -> Result<HashMap<String, StepTask>, StoreError> {
        RunStore::interrupted_tasks(self, id)
    }
    fn handled_failures(&self, id: &str) -> Result<HashMap<String, String>, StoreError> {
        RunStore::handled_failures(self, id)
    }
    fn acquire_lease(&self, id: &str, token: &str) -> Pending<Option<Lease>> {
        RunStore::acquire_lease(self, id, token)
    }
    fn renew_lease(&self, id: &str, token: &str) -> Pending<bool> {
        RunStore::renew_lease(self, id, token)
    }
    fn release_lease(&self, id: &str, token: &str) -> Pending<()> {
        RunStore::release_lease(self, id, token)
    }
    fn abandon_lease(&self, id: &str, token: &str) -> Pending<()> {
        RunStore::abandon_lease(self, id, token)
    }
    fn live_lease(&self, id: &str) -> Result<Option<Lease>, StoreError> {
        RunStore::live_lease(self, id)
    }
    fn count_by_status(&self) -> Result<HashMap<RunState, u64>, StoreError> {
        RunStore::count_by_status(self)
    }
    fn events_after(
        &self,
        after: EventCursor,
        scope: &EventScope,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        RunStore::events_after(self, after, scope, limit)
    }
    fn last_event(&self) -> Result<EventCursor, StoreError> {
        RunStore::last_event(self)
    }
    fn claim(&self, _limit: usize, _max_starts: u32) -> Pending<Claims> {
        // One SQLite file has one service: it resumes its runs at start.
        self.write(|_| Ok(Claims::default()))
    }
    fn settled(&self) -> Pending<()> {
        RunStore::settled(self)
    }
    fn close(&self) {
        RunStore::close(self)
    }
}
