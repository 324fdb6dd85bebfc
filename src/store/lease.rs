//! One executor per run: the process executing a run holds its lease (table
//! `run_leases`), renews it while it executes and releases it when it stops.
//! Another process takes the lease only when it is stale: past its expiry or,
//! on the owner's own host, when the owner's process is gone — so a run whose
//! process was killed resumes at once, without waiting for the expiry.
//!
//! This is the lease as stored; holding one while a run executes (renewal,
//! release) is the run lifecycle's policy, `runs::lease`. Leases follow the
//! system clock, not the store's [`super::Clock`]: they guard against other
//! processes, which share no test clock.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::clock::timestamp;
use super::state::RunState;
use super::{Pending, RunStore, StoreError};

/// How long a lease lives without renewal (its owner renews it more often:
/// `runs::lease::RENEW_EVERY`).
pub const LEASE_DURATION: Duration = Duration::from_secs(30);

/// A process that may own runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` (clock ticks after boot); 0 when unknown.
    pub process_start: u64,
    /// The host's boot id; empty when unknown.
    pub boot_id: String,
    /// The process's PID namespace (`pid:[INODE]`); empty when unknown.
    pub pid_namespace: String,
}

/// The columns of `run_leases` that [`Lease::from_columns`] reads, in its order.
pub const COLUMNS: &str =
    "host, pid, process_start, boot_id, pid_namespace, token, acquired_at, expires_at";

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: Owner,
    pub token: String,
    /// RFC 3339: when the owner acquired it.
    pub since: String,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// A row of `run_leases` as any backend reads it ([`COLUMNS`] in order).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_columns(
        host: String,
        pid: i64,
        process_start: i64,
        boot_id: String,
        pid_namespace: String,
        token: String,
        since: String,
        expires_at: &str,
    ) -> Lease {
        Lease {
            owner: Owner {
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                process_start: u64::try_from(process_start).unwrap_or(0),
                boot_id,
                pid_namespace,
            },
            token,
            since,
            // An unreadable expiry binds nobody.
            expires_at: DateTime::parse_from_rfc3339(expires_at)
                .map(|at| at.to_utc())
                .unwrap_or(DateTime::UNIX_EPOCH),
        }
    }
}

/// Whether a lease still binds others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its owner may still be executing the run.
    Live,
    Expired,
    /// On this host, the owner's process is gone (or its pid names another process now).
    OwnerGone,
    /// On this host, which has booted again since.
    Rebooted,
}

impl Owner {
    /// This process.
    pub fn current() -> &'static Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                host: read_trimmed("/proc/sys/kernel/hostname")
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .unwrap_or_else(|| "unknown".to_string()),
                pid,
                process_start: process_state(pid).map_or(0, |(_, start)| start),
                boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
                pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                    .map(|link| link.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
        })
    }
}

/// The tokens of the leases this process holds or is taking: each is held
/// here before the write that takes its lease, and let go once the lease is
/// given up (or could not be, the database gone). A lease that names this
/// very process but a token not held here is an orphan (its release failed,
/// or the commit that took it was lost with the connection): a claim of a
/// shared database takes it back ([`is_this_process`]).
static HELD_HERE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

fn held_tokens() -> std::sync::MutexGuard<'static, HashSet<String>> {
    HELD_HERE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Note `token` as held by this process (before its lease is written).
pub fn hold(token: &str) {
    held_tokens().insert(token.to_string());
}

/// `token`'s lease is no longer this process's.
pub fn let_go(token: &str) {
    held_tokens().remove(token);
}

/// Whether this process holds the lease taken under `token`.
pub fn held_here(token: &str) -> bool {
    held_tokens().contains(token)
}

/// Whether `owner` is this very process (not merely one of this host).
pub fn is_this_process(owner: &Owner) -> bool {
    owner == Owner::current()
}

/// How `lease` stands for `me` at `now`; `alive(pid, start)` says whether a
/// process of this host still runs.
pub fn standing(
    lease: &Lease,
    me: &Owner,
    now: DateTime<Utc>,
    alive: impl Fn(u32, u64) -> bool,
) -> Standing {
    let owner = &lease.owner;
    // A pid means the same process here only in the same, known, PID
    // namespace: a container sharing the host name has its own (and a
    // lease of an older pallet names none).
    let elsewhere = owner.host != me.host
        || owner.pid_namespace.is_empty()
        || owner.pid_namespace != me.pid_namespace;
    if elsewhere {
        // Another host's (or namespace's) processes cannot be seen from here: only the expiry counts.
        return match lease.expires_at <= now {
            true => Standing::Expired,
            false => Standing::Live,
        };
    }
    if !owner.boot_id.is_empty() && !me.boot_id.is_empty() && owner.boot_id != me.boot_id {
        return Standing::Rebooted;
    }
    // On this host the process itself tells, expiry or not: a stopped
    // (Ctrl-Z) or starved owner that missed its renewals still executes the
    // run once it wakes.
    if alive(owner.pid, owner.process_start) {
        Standing::Live
    } else {
        Standing::OwnerGone
    }
}

/// Whether the lease on run `id` is still the one taken under `token`.
pub fn held(connection: &Connection, id: &str, token: &str) -> rusqlite::Result<bool> {
    connection
        .prepare_cached("SELECT 1 FROM run_leases WHERE run_id = ?1 AND token = ?2")?
        .exists(params![id, token])
}

thread_local! {
    /// (run id, token) of leases found held in the write transaction under
    /// way on this thread (the store's writer), so that the requests of one
    /// batch check a lease once: while the batch holds the write lock no
    /// other process changes it, and every change here forgets them.
    static HELD_IN_BATCH: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// [`held`], asked once per write transaction (see `HELD_IN_BATCH`).
pub(super) fn held_in_batch(
    connection: &Connection,
    id: &str,
    token: &str,
) -> rusqlite::Result<bool> {
    let known = HELD_IN_BATCH.with_borrow(|held| {
        held.iter()
            .any(|(run, held_token)| run == id && held_token == token)
    });
    if known {
        return Ok(true);
    }
    let found = held(connection, id, token)?;
    if found {
        HELD_IN_BATCH.with_borrow_mut(|held| held.push((id.to_string(), token.to_string())));
    }
    Ok(found)
}

/// A write transaction begins, or a lease changes: leases are checked again.
pub(super) fn forget_held() {
    HELD_IN_BATCH.with_borrow_mut(Vec::clear);
}

/// Whether process `pid` of this host runs and, if `start` is known (not 0),
/// started at `start`; a zombie counts as gone.
pub fn process_alive(pid: u32, start: u64) -> bool {
    match process_state(pid) {
        None => false,
        Some((state, found)) => !matches!(state, 'Z' | 'X') && (start == 0 || found == start),
    }
}

/// (state, start time) of process `pid` from `/proc/PID/stat`.
fn process_state(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 3 (state) and 22 (start time) of a `/proc/PID/stat` line; the
/// command name (field 2) is in parentheses and may hold spaces or `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((state, start))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// The lease on run `id`, if any.
pub fn read(connection: &Connection, id: &str) -> rusqlite::Result<Option<Lease>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM run_leases WHERE run_id = ?1"),
            [id],
            |row| {
                Ok(Lease::from_columns(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    &row.get::<_, String>(7)?,
                ))
            },
        )
        .optional()
}

/// Take the lease on run `id` for `me` under `token` until `now + duration`,
/// unless another's live lease holds it: then that lease, and nothing written.
/// The caller holds the database's write lock (the store's writer runs every
/// request in an immediate transaction), so two processes cannot both find
/// the lease free and both take it.
pub fn acquire(
    connection: &Connection,
    id: &str,
    me: &Owner,
    token: &str,
    now: DateTime<Utc>,
    duration: Duration,
    alive: impl Fn(u32, u64) -> bool,
) -> rusqlite::Result<Option<Lease>> {
    if let Some(lease) = read(connection, id)?
        && standing(&lease, me, now, alive) == Standing::Live
    {
        return Ok(Some(lease));
    }
    let at = timestamp(now);
    forget_held();
    connection.execute(
        "INSERT OR REPLACE INTO run_leases (run_id, host, pid, process_start, boot_id, pid_namespace, token, acquired_at, renewed_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
        params![
            id,
            me.host,
            me.pid,
            i64::try_from(me.process_start).unwrap_or(0),
            me.boot_id,
            me.pid_namespace,
            token,
            at,
            timestamp(now + duration)
        ],
    )?;
    // One more execution in flight until its lease is released (see `release`).
    connection
        .prepare_cached("UPDATE runs SET executor_starts = executor_starts + 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(None)
}

/// Extend the lease held under `token`; false when it is no longer ours.
pub fn renew(
    connection: &Connection,
    id: &str,
    token: &str,
    now: DateTime<Utc>,
    duration: Duration,
) -> rusqlite::Result<bool> {
    let updated = connection.execute(
        "UPDATE run_leases SET renewed_at = ?3, expires_at = ?4 WHERE run_id = ?1 AND token = ?2",
        params![id, token, timestamp(now), timestamp(now + duration)],
    )?;
    Ok(updated == 1)
}

/// Give up the lease held under `token` (a lease taken over by another
/// stays). Every executor that stops without crashing comes here, so its
/// start is no crash: a lease still ours clears the count of executions that
/// never ended (see `migrations/0003_executor_starts.sql`); a lease taken over
/// takes back this executor's own start only, the new owner's still counts.
pub fn release(connection: &Connection, id: &str, token: &str) -> rusqlite::Result<()> {
    let uncount = match abandon(connection, id, token)? {
        true => "UPDATE runs SET executor_starts = 0 WHERE id = ?1",
        false => "UPDATE runs SET executor_starts = MAX(executor_starts - 1, 0) WHERE id = ?1",
    };
    connection.prepare_cached(uncount)?.execute([id])?;
    Ok(())
}

/// Give up the lease held under `token` but leave its start counted, as a
/// crash would: for an executor that panicked. Whether the lease was still ours.
pub fn abandon(connection: &Connection, id: &str, token: &str) -> rusqlite::Result<bool> {
    forget_held();
    let deleted = connection
        .prepare_cached("DELETE FROM run_leases WHERE run_id = ?1 AND token = ?2")?
        .execute(params![id, token])?;
    Ok(deleted == 1)
}

impl RunStore {
    /// Take the lease on run `id` for this process; the live lease of another
    /// process if it holds it.
    pub fn acquire_lease(&self, id: &str, token: &str) -> Pending<Option<Lease>> {
        let (id, token) = (id.to_string(), token.to_string());
        self.write(move |connection| {
            // An ended run is executed by nobody: no lease on it (a lease
            // taken there would outlive a crash, since no claim looks at it).
            let status: Option<String> = connection
                .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            let status = status.ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
            if let Some(status) = RunState::parse(&status).filter(|status| status.is_terminal()) {
                return Err(StoreError::Ended { id, status });
            }
            let me = Owner::current();
            Ok(acquire(
                connection,
                &id,
                me,
                &token,
                Utc::now(),
                LEASE_DURATION,
                process_alive,
            )?)
        })
    }

    pub fn renew_lease(&self, id: &str, token: &str) -> Pending<bool> {
        let (id, token) = (id.to_string(), token.to_string());
        self.write(move |connection| {
            Ok(renew(connection, &id, &token, Utc::now(), LEASE_DURATION)?)
        })
    }

    pub fn release_lease(&self, id: &str, token: &str) -> Pending<()> {
        let (id, token) = (id.to_string(), token.to_string());
        self.write(move |connection| Ok(release(connection, &id, &token)?))
    }

    /// [`abandon`] for an executor that panicked.
    pub fn abandon_lease(&self, id: &str, token: &str) -> Pending<()> {
        let (id, token) = (id.to_string(), token.to_string());
        self.write(move |connection| {
            abandon(connection, &id, &token)?;
            Ok(())
        })
    }

    /// The lease of whoever executes run `id` now, if it is live.
    pub fn live_lease(&self, id: &str) -> Result<Option<Lease>, StoreError> {
        let lease = self.read(|connection| Ok(read(connection, id)?))?;
        Ok(lease.filter(|lease| {
            standing(lease, Owner::current(), Utc::now(), process_alive) == Standing::Live
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(host: &str, pid: u32, boot_id: &str) -> Owner {
        Owner {
            host: host.to_string(),
            pid,
            process_start: 1000 + u64::from(pid),
            boot_id: boot_id.to_string(),
            pid_namespace: "pid:[1]".to_string(),
        }
    }

    fn in_namespace(mut owner: Owner, namespace: &str) -> Owner {
        owner.pid_namespace = namespace.to_string();
        owner
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::seconds(seconds)
    }

    #[test]
    fn stat_lines_give_state_and_start_time() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21";
        let cases = [
            (format!("12 (pallet) {tail}"), Some(('S', 424242))),
            (format!("12 (a b) c)) {tail}"), Some(('S', 424242))),
            (
                format!("12 (pallet) {}", tail.replacen('S', "Z", 1)),
                Some(('Z', 424242)),
            ),
            ("12 (pallet) S 1 2".to_string(), None),
            ("garbage".to_string(), None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_stat(&line), expected, "{line}");
        }
    }

    #[test]
    fn a_lease_binds_until_it_expires_or_its_process_on_this_host_is_gone() {
        let me = owner("here", 1, "boot-1");
        let alive = |pid: u32, _start: u64| pid != 66;
        let cases = [
            (
                "live owner on this host",
                owner("here", 2, "boot-1"),
                10,
                Standing::Live,
            ),
            (
                "expired, owner alive on this host (stopped, say)",
                owner("here", 2, "boot-1"),
                -1,
                Standing::Live,
            ),
            (
                "expired, owner gone on this host",
                owner("here", 66, "boot-1"),
                -1,
                Standing::OwnerGone,
            ),
            (
                "expired on another host",
                owner("elsewhere", 2, "boot-9"),
                -1,
                Standing::Expired,
            ),
            (
                "expires right now",
                owner("elsewhere", 2, "boot-9"),
                0,
                Standing::Expired,
            ),
            (
                "dead owner on this host",
                owner("here", 66, "boot-1"),
                10,
                Standing::OwnerGone,
            ),
            (
                "owner before a reboot",
                owner("here", 2, "boot-0"),
                10,
                Standing::Rebooted,
            ),
            (
                "pid of another PID namespace (a container with the same host name), live lease",
                in_namespace(owner("here", 66, "boot-1"), "pid:[2]"),
                10,
                Standing::Live,
            ),
            (
                "pid of another PID namespace, expired lease",
                in_namespace(owner("here", 2, "boot-1"), "pid:[2]"),
                -1,
                Standing::Expired,
            ),
            (
                "PID namespace unknown (an older pallet's lease), pid dead here, live lease",
                in_namespace(owner("here", 66, "boot-1"), ""),
                10,
                Standing::Live,
            ),
            (
                "PID namespace unknown, expired lease",
                in_namespace(owner("here", 2, "boot-1"), ""),
                -1,
                Standing::Expired,
            ),
            (
                "boot id unknown, owner alive",
                owner("here", 2, ""),
                10,
                Standing::Live,
            ),
            (
                "boot id unknown, owner dead",
                owner("here", 66, ""),
                10,
                Standing::OwnerGone,
            ),
            (
                "pid unknown on another host",
                owner("elsewhere", 66, "boot-9"),
                10,
                Standing::Live,
            ),
        ];
        for (name, holder, seconds_left, expected) in cases {
            let lease = Lease {
                owner: holder,
                token: "t".to_string(),
                since: "then".to_string(),
                expires_at: at(100 + seconds_left),
            };
            assert_eq!(standing(&lease, &me, at(100), alive), expected, "{name}");
        }
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_one_is_not() {
        let me = Owner::current();
        assert_ne!(
            me.process_start, 0,
            "the start time of this process is known"
        );
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let mut child = child;
        child.wait().unwrap();
        let cases = [
            (me.pid, me.process_start, true),
            (me.pid, 0, true),
            (me.pid, me.process_start + 1, false),
            (pid, 0, false),
        ];
        for (pid, start, expected) in cases {
            assert_eq!(process_alive(pid, start), expected, "{pid} {start}");
        }
    }

    /// One step of a lease's life: who does what, at what second, with which
    /// of the processes dead, and the expected result.
    enum Step {
        Acquire(&'static str, i64, Option<&'static str>),
        Renew(&'static str, i64, bool),
        Release(&'static str),
        Kill(u32),
    }

    fn process(name: &str) -> (Owner, String) {
        let host_of = |name: &str| if name == "far" { "far-host" } else { "here" };
        let pid = match name {
            "first" => 10,
            "second" => 20,
            _ => 30,
        };
        (owner(host_of(name), pid, "boot-1"), format!("token-{name}"))
    }

    #[test]
    fn acquire_renew_release_and_takeover() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut connection).unwrap();
        connection
            .execute(
                "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES ('r', 'w', 'w', '1', 'd', 's', 'y', 'in_progress', '{}', 'now', 'now')",
                [],
            )
            .unwrap();
        let duration = Duration::from_secs(30);
        let steps = [
            // Free: taken. Held by a live process: refused, whoever asks.
            Step::Acquire("first", 0, None),
            Step::Acquire("second", 1, Some("first")),
            Step::Acquire("far", 2, Some("first")),
            Step::Renew("first", 20, true),
            // Renewed at 20: still live at 45, expired at 50.
            Step::Acquire("far", 45, Some("first")),
            Step::Acquire("far", 50, None),
            Step::Renew("first", 51, false),
            Step::Release("first"),
            Step::Acquire("second", 52, Some("far")),
            Step::Release("far"),
            Step::Acquire("second", 53, None),
            // Its process is gone: stale at once, long before the expiry.
            Step::Kill(20),
            Step::Acquire("first", 54, None),
            Step::Renew("second", 55, false),
            Step::Renew("first", 56, true),
        ];
        let mut dead = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let alive = |pid: u32, _start: u64| !dead.contains(&pid);
            match step {
                Step::Acquire(name, second, holder) => {
                    let (me, token) = process(name);
                    let found = acquire(&connection, "r", &me, &token, at(second), duration, alive)
                        .unwrap()
                        .map(|lease| lease.token);
                    assert_eq!(
                        found,
                        holder.map(|holder| format!("token-{holder}")),
                        "step {index}"
                    );
                }
                Step::Renew(name, second, expected) => {
                    let (_, token) = process(name);
                    let renewed = renew(&connection, "r", &token, at(second), duration).unwrap();
                    assert_eq!(renewed, expected, "step {index}");
                }
                Step::Release(name) => release(&connection, "r", &process(name).1).unwrap(),
                Step::Kill(pid) => dead.push(pid),
            }
        }
        let lease = read(&connection, "r").unwrap().unwrap();
        assert_eq!(lease.owner, process("first").0);
        assert_eq!(lease.expires_at, at(56 + 30));
        // "first" released after its takeover (its start taken back), "far"
        // released its own (cleared); "second" died holding it, "first" holds it.
        let starts: u32 = connection
            .query_row(
                "SELECT executor_starts FROM runs WHERE id = 'r'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(starts, 2);
    }
}
