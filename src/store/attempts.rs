//! Reads and writes of step attempts: what the engine's journal records as
//! steps run, and what a resume reads back.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use super::runs::run_status;
use super::state::{AttemptStatus, RunState};
use super::{Pending, RunStore, StoreError};
use crate::agent::AgentTask;
use crate::engine::{StepRecord, StepTask};

/// What an attempt's end writes, owned so the write can run on the writer thread.
struct AttemptEnd {
    step_id: String,
    status: AttemptStatus,
    inputs: Option<String>,
    output: Option<String>,
    error: Option<String>,
    agent: Option<String>,
    /// When it ended.
    at: String,
    /// The latest status message, if the agent sent any.
    message: Option<String>,
}

impl AttemptEnd {
    fn new(record: &StepRecord, at: String) -> AttemptEnd {
        let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
        AttemptEnd {
            step_id: record.id.clone(),
            status: AttemptStatus::from(record.status),
            inputs: json(&record.inputs),
            output: json(&record.outputs),
            error: record.error.clone(),
            agent: record.agent.clone(),
            at,
            message: record.status_messages.last().cloned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub step_id: String,
    pub attempt: u32,
    pub status: AttemptStatus,
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
    /// The run that made this attempt, when this run took it over from it
    /// (a rerun's steps before its `from` step): the step did not run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

impl RunStore {
    /// Every attempt of every step, in the order they started.
    pub fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, task_id, task_interface, idempotency_key, reattached_from, status_message, reused_from FROM step_attempts WHERE run_id = ?1 ORDER BY id",
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
                    reused_from: row.get(14)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A new attempt of `step_id` with `status` (running or waiting). With
    /// `lease`, the executor's lease token: refused once the lease is not its own.
    pub fn start_attempt(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        lease: Option<&str>,
    ) -> Pending<()> {
        self.start_attempt_at(id, step_id, status, &self.stamp(), lease)
    }

    /// [`RunStore::start_attempt`] of a start that happened `at` (stamped
    /// when the step started; written later, see `runs::journal`).
    pub fn start_attempt_at(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        at: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (id, step_id, at) = (id.to_string(), step_id.to_string(), at.to_string());
        let lease = lease.map(str::to_string);
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
    /// Answers the run's status after the write (another process may have
    /// cancelled it while the step ran: the attempt is recorded all the same).
    pub fn finish_attempt(
        &self,
        id: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        let lease = lease.map(str::to_string);
        let (id, end) = (id.to_string(), AttemptEnd::new(record, self.stamp()));
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            // Only an open attempt: one already ended (marked interrupted by a
            // process that took over, say) keeps what it says. The status
            // message written last (throttled) gives way to the latest.
            connection.prepare_cached(
                "UPDATE step_attempts SET status = ?3, inputs = ?4, output = ?5, error = ?6, agent = ?7, ended_at = ?8, status_message = COALESCE(?9, status_message) WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status IN ('running', 'waiting'))",
            )?
            .execute(params![id, end.step_id, end.status, end.inputs, end.output, end.error, end.agent, end.at, end.message])?;
            run_status(connection, &id)
        })
    }

    /// A whole attempt of the record's step, started `started_at`, whose
    /// start was not written: its start and end in one write (one commit per
    /// step). Recorded like [`RunStore::finish_attempt`] records an end, also
    /// when another process cancelled the run meanwhile; answers the run's status.
    pub fn record_attempt(
        &self,
        id: &str,
        started_at: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        let lease = lease.map(str::to_string);
        let (id, end) = (id.to_string(), AttemptEnd::new(record, self.stamp()));
        let started_at = started_at.to_string();
        self.write(move |connection| {
            check_lease(connection, &id, lease.as_deref())?;
            connection.prepare_cached(
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, status_message) VALUES (?1, ?2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = ?1 AND step_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![id, end.step_id, end.status, end.inputs, end.output, end.error, end.agent, started_at, end.at, end.message])?;
            run_status(connection, &id)
        })
    }

    /// Keep the agent's task with the open attempt of `step_id` (see
    /// [`crate::engine::Journal::task_accepted`]); refused once the lease is
    /// not `lease`.
    pub fn record_task(
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
    pub fn step_status(
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
    pub fn interrupt_running(&self, id: &str) -> Pending<usize> {
        let (id, at) = (id.to_string(), self.stamp());
        self.write(move |connection| {
            Ok(connection.prepare_cached(
                "UPDATE step_attempts SET status = 'interrupted', ended_at = ?2 WHERE run_id = ?1 AND status = 'running'",
            )?
            .execute(params![id, at])?)
        })
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

    /// step id -> the error of its latest attempt, when that failed and an
    /// attempt of its `on_failure` handler (`STEP/on_failure/...`) exists.
    pub fn handled_failures(&self, id: &str) -> Result<HashMap<String, String>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT a.step_id, COALESCE(a.error, 'failed') FROM step_attempts a
                 WHERE a.run_id = ?1 AND a.status = 'failed'
                   AND a.id = (SELECT MAX(b.id) FROM step_attempts b
                               WHERE b.run_id = a.run_id AND b.step_id = a.step_id)
                   AND EXISTS (SELECT 1 FROM step_attempts h WHERE h.run_id = a.run_id
                               AND substr(h.step_id, 1, length(a.step_id) + 12) = a.step_id || '/on_failure/')",
            )?;
            let rows = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
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
}

/// Writes of an executor (`lease`: its lease token) are refused once another
/// process took the run over (checked once per write transaction).
pub(super) fn check_lease(
    connection: &Connection,
    id: &str,
    lease: Option<&str>,
) -> Result<(), StoreError> {
    match lease {
        Some(token) if !super::lease::held_in_batch(connection, id, token)? => {
            Err(StoreError::LeaseLost { id: id.to_string() })
        }
        _ => Ok(()),
    }
}

pub(super) fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::StepStatus;
    use crate::store::{NewRun, RunChange, clock};

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
            .wait()
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
            started_at: crate::store::clock::timestamp(chrono::Utc::now()),
            ended_at: crate::store::clock::timestamp(chrono::Utc::now()),
            duration_ms: 0.0,
        }
    }

    #[test]
    fn an_attempt_written_whole_reads_as_one_started_and_finished() {
        let (store, _directory, id) = running();
        let started_at = clock::timestamp(store.clock().now());
        store
            .start_attempt_at(&id, "one", AttemptStatus::Running, &started_at, None)
            .wait()
            .unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({"n": 1})), None)
            .wait()
            .unwrap();
        let status = store
            .record_attempt(&id, &started_at, &completed("one", json!({"n": 2})), None)
            .wait()
            .unwrap();
        assert_eq!(status, RunState::InProgress);
        let attempts = store.attempts(&id).unwrap();
        let view = |attempt: &Attempt| {
            (
                attempt.attempt,
                attempt.status,
                attempt.output.clone(),
                attempt.started_at.clone(),
                attempt.ended_at.is_some(),
            )
        };
        assert_eq!(
            attempts.iter().map(view).collect::<Vec<_>>(),
            [
                (
                    1,
                    AttemptStatus::Completed,
                    Some(json!({"n": 1})),
                    started_at.clone(),
                    true
                ),
                (
                    2,
                    AttemptStatus::Completed,
                    Some(json!({"n": 2})),
                    started_at.clone(),
                    true
                ),
            ]
        );
        assert_eq!(
            store.completed_outputs(&id).unwrap()["one"],
            json!({"n": 2})
        );
        let refused = store
            .record_attempt(
                &id,
                &started_at,
                &completed("two", json!({})),
                Some("no lease"),
            )
            .wait();
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_start_queued_without_waiting_is_applied_before_its_finish() {
        let (store, _directory, id) = running();
        let steps = ["one", "two", "three"];
        let mut pending = Vec::new();
        for step in steps {
            let started = store.start_attempt(&id, step, AttemptStatus::Running, None);
            let finished = store.finish_attempt(&id, &completed(step, json!({"step": step})), None);
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
        store
            .start_attempt(&id, "one", AttemptStatus::Running, None)
            .wait()
            .unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({"n": 1})), None)
            .wait()
            .unwrap();
        store
            .start_attempt(&id, "two", AttemptStatus::Running, None)
            .wait()
            .unwrap();
        let run = store.get(&id).unwrap();
        assert_eq!(run.current_step.as_deref(), Some("two"));
        assert_eq!(run.context, json!({"one": {"n": 1}}));
        assert!(run.updated_at > run.created_at);
        // A step writes its attempt only; the run's row is left alone.
        assert_eq!(stored("current_step"), None);
        assert_eq!(stored("context").as_deref(), Some("{}"));
        store
            .finish_attempt(&id, &completed("two", json!({"n": 2})), None)
            .wait()
            .unwrap();
        store
            .transition(&id, RunChange::new(RunState::Completed, "done", "test"))
            .wait()
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
            .start_attempt(&id, "one", AttemptStatus::Running, None)
            .await
            .unwrap();
        store
            .transition(&id, RunChange::new(RunState::Cancelled, "cancelled", "op"))
            .wait()
            .unwrap();
        let status = store
            .finish_attempt(&id, &completed("one", json!({"n": 1})), None)
            .await
            .unwrap();
        assert_eq!(status, RunState::Cancelled);
        assert_eq!(store.attempts(&id).unwrap()[0].status.as_str(), "completed");
        assert!(matches!(
            store
                .start_attempt(&id, "two", AttemptStatus::Running, None)
                .await,
            Err(StoreError::NotRunning { .. })
        ));
    }

    #[tokio::test]
    async fn an_executor_that_lost_its_lease_writes_nothing_more() {
        let (store, _directory, id) = running();
        assert_eq!(store.acquire_lease(&id, "old").await.unwrap(), None);
        store
            .start_attempt(&id, "one", AttemptStatus::Running, Some("old"))
            .await
            .unwrap();
        // Taken over (here: released and taken again under another token).
        store.release_lease(&id, "old").await.unwrap();
        assert_eq!(store.acquire_lease(&id, "new").await.unwrap(), None);
        assert_eq!(store.interrupt_running(&id).wait().unwrap(), 1);
        store
            .start_attempt(&id, "one", AttemptStatus::Running, Some("new"))
            .await
            .unwrap();
        let lost =
            |result: Result<_, StoreError>| matches!(result, Err(StoreError::LeaseLost { .. }));
        let record = completed("one", json!({"by": "old"}));
        assert!(lost(
            store
                .finish_attempt(&id, &record, Some("old"))
                .await
                .map(|_| ())
        ));
        assert!(lost(
            store
                .start_attempt(&id, "two", AttemptStatus::Running, Some("old"))
                .await
        ));
        let change = RunChange::new(RunState::Failed, "error", "old");
        assert!(lost(
            store.end_execution(&id, change, "old").await.map(|_| ())
        ));
        let statuses: Vec<&str> = store
            .attempts(&id)
            .unwrap()
            .into_iter()
            .map(|attempt| attempt.status.as_str())
            .collect();
        assert_eq!(statuses, ["interrupted", "running"]);
        assert_eq!(store.get(&id).unwrap().status, RunState::InProgress);
        // The owner's end and release are one write.
        let record = completed("one", json!({"by": "new"}));
        store
            .finish_attempt(&id, &record, Some("new"))
            .await
            .unwrap();
        let change = RunChange::new(RunState::Completed, "steps_completed", "new");
        store.end_execution(&id, change, "new").await.unwrap();
        assert_eq!(store.get(&id).unwrap().status, RunState::Completed);
        assert_eq!(store.live_lease(&id).unwrap(), None);
    }

    /// A task accepted over A2A 1.0 JSON-RPC, sent with the key `key-ID`.
    pub(crate) fn task(id: &str) -> StepTask {
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
        let start = |step: &str| store.start_attempt(&id, step, AttemptStatus::Running, None);
        // `slow`: a task, then a resume that died before the agent answered.
        start("slow").await.unwrap();
        store
            .record_task(&id, "slow", &task("t-1"), None)
            .await
            .unwrap();
        store.interrupt_running(&id).wait().unwrap();
        start("slow").await.unwrap();
        store.interrupt_running(&id).wait().unwrap();
        // `done`: its task ended with the attempt; `quick`: never had one.
        start("done").await.unwrap();
        store
            .record_task(&id, "done", &task("t-2"), None)
            .await
            .unwrap();
        store
            .finish_attempt(&id, &completed("done", json!({})), None)
            .await
            .unwrap();
        start("quick").await.unwrap();
        store.interrupt_running(&id).wait().unwrap();

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
            .start_attempt(&id, "one", AttemptStatus::Running, Some("old"))
            .await
            .unwrap();
        store.release_lease(&id, "old").await.unwrap();
        store.acquire_lease(&id, "new").await.unwrap();
        let refused = store.record_task(&id, "one", &task("t"), Some("old")).await;
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { .. })),
            "{refused:?}"
        );
        assert_eq!(store.attempts(&id).unwrap()[0].task_id, None);
    }

    #[test]
    fn a_finish_leaves_an_attempt_that_already_ended_alone() {
        let (store, _directory, id) = running();
        store
            .start_attempt(&id, "one", AttemptStatus::Running, None)
            .wait()
            .unwrap();
        store.interrupt_running(&id).wait().unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({})), None)
            .wait()
            .unwrap();
        assert_eq!(
            store.attempts(&id).unwrap()[0].status.as_str(),
            "interrupted"
        );
    }

    #[tokio::test]
    async fn a_finish_is_stored_once_its_answer_arrived() {
        let (store, directory, id) = running();
        store
            .start_attempt(&id, "one", AttemptStatus::Running, None)
            .await
            .unwrap();
        store
            .finish_attempt(&id, &completed("one", json!({"n": 1})), None)
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
        let refused = store.start_attempt("no-such-run", "one", AttemptStatus::Running, None);
        let accepted = store.start_attempt(&id, "one", AttemptStatus::Running, None);
        assert!(matches!(refused.await, Err(StoreError::NotFound { .. })));
        accepted.await.unwrap();
        assert_eq!(store.attempts(&id).unwrap().len(), 1);
    }
}
