//! Durable child runs. A child run of `execute_workflow` journals into its
//! parent's run under qualified step ids (`PARENT_STEP/CHILD_STEP`, one more
//! level per nesting), so the store holds one run whatever the nesting, and a
//! child sees its own steps under their ids as written.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Durable, Journal, JournalWrite, StepRecord, StepTask};

/// The journal of a child run: its parent's, with the step ids qualified.
struct ChildJournal {
    parent: Arc<dyn Journal>,
    /// `PARENT_STEP/`
    prefix: String,
}

impl Journal for ChildJournal {
    fn step_started(&self, step_id: &str) -> JournalWrite {
        self.parent
            .step_started(&format!("{}{step_id}", self.prefix))
    }

    fn step_finished(&self, record: &StepRecord) -> JournalWrite {
        let mut record = record.clone();
        record.id = format!("{}{}", self.prefix, record.id);
        self.parent.step_finished(&record)
    }

    fn approval_waiting(&self, step_id: &str) -> JournalWrite {
        self.parent
            .approval_waiting(&format!("{}{step_id}", self.prefix))
    }

    fn task_accepted(&self, step_id: &str, task: &StepTask) -> JournalWrite {
        self.parent
            .task_accepted(&format!("{}{step_id}", self.prefix), task)
    }
}

impl Durable {
    /// What the child run of the parent's step `step_id` needs: the same run
    /// id (hence idempotency keys under it), and of the parent's completed
    /// steps and attempt counts those of the child, under the child's own ids.
    pub(super) fn child(&self, step_id: &str) -> Durable {
        self.scoped(format!("{step_id}/"))
    }

    /// The same for any qualifying prefix: `STEP/` for a child run,
    /// `STEP[N]/` for an iteration of a for_each or loop step.
    pub(super) fn scoped(&self, prefix: String) -> Durable {
        Durable {
            run_id: self.run_id.clone(),
            completed: under_prefix(&self.completed, &prefix),
            previous_attempts: under_prefix(&self.previous_attempts, &prefix),
            interrupted_tasks: under_prefix(&self.interrupted_tasks, &prefix),
            handled_failures: under_prefix(&self.handled_failures, &prefix),
            journal: Arc::new(ChildJournal {
                parent: self.journal.clone(),
                prefix,
            }),
        }
    }
}

/// The entries whose key starts with `prefix`, keyed by the rest.
fn under_prefix<T: Clone>(map: &HashMap<String, T>, prefix: &str) -> HashMap<String, T> {
    map.iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?.to_string(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::FutureExt;
    use futures::executor::block_on;
    use futures::future::ready;
    use serde_json::{Value, json};

    use super::*;
    use crate::engine::StepStatus;

    /// Writes each call as one line, as a store would see it.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Journal for Lines {
        fn step_started(&self, step_id: &str) -> JournalWrite {
            self.0.lock().unwrap().push(format!("started {step_id}"));
            ready(Ok(())).boxed()
        }
        fn step_finished(&self, record: &StepRecord) -> JournalWrite {
            self.0
                .lock()
                .unwrap()
                .push(format!("finished {}", record.id));
            ready(Ok(())).boxed()
        }
        fn approval_waiting(&self, step_id: &str) -> JournalWrite {
            self.0.lock().unwrap().push(format!("waiting {step_id}"));
            ready(Ok(())).boxed()
        }
        fn task_accepted(&self, step_id: &str, task: &StepTask) -> JournalWrite {
            let line = format!("task {step_id} {}", task.task.id);
            self.0.lock().unwrap().push(line);
            ready(Ok(())).boxed()
        }
    }

    fn record(id: &str) -> StepRecord {
        StepRecord {
            id: id.to_string(),
            skill: None,
            status: StepStatus::Completed,
            inputs: None,
            outputs: None,
            error: None,
            attempts: 1,
            agent: None,
            child: None,
            status_messages: Vec::new(),
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 0.0,
        }
    }

    #[test]
    fn a_grandchild_sees_its_own_steps_and_journals_qualified_ids() {
        let lines = Arc::new(Lines::default());
        let completed: HashMap<String, Value> = [
            ("top", json!(1)),
            ("outer/a", json!(2)),
            ("outer/inner/b", json!(3)),
            ("outerx/c", json!(4)),
        ]
        .into_iter()
        .map(|(id, value)| (id.to_string(), value))
        .collect();
        let root = Durable {
            run_id: "run".to_string(),
            journal: lines.clone(),
            completed,
            previous_attempts: HashMap::from([("outer/inner/b".to_string(), 2)]),
            interrupted_tasks: HashMap::new(),
            handled_failures: HashMap::new(),
        };
        let child = root.child("outer");
        assert_eq!(child.run_id, "run");
        let mut ids: Vec<&str> = child.completed.keys().map(String::as_str).collect();
        ids.sort();
        assert_eq!(ids, ["a", "inner/b"]);
        let grandchild = child.child("inner");
        assert_eq!(
            grandchild.completed,
            HashMap::from([("b".to_string(), json!(3))])
        );
        assert_eq!(
            grandchild.previous_attempts,
            HashMap::from([("b".to_string(), 2)])
        );

        block_on(grandchild.journal.step_started("b")).unwrap();
        block_on(grandchild.journal.step_finished(&record("b"))).unwrap();
        block_on(grandchild.journal.approval_waiting("gate")).unwrap();
        block_on(child.journal.step_started("inner")).unwrap();
        assert_eq!(
            *lines.0.lock().unwrap(),
            [
                "started outer/inner/b",
                "finished outer/inner/b",
                "waiting outer/inner/gate",
                "started outer/inner",
            ]
        );
    }
}
