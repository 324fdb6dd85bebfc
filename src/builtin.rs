//! The example workflows and agents compiled into the binary, so the main job
//! runs on a fresh machine with no registry and no agents configured. The
//! agents and their skills come from the `pallet-agents` crate (its table
//! embeds their definition files); this module serves them and reads their
//! definitions for `pallet agent skill NAME`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use pallet_agents::{AGENTS, SkillError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::server::{self, AgentDefinition, ServerError};
use crate::workflow::{LoadedWorkflow, load_str};
use crate::workflow::{SourceError, WorkflowSource};

/// `workflows/*.yaml`: (file name, text).
pub const WORKFLOWS: &[(&str, &str)] = &[
    (
        "code-generation.yaml",
        include_str!("../workflows/code-generation.yaml"),
    ),
    (
        "parallel-analysis.yaml",
        include_str!("../workflows/parallel-analysis.yaml"),
    ),
    (
        "smart-router.yaml",
        include_str!("../workflows/smart-router.yaml"),
    ),
    (
        "refine-code.yaml",
        include_str!("../workflows/refine-code.yaml"),
    ),
];

/// How a built-in workflow's origin starts (`built-in:code-generation.yaml`).
pub const BUILTIN_ORIGIN: &str = "built-in:";

/// The built-in example workflows, found by `metadata.id`.
pub struct BuiltinWorkflows;

impl WorkflowSource for BuiltinWorkflows {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>> {
        Box::pin(async move {
            let loaded = builtin_workflows();
            if let Some(workflow) = loaded
                .iter()
                .find(|workflow| workflow.workflow.metadata.id == id)
            {
                return Ok(workflow.clone());
            }
            let ids: Vec<&str> = loaded
                .iter()
                .map(|workflow| workflow.workflow.metadata.id.as_str())
                .collect();
            Err(SourceError::NotFound {
                id: id.to_string(),
                searched: format!("the built-in examples (available: {})", ids.join(", ")),
            })
        })
    }
}

/// The built-in workflows, parsed once per process.
fn builtin_workflows() -> &'static [Arc<LoadedWorkflow>] {
    static LOADED: OnceLock<Vec<Arc<LoadedWorkflow>>> = OnceLock::new();
    LOADED.get_or_init(|| {
        WORKFLOWS
            .iter()
            .map(|(name, text)| {
                // They are validated by the tests; an invalid one is a build mistake.
                let loaded = load_str(&format!("{BUILTIN_ORIGIN}{name}"), text)
                    .unwrap_or_else(|error| panic!("built-in workflow {name} is invalid: {error}"));
                Arc::new(loaded)
            })
            .collect()
    })
}

/// The example agents, served in this process on free loopback ports.
pub struct ExampleAgents {
    pub urls: Vec<String>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl ExampleAgents {
    pub async fn start() -> Result<ExampleAgents, ServerError> {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut urls = Vec::new();
        for agent in AGENTS {
            let definition = AgentDefinition::from_text(
                agent.definition,
                Path::new(agent.file),
                Path::new("."),
            )?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(ServerError::Address)?;
            urls.push(format!(
                "http://{}",
                listener.local_addr().map_err(ServerError::Address)?
            ));
            let stopped = stop.clone().cancelled_owned();
            tracker.spawn(async move {
                if let Err(error) =
                    server::serve(definition, listener, Default::default(), stopped).await
                {
                    tracing::error!(%error, "example agent stopped");
                }
            });
        }
        tracker.close();
        Ok(ExampleAgents {
            urls,
            stop,
            tracker,
        })
    }

    /// Stops the agents and waits until their skill commands are gone.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.wait().await;
    }
}

/// The skill's entry in its example agent's definition file (id, schemas, ...).
pub fn skill_definition(skill: &str) -> Result<Value, SkillError> {
    for agent in AGENTS {
        let origin = format!("{BUILTIN_ORIGIN}{}", agent.file);
        let card: Value = crate::yaml::from_str(agent.definition, &origin, server::DEFINITION_FILE)
            .map_err(|error| SkillError::Definition {
                file: agent.file.to_string(),
                reason: error.to_string(),
            })?;
        let found = card["skills"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["id"] == skill);
        if let Some(entry) = found {
            return Ok(entry.clone());
        }
    }
    Err(pallet_agents::unknown_skill(skill))
}

/// Runs one example skill. Uses the LLM command in `PALLET_LLM_CMD` when it is
/// set and not blank, the deterministic implementation otherwise.
pub fn run_skill(skill: &str, input: Value) -> Result<Value, SkillError> {
    run_skill_with(skill, input, pallet_agents::llm_command().as_deref())
}

/// [`run_skill`] on JSON text, as `pallet agent skill NAME` reads it from stdin.
pub fn run_skill_on_text(skill: &str, text: &str) -> Result<Value, SkillError> {
    run_skill(skill, pallet_agents::input_from_text(skill, text)?)
}

/// [`run_skill`] with the LLM command passed in, so tests need no environment.
pub fn run_skill_with(
    skill: &str,
    input: Value,
    llm_command: Option<&str>,
) -> Result<Value, SkillError> {
    let definition = skill_definition(skill)?;
    pallet_agents::run_skill(skill, &definition, input, llm_command)
}

pub use pallet_agents::skills;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_workflow_loads_and_is_found_by_its_exact_id() {
        let ids: Vec<String> = builtin_workflows()
            .iter()
            .map(|workflow| workflow.workflow.metadata.id.clone())
            .collect();
        assert_eq!(
            ids,
            [
                "code-generation-v1",
                "parallel-analysis-v1",
                "smart-router-v1",
                "refine-code-v1"
            ]
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for id in &ids {
            let found = runtime.block_on(BuiltinWorkflows.load(id)).unwrap();
            assert_eq!(&found.workflow.metadata.id, id);
        }
        // A step id of a built-in workflow is not a workflow id.
        for step_id in ["plan", "build", "test", "analyze"] {
            let missing = runtime.block_on(BuiltinWorkflows.load(step_id));
            assert!(
                matches!(missing, Err(SourceError::NotFound { .. })),
                "{step_id}"
            );
        }
    }

    #[test]
    fn every_builtin_agent_definition_loads() {
        for agent in AGENTS {
            AgentDefinition::from_text(agent.definition, Path::new(agent.file), Path::new("."))
                .unwrap_or_else(|error| panic!("{}: {error}", agent.file));
        }
    }
}
