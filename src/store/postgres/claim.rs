//! The queue of a shared database: a run `pending` or `in_progress` whose
//! lease no live process holds is waiting for a worker. The `runs` table is
//! the queue (indexed by status and age): a second queue table would be a
//! second truth to keep in step with every status change.
//!
//! A claim locks its candidates with `FOR UPDATE SKIP LOCKED`, oldest first,
//! and leases them in the same transaction. SKIP LOCKED rather than advisory
//! locks: the row lock is the one every write of a run takes anyway
//! (`lock_run`), so a claim and an executor's write exclude each other
//! without a second lock namespace, and two workers claiming at once each
//! skip what the other holds instead of queueing behind it.

use chrono::Utc;
use postgres::Transaction;

use super::sql::query;
use super::{StoreError, read_leases, take_lease};
use crate::store::Claims;
use crate::store::clock::timestamp;
use crate::store::lease::{
    LEASE_DURATION, Lease, Owner, Standing, held_here, is_this_process, process_alive, standing,
};

/// Candidates looked at per claimed run: some are executed by a live
/// process on this host (only its pid tells), and are skipped.
const LOOK_AT: usize = 4;

pub(super) fn claim(
    transaction: &mut Transaction,
    tokens: &[String],
    max_starts: u32,
) -> Result<Claims, StoreError> {
    let mut claims = Claims {
        taken_from: Some(std::time::Instant::now()),
        ..Claims::default()
    };
    let limit = tokens.len();
    if limit == 0 {
        return Ok(claims);
    }
    let me = Owner::current();
    let now = Utc::now();
    let window =
        i64::try_from(limit.saturating_mul(LOOK_AT).saturating_add(16)).unwrap_or(i64::MAX);
    // Runs without a lease first, then those whose lease expired. A lease
    // of another host (or PID namespace) binds until it expires, one of
    // this host while its process lives (read below); one of this very
    // process while this process holds it, so only its unrenewed ones are
    // looked at (an orphan stops being renewed).
    let rows = query(
        transaction,
        "SELECT r.id, r.executor_starts
         FROM runs r LEFT JOIN run_leases l ON l.run_id = r.id
         WHERE r.status IN ('pending', 'in_progress')
           AND (r.executor_starts < $2 OR r.error IS NULL)
           AND (l.run_id IS NULL OR l.expires_at <= $3
                OR (l.host = $4 AND l.pid_namespace = $5 AND $5 <> ''
                    AND NOT (l.pid = $6 AND l.process_start = $7 AND l.renewed_at > $8)))
         ORDER BY (l.run_id IS NOT NULL), (l.expires_at > $3), r.created_at
         LIMIT $1
         FOR UPDATE OF r SKIP LOCKED",
        &[
            &window,
            &i32::try_from(max_starts).unwrap_or(i32::MAX),
            &timestamp(now),
            &me.host,
            &me.pid_namespace,
            &i64::from(me.pid),
            &i64::try_from(me.process_start).unwrap_or(0),
            &timestamp(now - LEASE_DURATION / 2),
        ],
    )?;
    // The leases as they are now that the rows are locked: the join above
    // read them from the statement's snapshot, and an executor may have
    // taken one (and committed) between that snapshot and the lock.
    let ids: Vec<String> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let leases = read_leases(transaction, &ids)?;
    let mut tokens = tokens.iter();
    for row in rows {
        if claims.leased.len() >= limit {
            break;
        }
        let id: String = row.try_get(0)?;
        let starts: i32 = row.try_get(1)?;
        let live = |lease: &Lease| match is_this_process(&lease.owner) {
            true => held_here(&lease.token),
            false => standing(lease, me, now, process_alive) == Standing::Live,
        };
        if leases.get(&id).is_some_and(live) {
            continue;
        }
        if u32::try_from(starts).unwrap_or(0) >= max_starts {
            // Its executors died on it again and again: left for a human.
            claims.crashed.push(id);
            continue;
        }
        let token = tokens.next().expect("one token per run claimed");
        take_lease(transaction, &id, token, now)?;
        claims.leased.push((id, token.clone()));
    }
    Ok(claims)
}
