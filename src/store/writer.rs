//! The one writer of the run database: a thread that owns the write
//! connection, takes every queued request at once and commits them in ONE
//! transaction (group commit). Each request runs in its own savepoint (a
//! request alone in its batch needs none: the transaction is its), so one
//! that fails is rolled back alone; a request's answer is sent only after
//! the commit, so an answered write survives a crash of the process.
//!
//! Callers never touch SQLite: async code awaits the [`Pending`] answer,
//! synchronous code [`Pending::wait`]s for it. An inline writer
//! ([`Writer::inline`]) has no thread: the requests submitted on a tokio
//! runtime in one turn of it commit together in a task of that runtime,
//! run once the submitting task yields; outside a runtime (or at `wait`) a
//! request commits on the calling thread.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::task::{Context, Poll};

use futures::channel::oneshot;
use rusqlite::Connection;

use super::StoreError;

/// At most this many requests share one transaction (keeps a transaction short).
const MAX_BATCH: usize = 512;

/// Sends a request's answer once its transaction has ended (with the commit's error, if any).
type Answer = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
/// One request: its work inside the savepoint (or the error that kept it from
/// running); whether it failed, and its answer.
type Job = Box<dyn FnOnce(Result<&Connection, Arc<rusqlite::Error>>) -> (bool, Answer) + Send>;

/// What the writer thread is asked: a write, or to close the database once
/// the writes queued before are committed (answered when it is closed).
enum Request {
    Job(Job),
    Close(Sender<()>),
}

/// The queue of the writer thread; the thread ends when the last clone is
/// dropped (nobody waits for it then) or at [`Writer::close`].
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: Jobs,
}

/// Where requests go: the writer thread's queue, or (inline) the write
/// connection itself, used by the calling thread.
#[derive(Clone)]
enum Jobs {
    Thread(Sender<Request>),
    Inline(Arc<Inline>),
}

/// An inline writer's connection (`None` once closed) and the requests
/// submitted since its last commit. Whoever makes the queue non-empty sees
/// to its commit: a task spawned on the current runtime, or at once.
struct Inline {
    state: std::sync::Mutex<InlineState>,
}

struct InlineState {
    connection: Option<Connection>,
    queued: Vec<Job>,
}

/// The answer of one queued write: await it, or [`Pending::wait`] outside async code.
#[must_use = "a write is only known to be committed once its answer arrived"]
pub struct Pending<T> {
    answer: oneshot::Receiver<Result<T, StoreError>>,
    /// An inline writer's queue: [`Pending::wait`] commits it itself, as the
    /// task meant to may be on the thread that waits.
    inline: Option<Arc<Inline>>,
}

impl<T> Pending<T> {
    /// Block the calling thread until the write is committed (or failed).
    pub fn wait(self) -> Result<T, StoreError> {
        if let Some(inline) = &self.inline {
            inline.flush();
        }
        futures::executor::block_on(self)
    }
}

impl<T> Pending<T> {
    /// The answer of a write another backend queued: what it sends on `answer`.
    pub(crate) fn answered_by(answer: oneshot::Receiver<Result<T, StoreError>>) -> Pending<T> {
        Pending {
            answer,
            inline: None,
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer)
            .poll(context)
            .map(|answer| answer.unwrap_or(Err(StoreError::WriterStopped)))
    }
}

impl Writer {
    /// Start the writer thread over `connection` (already configured and migrated).
    pub(crate) fn start(connection: Connection) -> std::io::Result<Writer> {
        let (jobs, queue) = channel::<Request>();
        std::thread::Builder::new()
            .name("pallet-store-writer".to_string())
            .spawn(move || {
                let closed = drain(&connection, &queue);
                // Closed before the answer: the last connection to close
                // checkpoints the WAL and removes it.
                drop(connection);
                if let Some(closed) = closed {
                    let _ = closed.send(());
                }
            })?;
        Ok(Writer {
            jobs: Jobs::Thread(jobs),
        })
    }

    /// A writer without a thread, for a process whose one run is the
    /// database's only user in it (`pallet run`): no thread hop per write,
    /// but the runtime's thread waits for SQLite. On a tokio runtime the
    /// requests submitted before the submitting task yields (a step's start
    /// and its task, or the ends of parallel branches) share one transaction,
    /// committed by a task spawned on that runtime; elsewhere a request
    /// commits before `submit` returns.
    pub(crate) fn inline(connection: Connection) -> Writer {
        let state = InlineState {
            connection: Some(connection),
            queued: Vec::new(),
        };
        let inline = Inline {
            state: std::sync::Mutex::new(state),
        };
        Writer {
            jobs: Jobs::Inline(Arc::new(inline)),
        }
    }

    /// Commit what is queued, close the write connection and wait until it is
    /// closed; writes queued after are answered [`StoreError::WriterStopped`].
    pub(crate) fn close(&self) {
        match &self.jobs {
            Jobs::Thread(jobs) => {
                let (closed, answer) = channel();
                if jobs.send(Request::Close(closed)).is_ok() {
                    let _ = answer.recv();
                }
            }
            Jobs::Inline(inline) => {
                // One lock: a write queued meanwhile would be refused, not committed.
                let mut state = lock(&inline.state);
                commit_queued(&mut state);
                drop(state.connection.take());
            }
        }
    }

    /// Queue `work`; it runs in its own savepoint of the next group transaction.
    pub(crate) fn submit<T, W>(&self, work: W) -> Pending<T>
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (sender, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let result = match connection {
                Ok(connection) => work(connection),
                Err(source) => Err(StoreError::Write { source }),
            };
            let failed = result.is_err();
            let answer: Answer = Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => result,
                    // Nothing of the transaction was kept, this request's work included.
                    Err(source) => result.and(Err(StoreError::Write { source })),
                };
                // The caller may have stopped waiting; the write stands either way.
                let _ = sender.send(result);
            });
            (failed, answer)
        });
        let inline = match &self.jobs {
            // A send fails only when the thread is gone: the dropped sender answers WriterStopped.
            Jobs::Thread(jobs) => {
                drop(jobs.send(Request::Job(job)));
                None
            }
            Jobs::Inline(inline) => {
                inline.queue(job);
                Some(inline.clone())
            }
        };
        Pending { answer, inline }
    }
}

impl Inline {
    fn queue(self: &Arc<Self>, job: Job) {
        let first = {
            let mut state = lock(&self.state);
            // Closed: the dropped job answers WriterStopped.
            if state.connection.is_none() {
                return;
            }
            state.queued.push(job);
            state.queued.len() == 1
        };
        if !first {
            return; // its commit is on its way already
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let commit = CommitOnDrop(self.clone());
                drop(runtime.spawn(async move { drop(commit) }));
            }
            Err(_) => self.flush(),
        }
    }

    fn flush(&self) {
        commit_queued(&mut lock(&self.state));
    }
}

/// Commit every queued request (in transactions of at most [`MAX_BATCH`]).
fn commit_queued(state: &mut InlineState) {
    while !state.queued.is_empty() {
        let rest = state.queued.split_off(state.queued.len().min(MAX_BATCH));
        let batch = std::mem::replace(&mut state.queued, rest);
        match &state.connection {
            Some(connection) => commit_batch(connection, batch),
            None => drop(batch),
        }
    }
}

/// Commits an inline writer's queue when dropped: in the task spawned for
/// it once that runs, or at once when a runtime that is shutting down drops
/// the task unrun (else later writes would wait for a commit nobody makes).
struct CommitOnDrop(Arc<Inline>);

impl Drop for CommitOnDrop {
    fn drop(&mut self) {
        self.0.flush();
    }
}

impl Drop for Inline {
    /// A runtime may end before its commit task ran: what is queued commits now.
    fn drop(&mut self) {
        self.flush();
    }
}

/// The writer thread: wait for a request, take all queued ones, commit them
/// together; until the queue is gone, or a close is asked (answered with its sender).
fn drain(connection: &Connection, queue: &Receiver<Request>) -> Option<Sender<()>> {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::new();
        let mut close = None;
        match first {
            Request::Job(job) => batch.push(job),
            Request::Close(closed) => return Some(closed),
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Request::Job(job)) => batch.push(job),
                Ok(Request::Close(closed)) => {
                    close = Some(closed);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_batch(connection, batch);
        if close.is_some() {
            return close;
        }
    }
    None
}

fn lock(state: &std::sync::Mutex<InlineState>) -> std::sync::MutexGuard<'_, InlineState> {
    // A panicking request is caught inside; the connection stays usable.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn commit_batch(connection: &Connection, batch: Vec<Job>) {
    let began = std::time::Instant::now();
    commit_batch_untimed(connection, batch);
    super::latency::record(began.elapsed());
}

fn commit_batch_untimed(connection: &Connection, batch: Vec<Job>) {
    // The write lock for the whole batch: what a request reads it may write
    // without another process writing in between (the lease relies on it).
    // Not had within the busy timeout: every request fails now, clearly,
    // rather than each waiting for the lock again.
    // What an earlier transaction found out about leases may be stale now.
    super::lease::forget_held();
    if let Err(error) = control(connection, "BEGIN IMMEDIATE") {
        let error = Arc::new(error);
        for job in batch {
            let (_, answer) = job(Err(error.clone()));
            answer(Ok(()));
        }
        return;
    }
    if batch.len() == 1 {
        // Alone in its transaction (what a `pallet run` step mostly is): no
        // savepoint, a failure rolls the transaction back instead.
        let job = batch.into_iter().next().expect("one request");
        let outcome = catch_unwind(AssertUnwindSafe(|| job(Ok(connection))));
        match outcome {
            Ok((false, answer)) => {
                let committed = control(connection, "COMMIT").map_err(|error| {
                    let _ = control(connection, "ROLLBACK");
                    Arc::new(error)
                });
                answer(committed);
            }
            // Its own error is its answer; a panic leaves none (WriterStopped).
            failed => {
                let _ = control(connection, "ROLLBACK");
                if let Ok((_, answer)) = failed {
                    answer(Ok(()));
                }
            }
        }
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        answers.extend(run_in_savepoint(connection, job));
    }
    let committed = control(connection, "COMMIT").map_err(|error| {
        let _ = control(connection, "ROLLBACK");
        Arc::new(error)
    });
    for answer in answers {
        answer(committed.clone());
    }
}

/// Run one request in a savepoint, rolled back if it failed or panicked.
/// A request that panicked has no answer: its caller sees [`StoreError::WriterStopped`].
fn run_in_savepoint(connection: &Connection, job: Job) -> Option<Answer> {
    if let Err(error) = control(connection, "SAVEPOINT request") {
        let (_, answer) = job(Err(Arc::new(error)));
        return Some(answer);
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| job(Ok(connection))));
    let failed = outcome.as_ref().map_or(true, |(failed, _)| *failed);
    if failed {
        let _ = control(connection, "ROLLBACK TO request");
    }
    let _ = control(connection, "RELEASE request");
    outcome.ok().map(|(_, answer)| answer)
}

/// A transaction-control statement, prepared once per connection (they run for every request).
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A writer over a fresh WAL database with one table `t(name)`, and the database's path.
    fn writer() -> (Writer, tempfile::TempDir, std::path::PathBuf) {
        open(false)
    }

    /// [`writer`], its writes inline (`true`) or on the writer thread.
    fn open(inline: bool) -> (Writer, tempfile::TempDir, std::path::PathBuf) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("writer.db");
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (name TEXT NOT NULL)")
            .unwrap();
        // Short: one test holds the write lock elsewhere on purpose.
        connection
            .busy_timeout(std::time::Duration::from_millis(100))
            .unwrap();
        let writer = if inline {
            Writer::inline(connection)
        } else {
            Writer::start(connection).unwrap()
        };
        (writer, directory, path)
    }

    /// A request whose second statement fails (after a first that must not
    /// stay), and one that panics after an insert.
    fn failing_and_panicking(writer: &Writer) -> (Pending<()>, Pending<()>) {
        let failing = writer.submit(|connection| {
            connection.execute("INSERT INTO t (name) VALUES ('lost')", [])?;
            connection.execute("INSERT INTO t (name) VALUES (NULL)", [])?;
            Ok(())
        });
        let panicking = writer.submit(|connection| -> Result<(), StoreError> {
            connection
                .execute("INSERT INTO t (name) VALUES ('lost too')", [])
                .unwrap();
            panic!("a bug in one request")
        });
        (failing, panicking)
    }

    fn insert(name: &str) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        let name = name.to_string();
        move |connection| {
            connection.execute("INSERT INTO t (name) VALUES (?1)", [name])?;
            Ok(())
        }
    }

    fn names(path: &std::path::Path) -> Vec<String> {
        let connection = Connection::open(path).unwrap();
        let mut statement = connection
            .prepare("SELECT name FROM t ORDER BY rowid")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Occupy the writer thread until the returned sender is used, so the
    /// requests queued meanwhile form one batch.
    /// A request that blocks the writer until released. Returned only once it
    /// runs, so its batch is closed and what the test queues next forms the
    /// next batch (else the writer could still take some of it into this one).
    fn hold(writer: &Writer) -> (mpsc::Sender<()>, Pending<()>) {
        let (release, released) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let held = writer.submit(move |_| {
            started.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        });
        running.recv().unwrap();
        (release, held)
    }

    #[test]
    fn a_batch_without_the_write_lock_fails_at_once_and_the_next_one_commits() {
        for inline in [false, true] {
            let (writer, _directory, path) = open(inline);
            let other = Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            let refused = writer.submit(insert("while locked")).wait();
            assert!(
                matches!(refused, Err(StoreError::Write { .. })),
                "inline {inline}: {refused:?}"
            );
            other.execute_batch("ROLLBACK").unwrap();
            writer.submit(insert("after")).wait().unwrap();
            assert_eq!(names(&path), ["after"], "inline {inline}");
        }
    }

    #[test]
    fn inline_writes_of_one_turn_commit_together_once_the_task_yields() {
        let (writer, _directory, path) = open(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = writer.submit(insert("together-1"));
            let failing = writer.submit(|connection| {
                connection.execute("INSERT INTO t (name) VALUES (NULL)", [])?;
                Ok(())
            });
            let second = writer.submit(insert("together-2"));
            assert!(
                names(&path).is_empty(),
                "nothing commits before the task yields"
            );
            second.await.unwrap();
            assert_eq!(names(&path), ["together-1", "together-2"]);
            first.await.unwrap();
            assert!(matches!(failing.await, Err(StoreError::Query(_))));
            // Waiting on the runtime's own thread commits at once (the commit
            // task could not run while it waits).
            writer.submit(insert("waited")).wait().unwrap();
            assert_eq!(names(&path), ["together-1", "together-2", "waited"]);
            // Submitted and never awaited: the runtime ends before its commit task ran.
            drop(writer.submit(insert("queued at the end")));
        });
        drop(runtime);
        writer.close();
        assert_eq!(
            names(&path),
            ["together-1", "together-2", "waited", "queued at the end"]
        );
    }

    #[test]
    fn an_inline_write_on_a_runtime_shutting_down_still_commits() {
        let (writer, _directory, path) = open(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        runtime.shutdown_background();
        let _entered = handle.enter();
        // Its commit task is dropped unrun: the drop commits.
        let first = writer.submit(insert("first"));
        let second = writer.submit(insert("second"));
        assert_eq!(names(&path), ["first", "second"]);
        first.wait().unwrap();
        second.wait().unwrap();
    }

    #[test]
    fn outside_a_runtime_an_inline_write_commits_when_submit_returns_and_a_failing_one_not_at_all()
    {
        let (writer, _directory, path) = open(true);
        let first = writer.submit(insert("kept-1"));
        assert_eq!(
            names(&path),
            ["kept-1"],
            "committed before its answer is awaited"
        );
        let (failing, panicking) = failing_and_panicking(&writer);
        writer.submit(insert("kept-2")).wait().unwrap();
        first.wait().unwrap();
        assert!(matches!(failing.wait(), Err(StoreError::Query(_))));
        assert!(matches!(panicking.wait(), Err(StoreError::WriterStopped)));
        assert_eq!(names(&path), ["kept-1", "kept-2"]);
    }

    #[test]
    fn queued_requests_commit_together_in_one_transaction() {
        let (writer, _directory, path) = writer();
        let (release, held) = hold(&writer);
        let mut pending: Vec<Pending<()>> = ["a", "b", "c"]
            .into_iter()
            .map(|name| writer.submit(insert(name)))
            .collect();
        let reader_path = path.clone();
        let seen_before_commit = writer.submit(move |_| Ok(names(&reader_path).len()));
        release.send(()).unwrap();
        held.wait().unwrap();
        for pending in pending.drain(..) {
            pending.wait().unwrap();
        }
        assert_eq!(
            seen_before_commit.wait().unwrap(),
            0,
            "the rows were still uncommitted when the last request of the batch ran"
        );
        assert_eq!(names(&path), ["a", "b", "c"]);
    }

    #[test]
    fn a_failing_request_is_rolled_back_alone() {
        let (writer, _directory, path) = writer();
        let (release, held) = hold(&writer);
        let first = writer.submit(insert("kept-1"));
        let (failing, panicking) = failing_and_panicking(&writer);
        let last = writer.submit(insert("kept-2"));
        release.send(()).unwrap();
        held.wait().unwrap();
        first.wait().unwrap();
        assert!(matches!(failing.wait(), Err(StoreError::Query(_))));
        assert!(matches!(panicking.wait(), Err(StoreError::WriterStopped)));
        last.wait().unwrap();
        assert_eq!(names(&path), ["kept-1", "kept-2"]);
    }

    #[test]
    fn an_answered_write_is_visible_to_a_new_connection() {
        let (writer, _directory, path) = writer();
        for round in 0..3 {
            writer
                .submit(insert(&format!("row-{round}")))
                .wait()
                .unwrap();
            assert_eq!(names(&path).len(), round + 1, "round {round}");
        }
    }

    #[test]
    fn a_close_commits_what_was_queued_and_removes_the_wal() {
        for inline in [false, true] {
            let (writer, _directory, path) = open(inline);
            let queued = writer.submit(insert("before close"));
            writer.close();
            queued.wait().unwrap();
            assert!(
                !path.with_extension("db-wal").exists(),
                "inline {inline}: the last connection's close checkpoints the WAL and removes it"
            );
            assert_eq!(names(&path), ["before close"]);
            let refused = writer.submit(insert("after close")).wait();
            assert!(
                matches!(refused, Err(StoreError::WriterStopped)),
                "inline {inline}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_stopped_writer_answers_with_an_error() {
        let (writer, _directory, _path) = writer();
        let stopped = writer.submit(|_| -> Result<(), StoreError> { panic!("stop") });
        assert!(matches!(stopped.wait(), Err(StoreError::WriterStopped)));
        // The thread survives a panicking request.
        writer.submit(insert("after")).wait().unwrap();
    }
}
