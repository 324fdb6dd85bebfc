//! [`RegistrySource`]: workflows looked up by reference in a registry, so
//! top-level runs and `execute_workflow` sub-workflows resolve the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::reference::{ArtifactKind, Reference, name_for_id};
use super::{Registry, RegistryError};
use crate::workflow::{LoadedWorkflow, SourceError, WorkflowSource, load_str};

/// The `workflow_source` of a run from a registry: `HOST/REPOSITORY@DIGEST`.
pub fn origin(registry: &str, repository: &str, digest: &str) -> String {
    format!("{registry}/{repository}@{digest}")
}

/// The digest in a `workflow_source` written by [`origin`], if it is one.
pub fn digest_of_origin(origin: &str) -> Option<&str> {
    let (_, digest) = origin.rsplit_once('@')?;
    digest.starts_with("sha256:").then_some(digest)
}

pub struct RegistrySource {
    registry: Arc<Registry>,
    /// The registry was not configured (the default one): when it does not
    /// answer, the next sources are tried instead of failing.
    optional: bool,
    not_answering: AtomicBool,
    /// Offline, a workflow was not in the cache: the next sources were tried.
    not_cached: AtomicBool,
}

impl RegistrySource {
    pub fn new(registry: Arc<Registry>, optional: bool) -> RegistrySource {
        RegistrySource {
            registry,
            optional,
            not_answering: AtomicBool::new(false),
            not_cached: AtomicBool::new(false),
        }
    }

    /// Whether an optional registry was found not answering.
    pub fn was_not_answering(&self) -> bool {
        self.not_answering.load(Ordering::Relaxed)
    }

    /// Whether, offline, a workflow was missing from the cache (and so was
    /// looked for in the next sources).
    pub fn was_not_cached(&self) -> bool {
        self.not_cached.load(Ordering::Relaxed)
    }

    async fn pull(&self, id: &str) -> Result<Arc<LoadedWorkflow>, SourceError> {
        let searched = format!("registry {}", self.registry.address());
        let unavailable = |source: RegistryError| SourceError::Unavailable {
            id: id.to_string(),
            searched: searched.clone(),
            source: Box::new(source),
        };
        let reference = Reference::parse(ArtifactKind::Workflow, id).map_err(unavailable)?;
        let pulled = match self.registry.pull(&reference).await {
            Ok(pulled) => pulled,
            Err(error) if error.is_not_answering() && self.optional => {
                self.not_answering.store(true, Ordering::Relaxed);
                return Err(SourceError::NotFound {
                    id: id.to_string(),
                    searched: format!("{searched} (not answering)"),
                });
            }
            // Offline means no network, not no other source.
            Err(RegistryError::NotCached { .. }) => {
                self.not_cached.store(true, Ordering::Relaxed);
                return Err(SourceError::NotFound {
                    id: id.to_string(),
                    searched: format!("{searched} (not in the local cache, offline)"),
                });
            }
            Err(
                RegistryError::RepositoryNotFound { .. } | RegistryError::NoMatchingVersion { .. },
            ) => {
                return Err(SourceError::NotFound {
                    id: id.to_string(),
                    searched: format!("{searched} ({})", reference.repository()),
                });
            }
            Err(error) => return Err(unavailable(error)),
        };
        let origin = origin(
            self.registry.address(),
            &pulled.resolved.repository,
            &pulled.resolved.digest,
        );
        let text = String::from_utf8(pulled.content).map_err(|_| {
            unavailable(RegistryError::UnsupportedArtifact {
                registry: self.registry.address().to_string(),
                repository: pulled.resolved.repository.clone(),
                digest: pulled.resolved.digest.clone(),
                problem: "the workflow file is not UTF-8 text".to_string(),
            })
        })?;
        let loaded = load_str(&origin, &text)?;
        let pulled_id = &loaded.workflow.metadata.id;
        if !same_workflow(&reference.name, pulled_id) {
            return Err(unavailable(RegistryError::UnsupportedArtifact {
                registry: self.registry.address().to_string(),
                repository: pulled.resolved.repository,
                digest: pulled.resolved.digest,
                problem: format!("it holds workflow `{pulled_id}`, not `{id}`"),
            }));
        }
        Ok(Arc::new(loaded))
    }
}

/// Whether a pulled workflow id is the one asked for by repository name:
/// the `-vN` suffix may differ (`demo` and `demo-v2` both live in `demo`).
fn same_workflow(asked_name: &str, pulled_id: &str) -> bool {
    name_for_id(pulled_id) == asked_name
}

impl WorkflowSource for RegistrySource {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Arc<LoadedWorkflow>, SourceError>> {
        Box::pin(self.pull(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_origins() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            (
                origin("h:5000", "workflows/x", &digest),
                Some(digest.as_str()),
            ),
            ("built-in:x.yaml".to_string(), None),
            ("workflows/x.yaml".to_string(), None),
            ("me@host/x.yaml".to_string(), None),
        ];
        for (origin, expected) in cases {
            assert_eq!(digest_of_origin(&origin), expected, "{origin}");
        }
    }

    #[test]
    fn pulled_workflow_ids_must_be_the_one_asked_for() {
        let cases = [
            ("demo", "demo", true),
            ("demo", "demo-v1", true),
            ("demo", "demo-v2", true),
            ("demo", "demo-extra", false),
            ("demo", "other-v1", false),
            ("code-generation", "code-generation-v1", true),
        ];
        for (asked, pulled, expected) in cases {
            assert_eq!(same_workflow(asked, pulled), expected, "{asked} {pulled}");
        }
    }

    #[tokio::test]
    async fn optional_registry_down_is_not_found() {
        let cache = tempfile::tempdir().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap().to_string();
        drop(closed);
        let registry = Arc::new(
            Registry::new(super::super::RegistryOptions::new(&address, cache.path())).unwrap(),
        );
        let optional = RegistrySource::new(registry.clone(), true);
        let error = optional.load("demo-v1").await.unwrap_err();
        assert!(matches!(error, SourceError::NotFound { .. }), "{error:?}");
        assert!(optional.was_not_answering());
        let configured = RegistrySource::new(registry, false);
        let error = configured.load("demo-v1").await.unwrap_err();
        assert!(
            matches!(error, SourceError::Unavailable { .. }),
            "{error:?}"
        );
        assert!(!configured.was_not_answering());
    }
}
