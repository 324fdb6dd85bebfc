//! Stored runs carry their workflow's text; loading it (YAML, schema and
//! semantic checks) costs far more than a step's bookkeeping, and every run
//! of a workflow carries the same text. So a loaded workflow is kept by its
//! digest and origin and shared by all runs of it in this process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::store::StoredRun;
use crate::workflow::{LoadError, LoadedWorkflow, load_str};

/// Distinct workflows kept; past this the cache starts over (runs reload on demand).
const MAX_WORKFLOWS: usize = 256;

type Key = (String, String);

static LOADED: LazyLock<Mutex<HashMap<Key, Arc<LoadedWorkflow>>>> = LazyLock::new(Default::default);

/// The workflow `run` executes, loaded once per digest and origin.
pub(crate) fn loaded_workflow(run: &StoredRun) -> Result<Arc<LoadedWorkflow>, LoadError> {
    let key = (run.workflow_digest.clone(), run.workflow_source.clone());
    if let Some(found) = lock().get(&key) {
        // Compared, not trusted: a row edited by hand may keep a stale digest.
        if found.text == run.workflow_yaml {
            return Ok(found.clone());
        }
    }
    // Loaded outside the lock: a slow load does not hold up other runs' lookups.
    let loaded = Arc::new(load_str(&run.workflow_source, &run.workflow_yaml)?);
    let mut cache = lock();
    if cache.len() >= MAX_WORKFLOWS {
        cache.clear();
    }
    cache.insert(key, loaded.clone());
    Ok(loaded)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Key, Arc<LoadedWorkflow>>> {
    // The map holds finished values only: a panic elsewhere leaves it usable.
    LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
