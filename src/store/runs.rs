//! Reads and writes of runs and their transitions (their creation is in
//! `create.rs`, the attempts of their steps in `attempts.rs`).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use sha2::{Digest, Sha256};

use super::attempts::{check_lease, json_column};
use super::state::{RunState, check_transition};
use super::{Pending, RunStore, StoreError};

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
    /// Set when this run is a rerun of another (`pallet rerun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
}

/// The run a rerun came from and the top-level step it ran again from: the
/// steps before it took over that run's recorded outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RerunOf {
    pub run_id: String,
    pub from_step: String,
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
        "id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, COALESCE({LATEST_STEP}, current_step), input, {CONTEXT}, result, error, created_at, MAX(updated_at, COALESCE({LATEST_ATTEMPT_AT}, '')), completed_at, rerun_of, rerun_from"
    )
});

/// `sha256:HEX` of a workflow's exact text.
pub fn digest(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

impl RunStore {
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
        workflow: Option<&str>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?5 IS NULL OR workflow_id = ?5) AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) ORDER BY created_at DESC, id DESC LIMIT ?2",
                *RUN_COLUMNS
            ))?;
            let (created_at, id) = after.unzip();
            let rows = statement.query_map(
                params![status.map(RunState::as_str), limit, created_at, id, workflow],
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
    /// Answers the state the run was in.
    pub fn transition(&self, id: &str, change: RunChange) -> Pending<RunState> {
        let (id, at) = (id.to_string(), self.stamp());
        let change = OwnedChange::from(change);
        self.write(move |connection| apply_change(connection, &id, &change.borrowed(), &at))
    }

    /// Record where an execution stopped and give up its lease, in one
    /// transaction, so nobody sees the new status while the lease still binds;
    /// refused (`LeaseLost`) when the lease is no longer `lease`.
    pub fn end_execution(&self, id: &str, change: RunChange, lease: &str) -> Pending<RunState> {
        let (id, lease, at) = (id.to_string(), lease.to_string(), self.stamp());
        let change = OwnedChange::from(change);
        self.write(move |connection| {
            check_lease(connection, &id, Some(&lease))?;
            // Released first (the same transaction): the run ends with no
            // executor, so attempts this one left open are closed.
            super::lease::release(connection, &id, &lease)?;
            apply_change(connection, &id, &change.borrowed(), &at)
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

    /// The status of each of `ids` that exists.
    pub fn statuses(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, RunState>, StoreError> {
        self.read(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT status FROM runs WHERE id = ?1")?;
            let mut statuses = std::collections::HashMap::new();
            for id in ids {
                if let Some(status) = statement
                    .query_row([id], |row| row.get::<_, RunState>(0))
                    .optional()?
                {
                    statuses.insert(id.clone(), status);
                }
            }
            Ok(statuses)
        })
    }

    /// How many runs are in each state (states without runs left out).
    pub fn count_by_status(&self) -> Result<std::collections::HashMap<RunState, u64>, StoreError> {
        let rows: Vec<(String, i64)> = self.read(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        Ok(counted(rows))
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

    pub fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError> {
        let history: Vec<Transition> = self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT from_status, to_status, trigger, metadata, actor, at FROM transitions WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([id], |row| {
                Ok(Transition::from_columns(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        // Every run has its `created` transition: none means no such run.
        if history.is_empty() {
            self.get(id)?;
        }
        Ok(history)
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
    ) -> Pending<()> {
        let (id, step_id, rerun) = (id.to_string(), step_id.to_string(), rerun.to_vec());
        let (decision, change, at) = (
            decision.to_string(),
            OwnedChange::from(change),
            self.stamp(),
        );
        self.write(move |connection| {
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
            // The change last: its event follows the decision's (a refused
            // change rolls the attempts back with it).
            apply_change(connection, &id, &change.borrowed(), &at)?;
            store_derived(connection, &id)
        })
    }
}

/// A [`RunChange`] that can travel to the writer thread.
pub(super) struct OwnedChange {
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
    pub(super) fn borrowed(&self) -> RunChange<'_> {
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
/// `at`: the store clock's time of the change.
pub(super) fn apply_change(
    transaction: &Connection,
    id: &str,
    change: &RunChange,
    at: &str,
) -> Result<RunState, StoreError> {
    let from = run_status(transaction, id)?;
    check_transition(from, change.to)?;
    let completed_at = change.to.is_terminal().then_some(at);
    transaction.prepare_cached(
        "UPDATE runs SET status = ?2, updated_at = ?3, completed_at = COALESCE(?4, completed_at), result = COALESCE(?5, result), error = COALESCE(?6, error) WHERE id = ?1",
    )?.execute(
        params![id, change.to.as_str(), at, completed_at, change.result.as_ref().map(Value::to_string), change.error],
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
    // Last: its event follows those of the attempts it ended (a run's
    // event stream ends at the run's end).
    transaction.prepare_cached(
        "INSERT INTO transitions (run_id, from_status, to_status, trigger, metadata, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?.execute(
        params![id, from.as_str(), change.to.as_str(), change.trigger, change.metadata.to_string(), change.actor, at],
    )?;
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

/// The run's state as stored, inside the write's transaction.
pub(super) fn run_status(transaction: &Connection, id: &str) -> Result<RunState, StoreError> {
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

/// A row of `runs` ([`RUN_COLUMNS`], in that order); the inner result
/// reports data this code cannot read.
fn run_from_row(row: &Row) -> rusqlite::Result<Result<StoredRun, StoreError>> {
    Ok(RawRun {
        id: row.get(0)?,
        workflow_ref: row.get(1)?,
        workflow_id: row.get(2)?,
        workflow_version: row.get(3)?,
        workflow_digest: row.get(4)?,
        workflow_source: row.get(5)?,
        workflow_yaml: row.get(6)?,
        status: row.get(7)?,
        current_step: row.get(8)?,
        input: row.get(9)?,
        context: row.get(10)?,
        result: row.get(11)?,
        error: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        completed_at: row.get(15)?,
        rerun_of: row.get(16)?,
        rerun_from: row.get(17)?,
    }
    .parse())
}

/// A run's columns as any backend reads them (the order of [`RUN_COLUMNS`]),
/// before their text is parsed.
pub(super) struct RawRun {
    pub id: String,
    pub workflow_ref: String,
    pub workflow_id: String,
    pub workflow_version: String,
    pub workflow_digest: String,
    pub workflow_source: String,
    pub workflow_yaml: String,
    pub status: String,
    pub current_step: Option<String>,
    pub input: Option<String>,
    pub context: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    pub rerun_of: Option<String>,
    pub rerun_from: Option<String>,
}

impl RawRun {
    /// The stored run, or which column holds what this code cannot read.
    pub(super) fn parse(self) -> Result<StoredRun, StoreError> {
        let id = self.id;
        let corrupt = |what: &str| StoreError::Corrupt {
            id: id.clone(),
            what: what.to_string(),
        };
        let status = RunState::parse(&self.status).ok_or_else(|| corrupt("status"))?;
        // A JSON column that does not parse is reported, not shown as null.
        let column = |text: Option<String>, name: &str| -> Result<Option<Value>, StoreError> {
            text.map(|text| serde_json::from_str(&text).map_err(|_| corrupt(name)))
                .transpose()
        };
        let input = column(self.input, "input")?;
        let context = column(self.context, "context")?;
        let result = column(self.result, "result")?;
        Ok(StoredRun {
            workflow_ref: self.workflow_ref,
            workflow_id: self.workflow_id,
            workflow_version: self.workflow_version,
            workflow_digest: self.workflow_digest,
            workflow_source: self.workflow_source,
            workflow_yaml: self.workflow_yaml,
            status,
            current_step: self.current_step,
            input: input.unwrap_or(Value::Null),
            context: context.unwrap_or(Value::Null),
            result,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            rerun_of: match (self.rerun_of, self.rerun_from) {
                (Some(run_id), Some(from_step)) => Some(RerunOf { run_id, from_step }),
                _ => None,
            },
            id,
        })
    }
}

impl Transition {
    /// A row of `transitions` as any backend reads it. Text this binary does
    /// not know reads as no state (`from`) or failed.
    pub(super) fn from_columns(
        from: Option<String>,
        to: Option<String>,
        trigger: String,
        metadata: Option<String>,
        actor: String,
        at: String,
    ) -> Transition {
        let state = |text: Option<String>| text.as_deref().and_then(RunState::parse);
        Transition {
            from: state(from),
            to: state(to).unwrap_or(RunState::Failed),
            trigger,
            metadata: json_column(metadata).unwrap_or(Value::Null),
            actor,
            at,
        }
    }
}

/// (status, count) rows as counts by state; unknown statuses are left out.
pub(super) fn counted(rows: Vec<(String, i64)>) -> std::collections::HashMap<RunState, u64> {
    rows.into_iter()
        .filter_map(|(status, count)| Some((RunState::parse(&status)?, u64::try_from(count).ok()?)))
        .collect()
}
