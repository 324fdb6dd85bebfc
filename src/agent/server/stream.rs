//! The events of one task as a stream: the task first, then each status
//! change, the result as an artifact before the final status; it ends at a
//! terminal state. Open streams are bounded (`--max-streams`).

use std::sync::Arc;

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::errors::{INTERNAL_ERROR, RpcError};
use super::tasks::{Task, TaskState};
use super::wire::StreamEvent;

/// How many streams may be open at once by default; more are refused until one ends.
pub(super) const DEFAULT_MAX_STREAMS: u32 = 64;

/// A subscription to a task that holds one of the stream slots.
pub(super) struct TaskStream {
    receiver: watch::Receiver<Task>,
    _slot: OwnedSemaphorePermit,
}

/// Takes a stream slot; refused when all are in use.
pub(super) fn reserve(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, RpcError> {
    slots.clone().try_acquire_owned().map_err(|_| {
        RpcError::new(
            INTERNAL_ERROR,
            "too many open streams (see `pallet agent serve --max-streams`): poll with GetTask or retry later",
        )
    })
}

struct Progress {
    stream: TaskStream,
    /// The state last sent; `None` before the first event.
    sent: Option<TaskState>,
    pending: Vec<StreamEvent>,
}

impl TaskStream {
    pub(super) fn new(receiver: watch::Receiver<Task>, slot: OwnedSemaphorePermit) -> TaskStream {
        TaskStream {
            receiver,
            _slot: slot,
        }
    }

    pub(super) fn events(self) -> impl Stream<Item = StreamEvent> + Send {
        let progress = Progress {
            stream: self,
            sent: None,
            pending: Vec::new(),
        };
        futures::stream::unfold(progress, |mut progress| async move {
            loop {
                if let Some(event) = progress.pending.pop() {
                    return Some((event, progress));
                }
                if progress.sent.is_some_and(TaskState::is_terminal) {
                    return None;
                }
                if progress.sent.is_some() && progress.stream.receiver.changed().await.is_err() {
                    return None;
                }
                let task = progress.stream.receiver.borrow_and_update().clone();
                let events = next_events(progress.sent, task);
                if let Some(first) = events.first() {
                    progress.sent = Some(first.state());
                }
                progress.pending = events;
            }
        })
    }
}

/// The events for `task` after `sent` was sent, in reverse order (popped from the end).
fn next_events(sent: Option<TaskState>, task: Task) -> Vec<StreamEvent> {
    match sent {
        None => vec![StreamEvent::Task(task)],
        Some(state) if state == task.state => Vec::new(),
        Some(_) if task.state.is_terminal() && task.output.is_some() => {
            vec![
                StreamEvent::Status(task.clone()),
                StreamEvent::Artifact(task),
            ]
        }
        Some(_) => vec![StreamEvent::Status(task)],
    }
}

impl StreamEvent {
    fn state(&self) -> TaskState {
        match self {
            StreamEvent::Task(task) | StreamEvent::Status(task) | StreamEvent::Artifact(task) => {
                task.state
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(state: TaskState, output: Option<serde_json::Value>) -> Task {
        Task {
            id: "t".into(),
            context_id: "c".into(),
            skill_id: "s".into(),
            state,
            message: None,
            output,
            updated: chrono::Utc::now(),
            history: Vec::new(),
        }
    }

    fn kinds(events: &[StreamEvent]) -> Vec<&'static str> {
        // Popped from the end: the order they are sent in is reversed.
        events
            .iter()
            .rev()
            .map(|event| match event {
                StreamEvent::Task(_) => "task",
                StreamEvent::Status(_) => "status",
                StreamEvent::Artifact(_) => "artifact",
            })
            .collect()
    }

    #[test]
    fn the_task_comes_first_and_the_result_before_the_final_status() {
        let working = task(TaskState::Working, None);
        let done = task(TaskState::Completed, Some(json!({})));
        let failed = task(TaskState::Failed, None);
        assert_eq!(kinds(&next_events(None, working.clone())), ["task"]);
        assert!(next_events(Some(TaskState::Working), working).is_empty());
        assert_eq!(
            kinds(&next_events(Some(TaskState::Working), done)),
            ["artifact", "status"]
        );
        assert_eq!(
            kinds(&next_events(Some(TaskState::Submitted), failed)),
            ["status"]
        );
    }
}
