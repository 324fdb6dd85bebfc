//! Content-addressed local cache: an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`). Blobs are verified by digest on read;
//! `index.json` remembers which registry tag pointed at which manifest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RegistryError;
use super::artifact::{is_sha256_digest, sha256_digest};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `$XDG_CACHE_HOME/pallet/oci`, else `~/.cache/pallet/oci`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|value| !value.is_empty()) {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("pallet").join("oci"))
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Map<String, Value>,
}

/// Outcome of reading a blob: absent and corrupted are told apart so a caller
/// online can fetch again and a caller offline can say which it was.
#[derive(Debug)]
pub enum Cached {
    Hit(Vec<u8>),
    Missing,
    Corrupted,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checked again here, whatever the caller did: a digest becomes a file
    /// name, and a corrupted blob is removed, so `sha256:../x` must never pass.
    fn blob_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        match digest.strip_prefix("sha256:") {
            Some(hex) if is_sha256_digest(digest) => {
                Ok(self.root.join("blobs").join("sha256").join(hex))
            }
            _ => Err(RegistryError::InvalidDigest {
                digest: digest.to_string(),
                origin: format!("a read of the local cache {}", self.root.display()),
            }),
        }
    }

    /// The blob with this digest, checked against it.
    pub fn read_blob(&self, digest: &str) -> Result<Cached, RegistryError> {
        let path = self.blob_path(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) if sha256_digest(&bytes) == digest => Ok(Cached::Hit(bytes)),
            Ok(_) => {
                // A corrupted blob is never served; dropping it lets a fetch replace it.
                let _ = std::fs::remove_file(&path);
                Ok(Cached::Corrupted)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Cached::Missing),
            Err(source) => Err(self.io_error(&path, source)),
        }
    }

    /// Stores bytes under their own digest (written then renamed: never half a blob).
    pub fn write_blob(&self, bytes: &[u8]) -> Result<String, RegistryError> {
        self.ensure_layout()?;
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if path.exists() {
            // Same name, same content (or caught by the digest check on read).
            return Ok(digest);
        }
        write_atomically(&path, bytes).map_err(|source| self.io_error(&path, source))?;
        Ok(digest)
    }

    /// Records that `reference_name` (`HOST/REPOSITORY:TAG`) points at a manifest.
    pub fn set_tag(
        &self,
        reference_name: &str,
        media_type: &str,
        digest: &str,
        size: u64,
    ) -> Result<(), RegistryError> {
        let mut index = self.read_index()?;
        let current = index.manifests.iter().find(|entry| {
            entry.annotations.get(REF_NAME).and_then(Value::as_str) == Some(reference_name)
        });
        if current.is_some_and(|entry| entry.digest == digest) {
            return Ok(());
        }
        index.manifests.retain(|entry| {
            entry.annotations.get(REF_NAME).and_then(Value::as_str) != Some(reference_name)
        });
        let mut annotations = Map::new();
        annotations.insert(REF_NAME.into(), reference_name.into());
        index.manifests.push(IndexEntry {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            annotations,
        });
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec_pretty(&index).expect("index serializes");
        write_atomically(&path, &bytes).map_err(|source| self.io_error(&path, source))
    }

    /// Tags cached for `HOST/REPOSITORY`, with the manifest digest of each.
    pub fn tags(&self, repository_name: &str) -> Result<Vec<(String, String)>, RegistryError> {
        let prefix = format!("{repository_name}:");
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|entry| {
                let name = entry.annotations.get(REF_NAME)?.as_str()?;
                Some((
                    name.strip_prefix(&prefix)?.to_string(),
                    entry.digest.clone(),
                ))
            })
            .collect())
    }

    fn read_index(&self) -> Result<Index, RegistryError> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| RegistryError::CacheIndex { path, source }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                manifests: Vec::new(),
            }),
            Err(source) => Err(self.io_error(&path, source)),
        }
    }

    fn ensure_layout(&self) -> Result<(), RegistryError> {
        let blobs = self.root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|source| self.io_error(&blobs, source))?;
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            write_atomically(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|source| self.io_error(&layout, source))?;
        }
        Ok(())
    }

    fn io_error(&self, path: &Path, source: std::io::Error) -> RegistryError {
        RegistryError::CacheIo {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // A unique name per write: concurrent writers never share a half-written file.
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_on_read() {
        let directory = tempfile::tempdir().unwrap();
        let cache = Cache::new(directory.path());
        let digest = cache.write_blob(b"hello").unwrap();
        assert!(
            matches!(cache.read_blob(&digest).unwrap(), Cached::Hit(bytes) if bytes == b"hello")
        );
        assert!(directory.path().join("oci-layout").exists());
        std::fs::write(cache.blob_path(&digest).unwrap(), b"tampered").unwrap();
        assert!(matches!(
            cache.read_blob(&digest).unwrap(),
            Cached::Corrupted
        ));
        assert!(matches!(cache.read_blob(&digest).unwrap(), Cached::Missing));
    }

    #[test]
    fn digests_that_escape_the_cache_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let cache = Cache::new(directory.path().join("cache"));
        cache.write_blob(b"hello").unwrap();
        let victim = directory.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        for digest in ["sha256:../../../victim", "../victim", "sha256:"] {
            let error = cache.read_blob(digest).unwrap_err();
            assert!(
                matches!(error, RegistryError::InvalidDigest { .. }),
                "{digest}: {error}"
            );
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }

    #[test]
    fn tags_are_kept_per_repository_and_replaced() {
        let directory = tempfile::tempdir().unwrap();
        let cache = Cache::new(directory.path());
        cache
            .set_tag("host:1/workflows/a:1.0.0", "m", "sha256:1", 1)
            .unwrap();
        cache
            .set_tag("host:1/workflows/a:1.0.0", "m", "sha256:2", 1)
            .unwrap();
        cache
            .set_tag("host:1/workflows/ab:1.0.0", "m", "sha256:3", 1)
            .unwrap();
        assert_eq!(
            cache.tags("host:1/workflows/a").unwrap(),
            [("1.0.0".to_string(), "sha256:2".to_string())]
        );
    }
}
