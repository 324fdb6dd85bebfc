//! The lease policy: one executor per run. The process executing a run takes
//! its lease before any step, renews it every [`RENEW_EVERY`] while it
//! executes, stops when a renewal finds it taken over, and releases it when it
//! stops (with the write recording the run's end, when it gets that far). How
//! a lease is stored and when it is stale is `store::lease`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::lease::{self, LEASE_DURATION, Lease};
use crate::store::{Backend, StoreError};

/// How often the owner renews: a renewal may fail a few times before the
/// lease expires (`store::lease::LEASE_DURATION`).
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Without a successful renewal for this long, the owner of a lease in a
/// shared database stops executing: one more failed renewal and the lease
/// could expire under it (`store::lease::LEASE_DURATION`), on a database
/// other hosts' workers claim from. (On SQLite only this host's processes
/// compete, and a live owner's lease binds them expiry or not.)
pub const GIVE_UP_AFTER: Duration = LEASE_DURATION.saturating_sub(RENEW_EVERY);

/// A fresh lease token (random, one per acquisition), held by this process
/// from now on (`store::lease::hold`) until its [`HeldLease`] lets it go.
pub fn new_token() -> String {
    let token = uuid::Uuid::new_v4().to_string();
    lease::hold(&token);
    token
}

/// This process's lease on one run, renewed in the background and released when dropped.
pub struct HeldLease {
    store: Arc<dyn Backend>,
    run_id: String,
    token: String,
    renewal: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl HeldLease {
    /// Take the lease on run `id`, or return the live lease that holds it. When
    /// a renewal finds the lease taken by another process, `cancel` is cancelled.
    pub async fn acquire(
        store: &dyn Backend,
        id: &str,
        cancel: CancellationToken,
    ) -> Result<Result<HeldLease, Lease>, StoreError> {
        let token = new_token();
        let taken_from = Instant::now();
        let holder = store.acquire_lease(id, &token).await.inspect_err(|_| {
            // Unknown whether it was taken: an orphan, then, for a claim to take back.
            lease::let_go(&token);
        })?;
        if let Some(holder) = holder {
            lease::let_go(&token);
            return Ok(Err(holder));
        }
        Ok(Ok(HeldLease::adopt(store, id, token, taken_from, cancel)))
    }

    /// The lease taken under `token` by another write of this process (a
    /// new run's, [`Backend::create_started_run`], or a claim's): renewed and
    /// released from now on. `taken_from` is a moment before that write
    /// stamped the lease's expiry: the give-up deadline counts from it.
    pub fn adopt(
        store: &dyn Backend,
        id: &str,
        token: String,
        taken_from: Instant,
        cancel: CancellationToken,
    ) -> HeldLease {
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew_until_lost(
            store.shared(),
            id.to_string(),
            token.clone(),
            tokio::time::Instant::from_std(taken_from),
            cancel,
            lost.clone(),
        ));
        HeldLease {
            store: store.shared(),
            run_id: id.to_string(),
            token,
            renewal,
            lost,
        }
    }

    /// What this lease was taken under: writes of its executor carry it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether another process took the lease over while this one held it,
    /// or this one gave it up (renewals failing until it could expire).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// What [`HeldLease::lost`] reads, for the executor's journal.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }
}

impl HeldLease {
    /// Give the lease up and wait until that is stored.
    pub async fn release(mut self) {
        self.renewal.abort();
        let released = self.store.release_lease(&self.run_id, &self.token);
        // Nothing left for `drop` to release.
        self.let_go();
        report_release(&self.run_id, released.await);
    }

    /// This process no longer holds the lease, whether or not its release
    /// is stored (see `store::lease::hold`).
    fn let_go(&mut self) {
        lease::let_go(&self.token);
        self.token.clear();
    }

    /// Give the lease up but leave its start counted, as a crash would: for
    /// a run this process cannot execute (a claim of a run whose stored
    /// workflow does not load here), so that claims stop after a few tries.
    pub async fn abandon(mut self) {
        self.renewal.abort();
        let abandoned = self.store.abandon_lease(&self.run_id, &self.token);
        self.let_go();
        report_release(&self.run_id, abandoned.await);
    }

    /// The lease was given up with the write that recorded the run's end
    /// ([`Backend::end_execution`]): nothing is left to release.
    pub fn released_with_end(mut self) {
        self.renewal.abort();
        self.let_go();
    }
}

impl Drop for HeldLease {
    /// When the execution is dropped midway (a service shutting down): the
    /// release is queued behind the run's last writes, and nobody waits for it
    /// (`RunStore::settled` does). Dropped by a panic, the start stays counted.
    fn drop(&mut self) {
        self.renewal.abort();
        if self.token.is_empty() {
            return;
        }
        let released = match std::thread::panicking() {
            true => self.store.abandon_lease(&self.run_id, &self.token),
            false => self.store.release_lease(&self.run_id, &self.token),
        };
        lease::let_go(&self.token);
        let run_id = self.run_id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { report_release(&run_id, released.await) });
        }
    }
}

fn report_release(run_id: &str, released: Result<(), StoreError>) {
    if let Err(error) = released {
        // Harmless: on this host the lease is stale once this process is gone.
        tracing::warn!(
            "run {run_id}: cannot release its lease: {}",
            crate::error::chain_of(&error)
        );
    }
}

async fn renew_until_lost(
    store: Arc<dyn Backend>,
    id: String,
    token: String,
    taken_from: tokio::time::Instant,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    // The first renewal one period after the lease was taken (at once when
    // the write that took it was that slow).
    let mut ticks = tokio::time::interval_at(taken_from + RENEW_EVERY, RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the lease was last known good: the time a renewal that then
    // succeeded was sent (its new expiry is stamped after that), at first
    // the time before the write that took it.
    let mut good_at = taken_from;
    let distributed = store.distributed();
    let give_up = |at: tokio::time::Instant| async move {
        match distributed {
            true => tokio::time::sleep_until(at + GIVE_UP_AFTER).await,
            // On SQLite a live owner's lease binds expiry or not: never.
            false => std::future::pending().await,
        }
    };
    loop {
        let renewal = tokio::select! {
            _ = ticks.tick() => {
                let sent = tokio::time::Instant::now();
                tokio::select! {
                    renewed = store.renew_lease(&id, &token) => Some((sent, renewed)),
                    () = give_up(good_at) => None,
                }
            }
            () = give_up(good_at) => None,
        };
        match renewal {
            Some((sent, Ok(true))) => good_at = sent,
            Some((_, Ok(false))) => {
                tracing::warn!(
                    "run {id}: another process took over its lease; stopping its execution here"
                );
                break;
            }
            // The next tick tries again; the lease outlives a few failed renewals.
            Some((_, Err(error))) => tracing::warn!(
                "run {id}: cannot renew its lease: {}",
                crate::error::chain_of(&error)
            ),
            None => {
                // Another worker takes the run over once the lease expires:
                // stop while it still binds, so that two never execute it at once.
                tracing::warn!(
                    "run {id}: its lease could not be renewed for {GIVE_UP_AFTER:?}; stopping its execution here before the lease expires"
                );
                break;
            }
        }
    }
    lost.store(true, Ordering::SeqCst);
    cancel.cancel();
}
