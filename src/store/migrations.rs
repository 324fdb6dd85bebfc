//! Schema migrations: SQL files in `migrations/`, embedded in the binary,
//! applied in order, each recorded in `schema_version` in its own transaction.
//! `PRAGMA user_version` mirrors the newest applied version, so an open of a
//! current database only reads the header: no write lock, no transaction.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// (version, SQL) in order; a new migration is a new file added at the end.
const MIGRATIONS: [(u32, &str); 9] = [
    (1, include_str!("../../migrations/0001_runs.sql")),
    (2, include_str!("../../migrations/0002_run_leases.sql")),
    (3, include_str!("../../migrations/0003_executor_starts.sql")),
    (
        4,
        include_str!("../../migrations/0004_attempt_agent_task.sql"),
    ),
    (
        5,
        include_str!("../../migrations/0005_step_status_message.sql"),
    ),
    (
        6,
        include_str!("../../migrations/0006_no_autoincrement.sql"),
    ),
    (7, include_str!("../../migrations/0007_reruns.sql")),
    (
        8,
        include_str!("../../migrations/0008_lease_pid_namespace.sql"),
    ),
    (9, include_str!("../../migrations/0009_events.sql")),
];

pub(super) fn apply(connection: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let migrate = |version| move |source| StoreError::Migrate { version, source };
    let marked: u32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(migrate(0))?;
    if marked > known {
        return Err(StoreError::TooNew {
            found: marked,
            known,
        });
    }
    if marked == known {
        return Ok(());
    }
    // Behind (or a database of a pallet before `user_version` was kept):
    // `schema_version` says what is applied.
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(migrate(0))?;
    for (version, sql) in MIGRATIONS {
        // Immediate: two processes opening a new database do not both migrate it.
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(migrate(version))?;
        let current: u32 = transaction
            .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
                row.get::<_, Option<u32>>(0)
            })
            .optional()
            .map_err(migrate(version))?
            .flatten()
            .unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        if current >= version {
            continue;
        }
        transaction.execute_batch(sql).map_err(migrate(version))?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![version, super::clock::timestamp(chrono::Utc::now())],
            )
            .map_err(migrate(version))?;
        transaction.commit().map_err(migrate(version))?;
    }
    // Set once every migration is in (a crash midway leaves it behind, and
    // the next open finishes the job).
    connection
        .pragma_update(None, "user_version", known)
        .map_err(migrate(known))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_recorded() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("runs.db");
        for _ in 0..2 {
            let mut connection = Connection::open(&path).unwrap();
            apply(&mut connection).unwrap();
            let versions: Vec<u32> = connection
                .prepare_cached("SELECT version FROM schema_version ORDER BY version")
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let known: Vec<u32> = MIGRATIONS.iter().map(|(version, _)| *version).collect();
            assert_eq!(versions, known);
        }
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        apply(&mut connection).unwrap();
        // What a newer pallet leaves: its version in both places.
        connection
            .execute_batch(
                "INSERT INTO schema_version VALUES (99, 'later'); PRAGMA user_version = 99",
            )
            .unwrap();
        let error = apply(&mut connection).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::TooNew {
                    found: 99,
                    known: 9
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_newer_database_of_a_pallet_before_user_version_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        apply(&mut connection).unwrap();
        connection
            .execute_batch(
                "INSERT INTO schema_version VALUES (99, 'later'); PRAGMA user_version = 0",
            )
            .unwrap();
        let error = apply(&mut connection).unwrap_err();
        assert!(
            matches!(error, StoreError::TooNew { found: 99, .. }),
            "{error}"
        );
    }

    /// A database as pallet left it before migration 6 (no `user_version`).
    fn database_at_version_5(path: &std::path::Path) -> Connection {
        let connection = Connection::open(path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .unwrap();
        for (version, sql) in &MIGRATIONS[..5] {
            connection.execute_batch(sql).unwrap();
            connection
                .execute("INSERT INTO schema_version VALUES (?1, 'then')", [version])
                .unwrap();
        }
        connection
    }

    #[test]
    fn an_open_of_a_current_database_takes_no_write_lock() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("runs.db");
        let mut first = Connection::open(&path).unwrap();
        first.pragma_update(None, "journal_mode", "WAL").unwrap();
        apply(&mut first).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut connection = Connection::open(&path).unwrap();
        connection
            .busy_timeout(std::time::Duration::from_millis(10))
            .unwrap();
        apply(&mut connection).unwrap();
        other.execute_batch("ROLLBACK").unwrap();
    }

    #[test]
    fn an_old_database_is_migrated_with_its_rows_and_without_autoincrement() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("runs.db");
        let old = database_at_version_5(&path);
        old.execute_batch(
            "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES ('r', 'w', 'w', '1', 'd', 's', 'y', 'in_progress', '{}', 't', 't');
             INSERT INTO transitions (run_id, to_status, trigger, actor, at) VALUES ('r', 'pending', 'created', 'a', 't');
             INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at, task_id, status_message) VALUES ('r', 'one', 1, 'completed', 't', 'task', 'working');
             INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at) VALUES ('r', 'two', 1, 'running', 't');",
        )
        .unwrap();
        drop(old);
        let mut connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .unwrap();
        apply(&mut connection).unwrap();
        let version: u32 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 9);
        // Runs and attempts from before reruns: neither is a rerun's.
        let (rerun_of, reused_from): (Option<String>, Option<String>) = connection
            .query_row(
                "SELECT rerun_of, (SELECT reused_from FROM step_attempts WHERE id = 1) FROM runs",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((rerun_of, reused_from), (None, None));
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = connection
            .prepare("SELECT id, step_id, task_id, status_message FROM step_attempts ORDER BY id")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (1, "one".into(), Some("task".into()), Some("working".into())),
                (2, "two".into(), None, None)
            ]
        );
        let autoincrement: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%AUTOINCREMENT%'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(autoincrement, 0);
        // New rows follow the old ones.
        connection
            .execute_batch("INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at) VALUES ('r', 'three', 1, 'running', 't')")
            .unwrap();
        let newest: i64 = connection
            .query_row("SELECT MAX(id) FROM step_attempts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(newest, 3);
        let transitions: i64 = connection
            .query_row("SELECT COUNT(*) FROM transitions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(transitions, 1);
    }
}
