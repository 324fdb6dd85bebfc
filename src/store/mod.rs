//! Persistence of runs, and nothing else: runs, their state transitions, step
//! attempts and leases. [`Backend`] is what the run lifecycle (`runs`) needs
//! from a run database; [`RunStore`] is the SQLite one (PostgreSQL is to be
//! the second). Every status change is checked by the state machine in
//! [`state`] and written in the same transaction, so an invalid one is never
//! stored. Times come from the store's [`Clock`].
//!
//! The database sits at `$XDG_DATA_HOME/pallet/pallet.db` (else
//! `~/.local/share/pallet/pallet.db`) unless `--db` / `PALLET_DB` say otherwise.
//! It runs in WAL mode with a busy timeout, so several processes may share it.
//!
//! No caller waits on SQLite while holding a lock other callers need: writes
//! go to one writer thread ([`writer`]) that commits all queued requests in
//! one transaction (or, for a process driving one run, commit on the run's
//! own thread: [`RunStore::open_for_one_run`]), reads use a few reader
//! connections ([`readers`]) that WAL lets run beside the writer. A write
//! answers with a [`Pending`]: async code awaits it, sync code
//! [`Pending::wait`]s; async code reads through [`RunStore::blocking`].

mod attempts;
/// A step task for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) use attempts::tests::task as test_task;
mod backend;
pub mod clock;
mod create;
pub mod events;
pub mod latency;
pub mod lease;
mod migrations;
pub mod postgres;
mod readers;
mod runs;
pub mod state;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

pub use attempts::Attempt;
pub use backend::{Backend, Claims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use create::ReusedAttempt;
pub use runs::{NewRun, RerunOf, RunChange, StoredRun, Transition, digest};
pub use state::{AttemptStatus, InvalidTransition, RunState, check_transition};
pub use writer::Pending;

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "cannot read the run database {} (it cannot be written here, and a read-only open failed too)",
        path.display()
    )]
    ReadOnly {
        path: PathBuf,
        // Boxed: a second unboxed rusqlite error would make every StoreError larger.
        #[source]
        source: Box<rusqlite::Error>,
    },
    #[error("cannot create the directory of the run database {}", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot apply migration {version} to the run database")]
    Migrate {
        version: u32,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the run database is at schema version {found}, newer than this pallet knows ({known})"
    )]
    TooNew { found: u32, known: u32 },
    #[error("run database query failed")]
    Query(#[from] rusqlite::Error),
    #[error("no run with id `{id}`")]
    NotFound { id: String },
    /// Refused by the state machine; nothing was written.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error("run `{id}` is {status}, so no step of it starts")]
    NotRunning { id: String, status: RunState },
    /// Another process took the run over; this one's writes for it are refused.
    #[error("run `{id}` is executed by another process now (this one lost its lease)")]
    LeaseLost { id: String },
    #[error("run `{id}` holds invalid data in column `{what}` of the run database")]
    Corrupt { id: String, what: String },
    /// The group transaction the write was part of did not commit.
    #[error("cannot write to the run database")]
    Write {
        #[source]
        source: Arc<rusqlite::Error>,
    },
    #[error("cannot connect to the run database {url}")]
    PgConnect {
        url: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error(
        "the lease of run `{id}` is being changed by another transaction; its renewal is tried again at the next tick"
    )]
    LeaseBusy { id: String },
    #[error("run `{id}` has ended ({status}); there is nothing to execute")]
    Ended { id: String, status: RunState },
    #[error("cannot renew leases: {reason}")]
    Renewal { reason: String },
    #[error("cannot set up TLS to the run database {url}: {what}")]
    PgTls { url: String, what: String },
    #[error("cannot apply migration {version} to the PostgreSQL run database")]
    PgMigrate {
        version: u32,
        #[source]
        source: ::postgres::Error,
    },
    #[error("PostgreSQL run database query failed")]
    Postgres(#[from] ::postgres::Error),
    #[error(
        "the connection to the PostgreSQL run database broke during a commit: whether the write was stored is unknown; `pallet runs show ID` tells what the run's record holds"
    )]
    PgCommitUnknown(#[source] ::postgres::Error),
    #[error("cannot start the writer thread of the run database")]
    StartWriter(#[source] std::io::Error),
    #[error("the writer of the run database stopped before answering")]
    WriterStopped,
    #[error("a blocking task reading the run database stopped")]
    TaskStopped(#[source] tokio::task::JoinError),
}

/// The SQLite run database, shared by clones (one writer thread, a few
/// reader connections, one clock).
#[derive(Clone)]
pub struct RunStore {
    writer: writer::Writer,
    readers: Arc<readers::Readers>,
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl RunStore {
    /// Open (creating it and its directory if needed) and migrate the
    /// database at `path`; its writes go to a writer thread that commits all
    /// queued ones together (for the service, whose runs write at once).
    pub fn open(path: &Path) -> Result<RunStore, StoreError> {
        RunStore::open_as(path, false)
    }

    /// [`RunStore::open`] for a process that drives one run (`pallet run`,
    /// `approve`, `resume`): writes commit on the run's own thread, those
    /// made before the run's task yields in one transaction (see
    /// [`writer::Writer::inline`]), which spares a run's steps two thread
    /// hops each (measured: about a fifth of a 100-step `pallet run`). That
    /// thread waits for SQLite meanwhile, also for the write lock while
    /// another process holds it (at most the busy timeout).
    pub fn open_for_one_run(path: &Path) -> Result<RunStore, StoreError> {
        RunStore::open_as(path, true)
    }

    fn open_as(path: &Path, inline: bool) -> Result<RunStore, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDirectory {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        // With WAL, NORMAL keeps a committed transaction across a process crash.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        migrations::apply(&mut connection)?;
        let writer = if inline {
            writer::Writer::inline(connection)
        } else {
            writer::Writer::start(connection).map_err(StoreError::StartWriter)?
        };
        Ok(RunStore {
            writer,
            readers: Arc::new(readers::Readers::new(path, readers::Access::Shared)),
            path: path.to_path_buf(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Open the database at `path` for reading only (a shared or backed-up
    /// file the user cannot write); nothing is created or migrated, and
    /// writes are refused by SQLite. Without a writable directory for the WAL
    /// index, the file is read as it is (`immutable`).
    pub fn open_read_only(path: &Path) -> Result<RunStore, StoreError> {
        let probe = |access: readers::Access| -> Result<Connection, StoreError> {
            let connection = access.open(path)?;
            connection.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(connection)
        };
        let (access, connection) = match probe(readers::Access::ReadOnly) {
            Ok(connection) => (readers::Access::ReadOnly, connection),
            Err(_) => match probe(readers::Access::Immutable) {
                Ok(connection) => (readers::Access::Immutable, connection),
                Err(StoreError::Open { source, .. } | StoreError::Query(source)) => {
                    return Err(StoreError::ReadOnly {
                        path: path.to_path_buf(),
                        source: Box::new(source),
                    });
                }
                Err(error) => return Err(error),
            },
        };
        Ok(RunStore {
            writer: writer::Writer::start(connection).map_err(StoreError::StartWriter)?,
            readers: Arc::new(readers::Readers::new(path, access)),
            path: path.to_path_buf(),
            clock: Arc::new(SystemClock),
        })
    }

    /// `$XDG_DATA_HOME/pallet/pallet.db`, else `$HOME/.local/share/pallet/pallet.db`.
    pub fn default_path() -> Option<PathBuf> {
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })?;
        Some(data.join("pallet").join("pallet.db"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This store (and its clones made after) with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> RunStore {
        self.clock = Arc::new(clock);
        self
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Now by the store's clock, as stored.
    fn stamp(&self) -> String {
        clock::timestamp(self.clock.now())
    }

    /// Queue a write; it commits with the other queued ones.
    fn write<T, W>(&self, work: W) -> Pending<T>
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.submit(work)
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.with(read)
    }

    /// Answers once every write queued before it is committed: writes nobody
    /// awaited (a dropped lease's release) are stored before the process exits.
    pub fn settled(&self) -> Pending<()> {
        self.write(|_| Ok(()))
    }

    /// Commit what is queued and close the database, the write connection
    /// last: closing the last connection checkpoints the WAL and removes it,
    /// so the next process to open the database has no WAL to recover. For a
    /// process about to exit (`pallet run`); writes after it are refused.
    pub fn close(&self) {
        self.readers.close_idle();
        self.writer.close();
    }

    /// Run synchronous store calls on tokio's blocking threads, so an async
    /// caller's runtime thread is not held while SQLite works.
    pub async fn blocking<T, E>(
        &self,
        calls: impl FnOnce(&RunStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || calls(&store))
            .await
            .map_err(|error| E::from(StoreError::TaskStopped(error)))?
    }
}
