//! [`Registry`]: push, resolve, pull and list against one registry, through the
//! local cache. Reads go through [`Transport`] (one counted request each);
//! uploads go through oci-client.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use semver::{Version, VersionReq};

use super::address::RegistryAddress;
use super::artifact::{self, ArtifactContent};
use super::cache::Cache;
use super::docker_config::LazyCredentials;
use super::reference::{self, ArtifactKind, version_to_tag};
use super::resolve;
use super::transport::Transport;
use super::{Credentials, RegistryError};

pub struct RegistryOptions {
    /// `host:port`.
    pub address: String,
    /// Hosts (or `host:port`) reached over plain HTTP although not loopback.
    pub insecure_hosts: Vec<String>,
    /// When `None`: those of [`Self::docker_config`], else anonymous.
    pub credentials: Option<Credentials>,
    /// Docker `config.json` read (and its credential helper run) only when a
    /// request first needs credentials; its failures are warnings.
    pub docker_config: Option<PathBuf>,
    /// Root of the OCI layout cache, usually [`super::default_cache_dir`].
    pub cache_dir: PathBuf,
    /// Serve only from the cache; never contact the registry.
    pub offline: bool,
    /// How long a registry request may stall, and take in all.
    pub timeouts: Timeouts,
}

/// Bounds on every registry read: a registry that stops sending fails the
/// request instead of hanging the run (or the service's `POST /workflows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for the next bytes of an answer.
    pub read: std::time::Duration,
    /// Longest a whole request (headers and body) may take.
    pub total: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            read: std::time::Duration::from_secs(30),
            total: std::time::Duration::from_secs(120),
        }
    }
}

impl RegistryOptions {
    /// Anonymous, online, no extra insecure hosts.
    pub fn new(address: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        RegistryOptions {
            address: address.into(),
            insecure_hosts: Vec::new(),
            credentials: None,
            docker_config: None,
            cache_dir: cache_dir.into(),
            offline: false,
            timeouts: Timeouts::default(),
        }
    }
}

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

/// A reference pinned to a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub repository: String,
    /// The tag it was resolved through; `None` for a digest reference.
    pub tag: Option<String>,
    pub version: Option<Version>,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct Pulled {
    pub resolved: Resolved,
    pub manifest: OciImageManifest,
    /// The config of a pallet artifact; `None` for other layouts.
    pub config: Option<artifact::ArtifactConfig>,
    /// From the title annotation, else `<name>.yaml` / `<name>.json`.
    pub file_name: String,
    pub media_type: String,
    /// The file, byte for byte, verified against its digest.
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    pub version: Version,
    pub tag: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub repository: String,
    /// Ascending semver order.
    pub versions: Vec<ListedVersion>,
    /// Tags that are not semver (e.g. the original project's `v1`).
    pub other_tags: Vec<String>,
    /// Version tags whose manifest could not be read: listed as warnings,
    /// so one broken tag does not hide the others.
    pub unreadable: Vec<UnreadableTag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableTag {
    pub tag: String,
    /// The error, as one line with its causes.
    pub problem: String,
}

pub struct Registry {
    pub(super) address: RegistryAddress,
    pub(super) transport: Transport,
    /// Built at the first push: reads never need it.
    uploader: OnceLock<Client>,
    protocol: ClientProtocol,
    pub(super) cache: Cache,
    pub(super) offline: bool,
}

/// Schema version recorded in the config blob of pushed workflows.
const WORKFLOW_SCHEMA_VERSION: u32 = 1;

impl Registry {
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        // reqwest is built without a default crypto provider; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let address = RegistryAddress::parse(&options.address, &options.insecure_hosts)?;
        let credentials = match (options.credentials, options.docker_config) {
            (None, Some(path)) => LazyCredentials::from_docker_config(path, &address.authority),
            (credentials, _) => LazyCredentials::given(credentials),
        };
        let transport = Transport::new(
            address.scheme(),
            &address.authority,
            credentials,
            options.insecure_hosts.clone(),
            options.timeouts,
        )?;
        let protocol = match address.plain_http {
            true => ClientProtocol::HttpsExcept(vec![address.authority.clone()]),
            false => ClientProtocol::Https,
        };
        Ok(Registry {
            uploader: OnceLock::new(),
            protocol,
            transport,
            address,
            cache: Cache::new(options.cache_dir),
            offline: options.offline,
        })
    }

    /// The oci-client used for writes (its construction loads TLS roots).
    fn uploader(&self) -> &Client {
        self.uploader.get_or_init(|| {
            Client::new(ClientConfig {
                protocol: self.protocol.clone(),
                use_monolithic_push: true,
                ..Default::default()
            })
        })
    }

    pub fn address(&self) -> &str {
        &self.address.authority
    }

    /// HTTP requests this client's reads made (uploads not counted).
    pub fn read_requests(&self) -> usize {
        self.transport.requests()
    }

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
        self.authorize_uploader().await;
        let image = oci_client::Reference::with_tag(
            self.address.authority.clone(),
            repository.to_string(),
            tag.clone(),
        );
        let push_error = |source| self.push_error(repository, &tag, source);
        for bytes in [&built.config_bytes, &content.bytes] {
            let digest = artifact::sha256_digest(bytes);
            if !self
                .uploader()
                .blob_exists(&image, &digest)
                .await
                .map_err(push_error)?
            {
                self.uploader()
                    .push_blob(&image, bytes.clone(), &digest)
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
        self.authorize_uploader().await;
        let image = oci_client::Reference::with_tag(
            self.address.authority.clone(),
            repository.to_string(),
            tag.to_string(),
        );
        let media_type = reqwest::header::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
        self.uploader()
            .push_manifest_raw(&image, manifest_bytes.to_vec(), media_type)
            .await
            .map_err(|source| self.push_error(repository, tag, source))?;
        Ok(())
    }

    /// Stored in the uploader only when set: anonymous auth would make it
    /// probe `/v2/` before every request.
    async fn authorize_uploader(&self) {
        if let Some(credentials) = self.transport.credentials() {
            let auth =
                RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone());
            self.uploader()
                .store_auth_if_needed(&self.address.authority, &auth)
                .await;
        }
    }

    fn push_error(
        &self,
        repository: &str,
        tag: &str,
        source: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        match source {
            oci_client::errors::OciDistributionError::RequestError(error) if error.is_connect() => {
                self.transport.request_error(error)
            }
            source => RegistryError::Push {
                registry: self.address.authority.clone(),
                repository: repository.to_string(),
                tag: tag.to_string(),
                source: Box::new(source),
            },
        }
    }

    /// Caches a manifest and records the tag pointing at it.
    pub(super) fn remember(
        &self,
        repository: &str,
        tag: &str,
        manifest_bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let digest = self.cache.write_blob(manifest_bytes)?;
        let name = format!("{}/{repository}:{tag}", self.address.authority);
        self.cache.set_tag(
            &name,
            OCI_IMAGE_MEDIA_TYPE,
            &digest,
            manifest_bytes.len() as u64,
        )
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

/// The one version an `=x.y.z` requirement allows, if it is that.
pub(super) fn exact_version(requirement: &VersionReq) -> Option<Version> {
    let [comparator] = requirement.comparators.as_slice() else {
        return None;
    };
    if comparator.op != semver::Op::Exact {
        return None;
    }
    Some(Version {
        major: comparator.major,
        minor: comparator.minor?,
        patch: comparator.patch?,
        pre: comparator.pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine runs steps on spawned tasks: the futures must be `Send`.
    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        let cache = tempfile::tempdir().unwrap();
        let registry = Registry::new(RegistryOptions {
            offline: true,
            ..RegistryOptions::new("127.0.0.1:9", cache.path())
        })
        .unwrap();
        let reference = super::super::Reference::parse(ArtifactKind::Workflow, "demo").unwrap();
        send(registry.pull(&reference));
        send(registry.list_workflows());
        let path = cache.path().join("demo.yaml");
        send(registry.push_workflow_file(
            &path,
            artifact::Provenance::default(),
            PushOptions::default(),
        ));
    }

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

    #[test]
    fn exact_versions_only_from_full_equality() {
        let cases = [
            ("=1.2.3", Some("1.2.3")),
            ("=2.0.0-rc.1", Some("2.0.0-rc.1")),
            ("=1.2", None),
            ("1.2.3", None),
            (">=1.0.0", None),
        ];
        for (requirement, expected) in cases {
            let version = exact_version(&VersionReq::parse(requirement).unwrap());
            assert_eq!(
                version.map(|version| version.to_string()),
                expected.map(String::from),
                "{requirement}"
            );
        }
    }
}
