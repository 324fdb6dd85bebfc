//! The live progress view on a terminal: one line per step event on stderr.

use tokio::sync::mpsc::UnboundedReceiver;

use super::terminal::terminal_safe;
use crate::engine::{Event, StepStatus};

pub async fn print_progress(mut events: UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        errln!("{}", line(&event));
    }
}

/// The step ids, skills and errors come from workflows and agents: shown inert.
fn line(event: &Event) -> String {
    match event {
        Event::StepStarted { step, skill } => {
            let step = terminal_safe(step);
            match skill.as_deref().map(terminal_safe) {
                Some(skill) => format!("  ▶ {step} ({skill}) running"),
                None => format!("  ▶ {step} running"),
            }
        }
        Event::StepRetrying {
            step,
            attempt,
            delay,
            error,
        } => {
            format!(
                "  ↻ {} retrying in {} ms (attempt {attempt}): {}",
                terminal_safe(step),
                delay.as_millis(),
                terminal_safe(error)
            )
        }
        Event::StepStatusMessage { step, message } => {
            // One line per message: the agent's line breaks become spaces.
            let flat = message.replace(['\n', '\r'], " ");
            format!("  … {}: {}", terminal_safe(step), terminal_safe(&flat))
        }
        Event::StepFinished { step, record } => {
            let step = terminal_safe(step);
            let took = format!("{:.0} ms", record.duration_ms);
            match record.status {
                StepStatus::Completed => format!("  ✓ {step} done in {took}"),
                StepStatus::Failed => format!(
                    "  ✗ {step} failed after {took}: {}",
                    terminal_safe(record.error.as_deref().unwrap_or("unknown error"))
                ),
                StepStatus::Cancelled => format!("  ■ {step} cancelled after {took}"),
                StepStatus::Skipped => {
                    match record.inputs.as_ref().and_then(|inputs| inputs.get("if")) {
                        Some(value) => format!(
                            "  - {step} skipped (`if` was {})",
                            terminal_safe(&value.to_string())
                        ),
                        None => format!("  - {step} skipped"),
                    }
                }
                StepStatus::Waiting => format!("  ? {step} waits for approval"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_one_inert_line() {
        let event = Event::StepStatusMessage {
            step: "talk".to_string(),
            message: "step 1\nof 3 \u{1b}[2J".to_string(),
        };
        assert_eq!(line(&event), "  … talk: step 1 of 3 \\u{1b}[2J");
    }
}
