//! The routes and their handlers. [`routes`] is the one list the router is
//! built from and the OpenAPI document is checked against.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use super::types::{
    self, AdvanceRequest, History, ListQuery, RerunRequest, RunsPage, Trigger, decode_cursor,
    encode_cursor,
};
use super::{ApiError, AppState, SERVICE_ACTOR};
use crate::runs::{Decision, RunError, stored_workflow};
use crate::store::{RunState, StoreError};
use crate::workflow::LoadedWorkflow;
use crate::workflow::SourceError;

/// One route: its path (OpenAPI syntax, which axum 0.8 shares), method, handler.
pub struct Route {
    pub path: &'static str,
    pub method: Method,
    pub handler: MethodRouter<Arc<AppState>>,
}

pub fn routes() -> Vec<Route> {
    let route = |path, method, handler| Route {
        path,
        method,
        handler,
    };
    vec![
        route("/workflows", Method::POST, post(create)),
        route("/workflows", Method::GET, get(list)),
        route("/workflows/{id}", Method::GET, get(show)),
        route("/workflows/{id}/history", Method::GET, get(history)),
        route(
            "/workflows/{id}/events",
            Method::GET,
            get(super::events::of_run),
        ),
        route("/workflows/{id}/advance", Method::POST, post(advance)),
        route("/workflows/{id}/cancel", Method::POST, post(cancel)),
        route("/workflows/{id}/resume", Method::POST, post(resume)),
        route("/workflows/{id}/rerun", Method::POST, post(rerun)),
        route("/definitions", Method::GET, get(definition)),
        route("/events", Method::GET, get(super::events::all)),
        route(
            "/registry/workflows",
            Method::GET,
            get(super::registry::workflows),
        ),
        route(
            "/registry/workflows/{name}/{tag}",
            Method::GET,
            get(super::registry::workflow),
        ),
        route(
            "/registry/agents",
            Method::GET,
            get(super::registry::agents),
        ),
        route("/health", Method::GET, get(health)),
        route("/metrics", Method::GET, get(metrics)),
        route("/openapi.json", Method::GET, get(openapi)),
    ]
}

type Body = Result<Json<Value>, JsonRejection>;

/// The run as `GET /workflows/{id}` shows it.
fn view(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let view = state.runner(SERVICE_ACTOR).view(id)?;
    Ok(serde_json::to_value(view).unwrap_or(Value::Null))
}

/// 201 with the new run's view and its location; the run goes on in the
/// background, here when it holds a `ticket`, else on whichever worker of
/// the shared database claims it first.
fn started(
    state: &Arc<AppState>,
    id: String,
    ticket: Option<super::admission::Ticket>,
    body: Value,
) -> Response {
    let location = format!("/workflows/{id}");
    if let Some(ticket) = ticket {
        state.continue_in_background(id, ticket);
    }
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

async fn create(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let start = types::start_request(body, &state.options.workflow_types)?;
    // Refused before the workflow is loaded: the checks are cheap, the load is not.
    let input_bytes = serde_json::to_vec(&start.input).map_or(0, |bytes| bytes.len()) as u64;
    let limit = state.admission.limits().max_input_bytes;
    if input_bytes > limit {
        return Err(ApiError::InputTooLarge {
            size: input_bytes,
            limit,
        });
    }
    let ticket = match state.admission.admit(input_bytes) {
        Ok(ticket) => Some(ticket),
        // No room here: a shared database queues it for the other workers,
        // up to a bound.
        Err(super::Refusal::ActiveRuns { .. }) if state.store.distributed() => {
            let limit = state.admission.limits().max_queued_runs;
            let queued = blocking(&state, move |state| Ok(state.store.queued(limit)?)).await?;
            if queued >= limit {
                return Err(super::Refusal::QueuedRuns { queued }.into());
            }
            None
        }
        Err(refusal) => return Err(refusal.into()),
    };
    let workflow = load_workflow(&state, &start.reference).await?;
    let input = match start.seed && workflow.workflow.inputs.is_some() {
        // The seed form's fields are pallet's adapter, not the client's
        // choice: a workflow with `inputs` gets those it declares.
        true => types::declared_only(start.input, &workflow),
        false => start.input,
    };
    // Checked (and defaulted) before the run is created: the stored input is the defaulted one.
    let input = workflow.check_input(input).map_err(ApiError::Input)?;
    let created = blocking(&state, move |state| {
        let run = state
            .runner(SERVICE_ACTOR)
            .create(&workflow, &start.reference, input)?;
        let body = view(state, &run.id)?;
        Ok((run, body))
    })
    .await;
    state.note_store_write(&created);
    let (run, body) = created?;
    Ok(started(&state, run.id, ticket, body))
}

/// Find, parse and check a workflow on a blocking thread, at most
/// [`AppState::loading`] at once: a big workflow is seconds of CPU work that
/// would otherwise hold a runtime thread, and a few of them every thread
/// (then neither `/health` nor SIGTERM is answered).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionQuery {
    workflow: String,
}

/// `GET /definitions?workflow=REF`: what a run of REF would execute, with its
/// declared inputs (what the UI's start form is drawn from).
async fn definition(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DefinitionQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    types::checked_reference(&query.workflow, "workflow")?;
    let loaded = load_workflow(&state, &query.workflow).await?;
    let metadata = &loaded.workflow.metadata;
    Ok(Json(json!({
        "id": metadata.id,
        "name": metadata.name,
        "version": metadata.version.to_string(),
        "description": metadata.description,
        "digest": crate::store::digest(&loaded.text),
        "source": loaded.origin,
        "steps": loaded.workflow.steps.len(),
        "inputs": loaded.workflow.inputs.as_ref().map(|inputs| inputs.describe()),
    })))
}

async fn load_workflow(
    state: &Arc<AppState>,
    reference: &str,
) -> Result<Arc<LoadedWorkflow>, ApiError> {
    let _permit = state
        .loading
        .acquire()
        .await
        .expect("the loading semaphore is never closed");
    let workflows = state.engine.workflows().clone();
    let runtime = tokio::runtime::Handle::current();
    let owned = reference.to_string();
    let loaded = tokio::task::spawn_blocking(move || {
        let loaded = runtime.block_on(workflows.load(&owned));
        // Its templates compile here, off the runtime's threads (a big
        // workflow takes long), not in the run's preflight.
        if let Ok(loaded) = &loaded {
            let _ = loaded.renderer();
        }
        loaded
    })
    .await
    .map_err(|error| ApiError::from(StoreError::TaskStopped(error)))?;
    loaded.map_err(|source| match source {
        SourceError::Unavailable { .. } => ApiError::WorkflowUnavailable {
            reference: reference.to_string(),
            source,
        },
        source => ApiError::Workflow {
            reference: reference.to_string(),
            source,
        },
    })
}

const MAX_LIMIT: u32 = 500;

async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let status = match &query.status {
        None => None,
        Some(text) => Some(RunState::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "status `{text}` is not a run state: expected one of {}",
                RunState::ALL.map(RunState::as_str).join(", ")
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit} is out of range 1..={MAX_LIMIT}"
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let workflow = query
        .workflow
        .clone()
        .filter(|workflow| !workflow.is_empty());
    let runs = blocking(&state, move |state| {
        Ok(state.store.list_page(
            status,
            workflow.as_deref(),
            limit,
            after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
        )?)
    })
    .await?;
    let next_cursor = match runs.last() {
        Some(last) if runs.len() == limit as usize => {
            Some(encode_cursor(&last.created_at, &last.id))
        }
        _ => None,
    };
    let page = RunsPage { runs, next_cursor };
    Ok(Json(json!(page)))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(blocking(&state, move |state| view(state, &id)).await?))
}

/// Store calls of a handler, on tokio's blocking threads (SQLite work must not hold the runtime).
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    calls: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || calls(&state))
        .await
        .map_err(|error| {
            ApiError::from(crate::runs::RunError::from(StoreError::TaskStopped(error)))
        })?
}

async fn history(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let transitions = blocking(&state, {
        let id = id.clone();
        move |state| Ok(state.store.history(&id)?)
    })
    .await?;
    let history = History { id, transitions };
    Ok(Json(json!(history)))
}

async fn advance(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let request: AdvanceRequest = types::typed(body)?;
    if request.trigger == Trigger::AgentComplete {
        // An unknown run is still a 404.
        blocking(&state, move |state| Ok(state.store.get(&id)?)).await?;
        return Err(ApiError::AgentCompleteNotPostable);
    }
    let approved = request.trigger == Trigger::HumanApproved;
    if request
        .phase_result
        .approved
        .is_some_and(|given| given != approved)
    {
        return Err(ApiError::invalid(
            "phase_result.approved contradicts the trigger",
        ));
    }
    let decision = Decision {
        actor: request
            .phase_result
            .actor
            .filter(|actor| !actor.is_empty())
            .unwrap_or_else(|| SERVICE_ACTOR.to_string()),
        comment: request.phase_result.comment,
        fields: request.phase_result.fields,
    };
    let run = blocking(&state, {
        let id = id.clone();
        move |state| {
            Ok(state
                .runner(SERVICE_ACTOR)
                .decide(&id, approved, decision)?)
        }
    })
    .await?;
    if run.status == RunState::InProgress {
        state.continue_in_background(id.clone(), state.admission.continuing());
    }
    Ok(Json(blocking(&state, move |state| view(state, &id)).await?))
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, {
        let id = id.clone();
        move |state| Ok(state.runner(SERVICE_ACTOR).cancel(&id)?)
    })
    .await?;
    state.stop_executing(&id);
    Ok(Json(blocking(&state, move |state| view(state, &id)).await?))
}

/// Continue an interrupted run, or apply an expired approval's `on_timeout`,
/// in the background (as `pallet resume` does in the foreground).
async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let continues = blocking(&state, {
        let id = id.clone();
        move |state| resumable(state, &id)
    })
    .await?;
    let status = match continues {
        true if !state.continue_in_background(id.clone(), state.admission.continuing()) => {
            return Err(ApiError::Executing { id });
        }
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    let view = blocking(&state, move |state| view(state, &id)).await?;
    Ok((status, Json(view)).into_response())
}

/// Start a new run of run `id`'s workflow and input from its top-level step
/// `from` (the steps before it reuse `id`'s outputs); it executes in the
/// background, as a run `POST /workflows` starts does.
async fn rerun(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let request: RerunRequest = types::typed(body)?;
    if request.from.trim().is_empty() {
        return Err(ApiError::field(
            "/from",
            "is empty: name the top-level step to run again from",
        ));
    }
    let created = blocking(&state, move |state| {
        let original = state.store.get(&id)?;
        // Admitted as a new run is, before anything is written.
        let input_bytes = serde_json::to_vec(&original.input).map_or(0, |bytes| bytes.len());
        let ticket = state.admission.admit(input_bytes as u64)?;
        let run = state
            .runner(SERVICE_ACTOR)
            .create_rerun(&id, &request.from)?;
        let body = view(state, &run.id)?;
        Ok((run, body, ticket))
    })
    .await;
    state.note_store_write(&created);
    let (run, body, ticket) = created?;
    Ok(started(&state, run.id, Some(ticket), body))
}

/// Whether run `id` is to be continued: refused (409) when it waits for a
/// human, has ended or already executes here; `false` when the timeout of its
/// expired approval just failed it, so nothing is left to run.
fn resumable(state: &AppState, id: &str) -> Result<bool, ApiError> {
    let runner = state.runner(SERVICE_ACTOR);
    if runner.fail_expired(id)? {
        return Ok(false);
    }
    let run = state.store.get(id)?;
    let id = id.to_string();
    match run.status {
        RunState::Pending | RunState::InProgress => {
            if state.lock_executing().contains_key(&id) {
                return Err(ApiError::Executing { id });
            }
            // Another process executes it: resuming here would only fail later, unseen.
            if let Some(lease) = state.store.live_lease(&id)? {
                return Err(RunError::Leased {
                    id,
                    host: lease.owner.host,
                    pid: lease.owner.pid,
                    since: lease.since,
                }
                .into());
            }
        }
        RunState::WaitingApproval => {
            let workflow = stored_workflow(&run)?;
            let waiting = runner.waiting(&run, &workflow)?;
            if !runner.expired(&waiting) {
                let step = waiting.step.id;
                return Err(RunError::Waiting { id, step }.into());
            }
        }
        status => return Err(RunError::Ended { id, status }.into()),
    }
    Ok(true)
}

/// 200 `healthy`, or 503 `degraded` with the reason when runs cannot be
/// recorded (so a load balancer stops sending work that would get 500s).
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mut body = json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    let Some(reason) = state.degraded() else {
        return Json(body).into_response();
    };
    body["status"] = json!("degraded");
    body["reason"] = json!(reason);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// The queue counted at most this deep for `/metrics` (one indexed count).
const METRICS_QUEUE_LIMIT: usize = 1_000_000;

async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let (runs, queued) = blocking(&state, |state| {
        Ok((
            state.store.count_by_status()?,
            state.store.queued(METRICS_QUEUE_LIMIT)?,
        ))
    })
    .await?;
    let page = state
        .metrics
        .render(&runs, state.admission.active(), queued);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response())
}

async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

pub async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
