//! Creating runs: a new run `pending` with its `created` transition, or
//! created, started and leased in one write (what a run's start needs before
//! its first agent call); a rerun also with the attempts it takes over.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::runs::{NewRun, OwnedChange, RerunOf, RunChange, StoredRun, apply_change, digest};
use super::state::RunState;
use super::{Pending, RunStore, StoreError};

impl RunStore {
    pub fn create_run(&self, run: &NewRun) -> Result<StoredRun, StoreError> {
        let row = RunRow::new(run);
        let id = row.id.clone();
        let at = self.stamp();
        self.write(move |connection| row.insert(connection, &at))
            .wait()?;
        self.get(&id)
    }

    /// A new run, created and moved on by `start` in ONE write (a run's
    /// start paid a commit per step of its bookkeeping before the first
    /// agent call); with `lease`, this process also takes the new run's lease
    /// under that token. Answers the run's id.
    pub fn create_started_run(
        &self,
        run: &NewRun,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        self.create_rerun(run, None, start, lease)
    }

    /// [`RunStore::create_started_run`] of a rerun of `rerun.0` (`Some`):
    /// the new run records where it came from and starts with `rerun.1`,
    /// the completed attempts it takes over, in the same write.
    pub fn create_rerun(
        &self,
        run: &NewRun,
        rerun: Option<(RerunOf, Vec<ReusedAttempt>)>,
        start: RunChange,
        lease: Option<&str>,
    ) -> Pending<String> {
        let row = RunRow::new(run);
        let at = self.stamp();
        let start = OwnedChange::from(start);
        let lease = lease.map(str::to_string);
        self.write(move |connection| {
            row.insert(connection, &at)?;
            let id = row.id;
            if let Some((of, reused)) = &rerun {
                insert_rerun(connection, &id, of, reused)?;
            }
            apply_change(connection, &id, &start.borrowed(), &at)?;
            if let Some(token) = lease {
                // A run nobody else knows yet: its lease is free.
                super::lease::acquire(
                    connection,
                    &id,
                    super::lease::Owner::current(),
                    &token,
                    chrono::Utc::now(),
                    super::lease::LEASE_DURATION,
                    super::lease::process_alive,
                )?;
            }
            Ok(id)
        })
    }
}

/// A completed attempt of another run that a rerun takes over as its own
/// (not run again): what it was given and gave, and where it really ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ReusedAttempt {
    pub step_id: String,
    pub inputs: Option<Value>,
    pub output: Option<Value>,
    pub agent: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The run whose agent call made it.
    pub reused_from: String,
}

/// A rerun's origin and the attempts it takes over, as attempt 1 of each step.
fn insert_rerun(
    connection: &Connection,
    id: &str,
    of: &RerunOf,
    reused: &[ReusedAttempt],
) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE runs SET rerun_of = ?2, rerun_from = ?3 WHERE id = ?1")?
        .execute(params![id, of.run_id, of.from_step])?;
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    for attempt in reused {
        connection.prepare_cached(
            "INSERT INTO step_attempts (run_id, step_id, attempt, status, inputs, output, agent, started_at, ended_at, reused_from) VALUES (?1, ?2, 1, 'completed', ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![id, attempt.step_id, json(&attempt.inputs), json(&attempt.output), attempt.agent, attempt.started_at, attempt.ended_at, attempt.reused_from])?;
    }
    Ok(())
}

/// A new run's columns, owned so the write can run on the writer thread.
struct RunRow {
    id: String,
    reference: String,
    workflow_id: String,
    version: String,
    digest: String,
    source: String,
    yaml: String,
    input: String,
    actor: String,
}

impl RunRow {
    fn new(run: &NewRun) -> RunRow {
        RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            reference: run.workflow_ref.clone(),
            workflow_id: run.workflow_id.clone(),
            version: run.workflow_version.clone(),
            digest: digest(&run.workflow_yaml),
            source: run.workflow_source.clone(),
            yaml: run.workflow_yaml.clone(),
            input: run.input.to_string(),
            actor: run.actor.clone(),
        }
    }

    /// Insert the run, `pending`, with its `created` transition.
    fn insert(&self, connection: &Connection, at: &str) -> Result<(), StoreError> {
        connection.prepare_cached(
            "INSERT INTO runs (id, workflow_ref, workflow_id, workflow_version, workflow_digest, workflow_source, workflow_yaml, status, input, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        )?
        .execute(params![self.id, self.reference, self.workflow_id, self.version, self.digest, self.source, self.yaml, RunState::Pending.as_str(), self.input, at])?;
        connection.prepare_cached(
            "INSERT INTO transitions (run_id, from_status, to_status, trigger, actor, at) VALUES (?1, NULL, ?2, 'created', ?3, ?4)",
        )?
        .execute(params![self.id, RunState::Pending.as_str(), self.actor, at])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_run_created_started_and_leased_in_one_write() {
        let directory = tempfile::tempdir().unwrap();
        let store = RunStore::open(&directory.path().join("runs.db")).unwrap();
        let run = NewRun {
            workflow_ref: "w".to_string(),
            workflow_id: "w".to_string(),
            workflow_version: "1.0.0".to_string(),
            workflow_source: "w.yaml".to_string(),
            workflow_yaml: "steps: []".to_string(),
            input: json!({"a": 1}),
            actor: "test".to_string(),
        };
        let start = RunChange::new(RunState::InProgress, "start", "test");
        let id = store
            .create_started_run(&run, start, Some("token"))
            .wait()
            .unwrap();
        let stored = store.get(&id).unwrap();
        assert_eq!(stored.status, RunState::InProgress);
        assert_eq!(stored.input, json!({"a": 1}));
        let history: Vec<(Option<RunState>, RunState, String)> = store
            .history(&id)
            .unwrap()
            .into_iter()
            .map(|transition| (transition.from, transition.to, transition.trigger))
            .collect();
        assert_eq!(
            history,
            [
                (None, RunState::Pending, "created".to_string()),
                (
                    Some(RunState::Pending),
                    RunState::InProgress,
                    "start".to_string()
                ),
            ]
        );
        let lease = store.live_lease(&id).unwrap().expect("the new run's lease");
        assert_eq!(lease.token, "token");
        assert_eq!(store.executor_starts(&id).unwrap(), 1);
        // Without a lease: created and started, nobody executes it yet.
        let start = RunChange::new(RunState::InProgress, "start", "test");
        let other = store.create_started_run(&run, start, None).wait().unwrap();
        assert_eq!(store.get(&other).unwrap().status, RunState::InProgress);
        assert!(store.live_lease(&other).unwrap().is_none());
    }
}
