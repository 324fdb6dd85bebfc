//! Schema migrations: SQL files in `migrations/`, embedded in the binary,
//! applied in order, each recorded in `schema_version` in its own transaction.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// (version, SQL) in order; a new migration is a new file added at the end.
const MIGRATIONS: [(u32, &str); 5] = [
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
];

pub(super) fn apply(connection: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let migrate = |version| move |source| StoreError::Migrate { version, source };
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
        connection
            .execute("INSERT INTO schema_version VALUES (99, 'later')", [])
            .unwrap();
        let error = apply(&mut connection).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::TooNew {
                    found: 99,
                    known: 5
                }
            ),
            "{error}"
        );
    }
}
