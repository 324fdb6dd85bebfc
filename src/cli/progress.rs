//! The live progress view on a terminal: one line per step event on stderr.

use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::{Event, StepStatus};

pub async fn print(mut events: UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        eprintln!("{}", line(&event));
    }
}

fn line(event: &Event) -> String {
    match event {
        Event::StepStarted { step, skill } => match skill {
            Some(skill) => format!("  ▶ {step} ({skill}) running"),
            None => format!("  ▶ {step} running"),
        },
        Event::StepRetrying {
            step,
            attempt,
            delay,
            error,
        } => {
            format!(
                "  ↻ {step} retrying in {} ms (attempt {attempt}): {error}",
                delay.as_millis()
            )
        }
        Event::StepFinished { step, record } => {
            let took = format!("{:.0} ms", record.duration_ms);
            match record.status {
                StepStatus::Completed => format!("  ✓ {step} done in {took}"),
                StepStatus::Failed => format!(
                    "  ✗ {step} failed after {took}: {}",
                    record.error.as_deref().unwrap_or("unknown error")
                ),
                StepStatus::Cancelled => format!("  ■ {step} cancelled after {took}"),
                StepStatus::Skipped => format!("  - {step} skipped"),
                StepStatus::Waiting => format!("  ? {step} waits for approval"),
            }
        }
    }
}
