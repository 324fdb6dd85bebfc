//! Reads and writes of runs, transitions and step attempts.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::state::{RunState, check_transition};
use super::{Pending, RunStore, StoreError, now};
use crate::agent::AgentTask;
use crate::engine::{StepRecord, StepStatus, StepTask};

/// A run about to be created (status `pending`).
pub struct NewRun {
    pub workflow_ref: String,
    pub workflow_id: String,
    pub workflow_version: String,
    pub workflow_source: String,
    pub workflow_yaml: String,
    pub input: Value,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    pub id: String,
    pub workflow_ref: String,
    pub workflow_id: String,
    pub workflow_version: String,
    pub workflow_digest: String,
    pub workflow_source: String,
    /// The definition the run executes; left out of JSON views (it can be long).
    #[serde(skip)]
    pub workflow_yaml: String,
    pub status: RunState,
    pub current_step: Option<String>,
    pub input: Value,
    pub context: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from: Option<RunState>,
    pub to: RunState,
    pub trigger: String,
    pub metadata: Value,
    pub actor: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub step_id: String,
    pub attempt: u32,
    /// running | completed | failed | cancelled | interrupted | waiting | superseded
    pub status: String,
    pub inputs: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub agent: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The agent's A2A task, stored as soon as the agent accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Where the task lives: `{url, version, binding}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_interface: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The interrupted attempt whose agent task this attempt took over
    /// instead of sending the step again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reattached_from: Option<u32>,
    /// The latest status message of the agent's task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
}

/// One status change with what it records.
pub struct RunChange<'a> {
    pub to: RunState,
    pub trigger: &'a str,
    pub actor: &'a str,
    pub metadata: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
}

impl RunChange<'_> {
    pub fn new<'a>(to: RunState, trigger: &'a str, actor: &'a str) -> RunChange<'a> {
        RunChange {
            to,
            trigger,
            actor,
            metadata: Value::Object(Default::default()),
            result: None,
            error: None,
        }
    }
}

/// The step of the run's newest attempt (`runs` in scope).
const LATEST_STEP: &str =
    "(SELECT a.step_id FROM step_attempts a WHERE a.run_id = runs.id ORDER BY a.id DESC LIMIT 1)";
/// Step id -> outputs of the newest completed attempt of each step (`runs` in scope).
const CONTEXT: &str = "(SELECT json_group_object(a.step_id, json(COALESCE(a.output, '{}'))) FROM step_attempts a WHERE a.id IN (SELECT MAX(b.id) FROM step_attempts b WHERE b.run_id = runs.id AND b.status = 'completed' GROUP BY b.step_id))";
/// The time of the newest attempt's start or end (`runs` in scope).
const LATEST_ATTEMPT_AT: &str = "(SELECT MAX(COALESCE(a.ended_at, a.started_at)) FROM step_attempts a WHERE a.run_id = runs.id)";

/// A run's columns as read. A step's start and end write only its attempt's
/// row (rewriting the run's row, which holds the workflow text, made each
/// step cost twice as much): `current_step`, `context` and `updated_at` are
/// derived from the attempts here, and stored at each status change.
static RUN_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, COALESCE({LATEST_STEP}, current_step), input, {CONTEXT}, result, error, created_at, MAX(updated_at, COALESCE({LATEST_ATTEMPT_AT}, '')), completed_at"
    )
});

impl RunStore {
    pub fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let digest = crate::store::durable::digest(&run.workflow_yaml);
        let at = now();
        let values = (
            id.clone(),
            run.workflow_ref.clone(),
            run.workflow_id.clone(),
            run.workflow_version.clone(),
            digest,
            run.workflow_source.clone(),
            run.workflow_yaml.clone(),
            run.input.to_string(),
            run.actor.clone(),
        );
        self.write(move |connection| {
            let (id, reference, workflow_id, version, digest, source, yaml, input, actor) = values;
            connection.prepare_cached(
                "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            )?
            .execute(params![id, reference, workflow_id, version, digest, source, yaml, RunState::Pending.as_str(), input, at])?;
            connection.prepare_cached(
                "INSERT INTO transitions (run_id, from_status, to_status, trigger, actor, at) VALUES (?1, NULL, ?2, 'created', ?3, ?4)",
            )?
            .execute(params![id, RunState::Pending.as_str(), actor, at])?;
            Ok(())
        })
        .wait()?;
        self.get(&id)
    }

    pub fn get(&self, id: &str) -> Result<StoredRun, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!("SELECT {} FROM runs WHERE id = ?1", *RUN_COLUMNS))?
                .query_row([id], run_from_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?
        })
    }

    /// Newest first.
    pub fn list(&self, status: Option<RunState>, limit: u32) -> Result<Vec<StoredRun>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {} FROM runs WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at DESC, id LIMIT ?2",
                *RUN_COLUMNS
            ))?;
            let rows =
                statement.query_map(params![status.map(RunState::as_str), limit], run_from_row)?;
            let mut runs = Vec::new();
            for row in rows {
                runs.push(row??);
            }
            Ok(runs)
        })
    }

    /// One page of runs, newest first: those after `after` (the `created_at`
    /// and id of the last run of the previous page), at most `limit`.
    pub fn list_page(
        &self,
        status: Option<RunState>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) ORDER BY created_at DESC, id DESC LIMIT ?2",
                *RUN_COLUMNS
            ))?;
            let (created_at, id) = after.unzip();
            let rows = statement.query_map(
                params![status.map(RunState::as_str), limit, created_at, id],
                run_from_row,
            )?;
            let mut runs = Vec::new();
            for row in rows {
                runs.push(row??);
            }
            Ok(runs)
        })
    }

    /// Check the change against the state machine and write it, in one transaction.
    /// Returns the state the run was in.
    pub fn transition(&self, id: &str, change: RunChange) -> Result<RunState, StoreError> {
        self.transition_queued(id, change).wait()
    }

    /// Record where an execution stopped and give up its lease, in one
    /// transaction, so nobody sees the new status while the lease still binds;
    /// refused (`LeaseLost`) when the lease is no longer `lease`.
    pub fn end_execution_queued(
        &self,
        id: &str,
        change: RunChange,
        lease: &str,
    ) -> Pending<RunState> {
        let (id, lease) = (id.to_string(), lease.to_string());
        let change = OwnedChange::from(change);
        self.write(move |connection| {
            check_lease(connection, &id, Some(&lease))?;
            // Released first (the same transaction): the run ends with no
            // executor, so attempts this one left open are closed.
            super::lease::release(connection, &id, &lease)?;
            apply_change(connection, &id, &change.borrowed())
        })
    }

    /// Executions of run `id` that took its lease and never released it
    /// (crashed); counted and cleared by the lease (`lease::acquire`, `release`).
    pub fn executor_starts(&self, id: &str) -> Result<u32, StoreError> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached("SELECT executor_starts FROM runs WHERE id = ?1")?
                .query_row([id], |row| row.get(0))?)
        })
    }

    /// Records why a run is left as it is (shown by `pallet runs show`).
    pub fn set_error(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |connection| {
            connection
                .prepare_cached("UPDATE runs SET error = ?2 WHERE id = ?1")?
                .execute(params![id, error])?;
            Ok(())
        })
        .wait()
    }

    /// [`RunStore::transition`] for async callers: await the answer.
    pub fn transition_queued(&self, id: &str, change: RunChange) -> Pending<RunState> {
        let id = id.to_string();
        let change = OwnedChange::from(change);
        self.write(move |connection| apply_change(connection, &id, &change.borrowed()))
    }

    pub fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError> {
        let history: Vec<Transition> = self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT from_status, to_status, trigger, metadata, actor, at FROM transitions WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([id], |row| {
                let state = |text: Option<String>| text.as_deref().and_then(RunState::parse);
                Ok(Transition {
                    from: state(row.get(0)?),
                    to: state(row.get(1)?).unwrap_or(RunState::Failed),
                    trigger: row.get(2)?,
                    metadata: json_column(row.get(3)?).unwrap_or(Value::Null),
                    actor: row.get(4)?,
                    at: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        // Every run has its `created` transition: none means no such run.
        if history.is_empty() {
            self.get(id)?;
        }
        Ok(history)
    }

    /// Every attempt of every step, in the order they started.
    pub fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, task_id, task_interface, idempotency_key, reattached_from, status_message FROM step_attempts WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([id], |row| {
                Ok(Attempt {
                    step_id: row.get(0)?,
                    attempt: row.get(1)?,
                    status: row.get(2)?,
                    inputs: json_column(row.get(3)?),
                    output: json_column(row.get(4)?),
                    error: row.get(5)?,
                    agent: row.get(6)?,
                    started_at: row.get(7)?,
                    ended_at: row.get(8)?,
                    task_id: row.get(9)?,
                    task_interface: json_column(row.get(10)?),
                    idempotency_key: row.get(11)?,
                    reattached_from: row.get(12)?,
                    status_message: row.get(13)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A new attempt of `step_id` with `status` (running or waiting).
    pub fn start_attempt(&self, id: &str, step_id: &str, status: &str) -> Result<(), StoreError> {
        self.start_attempt_queued(id, step_id, status, None).wait()
    }

    /// [`RunStore::start_attempt`] for async callers: await the answer. With
    /// `lease`, the executor's lease token: refused once the lease is not its own.
    pub fn start_attempt_queued(
        &self,
        id: &str,
        step_id: &str,
        status: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (id, step_id, status) = (id.to_string(), step_id.to_string(), status.to_string());
        let lease = lease.map(str::to_string);
        let at = now();
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            // A run cancelled (or ended) by another process runs no further step.
            let run_state = run_status(connection, &id)?;
            if run_state != RunState::InProgress {
                return Err(StoreError::NotRunning {
                    id,
                    status: run_state,
                });
            }
            connection.prepare_cached(
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at) VALUES (?1, ?2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = ?1 AND step_id = ?2), ?3, ?4)",
            )?
            .execute(params![id, step_id, status, at])?;
            Ok(())
        })
    }

    /// End the open attempt of the record's step with what the record says.
    pub fn finish_attempt(&self, id: &str, record: &StepRecord) -> Result<(), StoreError> {
        self.finish_attempt_queued(id, record, None)
            .wait()
            .map(|_| ())
    }

    /// [`RunStore::finish_attempt`] for async callers: await the answer, the
    /// run's status after the write (another process may have cancelled it
    /// while the step ran: the attempt is recorded all the same).
    pub fn finish_attempt_queued(
        &self,
        id: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        let lease = lease.map(str::to_string);
        let status = match record.status {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
            StepStatus::Waiting => "waiting",
        };
        let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
        let (inputs, output) = (json(&record.inputs), json(&record.outputs));
        let (id, step_id) = (id.to_string(), record.id.clone());
        let (error, agent, at) = (record.error.clone(), record.agent.clone(), now());
        let message = record.status_messages.last().cloned();
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            // Only an open attempt: one already ended (marked interrupted by a
            // process that took over, say) keeps what it says. The status
            // message written last (throttled) gives way to the latest.
            connection.prepare_cached(
                "UPDATE step_attempts SET status = ?3, inputs = ?4, output = ?5, error = ?6, agent = ?7, ended_at = ?8, status_message = COALESCE(?9, status_message) WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status IN ('running', 'waiting'))",
            )?
            .execute(params![id, step_id, status, inputs, output, error, agent, at, message])?;
            run_status(connection, &id)
        })
    }

    /// Keep the agent's task with the open attempt of `step_id` (see
    /// [`crate::engine::Journal::task_accepted`]); refused once the lease is
    /// not `lease`.
    pub fn record_task_queued(
        &self,
        id: &str,
        step_id: &str,
        task: &StepTask,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (id, step_id, lease) = (
            id.to_string(),
            step_id.to_string(),
            lease.map(str::to_string),
        );
        let interface =
            serde_json::to_string(&task.task.interface).expect("an interface always serializes");
        let task = task.clone();
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            connection.prepare_cached(
                "UPDATE step_attempts SET task_id = ?3, task_agent = ?4, task_interface = ?5, idempotency_key = ?6, reattached_from = ?7 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status = 'running')",
            )?
            .execute(params![id, step_id, task.task.id, task.agent, interface, task.idempotency_key, task.reattached_from])?;
            Ok(())
        })
    }

    /// The latest status message of the open attempt of `step_id` (queued
    /// like every write; refused once the lease is not the executor's).
    pub fn step_status_queued(
        &self,
        id: &str,
        step_id: &str,
        message: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (id, step_id, message) = (id.to_string(), step_id.to_string(), message.to_string());
        let lease = lease.map(str::to_string);
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            connection.prepare_cached(
                "UPDATE step_attempts SET status_message = ?3 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status = 'running')",
            )?
            .execute(params![id, step_id, message])?;
            Ok(())
        })
    }

    /// step id -> the agent's task of its interrupted attempt: the newest
    /// interrupted attempt with a task after which the step has only
    /// interrupted attempts without one (a resume that died before the agent
    /// answered it). `reattached_from` is that attempt's number.
    pub fn interrupted_tasks(&self, id: &str) -> Result<HashMap<String, StepTask>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT a.step_id, a.attempt, a.task_id, a.task_agent, a.task_interface, a.idempotency_key FROM step_attempts a WHERE a.run_id = ?1 AND a.status = 'interrupted' AND a.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM step_attempts b WHERE b.run_id = a.run_id AND b.step_id = a.step_id AND b.id > a.id AND (b.status != 'interrupted' OR b.task_id IS NOT NULL))",
            )?;
            let rows = statement.query_map([id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            })?;
            let mut tasks = HashMap::new();
            for row in rows {
                let (step, attempt, task_id, agent, interface, key) = row?;
                // A row this binary cannot read is run again, as before tasks were kept.
                let interface = interface.and_then(|text| serde_json::from_str(&text).ok());
                let (Some(agent), Some(interface), Some(key)) = (agent, interface, key) else {
                    continue;
                };
                tasks.insert(
                    step,
                    StepTask {
                        agent,
                        task: AgentTask {
                            id: task_id,
                            interface,
                        },
                        idempotency_key: key,
                        reattached_from: Some(attempt),
                    },
                );
            }
            Ok(tasks)
        })
    }

    /// Attempts left `running` by a process that died: they will be run again.
    pub fn interrupt_running(&self, id: &str) -> Result<usize, StoreError> {
        let (id, at) = (id.to_string(), now());
        self.write(move |connection| {
            Ok(connection.prepare_cached(
                "UPDATE step_attempts SET status = 'interrupted', ended_at = ?2 WHERE run_id = ?1 AND status = 'running'",
            )?
            .execute(params![id, at])?)
        })
        .wait()
    }

    /// step id -> outputs of its latest completed attempt (superseded ones excluded).
    pub fn completed_outputs(&self, id: &str) -> Result<HashMap<String, Value>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT step_id, output FROM step_attempts WHERE run_id = ?1 AND status = 'completed' ORDER BY id",
            )?;
            let rows = statement.query_map([id], |row| {
                Ok((row.get::<_, String>(0)?, json_column(row.get(1)?)))
            })?;
            let mut outputs = HashMap::new();
            for row in rows {
                let (step, output) = row?;
                outputs.insert(
                    step,
                    output.unwrap_or_else(|| Value::Object(Default::default())),
                );
            }
            Ok(outputs)
        })
    }

    /// step id -> attempts that count towards the idempotency key (all but interrupted).
    pub fn previous_attempts(&self, id: &str) -> Result<HashMap<String, u32>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT step_id, COUNT(*) FROM step_attempts WHERE run_id = ?1 AND status NOT IN ('interrupted', 'waiting') GROUP BY step_id",
            )?;
            let rows = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Record an approval decision as the approval step's completed attempt,
    /// mark the steps to re-run as superseded, and change the status — all
    /// or nothing, and only if the state machine allows the change.
    pub fn decide(
        &self,
        id: &str,
        step_id: &str,
        decision: &Value,
        rerun: &[String],
        change: RunChange,
    ) -> Result<(), StoreError> {
        let (id, step_id, rerun) = (id.to_string(), step_id.to_string(), rerun.to_vec());
        let (decision, change, at) = (decision.to_string(), OwnedChange::from(change), now());
        self.write(move |connection| {
            apply_change(connection, &id, &change.borrowed())?;
            let updated = connection.prepare_cached(
                "UPDATE step_attempts SET status = 'completed', output = ?3, ended_at = ?4 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status = 'waiting')",
            )?
            .execute(params![id, step_id, decision, at])?;
            if updated == 0 {
                connection.prepare_cached(
                    "INSERT INTO step_attempts (run_id, step_id, attempt, status, output, started_at, ended_at) VALUES (?1, ?2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = ?1 AND step_id = ?2), 'completed', ?3, ?4, ?4)",
                )?
                .execute(params![id, step_id, decision, at])?;
            }
            for step in &rerun {
                connection.prepare_cached(
                    "UPDATE step_attempts SET status = 'superseded' WHERE run_id = ?1 AND step_id = ?2 AND status = 'completed'",
                )?
                .execute(params![id, step])?;
            }
            store_derived(connection, &id)
        })
        .wait()
    }
}

/// A [`RunChange`] that can travel to the writer thread.
struct OwnedChange {
    to: RunState,
    trigger: String,
    actor: String,
    metadata: Value,
    result: Option<Value>,
    error: Option<String>,
}

impl From<RunChange<'_>> for OwnedChange {
    fn from(change: RunChange<'_>) -> OwnedChange {
        OwnedChange {
            to: change.to,
            trigger: change.trigger.to_string(),
            actor: change.actor.to_string(),
            metadata: change.metadata,
            result: change.result,
            error: change.error,
        }
    }
}

impl OwnedChange {
    fn borrowed(&self) -> RunChange<'_> {
        RunChange {
            to: self.to,
            trigger: &self.trigger,
            actor: &self.actor,
            metadata: self.metadata.clone(),
            result: self.result.clone(),
            error: self.error.clone(),
        }
    }
}

/// The state-machine check and the write of one change, inside `transaction`.
fn apply_change(
    transaction: &Connection,
    id: &str,
    change: &RunChange,
) -> Result<RunState, StoreError> {
    let from = run_status(transaction, id)?;
    check_transition(from, change.to)?;
    let at = now();
    let completed_at = change.to.is_terminal().then_some(at.as_str());
    transaction.prepare_cached(
        "UPDATE runs SET status = ?2, updated_at = ?3, completed_at = COALESCE(?4, completed_at), result = COALESCE(?5, result), error = COALESCE(?6, error) WHERE id = ?1",
    )?.execute(
        params![id, change.to.as_str(), at, completed_at, change.result.as_ref().map(Value::to_string), change.error],
    )?;
    transaction.prepare_cached(
        "INSERT INTO transitions (run_id, from_status, to_status, trigger, metadata, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?.execute(
        params![id, from.as_str(), change.to.as_str(), change.trigger, change.metadata.to_string(), change.actor, at],
    )?;
    if change.to.is_terminal() && !executed_elsewhere(transaction, id)? {
        // An ended run with no live executor has no attempt in flight (its
        // process died, or ended without closing them): those left are
        // cancelled. A live executor records how its attempts end itself.
        transaction
            .prepare_cached(
                "UPDATE step_attempts SET status = 'cancelled', ended_at = ?2, error = COALESCE(error, ?3) WHERE run_id = ?1 AND status = 'running'",
            )?
            .execute(params![id, at, format!("the run ended ({}) while this attempt was in flight", change.to.as_str())])?;
    }
    store_derived(transaction, id)?;
    Ok(from)
}

/// Whether a live process (not this one's ended execution) holds the lease
/// on run `id`.
fn executed_elsewhere(connection: &Connection, id: &str) -> Result<bool, StoreError> {
    use super::lease::{Owner, Standing, process_alive, read, standing};
    Ok(read(connection, id)?.is_some_and(|lease| {
        standing(&lease, Owner::current(), chrono::Utc::now(), process_alive) == Standing::Live
    }))
}

/// Writes of an executor (`lease`: its lease token) are refused once another
/// process took the run over.
fn check_lease(connection: &Connection, id: &str, lease: Option<&str>) -> Result<(), StoreError> {
    match lease {
        Some(token) if !super::lease::held(connection, id, token)? => {
            Err(StoreError::LeaseLost { id: id.to_string() })
        }
        _ => Ok(()),
    }
}

fn run_status(transaction: &Connection, id: &str) -> Result<RunState, StoreError> {
    let status: String = transaction
        .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    RunState::parse(&status).ok_or_else(|| StoreError::Corrupt {
        id: id.to_string(),
        what: "status".to_string(),
    })
}

/// Store the columns reads derive from the attempts (see [`RUN_COLUMNS`]).
fn store_derived(connection: &Connection, id: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(&format!(
            "UPDATE runs SET current_step = COALESCE({LATEST_STEP}, current_step), context = {CONTEXT} WHERE id = ?1"
        ))?
        .execute([id])?;
    Ok(())
}

fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

/// A row of `runs`; the inner result reports data this code cannot read.
fn run_from_row(row: &Row) -> rusqlite::Result<Result<StoredRun, StoreError>> {
    let id: String = row.get(0)?;
    let status: String = row.get(7)?;
    let Some(status) = RunState::parse(&status) else {
        return Ok(Err(StoreError::Corrupt {
            id,
            what: "status".to_string(),
        }));
    };
    // A JSON column that does not parse is reported, not shown as null.
    let column =
        |index: usize, name: &str| -> rusqlite::Result<Result<Option<Value>, StoreError>> {
            let text: Option<String> = row.get(index)?;
            Ok(match text.map(|text| serde_json::from_str(&text)) {
                None => Ok(None),
                Some(Ok(value)) => Ok(Some(value)),
                Some(Err(_)) => Err(StoreError::Corrupt {
                    id: id.clone(),
                    what: name.to_string(),
                }),
            })
        };
    let (input, context, result) = match (
        column(9, "input")?,
        column(10, "context")?,
        column(11, "result")?,
    ) {
        (Ok(input), Ok(context), Ok(result)) => (input, context, result),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => return Ok(Err(error)),
    };
    Ok(Ok(StoredRun {
        workflow_ref: row.get(1)?,
        workflow_id: row.get(2)?,
        workflow_version: row.get(3)?,
        workflow_digest: row.get(4)?,
        workflow_source: row.get(5)?,
        workflow_yaml: row.get(6)?,
        status,
        current_step: row.get(8)?,
        input: input.unwrap_or(Value::Null),
        context: context.unwrap_or(Value::Null),
        result,
        error: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        completed_at: row.get(15)?,
        id,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A store with one run in progress, and that run's id.
    fn running() -> (RunStore, tempfile::TempDir, String) {
        let directory = tempfile::tempdir().unwrap();
        let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
        let run = store
            .create_run(&NewRun {
                workflow_ref: "w".to_string(),
                workflow_id: "w".to_string(),
                workflow_version: "1.0.0".to_string(),
                workflow_source: "w.yaml".to_string(),
                workflow_yaml: "steps: []".to_string(),
                input: json!({}),
                actor: "test".to_string(),
            })
            .unwrap();
        store
            .transition(
                &run.id,
                RunChange::new(RunState::InProgress, "started", "test"),
            )
            .unwrap();
        (store, directory, run.id)
    }

    fn completed(step: &str, outputs: Value) -> StepRecord {
        StepRecord {
            id: step.to_string(),
            skill: Some("s".to_string()),
            status: StepStatus::Completed,
            inputs: Some(json!({})),
            outputs: Some(outputs),
            error: None,
            attempts: 1,
            agent: Some("a".to_string()),
            child: None,
            status_messages: Vec::new(),
            started_at: now(),
            ended_at: now(),
            duration_ms: 0.0,
        }
    }

    #[tokio::test]
    async fn a_start_queued_without_waiting_is_applied_before_its_finish() {
        let (store, _directory, id) = running();
        let steps = ["one", "two", "three"];
        let mut pending = Vec::new();
        for step in steps {
            let started = store.start_attempt_queued(&id, step, "running", None);
            let finished =
                store.finish_attempt_queued(&id, &completed(step, json!({"step": step})), None);
            pending.push((started, finished));
        }
        for (started, finished) in pending {
            started.await.unwrap();
            assert_eq!(finished.await.unwrap(), RunState::InProgress);
        }
        let attempts = store.attempts(&id).unwrap();
        let seen: Vec<(&str, &str)> = attempts
            .iter()
            .map(|attempt| (attempt.step_id.as_str(), attempt.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("one", "completed"),
                ("two", "completed"),
                ("three", "completed")
            ]
        );
        assert_eq!(
            store.get(&id).unwrap().context["two"],
            json!({"step": "two"})
        );
    }

    #[test]
    fn current_step_and_context_follow_the_attempts_and_are_stored_at_a_status_change() {
        let (store, directory, id) = running();
        let stored = |column: &str| -> Option<String> {
            let connection = Connection::open(directory.path().join("runs.db")).unwrap();
            connection
                .query_row(
                    &format!("SELECT {column} FROM runs WHERE id = ?1"),
                    [&id],
                    |row| row.get(0),
                )
                .unwrap()
        };
        store.start_attempt(&id, "one", "running").unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({"n": 1})))
            .unwrap();
        store.start_attempt(&id, "two", "running").unwrap();
        let run = store.get(&id).unwrap();
        assert_eq!(run.current_step.as_deref(), Some("two"));
        assert_eq!(run.context, json!({"one": {"n": 1}}));
        assert!(run.updated_at > run.created_at);
        // A step writes its attempt only; the run's row is left alone.
        assert_eq!(stored("current_step"), None);
        assert_eq!(stored("context").as_deref(), Some("{}"));
        store
            .finish_attempt(&id, &completed("two", json!({"n": 2})))
            .unwrap();
        store
            .transition(&id, RunChange::new(RunState::Completed, "done", "test"))
            .unwrap();
        assert_eq!(stored("current_step").as_deref(), Some("two"));
        let context: Value = serde_json::from_str(&stored("context").unwrap()).unwrap();
        assert_eq!(context, json!({"one": {"n": 1}, "two": {"n": 2}}));
        assert_eq!(store.get(&id).unwrap().context, context);
    }

    #[tokio::test]
    async fn a_finish_after_a_cancel_elsewhere_is_recorded_and_reports_the_status() {
        let (store, _directory, id) = running();
        // The executor (this process) holds the run's lease.
        store.acquire_lease(&id, "executor").await.unwrap();
        store
            .start_attempt_queued(&id, "one", "running", None)
            .await
            .unwrap();
        store
            .transition(&id, RunChange::new(RunState::Cancelled, "cancelled", "op"))
            .unwrap();
        let status = store
            .finish_attempt_queued(&id, &completed("one", json!({"n": 1})), None)
            .await
            .unwrap();
        assert_eq!(status, RunState::Cancelled);
        assert_eq!(store.attempts(&id).unwrap()[0].status, "completed");
        assert!(matches!(
            store
                .start_attempt_queued(&id, "two", "running", None)
                .await,
            Err(StoreError::NotRunning { .. })
        ));
    }

    #[tokio::test]
    async fn an_executor_that_lost_its_lease_writes_nothing_more() {
        let (store, _directory, id) = running();
        assert_eq!(store.acquire_lease(&id, "old").await.unwrap(), None);
        store
            .start_attempt_queued(&id, "one", "running", Some("old"))
            .await
            .unwrap();
        // Taken over (here: released and taken again under another token).
        store.release_lease(&id, "old").await.unwrap();
        assert_eq!(store.acquire_lease(&id, "new").await.unwrap(), None);
        assert_eq!(store.interrupt_running(&id).unwrap(), 1);
        store
            .start_attempt_queued(&id, "one", "running", Some("new"))
            .await
            .unwrap();
        let lost =
            |result: Result<_, StoreError>| matches!(result, Err(StoreError::LeaseLost { .. }));
        let record = completed("one", json!({"by": "old"}));
        assert!(lost(
            store
                .finish_attempt_queued(&id, &record, Some("old"))
                .await
                .map(|_| ())
        ));
        assert!(lost(
            store
                .start_attempt_queued(&id, "two", "running", Some("old"))
                .await
        ));
        let change = RunChange::new(RunState::Failed, "error", "old");
        assert!(lost(
            store
                .end_execution_queued(&id, change, "old")
                .await
                .map(|_| ())
        ));
        let statuses: Vec<String> = store
            .attempts(&id)
            .unwrap()
            .into_iter()
            .map(|attempt| attempt.status)
            .collect();
        assert_eq!(statuses, ["interrupted", "running"]);
        assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
        // The owner's end and release are one write.
        let record = completed("one", json!({"by": "new"}));
        store
            .finish_attempt_queued(&id, &record, Some("new"))
            .await
            .unwrap();
        let change = RunChange::new(RunState::Completed, "steps_completed", "new");
        store
            .end_execution_queued(&id, change, "new")
            .await
            .unwrap();
        assert_eq!(store.get(&id).unwrap().status, RunState::Completed);
        assert_eq!(store.live_lease(&id).unwrap(), None);
    }

    fn task(id: &str) -> StepTask {
        StepTask {
            agent: "a".to_string(),
            task: AgentTask {
                id: id.to_string(),
                interface: crate::agent::Interface {
                    url: "http://127.0.0.1:1/rpc".to_string(),
                    version: crate::agent::Version::V1_0,
                    binding: crate::agent::Binding::JsonRpc,
                },
            },
            idempotency_key: format!("key-{id}"),
            reattached_from: None,
        }
    }

    #[tokio::test]
    async fn the_task_of_the_newest_interrupted_attempt_is_found_again() {
        let (store, _directory, id) = running();
        let start = |step: &str| store.start_attempt_queued(&id, step, "running", None);
        // `slow`: a task, then a resume that died before the agent answered.
        start("slow").await.unwrap();
        store
            .record_task_queued(&id, "slow", &task("t-1"), None)
            .await
            .unwrap();
        store.interrupt_running(&id).unwrap();
        start("slow").await.unwrap();
        store.interrupt_running(&id).unwrap();
        // `done`: its task ended with the attempt; `quick`: never had one.
        start("done").await.unwrap();
        store
            .record_task_queued(&id, "done", &task("t-2"), None)
            .await
            .unwrap();
        store
            .finish_attempt_queued(&id, &completed("done", json!({})), None)
            .await
            .unwrap();
        start("quick").await.unwrap();
        store.interrupt_running(&id).unwrap();

        let mut expected = task("t-1");
        expected.reattached_from = Some(1);
        assert_eq!(
            store.interrupted_tasks(&id).unwrap(),
            HashMap::from([("slow".to_string(), expected)])
        );
        let slow = &store.attempts(&id).unwrap()[0];
        assert_eq!(slow.task_id.as_deref(), Some("t-1"));
        assert_eq!(slow.idempotency_key.as_deref(), Some("key-t-1"));
        assert_eq!(
            slow.task_interface,
            Some(json!({"url": "http://127.0.0.1:1/rpc", "version": "1.0", "binding": "JSONRPC"}))
        );
    }

    #[tokio::test]
    async fn a_task_of_an_executor_that_lost_its_lease_is_not_recorded() {
        let (store, _directory, id) = running();
        store.acquire_lease(&id, "old").await.unwrap();
        store
            .start_attempt_queued(&id, "one", "running", Some("old"))
            .await
            .unwrap();
        store.release_lease(&id, "old").await.unwrap();
        store.acquire_lease(&id, "new").await.unwrap();
        let refused = store
            .record_task_queued(&id, "one", &task("t"), Some("old"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { .. })),
            "{refused:?}"
        );
        assert_eq!(store.attempts(&id).unwrap()[0].task_id, None);
    }

    #[test]
    fn a_finish_leaves_an_attempt_that_already_ended_alone() {
        let (store, _directory, id) = running();
        store.start_attempt(&id, "one", "running").unwrap();
        store.interrupt_running(&id).unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({})))
            .unwrap();
        assert_eq!(store.attempts(&id).unwrap()[0].status, "interrupted");
    }

    #[tokio::test]
    async fn a_finish_is_durable_once_its_answer_arrived() {
        let (store, directory, id) = running();
        store
            .start_attempt_queued(&id, "one", "running", None)
            .await
            .unwrap();
        store
            .finish_attempt_queued(&id, &completed("one", json!({"n": 1})), None)
            .await
            .unwrap();
        // Another store, as a process started after a crash would open it.
        let other = RunStore::open(&directory.path().join("runs.db")).unwrap();
        assert_eq!(
            other.completed_outputs(&id).unwrap(),
            HashMap::from([("one".to_string(), json!({"n": 1}))])
        );
    }

    #[tokio::test]
    async fn a_refused_start_fails_alone_in_its_batch() {
        let (store, _directory, id) = running();
        let refused = store.start_attempt_queued("no-such-run", "one", "running", None);
        let accepted = store.start_attempt_queued(&id, "one", "running", None);
        assert!(matches!(refused.await, Err(StoreError::NotFound { .. })));
        accepted.await.unwrap();
        assert_eq!(store.attempts(&id).unwrap().len(), 1);
    }
}
