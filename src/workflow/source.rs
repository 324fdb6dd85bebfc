//! Where workflows are found by id: the [`WorkflowSource`] trait, a directory
//! and a chain of sources (the built-in examples and the registry implement
//! the trait in their own modules).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::workflow::{LoadError, LoadedWorkflow, load_file};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("workflow `{id}` not found in {searched}")]
    NotFound { id: String, searched: String },
    #[error("cannot read workflows directory {dir}")]
    ReadDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A source that could not answer (e.g. a registry that is down): the
    /// search stops here rather than silently trying the next source.
    #[error("cannot look up workflow `{id}` in {searched}")]
    Unavailable {
        id: String,
        searched: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub trait WorkflowSource: Send + Sync {
    /// The workflow whose `metadata.id` is `id`.
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>>;
}

/// Workflows in a local directory (`--workflows-dir`), matched by `metadata.id`.
/// The directory is scanned once, on the first lookup.
pub struct DirectorySource {
    pub dir: PathBuf,
    index: OnceCell<Index>,
}

/// What one scan of the directory found.
#[derive(Default)]
struct Index {
    /// `metadata.id` -> workflow; the first file (by name) wins a duplicate id.
    workflows: BTreeMap<String, Arc<LoadedWorkflow>>,
    /// Files that failed to load, kept to report them when asked for by id.
    invalid: Vec<PathBuf>,
}

impl DirectorySource {
    pub fn new(dir: impl Into<PathBuf>) -> DirectorySource {
        DirectorySource {
            dir: dir.into(),
            index: OnceCell::new(),
        }
    }

    async fn index(&self) -> Result<&Index, SourceError> {
        self.index
            .get_or_try_init(|| async { scan(&self.dir) })
            .await
    }

    fn not_found(&self, id: &str, index: &Index) -> SourceError {
        let available = if index.workflows.is_empty() {
            "no workflows there".to_string()
        } else {
            let ids: Vec<&str> = index.workflows.keys().map(String::as_str).collect();
            format!("available: {}", ids.join(", "))
        };
        SourceError::NotFound {
            id: id.to_string(),
            searched: format!("directory {} ({available})", self.dir.display()),
        }
    }
}

impl WorkflowSource for DirectorySource {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>> {
        Box::pin(async move {
            let index = self.index().await?;
            if let Some(workflow) = index.workflows.get(id) {
                return Ok(workflow.clone());
            }
            // An invalid file that looks like the one asked for explains the miss
            // better than "not found": report its load errors.
            if let Some(path) = index.invalid.iter().find(|path| looks_like(path, id)) {
                load_file(path)?;
            }
            Err(self.not_found(id, index))
        })
    }
}

fn scan(dir: &Path) -> Result<Index, SourceError> {
    let read_error = |source| SourceError::ReadDir {
        dir: dir.display().to_string(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let is_yaml = path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut index = Index::default();
    for path in paths {
        match load_file(&path) {
            Ok(loaded) => match index.workflows.entry(loaded.workflow.metadata.id.clone()) {
                Entry::Occupied(taken) => {
                    tracing::warn!(file = %path.display(), id = %taken.key(), "duplicate workflow id, file skipped");
                }
                Entry::Vacant(free) => {
                    free.insert(Arc::new(loaded));
                }
            },
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "invalid workflow file skipped");
                index.invalid.push(path);
            }
        }
    }
    Ok(index)
}

/// Whether an unloadable file is probably workflow `id`: named after it, or
/// declaring it on an `id:` line.
fn looks_like(path: &Path, id: &str) -> bool {
    if path.file_stem().is_some_and(|stem| stem == id) {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.lines().any(|line| {
        line.trim()
            .strip_prefix("id:")
            .is_some_and(|value| value.trim().trim_matches(['"', '\'']) == id)
    })
}

/// Several sources tried in order (e.g. a directory, then the built-in examples):
/// the first that has the id wins; a source's other errors stop the search.
pub struct Sources(pub Vec<Arc<dyn WorkflowSource>>);

impl WorkflowSource for Sources {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>> {
        Box::pin(async move {
            let mut searched = Vec::new();
            for source in &self.0 {
                match source.load(id).await {
                    Err(SourceError::NotFound {
                        searched: where_, ..
                    }) => searched.push(where_),
                    Err(SourceError::ReadDir { dir, .. }) => {
                        searched.push(format!("directory {dir} (unreadable)"))
                    }
                    other => return other,
                }
            }
            Err(SourceError::NotFound {
                id: id.to_string(),
                searched: searched.join(", then "),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow_text(id: &str) -> String {
        format!(
            "metadata:\n  id: {id}\n  name: {id}\n  version: 1.0.0\nsteps:\n  - {{ id: a, skill: echo }}\n"
        )
    }

    #[tokio::test]
    async fn finds_by_id_and_explains_misses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.yaml"), workflow_text("first-v1")).unwrap();
        std::fs::write(dir.path().join("two.yml"), workflow_text("second-v1")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), workflow_text("ignored-v1")).unwrap();
        std::fs::write(
            dir.path().join("broken.yaml"),
            "metadata:\n  id: broken-v1\nsteps: 3\n",
        )
        .unwrap();
        let source = DirectorySource::new(dir.path());
        let found = source.load("second-v1").await.unwrap();
        assert!(found.origin.ends_with("two.yml"), "{}", found.origin);
        let missing = source.load("third-v1").await.unwrap_err().to_string();
        assert!(
            missing.starts_with("workflow `third-v1` not found in directory "),
            "{missing}"
        );
        assert!(
            missing.ends_with("(available: first-v1, second-v1)"),
            "{missing}"
        );
        assert!(source.load("ignored-v1").await.is_err());
        // The invalid file declaring the id explains why it is not there.
        let broken = source.load("broken-v1").await.unwrap_err();
        assert!(
            matches!(broken, SourceError::Load(LoadError::Invalid { .. })),
            "{broken:?}"
        );
    }

    #[tokio::test]
    async fn scans_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.yaml"), workflow_text("first-v1")).unwrap();
        let source = DirectorySource::new(dir.path());
        assert!(source.load("first-v1").await.is_ok());
        std::fs::write(dir.path().join("late.yaml"), workflow_text("late-v1")).unwrap();
        assert!(matches!(
            source.load("late-v1").await,
            Err(SourceError::NotFound { .. })
        ));
        let missing_dir = DirectorySource::new(dir.path().join("nowhere"));
        let error = missing_dir.load("first-v1").await.unwrap_err();
        assert!(matches!(error, SourceError::ReadDir { .. }), "{error:?}");
    }

    #[test]
    fn looks_like_matches_name_or_id_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("wanted.yaml", "nothing: here", true),
            ("other.yaml", "metadata:\n  id: wanted\n", true),
            ("quoted.yml", "metadata:\n  id: \"wanted\"\n", true),
            ("other.yaml", "metadata:\n  id: wanted-v2\n", false),
            ("other.yaml", "steps: [", false),
        ];
        for (name, text, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            assert_eq!(looks_like(&path, "wanted"), expected, "{name}: {text:?}");
        }
    }
}
