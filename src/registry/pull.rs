//! The read side of [`Registry`]: resolve a reference to a digest, pull the
//! file, list workflows. Every blob goes through the cache and is verified.

use futures::stream::{self, StreamExt};
use semver::{Version, VersionReq};

use super::RegistryError;
use super::artifact::{self, sha256_digest};
use super::cache::Cached;
use super::client::{
    Listed, ListedVersion, Pulled, Registry, Resolved, UnreadableTag, exact_version,
};
use super::manifest::ImageManifest;
use super::reference::{ArtifactKind, Reference, Selector, legacy_tag_to_version, version_to_tag};
use super::resolve;

/// HEAD requests of `list` in flight at once.
const HEADS_AT_ONCE: usize = 8;

impl Registry {
    /// Pins a reference to a manifest digest and caches the manifest.
    /// Warm, this is one request (HEAD of an exact tag, or the tag list of a
    /// range whose chosen tag is cached); a cached digest reference makes
    /// none; offline makes none.
    ///
    /// Versions are immutable by policy, so a range trusts the cached digest
    /// of its chosen tag rather than spend a second request on a HEAD. A
    /// `push --force` from this machine updates the cached tag, so ranges
    /// here see it at once; a forced overwrite from elsewhere is seen by exact
    /// references (`@=1.0.0`, which always HEAD the tag and then update the
    /// cache, so ranges follow) and by fresh caches.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolved, RegistryError> {
        let repository = reference.repository();
        let resolved = match &reference.selector {
            Selector::Digest(digest) => Resolved {
                repository: repository.clone(),
                tag: None,
                version: None,
                digest: digest.clone(),
            },
            Selector::Requirement(requirement) if self.offline => {
                self.resolve_offline(&repository, requirement)?
            }
            Selector::Requirement(requirement) => {
                self.resolve_online(&repository, requirement).await?
            }
            Selector::Alias { tag, requirement } => {
                self.resolve_alias(&repository, tag, requirement).await?
            }
        };
        let (_, bytes) = self
            .manifest_by_digest(&repository, &resolved.digest)
            .await?;
        if let Some(tag) = &resolved.tag {
            self.remember(&repository, tag, &bytes)?;
        }
        Ok(resolved)
    }

    async fn resolve_online(
        &self,
        repository: &str,
        requirement: &VersionReq,
    ) -> Result<Resolved, RegistryError> {
        if let Some(version) = exact_version(requirement) {
            let tag = version_to_tag(&version);
            if let Some(digest) = self.transport.manifest_digest(repository, &tag).await? {
                return Ok(self.resolved(repository, resolve::Selected { tag, version }, digest));
            }
        }
        let tags = self.transport.tags(repository).await?.ok_or_else(|| {
            RegistryError::RepositoryNotFound {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
            }
        })?;
        let selected = resolve::select(&tags, requirement).ok_or_else(|| {
            RegistryError::NoMatchingVersion {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
                requirement: requirement.to_string(),
                available: if tags.is_empty() {
                    "none".into()
                } else {
                    tags.join(", ")
                },
            }
        })?;
        let cached = self.cached_tags(repository)?;
        let digest = match cached.into_iter().find(|(tag, _)| *tag == selected.tag) {
            Some((_, digest)) => digest,
            None => self.tag_digest(repository, &selected.tag).await?,
        };
        Ok(self.resolved(repository, selected, digest))
    }

    /// The alias tag itself when the repository has it (HEAD online, the
    /// cache offline: aliases move, so no tag list is trusted for them), else
    /// the highest version matching its requirement.
    async fn resolve_alias(
        &self,
        repository: &str,
        tag: &str,
        requirement: &VersionReq,
    ) -> Result<Resolved, RegistryError> {
        let digest = if self.offline {
            let cached = self.cached_tags(repository)?;
            cached
                .into_iter()
                .find(|(cached_tag, _)| cached_tag == tag)
                .map(|(_, digest)| digest)
        } else {
            self.transport.manifest_digest(repository, tag).await?
        };
        if let Some(digest) = digest {
            return Ok(Resolved {
                repository: repository.to_string(),
                tag: Some(tag.to_string()),
                // Read from the manifest by `pull` (a pallet push records it).
                version: None,
                digest,
            });
        }
        tracing::info!(
            repository,
            "no tag {tag}: taking the highest version matching {requirement}"
        );
        let resolved = match self.offline {
            true => self.resolve_offline(repository, requirement),
            false => self.resolve_online(repository, requirement).await,
        };
        resolved.map_err(|error| match error {
            RegistryError::NoMatchingVersion {
                registry,
                repository,
                requirement,
                available,
            } => RegistryError::NoMatchingVersion {
                registry,
                repository,
                requirement: format!("{tag} (no such tag) or {requirement}"),
                available,
            },
            error => error,
        })
    }

    fn resolve_offline(
        &self,
        repository: &str,
        requirement: &VersionReq,
    ) -> Result<Resolved, RegistryError> {
        let cached = self.cached_tags(repository)?;
        let tags: Vec<String> = cached.iter().map(|(tag, _)| tag.clone()).collect();
        let not_cached = || RegistryError::NotCached {
            what: format!(
                "{repository}@{requirement} from registry {}",
                self.address.authority
            ),
            cache: self.cache.root().to_path_buf(),
        };
        let selected = resolve::select(&tags, requirement).ok_or_else(not_cached)?;
        let digest = cached
            .into_iter()
            .find(|(tag, _)| *tag == selected.tag)
            .map(|(_, digest)| digest);
        Ok(self.resolved(repository, selected, digest.ok_or_else(not_cached)?))
    }

    fn resolved(&self, repository: &str, selected: resolve::Selected, digest: String) -> Resolved {
        Resolved {
            repository: repository.to_string(),
            tag: Some(selected.tag),
            version: Some(selected.version),
            digest,
        }
    }

    fn cached_tags(&self, repository: &str) -> Result<Vec<(String, String)>, RegistryError> {
        self.cache
            .tags(&format!("{}/{repository}", self.address.authority))
    }

    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<String, RegistryError> {
        self.transport
            .manifest_digest(repository, tag)
            .await?
            .ok_or_else(|| RegistryError::ManifestNotFound {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
                reference: tag.to_string(),
            })
    }

    /// Resolves, then reads the definition file (from the cache when there).
    pub async fn pull(&self, reference: &Reference) -> Result<Pulled, RegistryError> {
        let mut resolved = self.resolve(reference).await?;
        let repository = resolved.repository.clone();
        let (manifest, _) = self
            .manifest_by_digest(&repository, &resolved.digest)
            .await?;
        let layer = artifact::content_layer(&manifest).map_err(|problem| {
            RegistryError::UnsupportedArtifact {
                registry: self.address.authority.clone(),
                repository: repository.clone(),
                digest: resolved.digest.clone(),
                problem,
            }
        })?;
        let content = self
            .blob(&repository, &layer.digest, layer.size, "layer")
            .await?;
        // Fetched for every layout so the cached image layout is complete.
        let config_bytes = self
            .blob(
                &repository,
                &manifest.config.digest,
                manifest.config.size,
                "config",
            )
            .await?;
        let pallet_config = [
            artifact::WORKFLOW_CONFIG_MEDIA_TYPE,
            artifact::AGENT_CARD_CONFIG_MEDIA_TYPE,
        ];
        let config = pallet_config
            .contains(&manifest.config.media_type.as_str())
            .then(|| serde_json::from_slice(&config_bytes).ok())
            .flatten();
        if resolved.version.is_none() {
            resolved.version = manifest
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(artifact::ANNOTATION_VERSION))
                .and_then(|version| Version::parse(version).ok())
                // The original project's artifacts carry no version but their tag.
                .or_else(|| resolved.tag.as_deref().and_then(legacy_tag_to_version));
        }
        let extension = if reference.kind == ArtifactKind::Workflow {
            "yaml"
        } else {
            "json"
        };
        let file_name = artifact::file_name(&manifest, layer)
            .unwrap_or_else(|| format!("{}.{extension}", reference.name));
        Ok(Pulled {
            config,
            media_type: layer.media_type.clone(),
            file_name,
            content,
            manifest,
            resolved,
        })
    }

    /// Workflows in the registry with their versions (ascending) and digests.
    pub async fn list_workflows(&self) -> Result<Vec<Listed>, RegistryError> {
        self.list(ArtifactKind::Workflow).await
    }

    /// The names of the repositories of one kind (`workflows/x`, `agents/y`),
    /// sorted: one catalog request.
    pub async fn repositories(&self, kind: ArtifactKind) -> Result<Vec<String>, RegistryError> {
        let prefix = format!("{}/", kind.namespace());
        let mut repositories: Vec<String> = self
            .transport
            .catalog()
            .await?
            .into_iter()
            .filter(|repository| repository.starts_with(&prefix))
            .collect();
        repositories.sort();
        Ok(repositories)
    }

    /// Repositories of one kind (`workflows/` or `agents/`) with their
    /// versions (ascending) and digests: a catalog request, a tag list per
    /// repository, and a HEAD (concurrently) per tag not in the cache.
    pub async fn list(&self, kind: ArtifactKind) -> Result<Vec<Listed>, RegistryError> {
        let prefix = format!("{}/", kind.namespace());
        let mut listed = Vec::new();
        for repository in self.transport.catalog().await? {
            if !repository.starts_with(&prefix) {
                continue;
            }
            let tags = self.transport.tags(&repository).await?.unwrap_or_default();
            let (versions, unreadable) = self.listed_versions(&repository, &tags).await?;
            let other_tags = tags
                .into_iter()
                .filter(|tag| {
                    !versions.iter().any(|listed| listed.tag == *tag)
                        && !unreadable.iter().any(|broken| broken.tag == *tag)
                })
                .collect();
            listed.push(Listed {
                repository,
                versions,
                other_tags,
                unreadable,
            });
        }
        listed.sort_by(|left, right| left.repository.cmp(&right.repository));
        Ok(listed)
    }

    /// The versions among `tags` with their digests: cached tags are trusted
    /// (versions are immutable by policy, as for ranges in [`Self::resolve`]).
    /// A tag whose digest cannot be read is returned apart; a registry that
    /// stops answering is an error.
    async fn listed_versions(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<(Vec<ListedVersion>, Vec<UnreadableTag>), RegistryError> {
        let cached = self.cached_tags(repository)?;
        let looked_up: Vec<(resolve::Selected, Result<String, RegistryError>)> =
            stream::iter(resolve::sorted_versions(tags))
                .map(|selected| {
                    let cached_digest = cached
                        .iter()
                        .find(|(tag, _)| *tag == selected.tag)
                        .map(|(_, digest)| digest.clone());
                    async move {
                        let digest = match cached_digest {
                            Some(digest) => Ok(digest),
                            None => self.tag_digest(repository, &selected.tag).await,
                        };
                        (selected, digest)
                    }
                })
                .buffered(HEADS_AT_ONCE)
                .collect()
                .await;
        let (mut versions, mut unreadable) = (Vec::new(), Vec::new());
        for (selected, digest) in looked_up {
            match digest {
                Ok(digest) => versions.push(ListedVersion {
                    version: selected.version,
                    tag: selected.tag,
                    digest,
                }),
                Err(error) if error.is_not_answering() => return Err(error),
                Err(error) => unreadable.push(UnreadableTag {
                    tag: selected.tag,
                    problem: crate::error::chain_of(&error),
                }),
            }
        }
        Ok((versions, unreadable))
    }

    /// The manifest with this digest, from the cache when there (verified).
    pub(super) async fn manifest_by_digest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(ImageManifest, Vec<u8>), RegistryError> {
        let bytes = match self.cached_blob(repository, digest, "manifest")? {
            Some(bytes) => bytes,
            None => {
                let fetched = self.transport.manifest(repository, digest).await?;
                let fetched = fetched.ok_or_else(|| RegistryError::ManifestNotFound {
                    registry: self.address.authority.clone(),
                    repository: repository.to_string(),
                    reference: digest.to_string(),
                })?;
                self.verified(repository, digest, "manifest", fetched)?
            }
        };
        let manifest =
            serde_json::from_slice(&bytes).map_err(|error| RegistryError::UnsupportedArtifact {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
                digest: digest.to_string(),
                problem: format!("not an OCI image manifest ({error})"),
            })?;
        Ok((manifest, bytes))
    }

    async fn blob(
        &self,
        repository: &str,
        digest: &str,
        size: i64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        if let Some(bytes) = self.cached_blob(repository, digest, what)? {
            return Ok(bytes);
        }
        let fetched = self.transport.blob(repository, digest, size).await?;
        let fetched = fetched.ok_or_else(|| RegistryError::ManifestNotFound {
            registry: self.address.authority.clone(),
            repository: repository.to_string(),
            reference: digest.to_string(),
        })?;
        self.verified(repository, digest, what, fetched)
    }

    /// A cached blob; `None` when it must be fetched (absent or corrupted),
    /// which offline is an error naming what is missing.
    fn cached_blob(
        &self,
        repository: &str,
        digest: &str,
        what: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let cached = self.cache.read_blob(digest)?;
        let what = || format!("{what} {repository}@{digest}");
        match cached {
            Cached::Hit(bytes) => Ok(Some(bytes)),
            Cached::Missing if self.offline => Err(RegistryError::NotCached {
                what: what(),
                cache: self.cache.root().to_path_buf(),
            }),
            Cached::Corrupted if self.offline => Err(RegistryError::CorruptedOffline {
                what: what(),
                cache: self.cache.root().to_path_buf(),
            }),
            Cached::Missing | Cached::Corrupted => Ok(None),
        }
    }

    fn verified(
        &self,
        repository: &str,
        digest: &str,
        what: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, RegistryError> {
        if sha256_digest(&bytes) != digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
                what: what.to_string(),
                digest: digest.to_string(),
            });
        }
        self.cache.write_blob(&bytes)?;
        Ok(bytes)
    }
}
