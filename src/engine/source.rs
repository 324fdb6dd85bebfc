//! Where workflows are found by id (a directory now; the registry later).
//! OWNER: engine helper.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::workflow::{LoadError, LoadedWorkflow};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("workflow `{id}` not found in {searched}")]
    NotFound { id: String, searched: String },
    #[error(transparent)]
    Load(#[from] LoadError),
}

pub trait WorkflowSource: Send + Sync {
    /// The workflow whose `metadata.id` is `id`.
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>>;
}

/// Workflows in a local directory (`--workflows-dir`), matched by `metadata.id`.
pub struct DirectorySource {
    pub dir: PathBuf,
}
