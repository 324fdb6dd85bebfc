//! The A2A tasks this agent knows: running ones and the most recent finished
//! ones (bounded, so a long-lived agent does not grow without limit).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::runtime::Failure;

/// How many finished tasks stay answerable by `GetTask`.
pub(super) const FINISHED_TASKS_KEPT: usize = 10_000;
/// How many messages a task's history keeps (the oldest are dropped).
pub(super) const HISTORY_KEPT: usize = 100;
/// The largest message (bytes of JSON) a history keeps whole.
pub(super) const HISTORY_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskState {
    Submitted,
    Working,
    Completed,
    Failed,
    Canceled,
}

impl TaskState {
    pub(super) fn wire_name(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
        }
    }

    pub(super) fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled
        )
    }
}

/// What a client sees of a task.
#[derive(Debug, Clone)]
pub(super) struct Task {
    pub(super) id: String,
    pub(super) context_id: String,
    pub(super) skill_id: String,
    pub(super) state: TaskState,
    /// Why the task failed or was canceled.
    pub(super) message: Option<String>,
    pub(super) output: Option<Value>,
    pub(super) updated: DateTime<Utc>,
    /// The messages received for this task (A2A 1.0 JSON), at most [`HISTORY_KEPT`].
    pub(super) history: Vec<Value>,
}

/// Which tasks `ListTasks` wants.
#[derive(Debug, Default)]
pub(super) struct TaskFilter {
    pub(super) context_id: Option<String>,
    /// A wire name such as `TASK_STATE_WORKING`.
    pub(super) state: Option<String>,
    pub(super) updated_after: Option<DateTime<Utc>>,
}

struct Entry {
    task: watch::Sender<Task>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    finished: VecDeque<String>,
}

pub(super) struct TaskStore {
    inner: Mutex<Inner>,
    limit: usize,
    /// Parent of every task's token: canceling it stops all tasks at shutdown.
    root: CancellationToken,
}

impl TaskStore {
    pub(super) fn new(limit: usize) -> TaskStore {
        TaskStore {
            inner: Mutex::default(),
            limit,
            root: CancellationToken::new(),
        }
    }

    /// Registers a new SUBMITTED task; returns its cancellation token.
    #[cfg(test)]
    pub(super) fn create(&self, id: &str, context_id: &str, skill_id: &str) -> CancellationToken {
        self.create_with_history(id, context_id, skill_id, Vec::new())
    }

    /// Registers a new SUBMITTED task whose history starts with `history`.
    pub(super) fn create_with_history(
        &self,
        id: &str,
        context_id: &str,
        skill_id: &str,
        mut history: Vec<Value>,
    ) -> CancellationToken {
        let excess = history.len().saturating_sub(HISTORY_KEPT);
        history.drain(..excess);
        let task = Task {
            id: id.to_string(),
            context_id: context_id.to_string(),
            skill_id: skill_id.to_string(),
            state: TaskState::Submitted,
            message: None,
            output: None,
            updated: Utc::now(),
            history,
        };
        let cancel = self.root.child_token();
        let entry = Entry {
            task: watch::Sender::new(task),
            cancel: cancel.clone(),
        };
        self.lock().entries.insert(id.to_string(), entry);
        cancel
    }

    pub(super) fn get(&self, id: &str) -> Option<Task> {
        self.lock()
            .entries
            .get(id)
            .map(|entry| entry.task.borrow().clone())
    }

    /// Every known task matching `filter`, most recently updated first (ties by id).
    pub(super) fn list(&self, filter: &TaskFilter) -> Vec<Task> {
        let mut tasks: Vec<Task> = self
            .lock()
            .entries
            .values()
            .map(|entry| entry.task.borrow().clone())
            .filter(|task| {
                filter
                    .context_id
                    .as_ref()
                    .is_none_or(|context| &task.context_id == context)
                    && filter
                        .state
                        .as_deref()
                        .is_none_or(|state| task.state.wire_name() == state)
                    && filter
                        .updated_after
                        .is_none_or(|after| task.updated >= after)
            })
            .collect();
        // Microseconds, as page tokens carry them (see `operations::list_tasks`).
        tasks.sort_by(|a, b| {
            let newer = b
                .updated
                .timestamp_micros()
                .cmp(&a.updated.timestamp_micros());
            newer.then_with(|| a.id.cmp(&b.id))
        });
        tasks
    }

    /// A receiver of the task's changes; `None` if it is unknown.
    pub(super) fn subscribe(&self, id: &str) -> Option<watch::Receiver<Task>> {
        Some(self.lock().entries.get(id)?.task.subscribe())
    }

    pub(super) fn set_working(&self, id: &str) {
        self.update(id, |task| task.state = TaskState::Working);
    }

    pub(super) fn finish(&self, id: &str, result: Result<Value, Failure>) {
        self.update(id, |task| match result {
            Ok(output) => {
                task.state = TaskState::Completed;
                task.output = Some(output);
            }
            Err(Failure::Canceled) => {
                task.state = TaskState::Canceled;
                task.message = Some("canceled".to_string());
            }
            Err(failure) => {
                task.state = TaskState::Failed;
                task.message = Some(failure.message());
            }
        });
        let mut inner = self.lock();
        inner.finished.push_back(id.to_string());
        while inner.finished.len() > self.limit {
            if let Some(oldest) = inner.finished.pop_front() {
                inner.entries.remove(&oldest);
            }
        }
    }

    /// Asks a running task to stop; `Err` holds the task if it already ended.
    pub(super) fn cancel(&self, id: &str) -> Option<Result<(), Task>> {
        let inner = self.lock();
        let entry = inner.entries.get(id)?;
        let task = entry.task.borrow().clone();
        if task.state.is_terminal() {
            return Some(Err(task));
        }
        entry.cancel.cancel();
        Some(Ok(()))
    }

    /// Waits until the task ends; `None` if it is unknown.
    pub(super) async fn wait_finished(&self, id: &str) -> Option<Task> {
        let mut receiver = self.lock().entries.get(id)?.task.subscribe();
        let task = receiver
            .wait_for(|task| task.state.is_terminal())
            .await
            .ok()?;
        Some(task.clone())
    }

    /// Stops every running task (server shutdown).
    pub(super) fn cancel_all(&self) {
        self.root.cancel();
    }

    /// A token for work that is not an A2A task (legacy calls), also stopped at shutdown.
    pub(super) fn child_token(&self) -> CancellationToken {
        self.root.child_token()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Task)) {
        if let Some(entry) = self.lock().entries.get(id) {
            entry.task.send_modify(|task| {
                change(task);
                task.updated = Utc::now();
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("task store lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_most_recent_finished_tasks() {
        let store = TaskStore::new(2);
        for id in ["a", "b", "c"] {
            store.create(id, "context", "skill");
            store.finish(id, Ok(json!({})));
        }
        store.create("running", "context", "skill");
        assert!(
            store.get("a").is_none(),
            "the oldest finished task is dropped"
        );
        assert!(store.get("b").is_some());
        assert!(store.get("c").is_some());
        assert_eq!(store.get("running").unwrap().state, TaskState::Submitted);
    }

    #[test]
    fn finishing_records_the_outcome() {
        let cases = [
            (Ok(json!({"x": 1})), TaskState::Completed, None),
            (
                Err(Failure::Canceled),
                TaskState::Canceled,
                Some("canceled"),
            ),
            (
                Err(Failure::InvalidInput("bad input".into())),
                TaskState::Failed,
                Some("bad input"),
            ),
            (
                Err(Failure::Failed("exit 3".into())),
                TaskState::Failed,
                Some("exit 3"),
            ),
        ];
        for (result, state, message) in cases {
            let store = TaskStore::new(10);
            store.create("t", "c", "s");
            store.finish("t", result);
            let task = store.get("t").unwrap();
            assert_eq!(task.state, state);
            assert_eq!(task.message.as_deref(), message);
        }
    }

    #[test]
    fn finished_tasks_cannot_be_canceled() {
        let store = TaskStore::new(10);
        let token = store.create("t", "c", "s");
        assert!(matches!(store.cancel("t"), Some(Ok(()))));
        assert!(token.is_cancelled());
        store.finish("t", Err(Failure::Canceled));
        assert!(matches!(store.cancel("t"), Some(Err(task)) if task.state == TaskState::Canceled));
        assert!(store.cancel("unknown").is_none());
    }
}
