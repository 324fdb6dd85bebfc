//! The write side of [`Registry`]: push a workflow or an agent card as an
//! artifact, blobs first and the manifest last, so a failed push leaves the
//! registry's tags as they were.

use std::path::Path;

use semver::Version;

use super::RegistryError;
use super::artifact::{self, ArtifactContent};
use super::client::Registry;
use super::reference::{self, ArtifactKind, version_to_tag};
use super::resolve;

/// How a push treats the tags already in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOptions {
    /// Replace a version that already exists with different content.
    pub force: bool,
    /// Also point the `v<MAJOR>` tag at what was pushed when it is the highest
    /// release of its major, so the original project's tools (which read
    /// `:v1`) see it. The semver tag stays immutable; only the alias moves.
    pub alias: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            force: false,
            alias: true,
        }
    }
}

/// The version an agent card without a `version` is pushed as: the original
/// project's cards have none and are read as `v1`, which is `1.0.0` here.
pub const DEFAULT_AGENT_CARD_VERSION: Version = Version::new(1, 0, 0);

/// A version stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub repository: String,
    pub version: Version,
    pub tag: String,
    pub digest: String,
    /// False when identical content was already there (nothing was written).
    pub uploaded: bool,
    /// The `v<MAJOR>` tag now pointing at this version, if any.
    pub alias: Option<String>,
}

/// Schema version recorded in the config blob of pushed workflows.
const WORKFLOW_SCHEMA_VERSION: u32 = 1;

impl Registry {
    /// Validates a workflow file, then pushes it byte for byte.
    pub async fn push_workflow_file(
        &self,
        path: &Path,
        provenance: artifact::Provenance,
        options: PushOptions,
    ) -> Result<Pushed, RegistryError> {
        let loaded =
            crate::workflow::load_file(path).map_err(|source| RegistryError::InvalidWorkflow {
                file: path.display().to_string(),
                source,
            })?;
        let file_name = path.file_name().map_or_else(
            || loaded.origin.clone(),
            |name| name.to_string_lossy().into_owned(),
        );
        self.push_workflow(&loaded, &file_name, provenance.or_from_git(path), options)
            .await
    }

    /// Pushes an already validated workflow under `workflows/<id without -vN>`.
    pub async fn push_workflow(
        &self,
        loaded: &crate::workflow::LoadedWorkflow,
        file_name: &str,
        provenance: artifact::Provenance,
        options: PushOptions,
    ) -> Result<Pushed, RegistryError> {
        let metadata = &loaded.workflow.metadata;
        let content = ArtifactContent {
            artifact_type: artifact::WORKFLOW_ARTIFACT_TYPE,
            config_media_type: artifact::WORKFLOW_CONFIG_MEDIA_TYPE,
            layer_media_type: artifact::WORKFLOW_LAYER_MEDIA_TYPE,
            config: artifact::ArtifactConfig {
                id: metadata.id.clone(),
                name: metadata.name.clone(),
                version: metadata.version.to_string(),
                schema_version: WORKFLOW_SCHEMA_VERSION,
            },
            file_name: file_name.to_string(),
            bytes: loaded.text.as_bytes().to_vec(),
            description: metadata.description.clone(),
            provenance,
        };
        let repository =
            reference::repository(ArtifactKind::Workflow, reference::name_for_id(&metadata.id));
        self.push(&repository, &metadata.version, &content, options)
            .await
    }

    /// Pushes an agent card (JSON with `name`, and `version` or else
    /// [`DEFAULT_AGENT_CARD_VERSION`]) under `agents/<name>`.
    pub async fn push_agent_card(
        &self,
        file_name: &str,
        bytes: &[u8],
        provenance: artifact::Provenance,
        options: PushOptions,
    ) -> Result<Pushed, RegistryError> {
        let invalid = |problem: &str| RegistryError::InvalidAgentCard {
            file: file_name.to_string(),
            problem: problem.to_string(),
        };
        let card: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|error| invalid(&error.to_string()))?;
        let name = card["name"]
            .as_str()
            .ok_or_else(|| invalid("no `name` string"))?;
        let version =
            card_version(file_name, &card["version"]).map_err(|problem| invalid(&problem))?;
        let slug = slug(name).ok_or_else(|| invalid("`name` has no letters or digits"))?;
        let content = ArtifactContent {
            artifact_type: artifact::AGENT_CARD_ARTIFACT_TYPE,
            config_media_type: artifact::AGENT_CARD_CONFIG_MEDIA_TYPE,
            layer_media_type: artifact::AGENT_CARD_LAYER_MEDIA_TYPE,
            config: artifact::ArtifactConfig {
                id: slug.clone(),
                name: name.to_string(),
                version: version.to_string(),
                schema_version: 1,
            },
            file_name: file_name.to_string(),
            bytes: bytes.to_vec(),
            description: card["description"].as_str().map(String::from),
            provenance,
        };
        let repository = reference::repository(ArtifactKind::AgentCard, &slug);
        self.push(&repository, &version, &content, options).await
    }

    /// Uploads blobs first and the manifest last, so a failed push leaves the
    /// tag as it was; identical content is a no-op.
    async fn push(
        &self,
        repository: &str,
        version: &Version,
        content: &ArtifactContent,
        options: PushOptions,
    ) -> Result<Pushed, RegistryError> {
        let mut pushed = self
            .push_version(repository, version, content, options.force)
            .await?;
        if options.alias {
            pushed.alias = self.move_alias(repository, version, &pushed.digest).await?;
        }
        Ok(pushed)
    }

    /// Points `v<MAJOR>` at `digest` unless a higher release of that major
    /// exists (pre-releases never move it); returns the alias when it points there.
    async fn move_alias(
        &self,
        repository: &str,
        version: &Version,
        digest: &str,
    ) -> Result<Option<String>, RegistryError> {
        if !version.pre.is_empty() {
            return Ok(None);
        }
        let tags = self.transport.tags(repository).await?.unwrap_or_default();
        let higher = resolve::sorted_versions(&tags).into_iter().any(|selected| {
            selected.version.major == version.major
                && selected.version.pre.is_empty()
                && selected.version > *version
        });
        if higher {
            return Ok(None);
        }
        let alias = reference::major_alias(version);
        let (_, manifest_bytes) = self.manifest_by_digest(repository, digest).await?;
        if self
            .transport
            .manifest_digest(repository, &alias)
            .await?
            .as_deref()
            != Some(digest)
        {
            self.upload_manifest(repository, &alias, &manifest_bytes)
                .await?;
        }
        self.remember(repository, &alias, &manifest_bytes)?;
        Ok(Some(alias))
    }

    /// The semver tag: written once, then only replaced with `force`.
    async fn push_version(
        &self,
        repository: &str,
        version: &Version,
        content: &ArtifactContent,
        force: bool,
    ) -> Result<Pushed, RegistryError> {
        let tag = version_to_tag(version);
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let built = artifact::build(content, &created);
        let pushed = |digest: String, uploaded: bool| Pushed {
            repository: repository.to_string(),
            version: version.clone(),
            tag: tag.clone(),
            digest,
            uploaded,
            alias: None,
        };
        if let Some(existing_digest) = self.transport.manifest_digest(repository, &tag).await? {
            let (existing, _) = self
                .manifest_by_digest(repository, &existing_digest)
                .await?;
            if artifact::same_content(&existing, &built.manifest) {
                return Ok(pushed(existing_digest, false));
            }
            if !force {
                return Err(RegistryError::TagExists {
                    registry: self.address.authority.clone(),
                    repository: repository.to_string(),
                    tag,
                    existing: existing_digest,
                });
            }
        }
        let push_error = |source| push_error(&self.address.authority, repository, &tag, source);
        for bytes in [&built.config_bytes, &content.bytes] {
            let digest = artifact::sha256_digest(bytes);
            let present = self
                .transport
                .blob_exists(repository, &digest)
                .await
                .map_err(push_error)?;
            if !present {
                self.transport
                    .upload_blob(repository, &digest, bytes)
                    .await
                    .map_err(push_error)?;
            }
            self.cache.write_blob(bytes)?;
        }
        self.upload_manifest(repository, &tag, &built.manifest_bytes)
            .await?;
        self.remember(repository, &tag, &built.manifest_bytes)?;
        Ok(pushed(built.digest, true))
    }

    /// Tags `manifest_bytes` (whose blobs are in the registry) as `tag`.
    async fn upload_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest_bytes: &[u8],
    ) -> Result<(), RegistryError> {
        self.transport
            .put_manifest(repository, tag, manifest_bytes)
            .await
            .map_err(|source| push_error(&self.address.authority, repository, tag, source))
    }
}

/// A failed upload, named after what was pushed; a registry that does not
/// answer stays [`RegistryError::NotAnswering`] (the CLI's fallback cue).
fn push_error(registry: &str, repository: &str, tag: &str, source: RegistryError) -> RegistryError {
    if source.is_not_answering() {
        return source;
    }
    RegistryError::Push {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: tag.to_string(),
        source: Box::new(source),
    }
}

/// A card's `version`: semver, or the original project's forms (`1`, `1.2`,
/// `v1.2.3`) completed with zeros; absent or null means
/// [`DEFAULT_AGENT_CARD_VERSION`] (with a warning).
fn card_version(file_name: &str, version: &serde_json::Value) -> Result<Version, String> {
    let text = match version {
        serde_json::Value::Null => {
            tracing::warn!(
                "agent card {file_name} has no `version`: pushed as {DEFAULT_AGENT_CARD_VERSION} (the original project's v1); add a `version` to choose another"
            );
            return Ok(DEFAULT_AGENT_CARD_VERSION);
        }
        serde_json::Value::String(text) => text,
        other => {
            return Err(format!(
                "`version` must be a string like \"1.0.0\", not {other}"
            ));
        }
    };
    let legacy = || {
        let tagged = format!("v{}", text.trim_start_matches('v'));
        reference::legacy_tag_to_version(&tagged)
    };
    Version::parse(text).ok().or_else(legacy).ok_or_else(|| {
        format!(
            "`version` \"{text}\" is not a version (write MAJOR.MINOR.PATCH, e.g. \"1.0.0\", or leave it out for {DEFAULT_AGENT_CARD_VERSION})"
        )
    })
}

/// `Planner Agent` -> `planner-agent`.
fn slug(name: &str) -> Option<String> {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    (!words.is_empty()).then(|| words.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_versions_default_and_accept_the_original_forms() {
        let cases = [
            (serde_json::json!(null), Ok("1.0.0")),
            (serde_json::json!("2.1.0"), Ok("2.1.0")),
            (serde_json::json!("1.0.0-rc.1"), Ok("1.0.0-rc.1")),
            (serde_json::json!("1"), Ok("1.0.0")),
            (serde_json::json!("1.2"), Ok("1.2.0")),
            (serde_json::json!("v1.2.3"), Ok("1.2.3")),
            (
                serde_json::json!("banana"),
                Err("`version` \"banana\" is not a version"),
            ),
            (serde_json::json!(1), Err("`version` must be a string")),
        ];
        for (version, expected) in cases {
            let got = card_version("card.json", &version).map(|version| version.to_string());
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{version}"),
                (Err(got), Err(expected)) => assert!(got.contains(expected), "{version}: {got}"),
                (got, expected) => panic!("{version}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn slugs_card_names() {
        let cases = [
            ("Planner Agent", Some("planner-agent")),
            ("code_writer", Some("code-writer")),
            ("!!", None),
        ];
        for (name, expected) in cases {
            assert_eq!(slug(name).as_deref(), expected, "{name}");
        }
    }
}
