//! The artifact layout: what a pushed workflow or agent card looks like as an
//! OCI image manifest, and which layouts pushed by others are read back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::manifest::{Descriptor, ImageManifest, OCI_IMAGE_MEDIA_TYPE};

pub const WORKFLOW_ARTIFACT_TYPE: &str = "application/vnd.pallet.workflow.v1";
pub const WORKFLOW_CONFIG_MEDIA_TYPE: &str = "application/vnd.pallet.workflow.config.v1+json";
pub const WORKFLOW_LAYER_MEDIA_TYPE: &str = "application/vnd.pallet.workflow.v1+yaml";
pub const AGENT_CARD_ARTIFACT_TYPE: &str = "application/vnd.pallet.agentcard.v1";
pub const AGENT_CARD_CONFIG_MEDIA_TYPE: &str = "application/vnd.pallet.agentcard.config.v1+json";
pub const AGENT_CARD_LAYER_MEDIA_TYPE: &str = "application/vnd.pallet.agentcard.v1+json";

/// Layer media types read back: pallet's own, the original project's
/// (`application/yaml`, JSON agent cards) and what generic tools write.
pub const ACCEPTED_LAYER_MEDIA_TYPES: &[&str] = &[
    WORKFLOW_LAYER_MEDIA_TYPE,
    AGENT_CARD_LAYER_MEDIA_TYPE,
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "application/json",
    "application/vnd.oci.image.layer.v1.tar",
];

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";

/// The small JSON config blob of a pallet artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactConfig {
    pub id: String,
    pub name: String,
    pub version: String,
    pub schema_version: u32,
}

/// Where a pushed file came from, recorded as `source`/`revision` annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub source: Option<String>,
    pub revision: Option<String>,
}

impl Provenance {
    /// The git remote `origin` and commit of the checkout holding `file`, if any.
    pub fn from_git(file: &Path) -> Provenance {
        let directory = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let git = |arguments: &[&str]| -> Option<String> {
            let output = Command::new("git")
                .arg("-C")
                .arg(directory)
                .args(arguments)
                .output()
                .ok()?;
            let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
            (output.status.success() && !text.is_empty()).then_some(text)
        };
        Provenance {
            source: git(&["remote", "get-url", "origin"]).map(|url| without_userinfo(&url)),
            revision: git(&["rev-parse", "HEAD"]),
        }
    }

    fn is_complete(&self) -> bool {
        self.source.is_some() && self.revision.is_some()
    }

    /// `self`, completed from the git checkout holding `file` when needed.
    pub fn or_from_git(self, file: &Path) -> Provenance {
        if self.is_complete() {
            return self;
        }
        self.or(Provenance::from_git(file))
    }

    /// `self` where set, else `fallback` (parameters override git).
    pub fn or(self, fallback: Provenance) -> Provenance {
        Provenance {
            source: self.source.or(fallback.source),
            revision: self.revision.or(fallback.revision),
        }
    }
}

/// A remote URL without `user:token@`: credentials must not end up in a
/// public annotation.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Everything needed to push one file as an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactContent {
    pub artifact_type: &'static str,
    pub config_media_type: &'static str,
    pub layer_media_type: &'static str,
    pub config: ArtifactConfig,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub description: Option<String>,
    pub provenance: Provenance,
}

/// A manifest ready to upload: its blobs and its exact bytes.
pub struct BuiltArtifact {
    pub config_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    pub digest: String,
}

pub fn build(content: &ArtifactContent, created: &str) -> BuiltArtifact {
    let config_bytes = serde_json::to_vec(&content.config).expect("config serializes");
    let layer_annotations =
        BTreeMap::from([(ANNOTATION_TITLE.to_string(), content.file_name.clone())]);
    let mut annotations = BTreeMap::from([
        (ANNOTATION_TITLE.to_string(), content.file_name.clone()),
        (
            ANNOTATION_VERSION.to_string(),
            content.config.version.clone(),
        ),
        (ANNOTATION_CREATED.to_string(), created.to_string()),
    ]);
    let optional = [
        (ANNOTATION_DESCRIPTION, &content.description),
        (ANNOTATION_SOURCE, &content.provenance.source),
        (ANNOTATION_REVISION, &content.provenance.revision),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            annotations.insert(key.to_string(), value.clone());
        }
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        artifact_type: Some(content.artifact_type.to_string()),
        config: descriptor(content.config_media_type, &config_bytes, None),
        layers: vec![descriptor(
            content.layer_media_type,
            &content.bytes,
            Some(layer_annotations),
        )],
        subject: None,
        annotations: Some(annotations),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let digest = sha256_digest(&manifest_bytes);
    BuiltArtifact {
        config_bytes,
        manifest,
        manifest_bytes,
        digest,
    }
}

fn descriptor(
    media_type: &str,
    bytes: &[u8],
    annotations: Option<BTreeMap<String, String>>,
) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: sha256_digest(bytes),
        size: bytes.len() as i64,
        urls: None,
        annotations,
        artifact_type: None,
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Two manifests carry the same content when config and layers are the same
/// blobs; annotations such as `created` differ from push to push.
pub fn same_content(left: &ImageManifest, right: &ImageManifest) -> bool {
    let blobs = |manifest: &ImageManifest| -> Vec<String> {
        std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .map(|descriptor| descriptor.digest.clone())
            .collect()
    };
    blobs(left) == blobs(right)
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits: the only digest
/// form accepted from a registry, since digests become cache file names.
pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

/// The one layer holding the definition, or why none qualifies.
pub fn content_layer(manifest: &ImageManifest) -> Result<&Descriptor, String> {
    let accepted: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|layer| ACCEPTED_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()))
        .collect();
    if let Some(bad) = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .find(|descriptor| !is_sha256_digest(&descriptor.digest))
    {
        return Err(format!(
            "descriptor digest `{}` is not sha256:<64 lowercase hex digits>",
            bad.digest
        ));
    }
    match accepted.as_slice() {
        [layer] => Ok(layer),
        [] => Err(format!(
            "no layer of an accepted media type (found: {}; accepted: {})",
            manifest
                .layers
                .iter()
                .map(|layer| layer.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            ACCEPTED_LAYER_MEDIA_TYPES.join(", ")
        )),
        _ => Err(format!(
            "{} layers of accepted media types, expected one",
            accepted.len()
        )),
    }
}

/// File name of the layer: its title annotation, else the manifest's.
pub fn file_name(manifest: &ImageManifest, layer: &Descriptor) -> Option<String> {
    let title = |annotations: &Option<BTreeMap<String, String>>| {
        annotations.as_ref()?.get(ANNOTATION_TITLE).cloned()
    };
    title(&layer.annotations)
        .or_else(|| title(&manifest.annotations))
        .and_then(|title| plain_file_name(&title))
}

/// The title as a bare file name: a title is written by whoever pushed, so a
/// path (`../x`, `/etc/x`) must never steer where a pull writes.
fn plain_file_name(title: &str) -> Option<String> {
    let plain =
        !title.is_empty() && !title.contains(['/', '\\', '\0']) && title != "." && title != "..";
    plain.then(|| title.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(bytes: &[u8]) -> ArtifactContent {
        ArtifactContent {
            artifact_type: WORKFLOW_ARTIFACT_TYPE,
            config_media_type: WORKFLOW_CONFIG_MEDIA_TYPE,
            layer_media_type: WORKFLOW_LAYER_MEDIA_TYPE,
            config: ArtifactConfig {
                id: "demo-v1".into(),
                name: "Demo".into(),
                version: "1.0.0".into(),
                schema_version: 1,
            },
            file_name: "demo.yaml".into(),
            bytes: bytes.to_vec(),
            description: Some("a demo".into()),
            provenance: Provenance {
                source: Some("https://example.invalid/repo".into()),
                revision: None,
            },
        }
    }

    #[test]
    fn builds_pallet_layout() {
        let built = build(&content(b"metadata: {}\n"), "2026-01-01T00:00:00Z");
        let manifest: serde_json::Value = serde_json::from_slice(&built.manifest_bytes).unwrap();
        assert_eq!(manifest["artifactType"], WORKFLOW_ARTIFACT_TYPE);
        assert_eq!(manifest["mediaType"], OCI_IMAGE_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], WORKFLOW_CONFIG_MEDIA_TYPE);
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            WORKFLOW_LAYER_MEDIA_TYPE
        );
        assert_eq!(
            manifest["layers"][0]["digest"],
            sha256_digest(b"metadata: {}\n")
        );
        assert_eq!(
            manifest["layers"][0]["annotations"][ANNOTATION_TITLE],
            "demo.yaml"
        );
        let annotations = &manifest["annotations"];
        assert_eq!(annotations[ANNOTATION_VERSION], "1.0.0");
        assert_eq!(annotations[ANNOTATION_CREATED], "2026-01-01T00:00:00Z");
        assert_eq!(annotations[ANNOTATION_DESCRIPTION], "a demo");
        assert_eq!(
            annotations[ANNOTATION_SOURCE],
            "https://example.invalid/repo"
        );
        assert!(annotations.get(ANNOTATION_REVISION).is_none());
        let config: serde_json::Value = serde_json::from_slice(&built.config_bytes).unwrap();
        assert_eq!(
            config,
            serde_json::json!({"id": "demo-v1", "name": "Demo", "version": "1.0.0", "schemaVersion": 1})
        );
        assert_eq!(built.digest, sha256_digest(&built.manifest_bytes));
    }

    #[test]
    fn same_content_ignores_annotations() {
        let first = build(&content(b"a: 1\n"), "2026-01-01T00:00:00Z");
        let later = build(&content(b"a: 1\n"), "2026-02-01T00:00:00Z");
        let changed = build(&content(b"a: 2\n"), "2026-01-01T00:00:00Z");
        assert_ne!(first.digest, later.digest);
        assert!(same_content(&first.manifest, &later.manifest));
        assert!(!same_content(&first.manifest, &changed.manifest));
    }

    #[test]
    fn finds_content_layer_of_each_layout() {
        let mut manifest = build(&content(b"a: 1\n"), "2026-01-01T00:00:00Z").manifest;
        assert_eq!(
            content_layer(&manifest).unwrap().media_type,
            WORKFLOW_LAYER_MEDIA_TYPE
        );
        manifest.layers[0].media_type = "application/yaml".into();
        manifest.layers[0].annotations = None;
        assert_eq!(
            content_layer(&manifest).unwrap().media_type,
            "application/yaml"
        );
        assert_eq!(
            file_name(&manifest, &manifest.layers[0]).as_deref(),
            Some("demo.yaml")
        );
        manifest.layers[0].media_type = "application/octet-stream".into();
        let problem = content_layer(&manifest).unwrap_err();
        assert!(problem.contains("application/octet-stream"), "{problem}");
    }

    #[test]
    fn accepts_only_full_sha256_digests() {
        let valid = format!("sha256:{}", "0a".repeat(32));
        let cases = [
            (valid.as_str(), true),
            ("sha256:../../x", false),
            ("sha256:", false),
            (&valid[..70], false),
            (&*valid.to_uppercase().replace("SHA256", "sha256"), false),
            (&*valid.replace("sha256", "sha512"), false),
            (&*format!("{valid}/"), false),
        ];
        for (digest, expected) in cases {
            assert_eq!(is_sha256_digest(digest), expected, "{digest}");
        }
    }

    #[test]
    fn rejects_manifests_with_unsafe_descriptor_digests() {
        let built = build(&content(b"a: 1\n"), "2026-01-01T00:00:00Z");
        let mut layer_escapes = built.manifest.clone();
        layer_escapes.layers[0].digest = "sha256:../../../etc/passwd".into();
        let mut config_escapes = built.manifest;
        config_escapes.config.digest = "sha256:../index.json".into();
        for manifest in [layer_escapes, config_escapes] {
            let problem = content_layer(&manifest).unwrap_err();
            assert!(problem.contains("not sha256:"), "{problem}");
        }
    }

    #[test]
    fn titles_that_are_paths_are_not_file_names() {
        let cases = [
            ("demo.yaml", Some("demo.yaml")),
            ("../evil.yaml", None),
            ("/etc/passwd", None),
            ("a\\b", None),
            ("..", None),
            ("", None),
        ];
        for (title, expected) in cases {
            assert_eq!(plain_file_name(title).as_deref(), expected, "{title}");
        }
    }

    #[test]
    fn remote_urls_lose_credentials() {
        let cases = [
            (
                "https://user:token@example.invalid/flows.git",
                "https://example.invalid/flows.git",
            ),
            (
                "https://example.invalid/a@b.git",
                "https://example.invalid/a@b.git",
            ),
            (
                "git@example.invalid:flows.git",
                "git@example.invalid:flows.git",
            ),
            (
                "ssh://git@example.invalid/flows.git",
                "ssh://example.invalid/flows.git",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(without_userinfo(url), expected, "{url}");
        }
    }

    #[test]
    fn parameters_override_git_provenance() {
        let given = Provenance {
            source: Some("given".into()),
            revision: None,
        };
        let git = Provenance {
            source: Some("git".into()),
            revision: Some("abc".into()),
        };
        assert_eq!(
            given.or(git),
            Provenance {
                source: Some("given".into()),
                revision: Some("abc".into())
            }
        );
    }
}
