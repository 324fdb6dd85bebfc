//! [`Registry`]: one registry and the local cache, with what its reads and
//! writes return; the reads are in `pull`, the writes in `push`, and every
//! request goes through the one [`Transport`].

use std::path::PathBuf;

use semver::{Version, VersionReq};

use super::address::RegistryAddress;
use super::artifact;
use super::cache::Cache;
use super::docker_config::LazyCredentials;
use super::manifest::{ImageManifest, OCI_IMAGE_MEDIA_TYPE};
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
    pub manifest: ImageManifest,
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
    pub(super) cache: Cache,
    pub(super) offline: bool,
}

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
        Ok(Registry {
            transport,
            address,
            cache: Cache::new(options.cache_dir),
            offline: options.offline,
        })
    }

    pub fn address(&self) -> &str {
        &self.address.authority
    }

    /// HTTP reads this client made (GET and HEAD, with their token
    /// requests; uploads not counted): a warm resolve is one.
    pub fn read_requests(&self) -> usize {
        self.transport.reads()
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
    use crate::registry::{ArtifactKind, PushOptions};

    /// The service spawns each run on its own tokio task, and a run awaits the
    /// registry for sub-workflows: these futures must be `Send`.
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
