//! The run database: `--db`/`PALLET_DB` (a SQLite file, or a
//! `postgres://` URL), else the default SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::printer::{BadInput, Printer};
use crate::store::postgres::{self, PgStore};
use crate::store::{Backend, RunStore, StoreError};

/// The PostgreSQL URL `db` is, if it is one.
fn postgres_url(db: Option<&Path>) -> Option<&str> {
    db.and_then(Path::to_str).filter(|db| postgres::is_url(db))
}

fn open_postgres(url: &str) -> anyhow::Result<Arc<dyn Backend>> {
    match PgStore::open(url) {
        Ok(store) => Ok(Arc::new(store)),
        Err(error @ StoreError::PgConnect { .. }) => {
            let message = crate::error::chain_of(&error);
            let hint = match message.contains("TLS handshake") || message.contains("certificate") {
                // Unlike libpq, `prefer` does not fall back to plain after a failed handshake.
                true => "the TLS handshake failed: give the server's CA with &sslrootcert=FILE (and sslmode=verify-full), or ?sslmode=disable on a trusted network",
                false => "check that the server runs and the URL is right: postgres://USER[:PASSWORD]@HOST:PORT/DATABASE (the database must exist)",
            };
            Err(BadInput::new(message).hint(hint).into())
        }
        Err(error @ StoreError::PgTls { .. }) => Err(BadInput::new(crate::error::chain_of(&error))
            .hint("TLS is set in the URL as libpq's: ?sslmode=disable|prefer|require|verify-ca|verify-full, and &sslrootcert=FILE (PEM roots; the system's by default)")
            .into()),
        Err(error) => Err(error.into()),
    }
}

/// The database named by `--db` / `PALLET_DB`, else the default one.
pub fn open_store(db: Option<&Path>) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(url) = postgres_url(db) {
        return open_postgres(url);
    }
    Ok(Arc::new(RunStore::open(&database_path(db)?)?))
}

/// [`open_store`] for a command that drives one run in this process: its
/// SQLite writes commit on the run's thread ([`RunStore::open_for_one_run`]).
pub fn open_store_for_one_run(db: Option<&Path>) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(url) = postgres_url(db) {
        return open_postgres(url);
    }
    Ok(Arc::new(RunStore::open_for_one_run(&database_path(db)?)?))
}

/// The database for a command that only reads: opened (and migrated) as
/// usual when it can be written, else read-only (a shared or backed-up file).
pub fn open_store_to_read(db: Option<&Path>) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(url) = postgres_url(db) {
        return open_postgres(url);
    }
    let path = database_path(db)?;
    let writable = match RunStore::open(&path) {
        Ok(store) => return Ok(Arc::new(store)),
        Err(error) => error,
    };
    if !path.is_file() {
        return Err(writable.into());
    }
    RunStore::open_read_only(&path).map(|store| Arc::new(store) as Arc<dyn Backend>).map_err(|error| {
        BadInput::new(crate::error::chain_of(&error))
            .hint(format!(
                "check that you may read {0}; else copy it (with its -wal file, if any) to a directory you can write and pass --db COPY",
                path.display()
            ))
            .into()
    })
}

fn database_path(db: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match db {
        Some(path) => path.to_path_buf(),
        None => RunStore::default_path().ok_or_else(|| {
            BadInput::new(
                "cannot find a place for the run database: neither XDG_DATA_HOME nor HOME is set",
            )
            .hint("pass --db PATH or set PALLET_DB")
        })?,
    })
}

/// The store `pallet run` records in: `--db` must open; the default database
/// may be unusable (read-only home), then the run is not durable and says so.
pub fn store_for_run(
    db: Option<&Path>,
    printer: Printer,
) -> anyhow::Result<Option<Arc<dyn Backend>>> {
    if db.is_some() {
        return open_store_for_one_run(db).map(Some);
    }
    match open_store_for_one_run(None) {
        Ok(store) => Ok(Some(store)),
        Err(error) => {
            printer.say(format_args!(
                "warning: the run is not recorded: {}",
                error
                    .chain()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ")
            ));
            Ok(None)
        }
    }
}
