//! The one state machine of a run. Every status change goes through
//! [`check_transition`]; the store applies it inside the write's transaction.

use serde::{Deserialize, Serialize};

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
    }
}
