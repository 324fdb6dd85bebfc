//! The progress of `pallet run` on stderr. On a terminal, a live view: a
//! tree of the steps, one line each (children of a sub-workflow or loop
//! under their parent, by their qualified ids `PARENT/CHILD`), with a
//! spinner while they run, their status and duration, a pending retry and
//! the agent's latest status message, redrawn in place ten times a second.
//! Else (a pipe, a CI log) one plain line per step event. Nothing with
//! `--quiet` or `--json`.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::terminal::terminal_safe;
use crate::engine::{Event, StepStatus};

const FRAME: Duration = Duration::from_millis(100);
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressView {
    /// Redrawn in place (stderr is a terminal).
    Redraw,
    /// One line per step event.
    Lines,
}

pub async fn print_progress(events: UnboundedReceiver<Event>, view: ProgressView) {
    match view {
        ProgressView::Redraw => redrawn(events).await,
        ProgressView::Lines => lines(events).await,
    }
}

async fn lines(mut events: UnboundedReceiver<Event>) {
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
            Ended::of(record).line("  ", &terminal_safe(step), "", "")
        }
    }
}

async fn redrawn(mut events: UnboundedReceiver<Event>) {
    let mut view = View::default();
    let mut drawn = 0;
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => view.apply(event, Instant::now()),
                None => break,
            },
            _ = frames.tick() => view.frame += 1,
        }
        drawn = redraw(&view.lines(Instant::now(), width()), drawn);
    }
    redraw(&view.lines(Instant::now(), width()), drawn);
}

/// Replace the `drawn` lines last written with `lines`; answers how many are on screen.
fn redraw(lines: &[String], drawn: usize) -> usize {
    let mut text = String::new();
    if drawn > 0 {
        // To the start of the first line drawn, and clear from there down.
        text.push_str(&format!("\x1b[{drawn}F"));
    }
    text.push_str("\x1b[J");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    super::terminal::stderr_text(&text);
    lines.len()
}

/// The terminal's width: a line longer than it would wrap and break the redraw.
fn width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given; nothing else is touched.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let known = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    match known && size.ws_col > 0 {
        true => usize::from(size.ws_col),
        false => 80,
    }
}

#[derive(Default)]
struct View {
    /// In the order they started.
    steps: Vec<Step>,
    frame: usize,
}

struct Step {
    id: String,
    skill: Option<String>,
    started: Instant,
    state: State,
    attempt: u32,
    retry: Option<(Instant, String)>,
    message: Option<String>,
}

enum State {
    Running,
    Ended(Ended),
}

/// How a step ended, as both views show it.
struct Ended {
    status: StepStatus,
    took_ms: f64,
    error: Option<String>,
    /// The value its `if` had, when it was skipped by one.
    skipped_if: Option<String>,
}

impl Ended {
    fn of(record: &crate::engine::StepRecord) -> Ended {
        Ended {
            status: record.status,
            took_ms: record.duration_ms,
            error: record.error.clone(),
            skipped_if: record
                .inputs
                .as_ref()
                .and_then(|inputs| inputs.get("if"))
                .map(|value| value.to_string()),
        }
    }

    /// The line: `indent`, then the step's `name` and `skill` (both shown
    /// inert already, `skill` as ` (SKILL)` or empty), `tries` (`, attempt N` or empty).
    fn line(&self, indent: &str, name: &str, skill: &str, tries: &str) -> String {
        let took = format!("{:.0} ms", self.took_ms);
        match self.status {
            StepStatus::Completed => format!("{indent}✓ {name}{skill} done in {took}{tries}"),
            StepStatus::Failed => format!(
                "{indent}✗ {name}{skill} failed after {took}{tries}: {}",
                terminal_safe(self.error.as_deref().unwrap_or("unknown error"))
            ),
            StepStatus::Cancelled => format!("{indent}■ {name}{skill} cancelled after {took}"),
            StepStatus::Skipped => match &self.skipped_if {
                Some(value) => format!(
                    "{indent}- {name} skipped (`if` was {})",
                    terminal_safe(value)
                ),
                None => format!("{indent}- {name} skipped"),
            },
            StepStatus::Waiting => format!("{indent}? {name} waits for approval"),
        }
    }
}

impl View {
    fn apply(&mut self, event: Event, now: Instant) {
        match event {
            Event::StepStarted { step, skill } => match self.find(&step) {
                // Again (a retry, a rework): the same line.
                Some(index) => {
                    let line = &mut self.steps[index];
                    line.state = State::Running;
                    line.started = now;
                    line.retry = None;
                }
                None => self.steps.push(Step {
                    id: step,
                    skill,
                    started: now,
                    state: State::Running,
                    attempt: 1,
                    retry: None,
                    message: None,
                }),
            },
            Event::StepRetrying {
                step,
                attempt,
                delay,
                error,
            } => {
                if let Some(index) = self.find(&step) {
                    let line = &mut self.steps[index];
                    line.attempt = attempt;
                    line.retry = Some((now + delay, error));
                }
            }
            Event::StepStatusMessage { step, message } => {
                if let Some(index) = self.find(&step) {
                    self.steps[index].message = Some(message.replace(['\n', '\r'], " "));
                }
            }
            Event::StepFinished { step, record } => {
                let state = State::Ended(Ended::of(&record));
                match self.find(&step) {
                    Some(index) => {
                        self.steps[index].state = state;
                        self.steps[index].retry = None;
                    }
                    // Skipped steps and approvals never started.
                    None => self.steps.push(Step {
                        id: step,
                        skill: None,
                        started: now,
                        state,
                        attempt: record.attempts.max(1),
                        retry: None,
                        message: None,
                    }),
                }
            }
        }
    }

    fn find(&self, step: &str) -> Option<usize> {
        self.steps.iter().position(|line| line.id == step)
    }

    /// The lines of the view at `now`, each at most `width` columns.
    /// Step ids, skills, errors and messages come from workflows and agents: shown inert.
    fn lines(&self, now: Instant, width: usize) -> Vec<String> {
        let spinner = SPINNER[self.frame % SPINNER.len()];
        let mut lines = Vec::new();
        for step in &self.steps {
            let depth = step.id.matches('/').count();
            let name = step.id.rsplit('/').next().unwrap_or(&step.id);
            let indent = "  ".repeat(depth + 1);
            let name = terminal_safe(name);
            let skill = step
                .skill
                .as_deref()
                .map(|skill| format!(" ({})", terminal_safe(skill)))
                .unwrap_or_default();
            let tries = match step.attempt {
                1 => String::new(),
                n => format!(", attempt {n}"),
            };
            let line = match &step.state {
                State::Running => {
                    let took = now.saturating_duration_since(step.started);
                    match &step.retry {
                        Some((at, error)) => format!(
                            "{indent}↻ {name}{skill} retrying in {:.1} s{tries}: {}",
                            at.saturating_duration_since(now).as_secs_f64(),
                            terminal_safe(error)
                        ),
                        None => format!(
                            "{indent}{spinner} {name}{skill} running {:.1} s{tries}",
                            took.as_secs_f64()
                        ),
                    }
                }
                State::Ended(ended) => ended.line(&indent, &name, &skill, &tries),
            };
            lines.push(fit(line, width));
            if let (State::Running, Some(message)) = (&step.state, &step.message) {
                lines.push(fit(
                    format!("{indent}  … {}", terminal_safe(message)),
                    width,
                ));
            }
        }
        lines
    }
}

/// `line` cut to `width` columns (one per character: the view's own are narrow).
fn fit(line: String, width: usize) -> String {
    match line.chars().count() > width {
        true => {
            let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        false => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StepRecord;

    fn finished(step: &str, status: StepStatus, error: Option<&str>) -> Event {
        Event::StepFinished {
            step: step.to_string(),
            record: Box::new(StepRecord {
                id: step.to_string(),
                skill: None,
                status,
                inputs: None,
                outputs: None,
                error: error.map(str::to_string),
                attempts: 1,
                agent: None,
                child: None,
                status_messages: Vec::new(),
                started_at: String::new(),
                ended_at: String::new(),
                duration_ms: 12.0,
            }),
        }
    }

    fn started(step: &str, skill: &str) -> Event {
        Event::StepStarted {
            step: step.to_string(),
            skill: Some(skill.to_string()),
        }
    }

    #[test]
    fn the_view_is_a_tree_of_steps_with_their_state() {
        let at = Instant::now();
        let mut view = View::default();
        view.apply(started("plan", "create_plan"), at);
        view.apply(finished("plan", StepStatus::Completed, None), at);
        view.apply(started("build", "generate_code"), at);
        view.apply(started("build/compile", "compile"), at);
        view.apply(
            Event::StepStatusMessage {
                step: "build/compile".to_string(),
                message: "linking\n\u{1b}[2Jhalf".to_string(),
            },
            at,
        );
        view.apply(started("review", "review_code"), at);
        view.apply(
            Event::StepRetrying {
                step: "review".to_string(),
                attempt: 2,
                delay: Duration::from_millis(1500),
                error: "agent answered 503".to_string(),
            },
            at,
        );
        view.apply(finished("lint", StepStatus::Skipped, None), at);
        view.apply(finished("deploy", StepStatus::Failed, Some("no\nway")), at);
        let lines = view.lines(at + Duration::from_millis(500), 80);
        assert_eq!(
            lines,
            [
                "  ✓ plan (create_plan) done in 12 ms",
                "  ⠋ build (generate_code) running 0.5 s",
                "    ⠋ compile (compile) running 0.5 s",
                "      … linking \\u{1b}[2Jhalf",
                "  ↻ review (review_code) retrying in 1.0 s, attempt 2: agent answered 503",
                "  - lint skipped",
                "  ✗ deploy failed after 12 ms: no\\nway",
            ]
        );
        // Narrow terminals get cut lines, never wrapped ones.
        let narrow = view.lines(at, 20);
        assert!(
            narrow.iter().all(|line| line.chars().count() <= 20),
            "{narrow:?}"
        );
        assert_eq!(narrow[4], "  ↻ review (review_…");
    }
}
