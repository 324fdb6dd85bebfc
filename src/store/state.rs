//! The statuses the run database keeps, each with its one text form (`as_str`
//! / `parse`, also its SQL conversion): [`RunState`], where a stored run stands
//! in its lifecycle, and [`AttemptStatus`], how one attempt of one step stands.
//! (The engine's [`crate::engine::RunStatus`] is something else: how one
//! execution of a workflow ended in this process.) The one state machine of a
//! run is [`check_transition`]; the store applies it inside the write's
//! transaction. The queries of `runs.rs` and `attempts.rs` filter by the same
//! text (`status = 'running'`); it changes only with a new migration.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

use crate::engine::StepStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    InProgress,
    WaitingApproval,
    Completed,
    Failed,
    Cancelled,
}

/// A refused status change; a service answers it with HTTP 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a run cannot go from `{}` to `{}`{}", from.as_str(), to.as_str(), if from.is_terminal() { " (it has ended)" } else { "" })]
pub struct InvalidTransition {
    pub from: RunState,
    pub to: RunState,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Pending,
        RunState::InProgress,
        RunState::WaitingApproval,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::InProgress => "in_progress",
            RunState::WaitingApproval => "waiting_approval",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunState> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Completed, failed and cancelled runs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Cancelled
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How one attempt of one step stands (column `step_attempts.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Started and not ended; its executor may still be working on it.
    Running,
    /// An approval step waiting for a decision.
    Waiting,
    Completed,
    Failed,
    Cancelled,
    Skipped,
    /// Left running by a process that stopped; the step runs again.
    Interrupted,
    /// A completed attempt a rejection with rework runs again.
    Superseded,
}

impl AttemptStatus {
    pub const ALL: [AttemptStatus; 8] = [
        AttemptStatus::Running,
        AttemptStatus::Waiting,
        AttemptStatus::Completed,
        AttemptStatus::Failed,
        AttemptStatus::Cancelled,
        AttemptStatus::Skipped,
        AttemptStatus::Interrupted,
        AttemptStatus::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Running => "running",
            AttemptStatus::Waiting => "waiting",
            AttemptStatus::Completed => "completed",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Skipped => "skipped",
            AttemptStatus::Interrupted => "interrupted",
            AttemptStatus::Superseded => "superseded",
        }
    }

    pub fn parse(text: &str) -> Option<AttemptStatus> {
        AttemptStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl From<StepStatus> for AttemptStatus {
    /// How a step the engine ran ends its attempt.
    fn from(status: StepStatus) -> AttemptStatus {
        match status {
            StepStatus::Completed => AttemptStatus::Completed,
            StepStatus::Failed => AttemptStatus::Failed,
            StepStatus::Cancelled => AttemptStatus::Cancelled,
            StepStatus::Skipped => AttemptStatus::Skipped,
            StepStatus::Waiting => AttemptStatus::Waiting,
        }
    }
}

/// A status equals its stored text.
impl PartialEq<&str> for AttemptStatus {
    fn eq(&self, text: &&str) -> bool {
        self.as_str() == *text
    }
}

impl std::fmt::Display for AttemptStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Both statuses are stored as their text.
macro_rules! stored_as_text {
    ($status:ty) => {
        impl ToSql for $status {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $status {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                <$status>::parse(text)
                    .ok_or_else(|| FromSqlError::Other(format!("unknown status `{text}`").into()))
            }
        }
    };
}

stored_as_text!(RunState);
stored_as_text!(AttemptStatus);

/// `pending -> in_progress -> waiting_approval -> in_progress | completed`,
/// `in_progress -> completed`, any live state `-> failed`, and
/// `in_progress | waiting_approval -> cancelled`.
pub fn check_transition(from: RunState, to: RunState) -> Result<(), InvalidTransition> {
    use RunState::*;
    let allowed = matches!(
        (from, to),
        (Pending, InProgress)
            | (InProgress, WaitingApproval | Completed | Cancelled)
            | (WaitingApproval, InProgress | Completed | Cancelled)
            | (Pending | InProgress | WaitingApproval, Failed)
    );
    if allowed {
        Ok(())
    } else {
        Err(InvalidTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::RunState::*;
    use super::*;

    #[test]
    fn every_pair_of_states() {
        let valid = [
            (Pending, InProgress),
            (Pending, Failed),
            (InProgress, WaitingApproval),
            (InProgress, Completed),
            (InProgress, Failed),
            (InProgress, Cancelled),
            (WaitingApproval, InProgress),
            (WaitingApproval, Completed),
            (WaitingApproval, Failed),
            (WaitingApproval, Cancelled),
        ];
        for from in RunState::ALL {
            for to in RunState::ALL {
                let expected = valid.contains(&(from, to));
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    expected,
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn refusals_name_both_states() {
        let cases = [
            (
                Pending,
                Completed,
                "a run cannot go from `pending` to `completed`",
            ),
            (
                Completed,
                InProgress,
                "a run cannot go from `completed` to `in_progress` (it has ended)",
            ),
            (
                Cancelled,
                Failed,
                "a run cannot go from `cancelled` to `failed` (it has ended)",
            ),
        ];
        for (from, to, message) in cases {
            assert_eq!(check_transition(from, to).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn names_round_trip() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(RunState::parse("running"), None);
        for status in AttemptStatus::ALL {
            assert_eq!(AttemptStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(AttemptStatus::parse("in_progress"), None);
    }
}
