//! Lease renewals, many in one statement: every executing run renews its
//! lease every few seconds, so a worker with thousands of runs would spend
//! its renewals' connection on one transaction (three round trips and a WAL
//! flush) per lease. Renewals asked for while one batch is on its way wait
//! and go together in the next: one autocommit `UPDATE` for all of them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::channel::oneshot;
use postgres::Client;

use super::sql::query;
use super::{LEASE_DURATION, Link, StoreError, timestamp};

type Answer = oneshot::Sender<Result<bool, StoreError>>;

/// The renewals waiting for the next batch.
#[derive(Default)]
pub(super) struct Waiting {
    /// (run id, token, who waits for the answer).
    renewals: Vec<(String, String, Answer)>,
    /// Whether a batch job is queued on the connection (it takes them all).
    queued: bool,
}

pub(super) type Queue = Arc<Mutex<Waiting>>;

fn lock(queue: &Queue) -> std::sync::MutexGuard<'_, Waiting> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answer every waiting renewal with `error` (the connection's thread is gone).
pub(super) fn fail_all(queue: &Queue, error: impl Fn() -> StoreError) {
    let renewals = {
        let mut waiting = lock(queue);
        waiting.queued = false;
        std::mem::take(&mut waiting.renewals)
    };
    for (_, _, answer) in renewals {
        let _ = answer.send(Err(error()));
    }
}

/// Add a renewal; true when the caller must queue a batch job ([`run`]).
pub(super) fn add(queue: &Queue, id: String, token: String, answer: Answer) -> bool {
    let mut waiting = lock(queue);
    waiting.renewals.push((id, token, answer));
    !std::mem::replace(&mut waiting.queued, true)
}

/// The batch job: renew every waiting lease still held under its token.
/// A lease row another transaction holds locked (a claim taking it over, a
/// release) is skipped, not waited for: its renewal fails for this tick.
pub(super) fn run(queue: &Queue, link: &mut Link) {
    let renewals = {
        let mut waiting = lock(queue);
        waiting.queued = false;
        std::mem::take(&mut waiting.renewals)
    };
    if renewals.is_empty() {
        return;
    }
    let ids: Vec<&str> = renewals.iter().map(|(id, _, _)| id.as_str()).collect();
    let tokens: Vec<&str> = renewals
        .iter()
        .map(|(_, token, _)| token.as_str())
        .collect();
    let outcome = link.run(|client| renew(client, &ids, &tokens));
    for (id, token, answer) in renewals {
        let pair = (id, token);
        let _ = answer.send(match &outcome {
            Ok((renewed, _)) if renewed.contains(&pair) => Ok(true),
            Ok((_, busy)) if busy.contains(&pair) => Err(StoreError::LeaseBusy { id: pair.0 }),
            Ok(_) => Ok(false),
            Err(error) => Err(StoreError::Renewal {
                reason: crate::error::chain_of(error),
            }),
        });
    }
}

/// (run id, token) pairs.
type Pairs = HashSet<(String, String)>;

/// Of the leases `ids` held under `tokens`: those renewed, and those whose
/// row another transaction held locked.
fn renew(client: &mut Client, ids: &[&str], tokens: &[&str]) -> Result<(Pairs, Pairs), StoreError> {
    let now = Utc::now();
    let pairs = |rows: Vec<postgres::Row>| -> Result<Pairs, StoreError> {
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    };
    let renewed = pairs(query(
        client,
        "WITH free AS (
             SELECT l.run_id FROM run_leases l
             JOIN unnest($1::text[], $2::text[]) AS w(run_id, token)
               ON l.run_id = w.run_id AND l.token = w.token
             FOR UPDATE OF l SKIP LOCKED)
         UPDATE run_leases l SET renewed_at = $3, expires_at = $4
         FROM free WHERE l.run_id = free.run_id
         RETURNING l.run_id, l.token",
        &[
            &ids,
            &tokens,
            &timestamp(now),
            &timestamp(now + LEASE_DURATION),
        ],
    )?)?;
    if renewed.len() == ids.len() {
        return Ok((renewed, Pairs::new()));
    }
    // Not renewed: taken over (the token differs, or no lease), or locked.
    let held = pairs(query(
        client,
        "SELECT l.run_id, l.token FROM run_leases l
         JOIN unnest($1::text[], $2::text[]) AS w(run_id, token)
           ON l.run_id = w.run_id AND l.token = w.token",
        &[&ids, &tokens],
    )?)?;
    let busy = held.difference(&renewed).cloned().collect();
    Ok((renewed, busy))
}
