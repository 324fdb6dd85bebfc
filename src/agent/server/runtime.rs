//! Runs skills for both protocols: checks the input, waits for a free slot of
//! the skill (`max_concurrency`), runs the command, checks the output.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::definition::AgentDefinition;
use super::process::run_command;

/// Why a skill call did not produce an output.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Failure {
    /// The input does not match the input schema; the command never started.
    InvalidInput(String),
    /// Canceled by a client or by the server shutting down.
    Canceled,
    Failed(String),
}

impl Failure {
    pub(super) fn message(&self) -> String {
        match self {
            Failure::InvalidInput(message) | Failure::Failed(message) => message.clone(),
            Failure::Canceled => "canceled".to_string(),
        }
    }
}

pub(super) struct Runtime {
    pub(super) definition: AgentDefinition,
    slots: HashMap<String, Arc<Semaphore>>,
}

impl Runtime {
    pub(super) fn new(definition: AgentDefinition) -> Runtime {
        let slots = definition
            .skills
            .iter()
            .map(|skill| {
                (
                    skill.id.clone(),
                    Arc::new(Semaphore::new(skill.max_concurrency)),
                )
            })
            .collect();
        Runtime { definition, slots }
    }

    /// Runs `skill_id` (which must exist); `on_start` is called once the call
    /// leaves the queue and its command is about to start.
    pub(super) async fn run(
        &self,
        skill_id: &str,
        task_id: &str,
        input: &Value,
        cancel: &CancellationToken,
        on_start: impl FnOnce(),
    ) -> Result<Value, Failure> {
        let Some(skill) = self.definition.skill(skill_id) else {
            return Err(Failure::Failed(format!("unknown skill `{skill_id}`")));
        };
        skill
            .check_input(input)
            .map_err(|message| Failure::InvalidInput(format!("skill `{skill_id}`: {message}")))?;
        let slots = self.slots[skill_id].clone();
        let _permit = tokio::select! {
            permit = slots.acquire_owned() => permit.expect("skill semaphores are never closed"),
            () = cancel.cancelled() => return Err(Failure::Canceled),
        };
        on_start();
        tracing::info!(skill = %skill_id, task = %task_id, "skill started");
        let result = run_command(skill, &self.definition.directory, task_id, input, cancel).await;
        let output = result.inspect_err(|failure| {
            tracing::warn!(skill = %skill_id, task = %task_id, "skill did not complete: {}", failure.message());
        })?;
        skill
            .check_output(&output)
            .map_err(|message| Failure::Failed(format!("skill `{skill_id}`: {message}")))?;
        tracing::info!(skill = %skill_id, task = %task_id, "skill completed");
        Ok(output)
    }
}
