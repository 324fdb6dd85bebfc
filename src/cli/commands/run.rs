//! `pallet run`: run the resolved workflow, write its results, report.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::outputs;
use crate::cli::printer::{self, EXIT_FAILED, Printer};
use crate::cli::settings::RunSettings;
use crate::cli::signals::stop_on_signal;
use crate::engine::{Engine, RunRecord, RunStatus};
use crate::runs::{RunError, Runner};
use crate::store::Backend;
use crate::workflow::LoadedWorkflow;

pub async fn command(settings: RunSettings, printer: Printer) -> anyhow::Result<ExitCode> {
    // The engine's events go to the thread writing the step files as they
    // finish, which hands them on to the progress display.
    let (events, receiver) = mpsc::unbounded_channel();
    let (shown, progress) = mpsc::unbounded_channel();
    let progress = settings
        .progress
        .map(|view| tokio::spawn(printer::print_progress(progress, view)));
    // Before the first step: a run that could not write its results does not start.
    let held = outputs::lock(&settings.out)?;
    let live = outputs::Live::start(
        &settings.out,
        receiver,
        settings.progress.is_some().then_some(shown),
    )
    .context("cannot start writing the results")?;
    let engine = settings.settings.engine().events(events).build();
    let cancel = CancellationToken::new();
    let interrupt = CancellationToken::new();
    tokio::spawn(stop_on_signal(cancel.clone(), interrupt.clone()));
    // A store error after the engine ran still brings its record: the outputs
    // are written, then the error is reported.
    let (record, unrecorded) = match &settings.store {
        Some(store) => {
            let stored = run_stored(
                store.as_ref(),
                &engine,
                settings.workflow.clone(),
                &settings.reference,
                settings.input.clone(),
                cancel,
                interrupt,
            )
            .await;
            if let Err(error) = &stored
                && let Some(RunError::Interrupted { id }) = error.downcast_ref()
            {
                drop(engine);
                live.discard();
                settings.settings.stop_agents().await;
                return Ok(printer::interrupted(id));
            }
            match stored {
                Ok(record) => (record, None),
                Err(error) => match error.downcast_ref::<RunError>().and_then(RunError::record) {
                    Some(record) => (record.clone(), Some(error)),
                    None => {
                        drop(engine);
                        live.discard();
                        return Err(error);
                    }
                },
            }
        }
        None => {
            let record = engine
                .run(settings.workflow.clone(), settings.input.clone(), cancel)
                .await;
            (record, None)
        }
    };
    drop(engine);
    // Closing the database (the WAL checkpointed and removed, so the next
    // process has none to recover): on another thread while the output files
    // are written.
    let closing = settings
        .store
        .map(|store| tokio::task::spawn_blocking(move || store.close()));
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    settings.settings.stop_agents().await;
    let written = outputs::write(&settings.out, &record, Some(live), &held)?;
    printer::report_run(
        &record,
        settings.json,
        printer.quiet(),
        &settings.out,
        &written,
    )?;
    if let Some(closing) = closing {
        let _ = closing.await;
    }
    if let Some(error) = unrecorded {
        return Err(error);
    }
    Ok(
        if matches!(
            record.status,
            RunStatus::Completed | RunStatus::WaitingApproval
        ) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        },
    )
}

/// A durable run, the engine's record of this process returned.
async fn run_stored(
    store: &dyn Backend,
    engine: &Engine,
    workflow: Arc<LoadedWorkflow>,
    reference: &str,
    input: Value,
    cancel: CancellationToken,
    interrupt: CancellationToken,
) -> anyhow::Result<RunRecord> {
    let runner = Runner {
        store,
        engine,
        actor: crate::cli::settings::decision::actor(None)?,
        interrupt,
    };
    let outcome = runner.start(workflow, reference, input, cancel).await?;
    outcome.record.context("the run ended before any step ran")
}
