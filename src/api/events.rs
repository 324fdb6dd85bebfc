//! Live events as Server-Sent Events: `GET /events` and
//! `GET /workflows/{id}/events`. The events are rows of the run database
//! ([`crate::store::events`]), so a stream resumes from any event id it
//! sent (`Last-Event-ID`), after a restart too, and on a shared database
//! shows the runs every worker executes. One task per service tails the
//! table and fans new events out to the streams; a stream replays from the
//! database what it missed (before it connected, or while too slow).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ApiError, AppState};
use crate::store::events::{Event, EventCursor, EventScope};
use crate::store::{Backend, RunState, StoreError};

/// How often the tail looks for new events.
const POLL: Duration = Duration::from_millis(100);
/// Events read per query (replay pages and the tail).
const PAGE: usize = 200;
/// Events kept for streams that are behind; one further behind replays.
const FAN_OUT: usize = 1024;
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events a stream buffers for a slow client before it waits.
const SEND_BUFFER: usize = 64;

/// The streams' shared tail of the event table.
pub struct EventHub {
    sender: broadcast::Sender<Arc<Event>>,
    /// One permit per open stream (`--max-event-streams`).
    streams: Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl EventHub {
    pub fn new(max_streams: usize) -> EventHub {
        EventHub {
            sender: broadcast::channel(FAN_OUT).0,
            streams: Arc::new(tokio::sync::Semaphore::new(max_streams)),
            limit: max_streams,
        }
    }

    /// Read new events after `from` (the newest event when the service
    /// started, read before it accepts a stream: a stream that opens later
    /// replays up to where the tail took over) and send them to the streams
    /// until `stop`.
    pub async fn tail(
        self: Arc<Self>,
        store: Arc<dyn Backend>,
        from: Option<EventCursor>,
        stop: CancellationToken,
    ) {
        let mut cursor = from;
        loop {
            if stop.is_cancelled() {
                return;
            }
            // Read even with no stream open: a stream that opens takes what
            // the tail reads from then on, and replays the rest itself.
            let read = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    let after = match cursor {
                        Some(cursor) => cursor,
                        None => store.last_event()?,
                    };
                    Ok::<_, StoreError>((after, store.events_after(after, &EventScope::All, PAGE)?))
                })
                .await
            };
            match read {
                Ok(Ok((after, events))) => {
                    cursor = Some(events.last().map_or(after, |event| event.cursor));
                    let full = events.len() == PAGE;
                    for event in events {
                        let _ = self.sender.send(Arc::new(event));
                    }
                    if full {
                        continue;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!("cannot read events: {}", crate::error::chain_of(&error))
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only the events of this workflow id (`GET /events`).
    workflow: Option<String>,
    /// Only the events of this run (`GET /events`).
    run: Option<String>,
    /// Start after this event id (`Last-Event-ID` wins when both are given);
    /// `0` replays from the first event.
    after: Option<String>,
}

pub async fn all(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let scope = match (query.run, query.workflow) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give `run` or `workflow`, not both: a run's events are also its workflow's",
            ));
        }
        (Some(run), None) => {
            return stream(state, headers, query.after, EventScope::Run(run)).await;
        }
        (None, Some(workflow)) => EventScope::Workflow(workflow),
        (None, None) => EventScope::All,
    };
    stream(state, headers, query.after, scope).await
}

pub async fn of_run(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    if query.run.is_some() || query.workflow.is_some() {
        return Err(ApiError::invalid(
            "`run` and `workflow` are for `GET /events`; this stream is the run's",
        ));
    }
    stream(state, headers, query.after, EventScope::Run(id)).await
}

async fn stream(
    state: Arc<AppState>,
    headers: HeaderMap,
    after: Option<String>,
    scope: EventScope,
) -> Result<Response, ApiError> {
    let hub = &state.events;
    let resume = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::invalid("the `Last-Event-ID` header is not ASCII text"))
        })
        .transpose()?
        .or(after);
    let resume = resume
        .map(|text| text.parse::<EventCursor>())
        .transpose()
        .map_err(|error| ApiError::invalid(error.to_string()))?;
    let permit = hub
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| super::Refusal::EventStreams { limit: hub.limit })?;
    // Subscribed before the replay's first read: whatever it misses comes here.
    let receiver = hub.sender.subscribe();
    let store = state.store.clone();
    let start = {
        let (store, scope) = (store.clone(), scope.clone());
        tokio::task::spawn_blocking(move || -> Result<Result<EventCursor, String>, StoreError> {
            if let EventScope::Run(id) = &scope {
                store.get(id)?; // 404 for an unknown run, before the stream starts
            }
            let newest = store.last_event()?;
            Ok(match (resume, &scope) {
                // An id this database never sent (another database's, or one
                // reset since) would skip every event to come.
                (Some(cursor), _) if cursor > newest => Err(format!(
                    "event id `{cursor}` is after the newest event of this run database (`{newest}`): it is another database's; reconnect without `Last-Event-ID`"
                )),
                (Some(cursor), _) => Ok(cursor),
                // A run's stream tells its whole story; the others start now.
                (None, EventScope::Run(_)) => Ok(EventCursor::default()),
                (None, _) => Ok(newest),
            })
        })
        .await
        .map_err(StoreError::TaskStopped)??
        .map_err(ApiError::invalid)?
    };
    let (sender, mut events) = mpsc::channel(SEND_BUFFER);
    let closing = state.closing.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let gone = sender.clone();
        tokio::select! {
            _ = send_events(store, scope, start, receiver, sender) => {}
            _ = closing.cancelled() => {}
            // The client left (the response body was dropped): stop waiting for events.
            _ = gone.closed() => {}
        }
    });
    let events = futures::stream::poll_fn(move |context| events.poll_recv(context));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

type Sender = mpsc::Sender<Result<SseEvent, Infallible>>;

/// Replay from the database until caught up, then the hub's events; back to
/// the database when the hub went on without this stream. A run's stream
/// ends with an `end` event right after the run's terminal event (the
/// store writes a run's end last in its transaction), never before: on
/// PostgreSQL a run's row can read ended before its events are visible.
async fn send_events(
    store: Arc<dyn Backend>,
    scope: EventScope,
    mut cursor: EventCursor,
    mut receiver: broadcast::Receiver<Arc<Event>>,
    mut sender: Sender,
) {
    let of_run = matches!(scope, EventScope::Run(_));
    let mut first_replay = true;
    loop {
        // Replay.
        let mut sent_any = false;
        loop {
            let read = {
                let (store, scope) = (store.clone(), scope.clone());
                tokio::task::spawn_blocking(move || store.events_after(cursor, &scope, PAGE)).await
            };
            let Ok(Ok(page)) = read else {
                return; // the store fails: the client reconnects and resumes
            };
            let full = page.len() == PAGE;
            for event in page {
                cursor = event.cursor;
                sent_any = true;
                if !send(&mut sender, &event).await {
                    return;
                }
                if of_run && ends_run(&event) {
                    let _ = send_end(&mut sender).await;
                    return;
                }
            }
            if !full {
                break;
            }
        }
        // Resumed after the run's end: nothing more will come.
        if let EventScope::Run(id) = &scope
            && first_replay
            && !sent_any
            && ended_at_or_before(&store, id, cursor).await
        {
            let _ = send_end(&mut sender).await;
            return;
        }
        first_replay = false;
        // Live.
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if event.cursor <= cursor {
                        continue;
                    }
                    cursor = event.cursor;
                    if !scope.admits(&event) {
                        continue;
                    }
                    if !send(&mut sender, &event).await {
                        return;
                    }
                    if of_run && ends_run(&event) {
                        let _ = send_end(&mut sender).await;
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// A client that reads nothing for this long is dropped (its permit freed).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

async fn send_end(sender: &mut Sender) -> bool {
    let end = SseEvent::default().event("end").data("{}");
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sender.send(Ok(end))).await,
        Ok(Ok(()))
    )
}

async fn send(sender: &mut Sender, event: &Event) -> bool {
    let message = SseEvent::default()
        .id(event.cursor.to_string())
        .data(event.to_json().to_string());
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sender.send(Ok(message))).await,
        Ok(Ok(()))
    )
}

fn ends_run(event: &Event) -> bool {
    event
        .kind
        .strip_prefix("run.")
        .and_then(RunState::parse)
        .is_some_and(RunState::is_terminal)
}

/// Whether run `id` has ended with its terminal event at or before `cursor`.
async fn ended_at_or_before(store: &Arc<dyn Backend>, id: &str, cursor: EventCursor) -> bool {
    let (store, id) = (store.clone(), id.to_string());
    let read = tokio::task::spawn_blocking(move || -> Result<bool, StoreError> {
        if !store.get(&id)?.status.is_terminal() {
            return Ok(false);
        }
        let events = store.events_after(
            EventCursor::default(),
            &EventScope::Run(id),
            usize::MAX >> 1,
        )?;
        Ok(events
            .iter()
            .rev()
            .find(|event| ends_run(event))
            .is_some_and(|end| end.cursor <= cursor))
    })
    .await;
    matches!(read, Ok(Ok(true)))
}
