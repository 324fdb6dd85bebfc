//! A few read-only connections to the run database. In WAL mode a reader
//! neither waits for the writer nor blocks it, and sees every committed write.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, StoreError};

/// More readers than this would only compete for the same cores.
const MAX_READERS: usize = 8;

/// How the connections open the database file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Access {
    /// The store also writes: readers open it read-write, with `query_only`.
    Shared,
    /// Read-only, beside whoever writes it (the WAL index `-shm` can be used).
    ReadOnly,
    /// Read-only where the `-shm` file cannot be created (a directory the user
    /// cannot write): SQLite reads the file as it is, without locking.
    Immutable,
}

impl Access {
    /// A connection to `path` with this access.
    pub(crate) fn open(self, path: &Path) -> Result<Connection, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let connection = match self {
            Access::Shared => {
                Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_WRITE)
            }
            Access::ReadOnly => {
                Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY)
            }
            Access::Immutable => Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | OpenFlags::SQLITE_OPEN_READ_ONLY,
            ),
        }
        .map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // A reader that tried to write would be a bug here: SQLite refuses it.
        connection
            .pragma_update(None, "query_only", "ON")
            .map_err(open_error)?;
        Ok(connection)
    }
}

/// `path` percent-encoded for a `file:` URI (`?`, `#` and `%` would cut it).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut encoded = String::new();
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pub(crate) struct Readers {
    path: PathBuf,
    access: Access,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    /// Connections open, idle or in use.
    open: usize,
}

impl Readers {
    pub(crate) fn new(path: &Path, access: Access) -> Readers {
        Readers {
            path: path.to_path_buf(),
            access,
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
        let lent = Lent {
            readers: self,
            connection: Some(self.take()?),
        };
        read(lent.connection.as_ref().expect("lent until dropped"))
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

    /// Close the idle connections (a read after opens a new one).
    pub(crate) fn close_idle(&self) {
        let mut pool = self.lock();
        let idle = std::mem::take(&mut pool.idle);
        pool.open -= idle.len();
        drop(pool);
        drop(idle);
    }

    fn open(&self) -> Result<Connection, StoreError> {
        self.access.open(&self.path)
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // The pool is a list and a count: a panic elsewhere leaves it usable.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection out of the pool, given back when dropped: also when the read
/// panics, or the pool would shrink until every read waited forever.
struct Lent<'a> {
    readers: &'a Readers,
    connection: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.readers.lock().idle.push(connection);
            self.readers.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_panics_gives_its_connection_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("runs.db");
        Connection::open(&path).unwrap();
        let readers = Readers::new(&path, Access::Shared);
        for _ in 0..MAX_READERS + 1 {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                readers.with(|_| -> Result<(), StoreError> { panic!("a bug in a read") })
            }));
            assert!(panicked.is_err());
        }
        // Every slot came back: reads still get a connection at once.
        let answer = readers.with(|connection| {
            Ok(connection.query_row("SELECT 42", [], |row| row.get::<_, i64>(0))?)
        });
        assert_eq!(answer.unwrap(), 42);
        assert_eq!(readers.lock().open, 1);
    }
}
