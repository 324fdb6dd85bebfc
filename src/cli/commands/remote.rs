//! The durable-run commands against a running `pallet serve` (`--server URL`):
//! the same commands, output and exit status as against the local database,
//! through the service's API client.

use std::process::ExitCode;

use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::api::client::{ApiClient, ClientError};
use crate::api::types::{AdvanceRequest, PhaseResult, Trigger};
use crate::cli::args::{DurableCommand, RunsCommand};
use crate::cli::printer::{self, BadInput};
use crate::cli::settings::decision::{actor, parse_fields, parse_status};

pub async fn command(client: &ApiClient, command: DurableCommand) -> anyhow::Result<ExitCode> {
    let refused = |error| answered_error(error, client.has_token());
    match command {
        DurableCommand::Runs(args) => {
            match args.command {
                None => {
                    let status = parse_status(args.status.as_deref())?;
                    let runs = client.list(status, args.limit).await.map_err(refused)?;
                    printer::print_list(&Value::Array(runs), args.json)?;
                }
                Some(RunsCommand::Show { id }) => {
                    let view = client.show(&id).await.map_err(refused)?;
                    printer::print_view(&view, args.json)?;
                }
                Some(RunsCommand::History { id }) => {
                    let history = client.history(&id).await.map_err(refused)?;
                    printer::print_history(&Value::Array(history.transitions), args.json)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Cancel(args) => {
            let view = client.cancel(&args.id).await.map_err(refused)?;
            if args.json {
                printer::print_json(&view)?;
            } else {
                errln!("run {} cancelled", args.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        DurableCommand::Approve(args) => {
            let fields = parse_fields(&args.fields)?;
            let request = advance(true, actor(args.actor)?, args.comment, fields);
            let view = client.advance(&args.id, &request).await;
            settle(client, &args.id, view, args.engine.json).await
        }
        DurableCommand::Reject(args) => {
            let request = advance(false, actor(args.actor)?, args.comment, Map::new());
            let view = client.advance(&args.id, &request).await;
            settle(client, &args.id, view, args.engine.json).await
        }
        DurableCommand::Resume(args) => {
            let view = client.resume(&args.id).await;
            settle(client, &args.id, view, args.engine.json).await
        }
        DurableCommand::Rerun(args) => {
            // The service answers the new run: that is the one followed.
            let view = client
                .rerun(&args.id, &args.from)
                .await
                .map_err(|error| answered_error(error, client.has_token()))?;
            let new_id = view["id"].as_str().unwrap_or_default().to_string();
            settle(client, &new_id, Ok(view), args.engine.json).await
        }
    }
}

/// `POST /workflows/{id}/advance`'s body for a decision.
fn advance(
    approved: bool,
    actor: String,
    comment: Option<String>,
    fields: Map<String, Value>,
) -> AdvanceRequest {
    AdvanceRequest {
        trigger: if approved {
            Trigger::HumanApproved
        } else {
            Trigger::HumanRejected
        },
        phase_result: PhaseResult {
            comment,
            fields,
            actor: Some(actor),
            approved: None,
        },
    }
}

/// Follow run `id` from the service's answer until it ends or waits, report it.
async fn settle(
    client: &ApiClient,
    id: &str,
    view: Result<Value, ClientError>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let refused = |error| answered_error(error, client.has_token());
    let view = client
        .settle(id, view.map_err(refused)?)
        .await
        .map_err(refused)?;
    printer::report_run_state(&view, json)?;
    Ok(printer::run_exit_code(&view))
}

/// The service refused: its client errors are the user's input (exit 2),
/// with the hints the local commands give.
fn answered_error(error: ClientError, had_token: bool) -> anyhow::Error {
    let Some(status) = error.status().filter(StatusCode::is_client_error) else {
        return error.into();
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED if had_token => {
            Some("PALLET_API_TOKEN is not the token the service was started with")
        }
        StatusCode::UNAUTHORIZED => {
            Some("set PALLET_API_TOKEN to the token the service was started with")
        }
        StatusCode::NOT_FOUND => Some("list runs with `pallet runs --server URL`"),
        StatusCode::CONFLICT => Some("see the run's state with `pallet runs show ID --server URL`"),
        _ => None,
    };
    let mut bad = BadInput::new(error.to_string());
    bad.hint = hint.map(str::to_string);
    bad.into()
}
