//! The workflow-source chain: the registry, then the workflows directory if
//! it exists, then the built-in examples; and the one line saying which
//! of them a workflow came from.

use std::path::Path;
use std::sync::Arc;

use super::registry::Connected;
use crate::builtin::{BUILTIN_ORIGIN, BuiltinWorkflows};
use crate::cli::printer::BadInput;
use crate::registry::{RegistryError, RegistrySource};
use crate::workflow::LoadedWorkflow;
use crate::workflow::{DirectorySource, SourceError, Sources, WorkflowSource};

/// The registry, then `workflows_dir` if it exists, then the built-in examples.
pub fn chain(
    connected: &Connected,
    workflows_dir: &Path,
) -> (Arc<RegistrySource>, Arc<dyn WorkflowSource>) {
    let registry_source = Arc::new(RegistrySource::new(
        connected.registry.clone(),
        !connected.configured,
    ));
    let mut sources: Vec<Arc<dyn WorkflowSource>> = vec![registry_source.clone()];
    if workflows_dir.is_dir() {
        sources.push(Arc::new(DirectorySource::new(workflows_dir.to_path_buf())));
    }
    sources.push(Arc::new(BuiltinWorkflows));
    (registry_source, Arc::new(Sources(sources)))
}

pub async fn load(
    workflows: &Arc<dyn WorkflowSource>,
    reference: &str,
) -> anyhow::Result<Arc<LoadedWorkflow>> {
    workflows.load(reference).await.map_err(|error| match error {
        // The registry could not answer: not the user's input, and no fallback.
        SourceError::Unavailable { ref source, .. } => {
            let down = source
                .downcast_ref::<RegistryError>()
                .is_some_and(RegistryError::is_not_answering);
            let message = format!("cannot resolve workflow `{reference}`");
            let message = match down {
                true => format!("{message} (the configured registry does not answer: start it, e.g. scripts/bootstrap.sh, or leave --registry/PALLET_REGISTRY unset to use the built-in examples)"),
                false => message,
            };
            anyhow::Error::new(error).context(message)
        }
        error => anyhow::Error::new(error).context(
            BadInput::new(format!("cannot find workflow `{reference}`"))
                .hint("pass --file FILE, push it with `pallet push FILE`, or pass --workflows-dir DIR where a file with that metadata.id lives"),
        ),
    })
}

/// The one line saying where workflow `reference` came from (`origin`).
pub fn origin_line(
    reference: &str,
    workflows_dir: &Path,
    origin: &str,
    registry_source: &RegistrySource,
    registry: &str,
) -> String {
    let used = || {
        if origin.starts_with(BUILTIN_ORIGIN) {
            "the built-in example workflow".to_string()
        } else {
            format!("workflow file {origin}")
        }
    };
    if registry_source.was_not_cached() {
        return format!(
            "offline, `{reference}` is not in the local cache of registry {registry}: using {}",
            used()
        );
    }
    if registry_source.was_not_answering() {
        return format!(
            "no registry configured and none answering at {registry}: using {} `{reference}`",
            used(),
        );
    }
    if origin.starts_with(BUILTIN_ORIGIN) {
        return format!(
            "using the built-in example workflow `{reference}` (not in registry {registry}, no {} directory here)",
            workflows_dir.display()
        );
    }
    format!("using workflow {origin}")
}
