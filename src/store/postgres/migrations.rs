//! The PostgreSQL schema's migrations: SQL files in `migrations/postgres/`,
//! embedded, applied in order at open, each recorded in `schema_version` in
//! the same transaction. Workers starting at once take turns on a
//! transaction-level advisory lock, so one migrates and the others find it done.

use postgres::Client;

use super::StoreError;

/// (version, SQL) in order; a new migration is a new file added at the end.
const MIGRATIONS: [(u32, &str); 3] = [
    (
        1,
        include_str!("../../../migrations/postgres/0001_runs.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_lease_pid_namespace.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_events.sql"),
    ),
];

/// The advisory lock key of pallet's migrations (any constant; "pallet" in ASCII).
const MIGRATION_LOCK: i64 = 0x70_61_6c_6c_65_74;

pub(super) fn apply(client: &mut Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let migrate = |version| move |source| StoreError::PgMigrate { version, source };
    let mut transaction = client.transaction().map_err(migrate(0))?;
    // Unbounded here: waiting for another worker's migration, or a long
    // one, is no stuck statement (the session's bounds are for run writes).
    transaction
        .batch_execute("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0")
        .map_err(migrate(0))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(migrate(0))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(migrate(0))?;
    let current: i32 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .and_then(|row| row.try_get(0))
        .map_err(migrate(0))?;
    let current = u32::try_from(current).unwrap_or(0);
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS
        .into_iter()
        .filter(|(version, _)| *version > current)
    {
        transaction.batch_execute(sql).map_err(migrate(version))?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                &[
                    &i32::try_from(version).unwrap_or(i32::MAX),
                    &super::timestamp(chrono::Utc::now()),
                ],
            )
            .map_err(migrate(version))?;
    }
    transaction.commit().map_err(migrate(known))
}
