//! The agents of a run, found for every skill the workflow calls before its
//! first step runs, so a missing one fails the run at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::join_all;

use crate::agent::{AgentCard, DiscoveryError};
use crate::engine::{EXECUTE_WORKFLOW, Engine};
use crate::error::chain_of;
use crate::workflow::{StepKind, Workflow};

/// Every skill the workflow calls must have an agent before the first step runs.
pub(super) async fn agents_for_workflow(
    engine: &Engine,
    workflow: &Workflow,
) -> Result<HashMap<String, Vec<Arc<AgentCard>>>, String> {
    let skills: BTreeSet<&str> = workflow
        .all_steps()
        .into_iter()
        .filter_map(|step| match step.kind() {
            StepKind::Call { skill } if skill != EXECUTE_WORKFLOW => Some(skill),
            _ => None,
        })
        .collect();
    let found = join_all(
        skills
            .iter()
            .map(|skill| engine.discovery.agents_for(skill)),
    )
    .await;
    let mut agents = HashMap::new();
    let mut missing = Vec::new();
    let mut hints = Vec::new();
    for (skill, result) in skills.into_iter().zip(found) {
        match result {
            Ok(cards) if !cards.is_empty() => {
                agents.insert(skill.to_string(), cards);
            }
            Ok(_) => missing.push(format!("`{skill}`")),
            Err(error @ DiscoveryError::UnknownSkill { .. }) => {
                missing.push(format!("`{skill}`"));
                hints.extend(error.hint().map(|hint| format!("`{skill}`: {hint}")));
            }
            Err(error) => {
                // The record keeps one string: the hint goes with the error.
                let hint = error.hint().map(|hint| format!("; {hint}"));
                return Err(chain_of(&error) + hint.as_deref().unwrap_or_default());
            }
        }
    }
    if missing.is_empty() {
        return Ok(agents);
    }
    let plural = if missing.len() == 1 { "" } else { "s" };
    let mut message = format!(
        "no agent offers skill{plural} {} (searched: {})",
        missing.join(", "),
        engine.discovery.searched()
    );
    // The record keeps one string: the hints (did you mean, what is offered) go with it.
    for hint in hints {
        message.push_str("; ");
        message.push_str(&hint);
    }
    Err(message)
}
