//! The upload half of [`Transport`]: blobs in one piece, then the manifest.

use bytes::Bytes;
use reqwest::{Method, StatusCode, header};

use super::{Request, Transport};
use crate::registry::RegistryError;
use crate::registry::manifest::OCI_IMAGE_MEDIA_TYPE;

impl Transport {
    /// Whether the repository holds this blob (one HEAD).
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self.send(Request::new(Method::HEAD, &path)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            status => Err(self.status_error(&path, status)),
        }
    }

    /// Uploads a blob in one piece: open an upload session, then send the
    /// bytes with their digest, which the registry checks before keeping them.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let path = format!("/v2/{repository}/blobs/uploads/");
        let response = self.send(Request::new(Method::POST, &path)).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&path, response.status()));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let session = self.own_path(&path, location)?;
        let separator = if session.contains('?') { '&' } else { '?' };
        let put = format!("{session}{separator}digest={digest}");
        let response = self
            .send(Request {
                body: Some(("application/octet-stream", Bytes::copy_from_slice(bytes))),
                ..Request::new(Method::PUT, &put)
            })
            .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(self.status_error(&session, status)),
        }
    }

    /// Tags a manifest whose blobs are already in the repository.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest_bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let response = self
            .send(Request {
                body: Some((OCI_IMAGE_MEDIA_TYPE, Bytes::copy_from_slice(manifest_bytes))),
                ..Request::new(Method::PUT, &path)
            })
            .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(self.status_error(&path, status)),
        }
    }

    /// An upload `Location` as a path on this registry: relative, or absolute
    /// on the registry's own origin (credentials never go elsewhere).
    fn own_path(&self, path: &str, location: &str) -> Result<String, RegistryError> {
        if location.starts_with('/') {
            return Ok(location.to_string());
        }
        let off_origin = || RegistryError::UploadLocation {
            registry: self.registry.clone(),
            path: path.to_string(),
            location: location.to_string(),
        };
        let url = reqwest::Url::parse(location).map_err(|_| off_origin())?;
        let base = reqwest::Url::parse(&self.base).map_err(|_| off_origin())?;
        if url.origin() != base.origin() {
            return Err(off_origin());
        }
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        })
    }
}
