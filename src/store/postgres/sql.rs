//! Statements as the connection threads run them: prepared once per
//! connection (a statement named by its text is parsed and planned once,
//! then each use is one round-trip), and the run columns reads derive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

use super::super::runs::{RawRun, StoredRun};
use super::StoreError;

thread_local! {
    /// The statements prepared on this thread's connection (one connection per thread).
    static STATEMENTS: RefCell<HashMap<String, Statement>> = RefCell::new(HashMap::new());
}

/// A new connection knows none of the old one's statements.
pub(super) fn forget_statements() {
    STATEMENTS.with_borrow_mut(HashMap::clear);
}

fn prepared(client: &mut impl GenericClient, sql: &str) -> Result<Statement, StoreError> {
    if let Some(statement) = STATEMENTS.with_borrow(|statements| statements.get(sql).cloned()) {
        return Ok(statement);
    }
    let statement = client.prepare(sql)?;
    STATEMENTS.with_borrow_mut(|statements| statements.insert(sql.to_string(), statement.clone()));
    Ok(statement)
}

pub(super) fn query(
    client: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = prepared(client, sql)?;
    Ok(client.query(&statement, params)?)
}

pub(super) fn query_opt(
    client: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let statement = prepared(client, sql)?;
    Ok(client.query_opt(&statement, params)?)
}

/// Answers the number of rows changed.
pub(super) fn exec(
    client: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = prepared(client, sql)?;
    Ok(client.execute(&statement, params)?)
}

/// The step of the run's newest attempt (`runs` in scope), as with SQLite.
const LATEST_STEP: &str =
    "(SELECT a.step_id FROM step_attempts a WHERE a.run_id = runs.id ORDER BY a.id DESC LIMIT 1)";
/// Step id -> outputs of the newest completed attempt of each step.
const CONTEXT: &str = "COALESCE((SELECT json_object_agg(a.step_id, COALESCE(a.output, '{}')::json) FROM step_attempts a WHERE a.id IN (SELECT MAX(b.id) FROM step_attempts b WHERE b.run_id = runs.id AND b.status = 'completed' GROUP BY b.step_id))::text, '{}')";
/// The time of the newest attempt's start or end.
const LATEST_ATTEMPT_AT: &str = "(SELECT MAX(COALESCE(a.ended_at, a.started_at)) FROM step_attempts a WHERE a.run_id = runs.id)";

/// A run's columns in the order of [`RawRun`] (see `runs::RUN_COLUMNS` for
/// why `current_step`, `context` and `updated_at` are derived).
static RUN_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, COALESCE({LATEST_STEP}, current_step), input, {CONTEXT}, result, error, created_at, GREATEST(updated_at, COALESCE({LATEST_ATTEMPT_AT}, '')), completed_at, rerun_of, rerun_from"
    )
});

pub(super) static GET_RUN: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM runs WHERE id = $1", *RUN_COLUMNS));
pub(super) static LIST_RUNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM runs WHERE $1::text IS NULL OR status = $1 ORDER BY created_at DESC, id LIMIT $2",
        *RUN_COLUMNS
    )
});
pub(super) static LIST_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM runs WHERE ($1::text IS NULL OR status = $1) AND ($5::text IS NULL OR workflow_id = $5) AND ($3::text IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) ORDER BY created_at DESC, id DESC LIMIT $2",
        *RUN_COLUMNS
    )
});
pub(super) static STORE_DERIVED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE runs SET current_step = COALESCE({LATEST_STEP}, current_step), context = {CONTEXT} WHERE id = $1"
    )
});

pub(super) fn run_from_row(row: &Row) -> Result<StoredRun, StoreError> {
    RawRun {
        id: row.try_get(0)?,
        workflow_ref: row.try_get(1)?,
        workflow_id: row.try_get(2)?,
        workflow_version: row.try_get(3)?,
        workflow_digest: row.try_get(4)?,
        workflow_source: row.try_get(5)?,
        workflow_yaml: row.try_get(6)?,
        status: row.try_get(7)?,
        current_step: row.try_get(8)?,
        input: row.try_get(9)?,
        context: row.try_get(10)?,
        result: row.try_get(11)?,
        error: row.try_get(12)?,
        created_at: row.try_get(13)?,
        updated_at: row.try_get(14)?,
        completed_at: row.try_get(15)?,
        rerun_of: row.try_get(16)?,
        rerun_from: row.try_get(17)?,
    }
    .parse()
}
