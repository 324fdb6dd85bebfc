//! Workflows and agent cards as versioned OCI artifacts: push, pull, list,
//! resolve a reference (semver requirement or digest) and a content-addressed
//! local cache that makes a warm resolve one registry round-trip.
//!
//! - [`reference`]: parsing `ID@REQ` references and the tag encoding (pure).
//! - [`resolve`]: picking the highest matching tag (pure).
//! - [`manifest`]: the OCI image manifest and descriptor types.
//! - [`artifact`]: the manifest layout pushed and the layouts read back.
//! - [`cache`]: the OCI image layout directory on disk.
//! - [`docker_config`]: credentials from Docker's `config.json` and helpers.
//! - [`client`]: [`Registry`], tying the above to a real registry; its reads
//!   are in `pull`, its writes in `push`, and every request of both goes
//!   through `transport` (the one HTTP client, with `challenge` for tokens).
//! - [`source`]: the registry as a workflow source for runs and sub-workflows.
//! - [`discovery`]: agents from the registry's agent cards.

pub mod address;
pub mod artifact;
pub mod cache;
mod challenge;
pub mod client;
pub mod discovery;
pub mod docker_config;
pub mod manifest;
mod pull;
mod push;
pub mod reference;
pub mod resolve;
pub mod source;
mod transport;
pub mod views;

use std::path::PathBuf;

pub use address::RegistryAddress;
pub use artifact::{ArtifactContent, Provenance};
pub use cache::default_cache_dir;
pub use client::{
    Listed, ListedVersion, Pulled, Registry, RegistryOptions, Resolved, Timeouts, UnreadableTag,
};
pub use discovery::{CombinedDiscovery, RegistryDiscovery};
pub use docker_config::{docker_config_path, docker_credentials};
pub use manifest::{Descriptor, ImageManifest};
pub use push::{DEFAULT_AGENT_CARD_VERSION, PushOptions, Pushed};
pub use reference::{ACCEPTED_FORMS, ArtifactKind, Reference, Selector};
pub use source::RegistrySource;

/// The registry used when none is configured (the CLI falls back to the
/// built-in workflows when this one does not answer).
pub const DEFAULT_REGISTRY: &str = "localhost:5000";

/// Basic-auth credentials for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Credentials({}, <hidden>)", self.username)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "invalid reference `{reference}`: {problem}; accepted forms: {}",
        ACCEPTED_FORMS
    )]
    InvalidReference { reference: String, problem: String },
    #[error("cannot use docker credentials from {}: {problem}", .path.display())]
    DockerConfig { path: PathBuf, problem: String },
    #[error("invalid registry address `{address}`: {problem}")]
    InvalidAddress { address: String, problem: String },
    #[error("registry not answering at {registry}")]
    NotAnswering {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up an http client for registry {registry}")]
    Client {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("request to registry {registry} failed")]
    Request {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "registry {registry} refused access to {path}{detail} (check the username and password)"
    )]
    Unauthorized {
        registry: String,
        path: String,
        /// The registry's own words, ` (CODE: message)`, or empty.
        detail: String,
    },
    #[error("registry {registry} asks for a token from `{realm}`, refused: {problem}")]
    UnsafeTokenRealm {
        registry: String,
        realm: String,
        problem: String,
    },
    #[error("registry {registry} answered {path} with http status {status}{detail}")]
    Status {
        registry: String,
        path: String,
        status: u16,
        /// The registry's own words, ` (CODE: message)`, or empty.
        detail: String,
    },
    #[error(
        "registry {registry} stalled sending {path} (read timeout {read}, total timeout {total})"
    )]
    Stalled {
        registry: String,
        path: String,
        read: String,
        total: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} sent more than {limit} bytes for {path}; refused")]
    TooLarge {
        registry: String,
        path: String,
        limit: u64,
    },
    #[error("registry {registry} sent an unreadable answer to {path}")]
    Body {
        registry: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("repository {repository} not found in registry {registry}")]
    RepositoryNotFound {
        registry: String,
        repository: String,
    },
    #[error(
        "no version of {repository} in registry {registry} matches {requirement} (tags: {available})"
    )]
    NoMatchingVersion {
        registry: String,
        repository: String,
        requirement: String,
        available: String,
    },
    #[error("{repository}@{reference} not found in registry {registry}")]
    ManifestNotFound {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error(
        "{repository}:{tag} already exists in registry {registry} with different content ({existing}); push with force to overwrite"
    )]
    TagExists {
        registry: String,
        repository: String,
        tag: String,
        existing: String,
    },
    #[error("pushing {repository}:{tag} to registry {registry} failed")]
    Push {
        registry: String,
        repository: String,
        tag: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "registry {registry} answered {path} with an upload location that is neither a path nor an http(s) URL: `{location}`"
    )]
    UploadLocation {
        registry: String,
        path: String,
        location: String,
    },
    #[error(
        "{repository}@{digest} in registry {registry} is not a workflow or agent card artifact: {problem}"
    )]
    UnsupportedArtifact {
        registry: String,
        repository: String,
        digest: String,
        problem: String,
    },
    #[error("{what} of {repository} from registry {registry} does not match its digest {digest}")]
    DigestMismatch {
        registry: String,
        repository: String,
        what: String,
        digest: String,
    },
    #[error("digest `{digest}` from {origin} is not sha256:<64 lowercase hex digits>")]
    InvalidDigest { digest: String, origin: String },
    #[error("{what} is not in the local cache {} (offline)", .cache.display())]
    NotCached { what: String, cache: PathBuf },
    #[error("cached {what} at {} is corrupted (offline, cannot fetch it again)", .cache.display())]
    CorruptedOffline { what: String, cache: PathBuf },
    #[error("cannot use the local cache at {}", .path.display())]
    CacheIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unreadable cache index {}", .path.display())]
    CacheIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("workflow {file} is invalid and was not pushed")]
    InvalidWorkflow {
        file: String,
        #[source]
        source: crate::workflow::LoadError,
    },
    #[error("agent card {file} is invalid and was not pushed: {problem}")]
    InvalidAgentCard { file: String, problem: String },
}

impl RegistryError {
    /// The registry could not be reached at all (as opposed to answering
    /// "not found" or refusing): the CLI's cue for the built-in fallback.
    pub fn is_not_answering(&self) -> bool {
        matches!(self, RegistryError::NotAnswering { .. })
    }
}
