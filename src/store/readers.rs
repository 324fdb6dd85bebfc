//! A few read-only connections to the run database. In WAL mode a reader
//! neither waits for the writer nor blocks it, and sees every committed write.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, StoreError};

/// More readers than this would only compete for the same cores.
const MAX_READERS: usize = 8;

pub(crate) struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    /// Connections open, idle or in use.
    open: usize,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Run `read` on a reader connection (waiting for one if all are in use).
    pub(crate) fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = self.take()?;
        let result = read(&connection);
        self.lock().idle.push(connection);
        self.returned.notify_one();
        result
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let mut pool = self.lock();
        loop {
            if let Some(connection) = pool.idle.pop() {
                return Ok(connection);
            }
            if pool.open < MAX_READERS {
                pool.open += 1;
                drop(pool);
                return self.open().inspect_err(|_| self.lock().open -= 1);
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let open_error = |source| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let connection = Connection::open_with_flags(&self.path, flags).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // A reader that tried to write would be a bug here: SQLite refuses it.
        connection
            .pragma_update(None, "query_only", "ON")
            .map_err(open_error)?;
        Ok(connection)
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // The pool is a list and a count: a panic elsewhere leaves it usable.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
