//! `pallet validate FILE...`, and with `--agent`/`--agents-file` the steps
//! against the schemas those agents publish (as a run's preflight checks them).

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;

use crate::agent::{AgentCard, Discovery};
use crate::cli::args::ValidateArgs;
use crate::cli::printer::{self, EXIT_BAD_INPUT, terminal_safe};
use crate::cli::settings::configured_agents;
use crate::engine::{EXECUTE_WORKFLOW, schema_problems};
use crate::error::chain_of;
use crate::workflow::validate::Problem;
use crate::workflow::{Diagnostic, LoadError, LoadedWorkflow, load_file, shapes};

pub async fn command(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let discovery = match args.checks_agents() {
        true => Some(configured_agents(
            &args.agents,
            args.agents_file.as_deref(),
        )?),
        false => None,
    };
    let mut reports = Vec::new();
    let mut all_valid = true;
    for path in &args.files {
        let file = path.display().to_string();
        let loaded = load_file(path);
        let problems = match (&loaded, &discovery) {
            (Ok(loaded), Some(discovery)) => against_agents(discovery.as_ref(), loaded).await,
            _ => Vec::new(),
        };
        let outcome = match loaded {
            Ok(loaded) if !problems.is_empty() => {
                print_warnings(&args, &loaded);
                Err(LoadError::invalid(&file, problems))
            }
            outcome => outcome,
        };
        match outcome {
            Ok(loaded) => {
                let metadata = &loaded.workflow.metadata;
                if !args.json {
                    outln!(
                        "ok: {} ({} {}, {} steps)",
                        terminal_safe(&file),
                        terminal_safe(&metadata.id),
                        metadata.version,
                        loaded.workflow.all_steps().len()
                    );
                    print_warnings(&args, &loaded);
                }
                reports.push(json!({
                    "file": file, "valid": true,
                    "workflow": {"id": metadata.id, "version": metadata.version.to_string()},
                    "diagnostics": [], "warnings": loaded.warnings,
                }));
            }
            Err(error) => {
                all_valid = false;
                let diagnostics = match &error {
                    LoadError::Invalid { diagnostics, .. } => json!(diagnostics),
                    LoadError::Read { .. } => json!([{"file": file, "message": error.to_string()}]),
                };
                if !args.json {
                    printer::stderr_text(&printer::render_error(&anyhow::Error::new(error)));
                }
                reports.push(json!({"file": file, "valid": false, "diagnostics": diagnostics}));
            }
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::from(if all_valid { 0 } else { EXIT_BAD_INPUT }))
}

fn print_warnings(args: &ValidateArgs, loaded: &LoadedWorkflow) {
    if args.json {
        return;
    }
    for warning in &loaded.warnings {
        errln!("warning: {}", terminal_safe(&warning.to_string()));
    }
}

/// The steps of `loaded` against the schemas of the agents `discovery`
/// finds for their skills, and each step whose skill no agent offers.
async fn against_agents(discovery: &dyn Discovery, loaded: &LoadedWorkflow) -> Vec<Diagnostic> {
    let sites = shapes::skill_sites(&loaded.workflow);
    let skills: BTreeSet<&str> = sites
        .iter()
        .map(|(skill, _)| *skill)
        .filter(|skill| *skill != EXECUTE_WORKFLOW)
        .collect();
    let found = join_all(skills.iter().map(|skill| discovery.agents_for(skill))).await;
    let mut agents: HashMap<String, Vec<Arc<AgentCard>>> = HashMap::new();
    // skill -> why it cannot be called, and what to do.
    let mut unusable: HashMap<&str, (String, Option<String>)> = HashMap::new();
    for (skill, result) in skills.into_iter().zip(found) {
        match result {
            Ok(cards) if !cards.is_empty() => {
                agents.insert(skill.to_string(), cards);
            }
            Ok(_) => {
                let message = format!(
                    "no agent offers skill `{skill}` (searched: {})",
                    discovery.searched()
                );
                unusable.insert(skill, (message, None));
            }
            Err(error) => {
                unusable.insert(skill, (chain_of(&error), error.hint()));
            }
        }
    }
    let problems: Vec<Problem> = sites
        .iter()
        .filter_map(|(skill, pointer)| {
            let (message, hint) = unusable.get(skill)?;
            Some(Problem::new(pointer, message.clone(), hint.clone()))
        })
        .collect();
    let mut diagnostics = loaded.diagnostics(problems);
    diagnostics.extend(schema_problems(loaded, &agents));
    diagnostics
}
