//! The PostgreSQL run database (`--db postgres://USER@HOST:PORT/DB`): the
//! same runs, transitions, attempts and leases as the SQLite one
//! ([`super::RunStore`]), for several `pallet serve` workers that share runs.
//!
//! The crate is `postgres` (the synchronous face of `tokio-postgres`): the
//! [`Backend`] contract is synchronous reads and queued writes answered
//! through a [`Pending`], which a few connection threads fit as they fit
//! SQLite's writer; `sqlx` would bring its macros, a second pool and its own
//! runtime glue (~60 crates) for queries this module writes by hand.
//!
//! Each process holds [`CONNECTIONS`] connections, each owned by a thread
//! that runs the jobs sent to it in order. Every read and write about one
//! run goes to the same connection (chosen by the run's id), so the writes
//! of a run commit in the order they were queued, as with SQLite, and a read
//! after a write of the same run sees it. One more connection renews
//! leases only, so that no write stuck on a row lock delays the renewals
//! of other runs until their executors give up.
//!
//! Concurrency between processes: every write about a run first locks its
//! `runs` row (`SELECT ... FOR UPDATE`), so the state machine check, the lease
//! check and the write are one atomic step per run, as SQLite's single writer
//! made them. Workers claim the runs nobody executes with `FOR UPDATE SKIP
//! LOCKED` ([`claim`]): two workers never wait on each other's candidates.

mod claim;
mod migrations;
mod renewals;
mod sql;
mod tls;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use chrono::Utc;
use futures::channel::oneshot;
use postgres::{Client, GenericClient, Transaction};
use serde_json::Value;

use super::create::ReusedAttempt;
use super::events::{Event, EventCursor, EventScope};
use super::lease::{
    self, COLUMNS, LEASE_DURATION, Lease, Owner, Standing, process_alive, standing,
};
use super::runs::{NewRun, RerunOf, RunChange, StoredRun, Transition, digest};
use super::state::{AttemptStatus, RunState, check_transition};
use super::{Attempt, Backend, Claims, Clock, Pending, StoreError, SystemClock, clock::timestamp};
use crate::agent::AgentTask;
use crate::engine::{StepRecord, StepTask};
use sql::{exec, query, query_opt};

/// Connections (and their threads) per process for runs' reads and writes:
/// a run's writes are one at a time anyway; more only helps many runs at
/// once, and each is a PostgreSQL backend process. With the renewals'
/// connection, a process holds 5 (3 workers, 15 of the server's default 100).
pub const CONNECTIONS: usize = 4;

/// The connection that renews leases (after the [`CONNECTIONS`]).
const RENEWALS: usize = CONNECTIONS;

/// Whether `db` (the `--db` value) names a PostgreSQL database.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `url` with its password (if any) replaced, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// `text` as a PostgreSQL `text` value can hold it: U+0000 (valid in JSON,
/// so an agent may send it in a task id, a status or an error) becomes
/// U+FFFD. JSON columns need nothing: their text escapes it.
fn pg_text(text: impl Into<String>) -> String {
    let text = text.into();
    match text.contains('\0') {
        true => text.replace('\0', "\u{FFFD}"),
        false => text,
    }
}

type Job = Box<dyn FnOnce(&mut Link) + Send>;

/// A connection thread's link to the server: connected on first use and
/// again after the connection broke (a server restart, say).
struct Link {
    config: postgres::Config,
    tls: tls::MakeRustls,
    /// Run on each new connection ([`session_bounds`]).
    setup: Arc<str>,
    client: Option<Client>,
}

impl Link {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            sql::forget_statements();
            let mut client = self.config.connect(self.tls.clone())?;
            if !self.setup.is_empty() {
                client.batch_execute(&self.setup)?;
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// `work` on this link's connection, and once more on a new one when
    /// the connection it had turned out broken (a server restart, a proxy's
    /// idle cut, a terminated backend): a connection is found broken only by
    /// using it. Safe to repeat: the server rolls back what a broken
    /// connection had not committed, and a broken commit is not repeated
    /// ([`StoreError::PgCommitUnknown`]).
    fn run<T>(
        &mut self,
        mut work: impl FnMut(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reused = self
            .client
            .as_ref()
            .is_some_and(|client| !client.is_closed());
        match work(self.client()?) {
            Err(StoreError::Postgres(error))
                if reused
                    && (session_ended(&error)
                        || self.client.as_ref().is_some_and(Client::is_closed)) =>
            {
                tracing::debug!(
                    "the run database connection broke ({error}); trying again on a new one"
                );
                // The client may not know yet that its connection is gone.
                self.client = None;
                work(self.client()?)
            }
            result => result,
        }
    }
}

/// Whether `error` ended the session: the connection closed, or the server
/// said FATAL (terminated, shut down), after which it closes it and has
/// rolled back what was not committed.
fn session_ended(error: &postgres::Error) -> bool {
    error.is_closed()
        || error
            .as_db_error()
            .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

/// How long sent data may go unacknowledged before the connection counts as
/// broken, unless the URL says (`tcp_user_timeout`), on the connections of
/// runs' reads and writes.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

/// [`TCP_USER_TIMEOUT`] of the renewals' connection: well inside a renewal
/// period, so that a renewal sent on a dead connection is made again on a
/// new one (`Link::run`) before its lease holder would give up.
const RENEWALS_TCP_USER_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a connection attempt may take, unless the URL says (`connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side bounds of every session, unless the URL's `options` set
/// them: a statement (a claim, a write) that runs or waits for a row lock
/// longer fails instead of holding a connection thread, and a session left
/// in a transaction (a worker frozen mid-write) has its locks taken away.
/// Set with `SET` once connected, not as startup `options`, which
/// connection poolers (PgBouncer) refuse.
const SESSION_BOUNDS: [(&str, &str); 3] = [
    ("statement_timeout", "30s"),
    ("lock_timeout", "10s"),
    ("idle_in_transaction_session_timeout", "30s"),
];

/// `config` with pallet's bounds where the URL sets none: a connect
/// timeout, and TCP keepalives sooner than the system's two hours (a server
/// that vanished without a reset is noticed in about a minute).
fn with_bounds(mut config: postgres::Config) -> postgres::Config {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives() && config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
    }
    config
}

/// The `SET`s of [`SESSION_BOUNDS`] that `options` (the URL's, as
/// `-c NAME=VALUE`, `-cNAME=VALUE` or `--NAME=VALUE`) leaves unset.
fn session_bounds(options: Option<&str>) -> String {
    let mut named = Vec::new();
    let mut words = options.unwrap_or_default().split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next().unwrap_or_default(),
            _ => word
                .strip_prefix("-c")
                .or_else(|| word.strip_prefix("--"))
                .unwrap_or_default(),
        };
        if let Some((name, _)) = setting.split_once('=') {
            named.push(name.replace('-', "_"));
        }
    }
    SESSION_BOUNDS
        .iter()
        .filter(|(name, _)| !named.iter().any(|set| set == name))
        .map(|(name, value)| format!("SET {name} = '{value}';"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PostgreSQL run database, shared by clones.
#[derive(Clone)]
pub struct PgStore {
    shards: Arc<Vec<Sender<Job>>>,
    next: Arc<AtomicUsize>,
    url: String,
    clock: Arc<dyn Clock>,
    renewals: renewals::Queue,
}

impl PgStore {
    /// Connect to the database at `url`, bring its schema up to date (or
    /// refuse a newer one), and start the connection threads.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redacted(url);
        let tls_error = |what: String| StoreError::PgTls {
            url: shown.clone(),
            what,
        };
        let requested = tls::requested(url).map_err(tls_error)?;
        let tls = tls::connector(&requested).map_err(tls_error)?;
        let mut config: postgres::Config =
            requested
                .url
                .parse()
                .map_err(|source| StoreError::PgConnect {
                    url: shown.clone(),
                    source,
                })?;
        if let Some(mode) = requested.mode {
            config.ssl_mode(mode);
        }
        let own_user_timeout = config.get_tcp_user_timeout().is_some();
        let config = with_bounds(config);
        let setup: Arc<str> = session_bounds(config.get_options()).into();
        let mut shards = Vec::with_capacity(CONNECTIONS + 1);
        for index in 0..=CONNECTIONS {
            let (jobs, queue) = channel::<Job>();
            let mut config = config.clone();
            if index == RENEWALS && !own_user_timeout {
                config.tcp_user_timeout(RENEWALS_TCP_USER_TIMEOUT);
            }
            let mut link = Link {
                config,
                tls: tls.clone(),
                setup: setup.clone(),
                client: None,
            };
            std::thread::Builder::new()
                .name(format!("pallet-postgres-{index}"))
                .spawn(move || {
                    for job in queue {
                        // A job that panics loses its answer (the caller sees
                        // the store stopped), not the thread; its connection
                        // may be mid-transaction, so it is dropped.
                        if catch_unwind(AssertUnwindSafe(|| job(&mut link))).is_err() {
                            link.client = None;
                        }
                    }
                })
                .map_err(StoreError::StartWriter)?;
            shards.push(jobs);
        }
        let store = PgStore {
            shards: Arc::new(shards),
            next: Arc::default(),
            url: shown.clone(),
            clock: Arc::new(SystemClock),
            renewals: renewals::Queue::default(),
        };
        // On a connection thread: the `postgres` client runs its own runtime
        // and must not be used from inside another one (`pallet serve`'s).
        store
            .call(0, move |link| {
                let client = link.client().map_err(|error| match error {
                    StoreError::Postgres(source) => StoreError::PgConnect { url: shown, source },
                    other => other,
                })?;
                migrations::apply(client)
            })
            .map(|()| store)
    }

    /// This store (and its clones made after) with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> PgStore {
        self.clock = Arc::new(clock);
        self
    }

    /// The connection of run `id`.
    fn shard(&self, id: &str) -> usize {
        let mut hasher = std::hash::DefaultHasher::new();
        id.hash(&mut hasher);
        (hasher.finish() % CONNECTIONS as u64) as usize
    }

    /// A connection for what concerns no one run.
    fn any_shard(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % CONNECTIONS
    }

    /// Run `work` on connection `shard` and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        shard: usize,
        work: impl FnOnce(&mut Link) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (sender, answer) = channel();
        let job: Job = Box::new(move |link| {
            let _ = sender.send(work(link));
        });
        self.shards[shard]
            .send(job)
            .map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// A read of run `id` (queued behind that run's writes).
    fn read<T: Send + 'static>(
        &self,
        id: &str,
        mut work: impl FnMut(&mut Client, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let id = id.to_string();
        self.call(self.shard(&id), move |link| {
            link.run(|client| work(client, &id))
        })
    }

    /// A read that concerns no one run.
    fn read_any<T: Send + 'static>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(self.any_shard(), move |link| link.run(&mut work))
    }

    /// Queue `work` as one transaction on connection `shard`; answered once committed.
    fn write_on<T: Send + 'static>(
        &self,
        shard: usize,
        work: impl FnMut(&mut Transaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        self.write_then(shard, work, |_| {})
    }

    /// [`PgStore::write_on`], and `after` sees the outcome before the caller does.
    fn write_then<T: Send + 'static>(
        &self,
        shard: usize,
        mut work: impl FnMut(&mut Transaction) -> Result<T, StoreError> + Send + 'static,
        after: impl FnOnce(&Result<T, StoreError>) + Send + 'static,
    ) -> Pending<T> {
        let (sender, pending) = oneshot::channel();
        let job: Job = Box::new(move |link| {
            let began = std::time::Instant::now();
            let result = link.run(|client| {
                let mut transaction = client.transaction()?;
                let value = work(&mut transaction)?;
                // Only the server's own refusal says the commit did not
                // happen; a connection lost meanwhile (closed, reset, timed
                // out) leaves it unknown, and it is not made again.
                transaction
                    .commit()
                    .map_err(|source| match source.as_db_error() {
                        Some(_) => StoreError::Postgres(source),
                        None => StoreError::PgCommitUnknown(source),
                    })?;
                Ok(value)
            });
            super::latency::record(began.elapsed());
            after(&result);
            let _ = sender.send(result);
        });
        // A send fails only when the thread is gone: the dropped sender answers WriterStopped.
        drop(self.shards[shard].send(job));
        Pending::answered_by(pending)
    }

    /// [`PgStore::write_on`] the connection of run `id`.
    fn write<T: Send + 'static>(
        &self,
        id: &str,
        mut work: impl FnMut(&mut Transaction, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        let id = id.to_string();
        self.write_on(self.shard(&id), move |transaction| work(transaction, &id))
    }

    fn stamp(&self) -> String {
        timestamp(self.clock.now())
    }

    /// Runs to execute here: up to `limit` runs `pending` or `in_progress`
    /// that no live process executes, leased to this process (see [`claim`]).
    pub fn claim(&self, limit: usize, max_starts: u32) -> Pending<Claims> {
        // Held before the write (see `lease::hold`); those it did not use,
        // or all of them when its outcome is not known, are let go after.
        let tokens: Vec<String> = (0..limit)
            .map(|_| {
                let token = uuid::Uuid::new_v4().to_string();
                lease::hold(&token);
                token
            })
            .collect();
        let offered = tokens.clone();
        self.write_then(
            self.any_shard(),
            move |transaction| claim::claim(transaction, &tokens, max_starts),
            move |claimed| {
                let used: Vec<&str> = match claimed {
                    Ok(claims) => claims
                        .leased
                        .iter()
                        .map(|(_, token)| token.as_str())
                        .collect(),
                    Err(_) => Vec::new(),
                };
                for token in offered
                    .iter()
                    .filter(|token| !used.contains(&token.as_str()))
                {
                    lease::let_go(token);
                }
            },
        )
    }

    /// Create a run (its row and `created` transition), then `then` in the same write.
    fn create_with<T: Send + 'static>(
        &self,
        run: &NewRun,
        mut then: impl FnMut(&mut Transaction, &str, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        let id = uuid::Uuid::new_v4().to_string();
        let row = (
            pg_text(&run.workflow_ref),
            pg_text(&run.workflow_id),
            pg_text(&run.workflow_version),
            digest(&run.workflow_yaml),
            pg_text(&run.workflow_source),
            pg_text(&run.workflow_yaml),
            run.input.to_string(),
            pg_text(&run.actor),
        );
        let at = self.stamp();
        self.write(&id, move |transaction, id| {
            let (reference, workflow_id, version, digest, source, yaml, input, actor) = &row;
            exec(
                transaction,
                "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                &[&id, &reference, &workflow_id, &version, &digest, &source, &yaml, &RunState::Pending.as_str(), &input, &at],
            )?;
            exec(
                transaction,
                "INSERT INTO transitions (run_id, from_status, to_status, trigger, actor, at) VALUES ($1, NULL, $2, 'created', $3, $4)",
                &[&id, &RunState::Pending.as_str(), &actor, &at],
            )?;
            then(transaction, id, &at)
        })
    }

    fn create_started(
        &self,
        run: &NewRun,
        rerun: Option<(RerunOf, Vec<ReusedAttempt>)>,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        let start = Change::from(start);
        let lease = lease.map(str::to_string);
        self.create_with(run, move |transaction, id, at| {
            if let Some((of, reused)) = &rerun {
                exec(
                    transaction,
                    "UPDATE runs SET rerun_of = $2, rerun_from = $3 WHERE id = $1",
                    &[&id, &of.run_id, &of.from_step],
                )?;
                let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
                for attempt in reused {
                    exec(
                        transaction,
                        "INSERT INTO step_attempts (run_id, step_id, attempt, status, inputs, output, agent, started_at, ended_at, reused_from) VALUES ($1, $2, 1, 'completed', $3, $4, $5, $6, $7, $8)",
                        &[&id, &attempt.step_id, &json(&attempt.inputs), &json(&attempt.output), &attempt.agent, &attempt.started_at, &attempt.ended_at, &attempt.reused_from],
                    )?;
                }
            }
            apply_change(transaction, id, &start, at)?;
            if let Some(token) = &lease {
                // A run nobody else knows yet: its lease is free.
                acquire(transaction, id, token)?;
            }
            Ok(id.to_string())
        })
    }
}

/// A [`RunChange`] that can travel to a connection thread.
struct Change {
    to: RunState,
    trigger: String,
    actor: String,
    metadata: String,
    result: Option<String>,
    error: Option<String>,
}

impl From<RunChange<'_>> for Change {
    fn from(change: RunChange<'_>) -> Change {
        Change {
            to: change.to,
            trigger: pg_text(change.trigger),
            actor: pg_text(change.actor),
            metadata: change.metadata.to_string(),
            result: change.result.as_ref().map(Value::to_string),
            error: change.error.map(pg_text),
        }
    }
}

/// Lock run `id`'s row for the rest of the transaction: its status, and
/// whether `lease` (when given) is the lease on it now.
fn lock_run(
    transaction: &mut Transaction,
    id: &str,
    lease: Option<&str>,
) -> Result<RunState, StoreError> {
    let row = query_opt(
        transaction,
        "SELECT status FROM runs WHERE id = $1 FOR UPDATE",
        &[&id],
    )?
    .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let status: String = row.try_get(0)?;
    // A statement of its own, after the lock: under READ COMMITTED a
    // statement reads other tables as of its start, and a claim that took
    // the lease over may have committed while this one waited for the lock.
    if let Some(token) = lease
        && query_opt(
            transaction,
            "SELECT 1 FROM run_leases WHERE run_id = $1 AND token = $2",
            &[&id, &token],
        )?
        .is_none()
    {
        return Err(StoreError::LeaseLost { id: id.to_string() });
    }
    RunState::parse(&status).ok_or_else(|| StoreError::Corrupt {
        id: id.to_string(),
        what: "status".to_string(),
    })
}

/// The state-machine check and the write of one change (as `runs::apply_change`).
fn apply_change(
    transaction: &mut Transaction,
    id: &str,
    change: &Change,
    at: &str,
) -> Result<RunState, StoreError> {
    let from = lock_run(transaction, id, None)?;
    apply_locked(transaction, id, from, change, at)
}

/// [`apply_change`] of a run whose row this transaction locked, in state `from`.
fn apply_locked(
    transaction: &mut Transaction,
    id: &str,
    from: RunState,
    change: &Change,
    at: &str,
) -> Result<RunState, StoreError> {
    check_transition(from, change.to)?;
    let completed_at = change.to.is_terminal().then_some(at);
    exec(
        transaction,
        "UPDATE runs SET status = $2, updated_at = $3, completed_at = COALESCE($4, completed_at), result = COALESCE($5, result), error = COALESCE($6, error) WHERE id = $1",
        &[
            &id,
            &change.to.as_str(),
            &at,
            &completed_at,
            &change.result,
            &change.error,
        ],
    )?;
    let executed_elsewhere = read_lease(transaction, id)?.is_some_and(|lease| {
        standing(&lease, Owner::current(), Utc::now(), process_alive) == Standing::Live
    });
    if change.to.is_terminal() && !executed_elsewhere {
        // As with SQLite: an ended run with no live executor has no attempt in flight.
        exec(
            transaction,
            "UPDATE step_attempts SET status = 'cancelled', ended_at = $2, error = COALESCE(error, $3) WHERE run_id = $1 AND status = 'running'",
            &[
                &id,
                &at,
                &format!(
                    "the run ended ({}) while this attempt was in flight",
                    change.to.as_str()
                ),
            ],
        )?;
    }
    // Last, as with SQLite: its event follows those of the attempts it ended.
    exec(
        transaction,
        "INSERT INTO transitions (run_id, from_status, to_status, trigger, metadata, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &id,
            &from.as_str(),
            &change.to.as_str(),
            &change.trigger,
            &change.metadata,
            &change.actor,
            &at,
        ],
    )?;
    store_derived(transaction, id)?;
    Ok(from)
}

/// Store the columns reads derive from the attempts (see `sql::RUN_COLUMNS`).
fn store_derived(transaction: &mut Transaction, id: &str) -> Result<(), StoreError> {
    exec(transaction, &sql::STORE_DERIVED, &[&id])?;
    Ok(())
}

fn read_lease(client: &mut impl GenericClient, id: &str) -> Result<Option<Lease>, StoreError> {
    Ok(read_leases(client, &[id.to_string()])?.remove(id))
}

/// run id -> its lease, for those of `ids` that have one.
fn read_leases(
    client: &mut impl GenericClient,
    ids: &[String],
) -> Result<HashMap<String, Lease>, StoreError> {
    let mut leases = HashMap::new();
    for row in query(
        client,
        &format!("SELECT run_id, {COLUMNS} FROM run_leases WHERE run_id = ANY($1)"),
        &[&ids],
    )? {
        let lease = Lease::from_columns(
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
            row.try_get(8)?,
        );
        leases.insert(row.try_get(0)?, lease);
    }
    Ok(leases)
}

/// Take the lease on run `id` under `token` unless a live process holds it
/// (then answer that lease); the run's row is locked first, so two
/// processes asking at once are answered one after the other.
fn acquire(
    transaction: &mut Transaction,
    id: &str,
    token: &str,
) -> Result<Option<Lease>, StoreError> {
    // An ended run is executed by nobody (see `RunStore::acquire_lease`).
    let status = lock_run(transaction, id, None)?;
    if status.is_terminal() {
        return Err(StoreError::Ended {
            id: id.to_string(),
            status,
        });
    }
    let me = Owner::current();
    let now = Utc::now();
    if let Some(lease) = read_lease(transaction, id)?
        && standing(&lease, me, now, process_alive) == Standing::Live
    {
        return Ok(Some(lease));
    }
    take_lease(transaction, id, token, now)?;
    Ok(None)
}

/// Write this process's lease on run `id` (the row is locked) and count the start.
fn take_lease(
    transaction: &mut Transaction,
    id: &str,
    token: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    let me = Owner::current();
    let expires = timestamp(now + LEASE_DURATION);
    exec(
        transaction,
        "INSERT INTO run_leases (run_id, host, pid, process_start, boot_id, pid_namespace, token, acquired_at, renewed_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
         ON CONFLICT (run_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, process_start = EXCLUDED.process_start, boot_id = EXCLUDED.boot_id, pid_namespace = EXCLUDED.pid_namespace, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at",
        &[&id, &me.host, &i64::from(me.pid), &i64::try_from(me.process_start).unwrap_or(0), &me.boot_id, &me.pid_namespace, &token, &timestamp(now), &expires],
    )?;
    exec(
        transaction,
        "UPDATE runs SET executor_starts = executor_starts + 1 WHERE id = $1",
        &[&id],
    )?;
    Ok(())
}

/// Give the lease up; true when it was still `token`'s. The run's row is
/// locked first, as every write of a run and a claim lock it before its
/// lease: the same order everywhere, so no two transactions deadlock.
fn abandon(transaction: &mut Transaction, id: &str, token: &str) -> Result<bool, StoreError> {
    lock_run(transaction, id, None)?;
    abandon_locked(transaction, id, token)
}

/// [`abandon`] when this transaction holds the run's row already.
fn abandon_locked(
    transaction: &mut Transaction,
    id: &str,
    token: &str,
) -> Result<bool, StoreError> {
    Ok(exec(
        transaction,
        "DELETE FROM run_leases WHERE run_id = $1 AND token = $2",
        &[&id, &token],
    )? == 1)
}

/// Give the lease up and take its start back (the executor did not crash).
fn release(transaction: &mut Transaction, id: &str, token: &str) -> Result<(), StoreError> {
    lock_run(transaction, id, None)?;
    release_locked(transaction, id, token)
}

/// [`release`] when this transaction holds the run's row already.
fn release_locked(transaction: &mut Transaction, id: &str, token: &str) -> Result<(), StoreError> {
    let uncount = match abandon_locked(transaction, id, token)? {
        true => "UPDATE runs SET executor_starts = 0 WHERE id = $1",
        false => "UPDATE runs SET executor_starts = GREATEST(executor_starts - 1, 0) WHERE id = $1",
    };
    exec(transaction, uncount, &[&id])?;
    Ok(())
}

/// What an attempt's end writes, owned so the write can travel.
struct AttemptEnd {
    step_id: String,
    status: &'static str,
    inputs: Option<String>,
    output: Option<String>,
    error: Option<String>,
    agent: Option<String>,
    message: Option<String>,
}

impl From<&StepRecord> for AttemptEnd {
    fn from(record: &StepRecord) -> AttemptEnd {
        let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
        AttemptEnd {
            step_id: pg_text(&record.id),
            status: AttemptStatus::from(record.status).as_str(),
            inputs: json(&record.inputs),
            output: json(&record.outputs),
            error: record.error.clone().map(pg_text),
            agent: record.agent.clone().map(pg_text),
            message: record.status_messages.last().cloned().map(pg_text),
        }
    }
}

fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

impl Backend for PgStore {
    fn shared(&self) -> Arc<dyn Backend> {
        Arc::new(self.clone())
    }
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
    fn location(&self) -> String {
        self.url.clone()
    }
    fn distributed(&self) -> bool {
        true
    }

    fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError> {
        let id = self
            .create_with(run, |_, id, _| Ok(id.to_string()))
            .wait()?;
        self.get(&id)
    }
    fn create_started_run(
        &self,
        run: &NewRun,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        self.create_started(run, None, start, lease)
    }
    fn create_rerun(
        &self,
        run: &NewRun,
        rerun: (RerunOf, Vec<ReusedAttempt>),
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        self.create_started(run, Some(rerun), start, lease)
    }

    fn get(&self, id: &str) -> Result<StoredRun, StoreError> {
        self.read(id, |client, id| {
            query_opt(client, &sql::GET_RUN, &[&id])?
                .map(|row| sql::run_from_row(&row))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })
        })
    }
    fn list(&self, status: Option<RunState>, limit: u32) -> Result<Vec<StoredRun>, StoreError> {
        let status = status.map(RunState::as_str);
        self.read_any(move |client| {
            query(client, &sql::LIST_RUNS, &[&status, &i64::from(limit)])?
                .iter()
                .map(sql::run_from_row)
                .collect()
        })
    }
    fn list_page(
        &self,
        status: Option<RunState>,
        workflow: Option<&str>,
        limit: u32,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let status = status.map(RunState::as_str);
        let workflow = workflow.map(str::to_string);
        let (created_at, id) = after
            .map(|(at, id)| (at.to_string(), id.to_string()))
            .unzip();
        self.read_any(move |client| {
            query(
                client,
                &sql::LIST_PAGE,
                &[&status, &i64::from(limit), &created_at, &id, &workflow],
            )?
            .iter()
            .map(sql::run_from_row)
            .collect()
        })
    }
    fn history(&self, id: &str) -> Result<Vec<Transition>, StoreError> {
        let history: Vec<Transition> = self.read(id, |client, id| {
            query(
                client,
                "SELECT from_status, to_status, trigger, metadata, actor, at FROM transitions WHERE run_id = $1 ORDER BY id",
                &[&id],
            )?
            .iter()
            .map(|row| {
                Ok(Transition::from_columns(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                ))
            })
            .collect::<Result<_, StoreError>>()
        })?;
        // Every run has its `created` transition: none means no such run.
        if history.is_empty() {
            self.get(id)?;
        }
        Ok(history)
    }
    fn transition(&self, id: &str, change: RunChange) -> Pending<RunState> {
        let (change, at) = (Change::from(change), self.stamp());
        self.write(id, move |transaction, id| {
            apply_change(transaction, id, &change, &at)
        })
    }
    fn decide(
        &self,
        id: &str,
        step_id: &str,
        decision: &Value,
        rerun: &[String],
        change: RunChange,
    ) -> Pending<()> {
        let (step_id, rerun, decision) = (pg_text(step_id), rerun.to_vec(), decision.to_string());
        let (change, at) = (Change::from(change), self.stamp());
        self.write(id, move |transaction, id| {
            // The run row first (the lock order), the change last: its event
            // follows the decision's.
            let from = lock_run(transaction, id, None)?;
            let updated = exec(
                transaction,
                "UPDATE step_attempts SET status = 'completed', output = $3, ended_at = $4 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND status = 'waiting')",
                &[&id, &step_id, &decision, &at],
            )?;
            if updated == 0 {
                exec(
                    transaction,
                    "INSERT INTO step_attempts (run_id, step_id, attempt, status, output, started_at, ended_at) VALUES ($1, $2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = $1 AND step_id = $2), 'completed', $3, $4, $4)",
                    &[&id, &step_id, &decision, &at],
                )?;
            }
            for step in &rerun {
                exec(
                    transaction,
                    "UPDATE step_attempts SET status = 'superseded' WHERE run_id = $1 AND step_id = $2 AND status = 'completed'",
                    &[&id, step],
                )?;
            }
            apply_locked(transaction, id, from, &change, &at)?;
            store_derived(transaction, id)
        })
    }
    fn end_execution(&self, id: &str, change: RunChange, lease: &str) -> Pending<RunState> {
        let (change, lease, at) = (Change::from(change), lease.to_string(), self.stamp());
        self.write(id, move |transaction, id| {
            // One lock for the lease check, the release and the change.
            let from = lock_run(transaction, id, Some(&lease))?;
            // Released first: the run ends with no executor (see `runs::end_execution`).
            release_locked(transaction, id, &lease)?;
            apply_locked(transaction, id, from, &change, &at)
        })
    }
    fn executor_starts(&self, id: &str) -> Result<u32, StoreError> {
        self.read(id, |client, id| {
            let row = query_opt(
                client,
                "SELECT executor_starts FROM runs WHERE id = $1",
                &[&id],
            )?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
            Ok(u32::try_from(row.try_get::<_, i32>(0)?).unwrap_or(0))
        })
    }
    fn set_error(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let error = pg_text(error);
        self.write(id, move |transaction, id| {
            exec(
                transaction,
                "UPDATE runs SET error = $2 WHERE id = $1",
                &[&id, &error],
            )?;
            Ok(())
        })
        .wait()
    }
    fn statuses(&self, ids: &[String]) -> Result<HashMap<String, RunState>, StoreError> {
        let ids = ids.to_vec();
        self.read_any(move |client| {
            let mut statuses = HashMap::new();
            for row in query(
                client,
                "SELECT id, status FROM runs WHERE id = ANY($1)",
                &[&ids],
            )? {
                let status: String = row.try_get(1)?;
                if let Some(status) = RunState::parse(&status) {
                    statuses.insert(row.try_get(0)?, status);
                }
            }
            Ok(statuses)
        })
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.read(id, |client, id| {
            query(
                client,
                "SELECT step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, task_id, task_interface, idempotency_key, reattached_from, status_message, reused_from FROM step_attempts WHERE run_id = $1 ORDER BY id",
                &[&id],
            )?
            .iter()
            .map(|row| {
                let status: String = row.try_get(2)?;
                Ok(Attempt {
                    step_id: row.try_get(0)?,
                    attempt: u32::try_from(row.try_get::<_, i32>(1)?).unwrap_or(0),
                    status: AttemptStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                        id: id.to_string(),
                        what: "step_attempts.status".to_string(),
                    })?,
                    inputs: json_column(row.try_get(3)?),
                    output: json_column(row.try_get(4)?),
                    error: row.try_get(5)?,
                    agent: row.try_get(6)?,
                    started_at: row.try_get(7)?,
                    ended_at: row.try_get(8)?,
                    task_id: row.try_get(9)?,
                    task_interface: json_column(row.try_get(10)?),
                    idempotency_key: row.try_get(11)?,
                    reattached_from: row
                        .try_get::<_, Option<i32>>(12)?
                        .and_then(|number| u32::try_from(number).ok()),
                    status_message: row.try_get(13)?,
                    reused_from: row.try_get(14)?,
                })
            })
            .collect()
        })
    }
    fn start_attempt(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        lease: Option<&str>,
    ) -> Pending<()> {
        self.start_attempt_at(id, step_id, status, &self.stamp(), lease)
    }
    fn start_attempt_at(
        &self,
        id: &str,
        step_id: &str,
        status: AttemptStatus,
        at: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (step_id, at, lease) = (pg_text(step_id), at.to_string(), lease.map(str::to_string));
        self.write(id, move |transaction, id| {
            // A run cancelled (or ended) by another process runs no further step.
            let run_state = lock_run(transaction, id, lease.as_deref())?;
            if run_state != RunState::InProgress {
                return Err(StoreError::NotRunning {
                    id: id.to_string(),
                    status: run_state,
                });
            }
            exec(
                transaction,
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, started_at) VALUES ($1, $2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = $1 AND step_id = $2), $3, $4)",
                &[&id, &step_id, &status.as_str(), &at],
            )?;
            Ok(())
        })
    }
    fn record_attempt(
        &self,
        id: &str,
        started_at: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        let (end, at, started_at) = (
            AttemptEnd::from(record),
            self.stamp(),
            started_at.to_string(),
        );
        let lease = lease.map(str::to_string);
        self.write(id, move |transaction, id| {
            let status = lock_run(transaction, id, lease.as_deref())?;
            exec(
                transaction,
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, inputs, output, error, agent, started_at, ended_at, status_message) VALUES ($1, $2, (SELECT COUNT(*) + 1 FROM step_attempts WHERE run_id = $1 AND step_id = $2), $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&id, &end.step_id, &end.status, &end.inputs, &end.output, &end.error, &end.agent, &started_at, &at, &end.message],
            )?;
            Ok(status)
        })
    }
    fn finish_attempt(
        &self,
        id: &str,
        record: &StepRecord,
        lease: Option<&str>,
    ) -> Pending<RunState> {
        let (end, at, lease) = (
            AttemptEnd::from(record),
            self.stamp(),
            lease.map(str::to_string),
        );
        self.write(id, move |transaction, id| {
            let status = lock_run(transaction, id, lease.as_deref())?;
            exec(
                transaction,
                "UPDATE step_attempts SET status = $3, inputs = $4, output = $5, error = $6, agent = $7, ended_at = $8, status_message = COALESCE($9, status_message) WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND status IN ('running', 'waiting'))",
                &[&id, &end.step_id, &end.status, &end.inputs, &end.output, &end.error, &end.agent, &at, &end.message],
            )?;
            Ok(status)
        })
    }
    fn record_task(
        &self,
        id: &str,
        step_id: &str,
        task: &StepTask,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (step_id, lease) = (pg_text(step_id), lease.map(str::to_string));
        let interface =
            serde_json::to_string(&task.task.interface).expect("an interface always serializes");
        let mut task = task.clone();
        task.task.id = pg_text(task.task.id);
        task.agent = pg_text(task.agent);
        task.idempotency_key = pg_text(task.idempotency_key);
        self.write(id, move |transaction, id| {
            lock_run(transaction, id, lease.as_deref())?;
            let reattached_from = task.reattached_from.and_then(|number| i32::try_from(number).ok());
            exec(
                transaction,
                "UPDATE step_attempts SET task_id = $3, task_agent = $4, task_interface = $5, idempotency_key = $6, reattached_from = $7 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND status = 'running')",
                &[&id, &step_id, &task.task.id, &task.agent, &interface, &task.idempotency_key, &reattached_from],
            )?;
            Ok(())
        })
    }
    fn step_status(
        &self,
        id: &str,
        step_id: &str,
        message: &str,
        lease: Option<&str>,
    ) -> Pending<()> {
        let (step_id, message, lease) = (
            pg_text(step_id),
            pg_text(message),
            lease.map(str::to_string),
        );
        self.write(id, move |transaction, id| {
            lock_run(transaction, id, lease.as_deref())?;
            exec(
                transaction,
                "UPDATE step_attempts SET status_message = $3 WHERE id = (SELECT MAX(id) FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND status = 'running')",
                &[&id, &step_id, &message],
            )?;
            Ok(())
        })
    }
    fn interrupt_running(&self, id: &str) -> Pending<usize> {
        let at = self.stamp();
        self.write(id, move |transaction, id| {
            let updated = exec(
                transaction,
                "UPDATE step_attempts SET status = 'interrupted', ended_at = $2 WHERE run_id = $1 AND status = 'running'",
                &[&id, &at],
            )?;
            Ok(usize::try_from(updated).unwrap_or(usize::MAX))
        })
    }
    fn completed_outputs(&self, id: &str) -> Result<HashMap<String, Value>, StoreError> {
        self.read(id, |client, id| {
            let mut outputs = HashMap::new();
            for row in query(
                client,
                "SELECT step_id, output FROM step_attempts WHERE run_id = $1 AND status = 'completed' ORDER BY id",
                &[&id],
            )? {
                outputs.insert(
                    row.try_get(0)?,
                    json_column(row.try_get(1)?)
                        .unwrap_or_else(|| Value::Object(Default::default())),
                );
            }
            Ok(outputs)
        })
    }
    fn previous_attempts(&self, id: &str) -> Result<HashMap<String, u32>, StoreError> {
        self.read(id, |client, id| {
            query(
                client,
                "SELECT step_id, COUNT(*) FROM step_attempts WHERE run_id = $1 AND status NOT IN ('interrupted', 'waiting') GROUP BY step_id",
                &[&id],
            )?
            .iter()
            .map(|row| {
                let count: i64 = row.try_get(1)?;
                Ok((row.try_get(0)?, u32::try_from(count).unwrap_or(u32::MAX)))
            })
            .collect()
        })
    }
    fn interrupted_tasks(&self, id: &str) -> Result<HashMap<String, StepTask>, StoreError> {
        self.read(id, |client, id| {
            let mut tasks = HashMap::new();
            for row in query(
                client,
                "SELECT a.step_id, a.attempt, a.task_id, a.task_agent, a.task_interface, a.idempotency_key FROM step_attempts a WHERE a.run_id = $1 AND a.status = 'interrupted' AND a.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM step_attempts b WHERE b.run_id = a.run_id AND b.step_id = a.step_id AND b.id > a.id AND (b.status != 'interrupted' OR b.task_id IS NOT NULL))",
                &[&id],
            )? {
                let interface: Option<String> = row.try_get(4)?;
                // A row this binary cannot read is run again, as with SQLite.
                let interface = interface.and_then(|text| serde_json::from_str(&text).ok());
                let (Some(agent), Some(interface), Some(key)) =
                    (row.try_get(3)?, interface, row.try_get(5)?)
                else {
                    continue;
                };
                tasks.insert(
                    row.try_get(0)?,
                    StepTask {
                        agent,
                        task: AgentTask {
                            id: row.try_get(2)?,
                            interface,
                        },
                        idempotency_key: key,
                        reattached_from: u32::try_from(row.try_get::<_, i32>(1)?).ok(),
                    },
                );
            }
            Ok(tasks)
        })
    }
    fn handled_failures(&self, id: &str) -> Result<HashMap<String, String>, StoreError> {
        self.read(id, |client, id| {
            query(
                client,
                "SELECT a.step_id, COALESCE(a.error, 'failed') FROM step_attempts a
                 WHERE a.run_id = $1 AND a.status = 'failed'
                   AND a.id = (SELECT MAX(b.id) FROM step_attempts b
                               WHERE b.run_id = a.run_id AND b.step_id = a.step_id)
                   AND EXISTS (SELECT 1 FROM step_attempts h WHERE h.run_id = a.run_id
                               AND substr(h.step_id, 1, length(a.step_id) + 12) = a.step_id || '/on_failure/')",
                &[&id],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
        })
    }

    fn acquire_lease(&self, id: &str, token: &str) -> Pending<Option<Lease>> {
        let token = token.to_string();
        self.write(id, move |transaction, id| acquire(transaction, id, &token))
    }
    fn renew_lease(&self, id: &str, token: &str) -> Pending<bool> {
        let (sender, pending) = oneshot::channel();
        if renewals::add(&self.renewals, id.to_string(), token.to_string(), sender) {
            let queue = self.renewals.clone();
            let job: Job = Box::new(move |link| {
                // Autocommit, repeatable: a renewal made twice is harmless.
                renewals::run(&queue, link);
            });
            if self.shards[RENEWALS].send(job).is_err() {
                renewals::fail_all(&self.renewals, || StoreError::WriterStopped);
            }
        }
        Pending::answered_by(pending)
    }
    fn release_lease(&self, id: &str, token: &str) -> Pending<()> {
        let token = token.to_string();
        self.write(id, move |transaction, id| release(transaction, id, &token))
    }
    fn abandon_lease(&self, id: &str, token: &str) -> Pending<()> {
        let token = token.to_string();
        self.write(id, move |transaction, id| {
            abandon(transaction, id, &token)?;
            Ok(())
        })
    }
    fn live_lease(&self, id: &str) -> Result<Option<Lease>, StoreError> {
        let lease = self.read(id, read_lease)?;
        Ok(lease.filter(|lease| {
            standing(lease, Owner::current(), Utc::now(), process_alive) == Standing::Live
        }))
    }
    fn claim(&self, limit: usize, max_starts: u32) -> Pending<Claims> {
        PgStore::claim(self, limit, max_starts)
    }
    fn events_after(
        &self,
        after: EventCursor,
        scope: &EventScope,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        // Only transactions older than the oldest running one: their events
        // are all committed, and any later commit sorts after them.
        const COLUMNS: &str =
            "SELECT xid::text, id, run_id, workflow_id, type, step_id, data, at FROM events";
        const VISIBLE: &str =
            "(xid, id) > ($1::text::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())";
        let (sql, value) = match scope {
            EventScope::All => (
                format!("{COLUMNS} WHERE {VISIBLE} AND $3::text IS NULL ORDER BY xid, id LIMIT $4"),
                None,
            ),
            EventScope::Run(id) => (
                format!("{COLUMNS} WHERE run_id = $3 AND {VISIBLE} ORDER BY xid, id LIMIT $4"),
                Some(id.clone()),
            ),
            EventScope::Workflow(id) => (
                format!("{COLUMNS} WHERE workflow_id = $3 AND {VISIBLE} ORDER BY xid, id LIMIT $4"),
                Some(id.clone()),
            ),
        };
        let xid = after.xid.to_string();
        let id = i64::try_from(after.id).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_any(move |client| {
            query(client, &sql, &[&xid, &id, &value, &limit])?
                .iter()
                .map(|row| {
                    let xid: String = row.try_get(0)?;
                    let id: i64 = row.try_get(1)?;
                    let cursor = EventCursor {
                        xid: xid.parse().unwrap_or(0),
                        id: id.max(0) as u64,
                    };
                    Ok(Event::from_columns(
                        cursor,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                        row.try_get(7)?,
                    ))
                })
                .collect()
        })
    }
    fn last_event(&self) -> Result<EventCursor, StoreError> {
        self.read_any(|client| {
            let row = query_opt(
                client,
                "SELECT xid::text, id FROM events WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid DESC, id DESC LIMIT 1",
                &[],
            )?;
            let Some(row) = row else {
                return Ok(EventCursor::default());
            };
            let (xid, id): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
            Ok(EventCursor {
                xid: xid.parse().unwrap_or(0),
                id: id.max(0) as u64,
            })
        })
    }
    fn count_by_status(&self) -> Result<HashMap<RunState, u64>, StoreError> {
        self.read_any(|client| {
            let rows = query(
                client,
                "SELECT status, COUNT(*) FROM runs GROUP BY status",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>, StoreError>>()?;
            Ok(super::runs::counted(rows))
        })
    }
    fn queued(&self, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_any(move |client| {
            // Bounded by `limit`: a deep queue costs this count no more.
            let row = query_opt(
                client,
                "SELECT count(*) FROM (SELECT 1 FROM runs r
                   WHERE r.status IN ('pending', 'in_progress') AND r.error IS NULL
                     AND NOT EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = r.id)
                   LIMIT $1) queue",
                &[&limit],
            )?;
            let count: i64 = row.map_or(Ok(0), |row| row.try_get(0))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    fn settled(&self) -> Pending<()> {
        // Every connection answers once what was queued before on it is done.
        let (sender, pending) = oneshot::channel();
        let store = self.clone();
        std::thread::spawn(move || {
            let mut result = Ok(());
            for shard in 0..store.shards.len() {
                if let Err(error) = store.call(shard, |_| Ok(())) {
                    result = Err(error);
                }
            }
            let _ = sender.send(result);
        });
        Pending::answered_by(pending)
    }
    fn close(&self) {
        let _ = self.settled().wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(url: &str) -> postgres::Config {
        with_bounds(url.parse().expect("a valid URL"))
    }

    #[test]
    fn sessions_get_bounds_unless_the_url_sets_its_own() {
        let plain = bounded("postgres://pallet@127.0.0.1:5432/runs");
        assert_eq!(plain.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert!(plain.get_keepalives());
        assert_eq!(plain.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(plain.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(
            plain.get_options(),
            None,
            "no startup options (poolers refuse them)"
        );
        assert_eq!(
            session_bounds(plain.get_options()),
            "SET statement_timeout = '30s'; SET lock_timeout = '10s'; SET idle_in_transaction_session_timeout = '30s';"
        );
        let own = bounded(
            "postgres://pallet@127.0.0.1:5432/runs?connect_timeout=3&keepalives=0&options=-c%20lock_timeout%3D1s%20-cdeadlock_timeout%3D2s%20--statement-timeout%3D0",
        );
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert!(!own.get_keepalives(), "keepalives=0 stays off");
        assert_eq!(
            session_bounds(own.get_options()),
            "SET idle_in_transaction_session_timeout = '30s';",
            "the URL's own lock_timeout and statement_timeout stand; deadlock_timeout is another"
        );
    }
}
