//! Reads and writes of runs, transitions and step attempts.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;

use super::state::{RunState, check_transition};
use super::{RunStore, StoreError, now};
use crate::engine::{StepRecord, StepStatus};

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

const RUN_COLUMNS: &str = "id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, current_step, input, context, result, error, created_at, updated_at, completed_at";

impl RunStore {
    pub fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let digest = crate::store::durable::digest(&run.workflow_yaml);
        let at = now();
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            params![id, run.workflow_ref, run.workflow_id, run.workflow_version, digest, run.workflow_source, run.workflow_yaml, RunState::Pending.as_str(), run.input.to_string(), at],
        )?;
        transaction.execute(
            "INSERT INTO transitions (run_id, from_status, to_status, trigger, actor, at) VALUES (?1, NULL, ?2, 'created', ?3, ?4)",
            params![id, RunState::Pending.as_str(), run.actor, at],
        )?;
        transaction.commit()?;
        drop(connection);
        self.get(&id)
    }

    pub fn get(&self, id: &str) -> Result<StoredRun, StoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?
    }

    /// Newest first.
    pub fn list(&self, status: Option<RunState>, limit: u32) -> Result<Vec<StoredRun>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at DESC, id LIMIT ?2"
        ))?;
        let rows =
            statement.query_map(params![status.map(RunState::as_str), limit], run_from_row)?;
        let mut runs = Vec::new();
        for row in rows {
            runs.push(row??);
        }
        Ok(runs)
    }

    /// One page of runs, newest first: those after `after` (the `created_at`
    /// and id of the last run of the previous page), at most `limit`.
    pub fn list_page(
        &self,
        status: Option<RunState>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) ORDER BY created_at DESC, id DESC LIMIT ?2"
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
    }

    /// Check the change against the state machine and write it, in one transaction.
    /// Returns the state the run was in.
    pub fn transition(&self, id: &str, change: RunChange) -> Result<RunState, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from = apply_change(&transaction, id, &change)?;
        transaction.commit()?;
        Ok(from)
    }

    pub fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError> {
        self.get(id)?;
        let connection = self.lock();
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
    }

    /// Every attempt of every step, in the order they started.
    pub fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT step_id, attempt, status, inputs, output, error, agent, started_at, ended_at FROM step_attempts WHERE run_id = ?1 ORDER BY id",
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
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A new attempt of `step_id` with `status` (running or waiting).
    pub fn start_attempt(&self, id: &str, step_id: &str, status: &str) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A run cancelled (or ended) by another process runs no further step.
        let run_state = run_status(&transaction, id)?;
        if run_state != RunState::InProgress {
            return Err(StoreError::NotRunning {
                id: id.to_string(),
                status: run_state,
            });
        }
        let at = now();
        transaction.execute(
            "INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at) VALUES (?1, ?2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = ?1 AND step_id = ?2), ?3, ?4)",
            params![id, step_id, status, at],
        )?;
        transaction.execute(
            "UPDATE runs SET current_step = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, step_id, at],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// End the open attempt of the record's step with what the record says.
    pub fn finish_attempt(&self, id: &str, record: &StepRecord) -> Result<(), StoreError> {
        let status = match record.status {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
            StepStatus::Waiting => "waiting",
        };
        let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "UPDATE step_attempts SET status = ?3, inputs = ?4, output = ?5, error = ?6, agent = ?7, ended_at = ?8 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2)",
            params![id, record.id, status, json(&record.inputs), json(&record.outputs), record.error, record.agent, now()],
        )?;
        if let (StepStatus::Completed, Some(outputs)) = (record.status, &record.outputs) {
            set_context(&transaction, id, &record.id, Some(outputs))?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Attempts left `running` by a process that died: they will be run again.
    pub fn interrupt_running(&self, id: &str) -> Result<usize, StoreError> {
        let connection = self.lock();
        Ok(connection.execute(
            "UPDATE step_attempts SET status = 'interrupted', ended_at = ?2 WHERE run_id = ?1 AND status = 'running'",
            params![id, now()],
        )?)
    }

    /// step id -> outputs of its latest completed attempt (superseded ones excluded).
    pub fn completed_outputs(&self, id: &str) -> Result<HashMap<String, Value>, StoreError> {
        let connection = self.lock();
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
    }

    /// step id -> attempts that count towards the idempotency key (all but interrupted).
    pub fn previous_attempts(&self, id: &str) -> Result<HashMap<String, u32>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT step_id, COUNT(*) FROM step_attempts WHERE run_id = ?1 AND status NOT IN ('interrupted', 'waiting') GROUP BY step_id",
        )?;
        let rows = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        apply_change(&transaction, id, &change)?;
        let at = now();
        let updated = transaction.execute(
            "UPDATE step_attempts SET status = 'completed', output = ?3, ended_at = ?4 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = ?1 AND step_id = ?2 AND status = 'waiting')",
            params![id, step_id, decision.to_string(), at],
        )?;
        if updated == 0 {
            transaction.execute(
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, output, started_at, ended_at) VALUES (?1, ?2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = ?1 AND step_id = ?2), 'completed', ?3, ?4, ?4)",
                params![id, step_id, decision.to_string(), at],
            )?;
        }
        set_context(&transaction, id, step_id, Some(decision))?;
        for step in rerun {
            transaction.execute(
                "UPDATE step_attempts SET status = 'superseded' WHERE run_id = ?1 AND step_id = ?2 AND status = 'completed'",
                params![id, step],
            )?;
            set_context(&transaction, id, step, None)?;
        }
        transaction.commit()?;
        Ok(())
    }
}

/// The state-machine check and the write of one change, inside `transaction`.
fn apply_change(
    transaction: &rusqlite::Transaction,
    id: &str,
    change: &RunChange,
) -> Result<RunState, StoreError> {
    let from = run_status(transaction, id)?;
    check_transition(from, change.to)?;
    let at = now();
    let completed_at = change.to.is_terminal().then_some(at.as_str());
    transaction.execute(
        "UPDATE runs SET status = ?2, updated_at = ?3, completed_at = COALESCE(?4, completed_at), result = COALESCE(?5, result), error = COALESCE(?6, error) WHERE id = ?1",
        params![id, change.to.as_str(), at, completed_at, change.result.as_ref().map(Value::to_string), change.error],
    )?;
    transaction.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, trigger, metadata, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, from.as_str(), change.to.as_str(), change.trigger, change.metadata.to_string(), change.actor, at],
    )?;
    Ok(from)
}

fn run_status(transaction: &rusqlite::Transaction, id: &str) -> Result<RunState, StoreError> {
    let status: String = transaction
        .query_row("SELECT status FROM runs WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    RunState::parse(&status).ok_or_else(|| StoreError::Corrupt {
        id: id.to_string(),
        what: "status".to_string(),
    })
}

/// Keep `runs.context` (step id -> outputs) in step with the attempts.
fn set_context(
    transaction: &rusqlite::Transaction,
    id: &str,
    step_id: &str,
    outputs: Option<&Value>,
) -> Result<(), StoreError> {
    let path = format!("$.\"{}\"", step_id);
    match outputs {
        Some(outputs) => transaction.execute(
            "UPDATE runs SET context = json_set(context, ?2, json(?3)) WHERE id = ?1",
            params![id, path, outputs.to_string()],
        )?,
        None => transaction.execute(
            "UPDATE runs SET context = json_remove(context, ?2) WHERE id = ?1",
            params![id, path],
        )?,
    };
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
    Ok(Ok(StoredRun {
        workflow_ref: row.get(1)?,
        workflow_id: row.get(2)?,
        workflow_version: row.get(3)?,
        workflow_digest: row.get(4)?,
        workflow_source: row.get(5)?,
        workflow_yaml: row.get(6)?,
        status,
        current_step: row.get(8)?,
        input: json_column(row.get(9)?).unwrap_or(Value::Null),
        context: json_column(row.get(10)?).unwrap_or(Value::Null),
        result: json_column(row.get(11)?),
        error: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        completed_at: row.get(15)?,
        id,
    }))
}
