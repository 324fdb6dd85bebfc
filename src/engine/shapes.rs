//! A workflow's steps against the JSON Schemas their agents publish (the
//! checks are `workflow::shapes`): in the preflight of every run, after the
//! agents are found and before the first step, and by `pallet validate --agent`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::agent::AgentCard;
use crate::workflow::limits::MAX_DIAGNOSTICS;
use crate::workflow::{Diagnostic, LoadedWorkflow, Published, SkillSchemas, shapes};

/// The problems of `loaded`'s steps against the schemas of `agents` (skill ->
/// the agents offering it), at their file:line:column; none when no agent
/// publishes schemas.
pub fn schema_problems(
    loaded: &LoadedWorkflow,
    agents: &HashMap<String, Vec<Arc<AgentCard>>>,
) -> Vec<Diagnostic> {
    let published: Published = agents
        .iter()
        .map(|(skill, cards)| {
            let schemas = cards
                .iter()
                .filter_map(|card| {
                    let info = card.skill(skill)?;
                    Some(SkillSchemas {
                        agent: &card.name,
                        input: info.input_schema.as_ref(),
                        output: info.output_schema.as_ref(),
                    })
                })
                .collect();
            (skill.as_str(), schemas)
        })
        .collect();
    let problems = shapes::check(&loaded.workflow, &published);
    if problems.is_empty() {
        return Vec::new();
    }
    loaded.diagnostics(problems)
}

/// The run's preflight: fails with every problem when the steps do not fit.
pub(super) fn check_schemas(
    loaded: &LoadedWorkflow,
    agents: &HashMap<String, Vec<Arc<AgentCard>>>,
) -> Result<(), String> {
    let diagnostics = schema_problems(loaded, agents);
    match diagnostics.is_empty() {
        true => Ok(()),
        false => Err(describe(&loaded.workflow.metadata.id, &diagnostics)),
    }
}

/// One line (the run record keeps one string): the count, then each
/// problem with its place and hint, at most [`MAX_DIAGNOSTICS`].
fn describe(workflow: &str, diagnostics: &[Diagnostic]) -> String {
    let count = diagnostics.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut message = format!(
        "the steps of workflow `{workflow}` do not fit the schemas their agents publish ({count} problem{plural}): "
    );
    let listed: Vec<String> = diagnostics
        .iter()
        .take(MAX_DIAGNOSTICS)
        .map(|diagnostic| {
            let hint = diagnostic
                .hint
                .as_ref()
                .map(|hint| format!(" (hint: {hint})"))
                .unwrap_or_default();
            format!(
                "{}:{}:{}: {}{hint}",
                diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.message
            )
        })
        .collect();
    message.push_str(&listed.join("; "));
    if count > MAX_DIAGNOSTICS {
        message.push_str(&format!("; and {} more", count - MAX_DIAGNOSTICS));
    }
    message
}
