//! The orchestrator HTTP service (axum): start runs, follow them, decide
//! approvals, cancel. Runs execute in background tasks through the same
//! [`Runner`] as the CLI; their state lives in the [`RunStore`], so a run the
//! process did not finish is resumed by the next [`serve`].
//!
//! Errors are RFC 9457 problem documents ([`error`]); [`openapi`] describes
//! the routes of [`routes`].

mod admission;
mod auth;
pub mod client;
pub mod error;
pub mod events;
mod limits;
pub mod metrics;
pub mod openapi;
mod registry;
pub mod routes;
pub mod types;
pub mod ui;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::Engine;
use crate::http_server::{self, ConnectionLimits};
use crate::runs::Runner;
use crate::store::{Backend, RunState};
pub use admission::{AdmissionLimits, Refusal};
pub use error::ApiError;
pub use types::default_workflow_types;

/// Request bodies larger than this are refused (413), unless the input
/// limit asks for more ([`ServiceOptions::body_limit`]).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The actor recorded for what the service does by itself.
const SERVICE_ACTOR: &str = "api";

/// How the service behaves, resolved by `pallet serve`.
pub struct ServiceOptions {
    /// When set, every route but `/health` needs `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Seed `workflow_type` -> workflow reference.
    pub workflow_types: BTreeMap<String, String>,
    /// How long in-flight runs may go on after shutdown starts.
    pub grace: Duration,
    /// Open connections and how long a client may take to send headers.
    pub connections: ConnectionLimits,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Runs executing at once and the size of their inputs.
    pub admission: AdmissionLimits,
    /// Event streams open at once.
    pub max_event_streams: usize,
    /// The registry the registry routes list (None: they answer 404).
    pub registry: Option<Arc<crate::registry::Registry>>,
}

impl ServiceOptions {
    /// The largest request body: a run's largest input and room for the rest.
    pub fn body_limit(&self) -> usize {
        let input = usize::try_from(self.admission.max_input_bytes).unwrap_or(usize::MAX);
        BODY_LIMIT.max(input.saturating_add(64 * 1024))
    }
}

impl Default for ServiceOptions {
    fn default() -> ServiceOptions {
        ServiceOptions {
            token: None,
            workflow_types: default_workflow_types(),
            grace: Duration::from_secs(30),
            connections: ConnectionLimits::default(),
            body_timeout: Duration::from_secs(30),
            max_event_streams: 100,
            registry: None,
            admission: AdmissionLimits::default(),
        }
    }
}

/// What every request handler shares.
pub struct AppState {
    pub store: Arc<dyn Backend>,
    pub engine: Engine,
    pub options: ServiceOptions,
    started: Instant,
    tasks: TaskTracker,
    /// Drops the runs still executing when the grace period ends (they stay resumable).
    abort: CancellationToken,
    /// Run id -> (generation, token cancelling its execution in this process).
    executing: Mutex<HashMap<String, (u64, CancellationToken)>>,
    generation: std::sync::atomic::AtomicU64,
    /// Workflow loads (CPU work on blocking threads) allowed at once.
    loading: tokio::sync::Semaphore,
    /// The last failed store write since the last one that succeeded.
    store_failure: Mutex<Option<(Instant, String)>>,
    admission: admission::Admission,
    metrics: Arc<metrics::Metrics>,
    events: Arc<events::EventHub>,
    /// Cancelled when the service starts to shut down: event streams end.
    closing: CancellationToken,
}

/// A store write failure this recent makes `/health` answer 503.
pub const STORE_FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl AppState {
    pub fn new(store: Arc<dyn Backend>, engine: Engine, options: ServiceOptions) -> Arc<AppState> {
        let metrics = Arc::new(metrics::Metrics::default());
        Arc::new(AppState {
            store,
            engine: engine.with_observer(metrics.clone()),
            metrics,
            started: Instant::now(),
            tasks: TaskTracker::new(),
            abort: CancellationToken::new(),
            executing: Mutex::new(HashMap::new()),
            generation: Default::default(),
            loading: tokio::sync::Semaphore::new(loading_permits()),
            store_failure: Mutex::new(None),
            admission: admission::Admission::new(options.admission),
            events: Arc::new(events::EventHub::new(options.max_event_streams)),
            closing: CancellationToken::new(),
            options,
        })
    }

    /// Remember a failed store write (shown by `/health`), or forget it after one succeeded.
    fn note_store_write<T>(&self, outcome: &Result<T, ApiError>) {
        let mut failure = self
            .store_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome {
            Ok(_) => *failure = None,
            Err(error @ ApiError::Run(crate::runs::RunError::Store(_))) => {
                *failure = Some((Instant::now(), crate::error::chain_of(error)));
            }
            Err(_) => {}
        }
    }

    /// Why the service cannot work now, if it cannot: a store write failed
    /// within [`STORE_FAILURE_WINDOW`] and none succeeded since.
    fn degraded(&self) -> Option<String> {
        let failure = self
            .store_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failure
            .as_ref()
            .filter(|(at, _)| at.elapsed() < STORE_FAILURE_WINDOW)
            .map(|(at, error)| {
                format!(
                    "the run store failed a write {} s ago: {error}",
                    at.elapsed().as_secs()
                )
            })
    }

    fn runner(&self, actor: &str) -> Runner<'_> {
        Runner {
            store: self.store.as_ref(),
            engine: &self.engine,
            actor: actor.to_string(),
            // The service leaves runs resumable by dropping their executions.
            interrupt: CancellationToken::new(),
        }
    }

    /// Execute run `id` (in progress or pending) in a background task until it
    /// ends or waits for approval, holding `ticket` meanwhile; false (nothing
    /// started) when this service executes it already.
    fn continue_in_background(self: &Arc<AppState>, id: String, ticket: admission::Ticket) -> bool {
        self.execute_in_background(id, None, ticket)
    }

    /// [`AppState::continue_in_background`], under the lease `claimed` when
    /// a claim took it (given back when this service executes the run already).
    fn execute_in_background(
        self: &Arc<AppState>,
        id: String,
        claimed: Option<(String, std::time::Instant)>,
        ticket: admission::Ticket,
    ) -> bool {
        let cancel = CancellationToken::new();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.lock_executing().entry(id.clone()) {
            // Two requests at once: the first one's execution stays cancellable.
            std::collections::hash_map::Entry::Occupied(_) => {
                if let Some((token, _)) = claimed {
                    let store = self.store.clone();
                    self.tasks.spawn(async move {
                        let _ = store.release_lease(&id, &token).await;
                        crate::store::lease::let_go(&token);
                    });
                }
                return false;
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((generation, cancel.clone()));
            }
        }
        let state = self.clone();
        self.tasks.spawn(async move {
            let _ticket = ticket;
            let runner = state.runner(SERVICE_ACTOR);
            let execution = async {
                match claimed {
                    Some((token, taken_from)) => {
                        runner.resume_claimed(&id, token, taken_from, cancel).await
                    }
                    None => runner.resume(&id, cancel).await,
                }
            };
            tokio::select! {
                outcome = execution => {
                    if let Err(error @ (crate::runs::RunError::Leased { .. } | crate::runs::RunError::Ended { .. })) = &outcome {
                        // Another worker of a shared database took it first
                        // (and may have ended it): nothing to do here.
                        tracing::debug!("run {id}: {}", crate::error::chain_of(error));
                    } else if let Err(error) = outcome {
                        tracing::warn!("run {id}: {}", crate::error::chain_of(&error));
                        if matches!(error, crate::runs::RunError::Store(_)) {
                            state.note_store_write::<()>(&Err(ApiError::Run(error)));
                        }
                    }
                }
                () = state.abort.cancelled() => {
                    tracing::info!("run {id} left in progress at shutdown; it is resumed on the next start");
                }
            }
            let mut executing = state.lock_executing();
            if executing.get(&id).is_some_and(|(found, _)| *found == generation) {
                executing.remove(&id);
            }
        });
        true
    }

    /// Stop this process's execution of run `id`, if any.
    fn stop_executing(&self, id: &str) {
        if let Some((_, cancel)) = self.lock_executing().remove(id) {
            cancel.cancel();
        }
    }

    fn lock_executing(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (u64, CancellationToken)>> {
        self.executing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs left pending or in progress by a process that is gone; a run whose
    /// lease another live process holds is skipped. All are listed before any
    /// is resumed: a resumed pending run turns `in_progress` and must not be
    /// picked up twice.
    fn resume_interrupted(self: &Arc<AppState>) -> Result<usize, ApiError> {
        let mut ids = Vec::new();
        for status in [RunState::Pending, RunState::InProgress] {
            let mut after: Option<(String, String)> = None;
            loop {
                let page = self.store.list_page(
                    Some(status),
                    None,
                    500,
                    after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
                )?;
                let Some(last) = page.last() else { break };
                after = Some((last.created_at.clone(), last.id.clone()));
                ids.extend(page.into_iter().map(|run| run.id));
            }
        }
        let mut resumed = 0;
        for id in ids {
            if let Some(lease) = self.store.live_lease(&id)? {
                tracing::info!(
                    "run {id} is being executed by pid {} on host {} (since {}): not resumed here",
                    lease.owner.pid,
                    lease.owner.host,
                    lease.since
                );
                continue;
            }
            if self.store.executor_starts(&id)? >= CRASHED_EXECUTIONS {
                let reason = crashed_twice(&id);
                tracing::warn!("run {id} not resumed: {reason}");
                self.store.set_error(&id, &reason)?;
                continue;
            }
            tracing::info!("resuming run {id}");
            self.continue_in_background(id, self.admission.continuing());
            resumed += 1;
        }
        Ok(resumed)
    }
}

/// Executions that never ended after which start-up resume (and a worker's
/// claim) leaves a run alone: an answer that kills the executor would kill
/// every restart too.
const CRASHED_EXECUTIONS: u32 = 2;

/// How often a worker of a shared database looks for runs nobody executes
/// and for cancels of the runs it executes, made on other workers (polling
/// rather than LISTEN/NOTIFY: no connection held per worker for it, it works
/// through transaction-pooling proxies, and a missed notification cannot
/// leave a run waiting; the cost is one indexed query per tick).
pub const CLAIM_EVERY: Duration = Duration::from_millis(200);

/// Runs claimed at most per tick (a claim is one transaction).
const CLAIM_BATCH: usize = 64;

impl AppState {
    /// A worker of a shared database: until `stop`, claim the runs nobody
    /// executes while this service has room for them, and stop executing
    /// the runs another worker cancelled.
    async fn work_the_queue(self: Arc<AppState>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(CLAIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            self.stop_cancelled_elsewhere().await;
            let free = self.admission.free();
            if free == 0 {
                continue;
            }
            let claims = match self
                .store
                .claim(free.min(CLAIM_BATCH), CRASHED_EXECUTIONS)
                .await
            {
                Ok(claims) => claims,
                Err(error) => {
                    tracing::warn!("cannot claim runs: {}", crate::error::chain_of(&error));
                    continue;
                }
            };
            for id in claims.crashed {
                tracing::warn!("run {id} not resumed: {}", crashed_twice(&id));
                let (store, reason) = (self.store.clone(), crashed_twice(&id));
                let _ = tokio::task::spawn_blocking(move || store.set_error(&id, &reason)).await;
            }
            let taken_from = claims.taken_from.unwrap_or_else(std::time::Instant::now);
            for (id, token) in claims.leased {
                tracing::info!("run {id} claimed");
                let claimed = Some((token, taken_from));
                self.execute_in_background(id, claimed, self.admission.continuing());
            }
        }
    }

    /// Stop the executions of this service whose runs were cancelled
    /// meanwhile (by a cancel another worker answered).
    async fn stop_cancelled_elsewhere(&self) {
        let ids: Vec<String> = self.lock_executing().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        let Ok(Ok(statuses)) = tokio::task::spawn_blocking(move || store.statuses(&ids)).await
        else {
            return;
        };
        for (id, status) in statuses {
            // Only a cancel ends a run its executor did not end itself.
            if status == RunState::Cancelled {
                tracing::info!("run {id} is {status}: its execution here stops");
                self.stop_executing(&id);
            }
        }
    }
}

fn crashed_twice(id: &str) -> String {
    format!(
        "the executor crashed twice while running this run; resume it by hand with `pallet resume {id}` after fixing the cause"
    )
}

/// One workflow load per CPU: more would only queue for the same cores.
fn loading_permits() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// The variable `pallet serve` reads its token from.
pub const TOKEN_VARIABLE: &str = "PALLET_API_TOKEN";

/// Refuse to expose the service beyond this machine without a strong token.
pub fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<(), ApiError> {
    crate::bearer::check_exposure(addr, token, TOKEN_VARIABLE).map_err(ApiError::Exposed)
}

/// The router over `state`: every route of [`routes::routes`], auth, body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for route in routes::routes() {
        router = router.route(route.path, route.handler);
    }
    router
        .merge(ui::router())
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(state.options.body_limit()))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` completes: resume interrupted runs
/// first; at shutdown stop accepting, let running runs go on for the grace
/// period, then drop the rest (they stay `in_progress`, resumable).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    // A worker of a shared database takes runs from the queue as it has
    // room (the others' included); alone, a service resumes its own at start.
    let stop_claims = CancellationToken::new();
    if state.store.distributed() {
        tokio::spawn(state.clone().work_the_queue(stop_claims.clone()));
    } else {
        let resumed = state.resume_interrupted()?;
        if resumed > 0 {
            tracing::info!("resumed {resumed} interrupted run(s)");
        }
    }
    let newest = {
        let store = state.store.clone();
        tokio::task::spawn_blocking(move || store.last_event().ok())
            .await
            .ok()
            .flatten()
    };
    tokio::spawn(
        state
            .events
            .clone()
            .tail(state.store.clone(), newest, state.closing.clone()),
    );
    let shutdown = {
        let (stop_claims, closing) = (stop_claims.clone(), state.closing.clone());
        async move {
            shutdown.await;
            stop_claims.cancel();
            // Streams never end by themselves: the grace period is for requests that do.
            closing.cancel();
        }
    };
    // In-flight requests get the grace period too; runs are waited for below.
    http_server::serve(
        listener,
        router(state.clone()),
        state.options.connections,
        shutdown,
        state.options.grace,
    )
    .await;
    stop_claims.cancel();
    state.tasks.close();
    if tokio::time::timeout(state.options.grace, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "runs still executing after the grace period of {}: left resumable",
            humantime::format_duration(state.options.grace)
        );
        state.abort.cancel();
        state.tasks.wait().await;
        // The dropped executions' leases are released (their starts were no
        // crash) before the process exits.
        if let Err(error) = state.store.settled().await {
            tracing::warn!(
                "cannot release the leases of the runs left resumable: {}",
                crate::error::chain_of(&error)
            );
        }
    }
    Ok(())
}
