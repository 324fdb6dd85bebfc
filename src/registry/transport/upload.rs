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
            _ => Err(self.status_error(&path, response).await),
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
            return Err(self.status_error(&path, response).await);
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let body = ("application/octet-stream", Bytes::copy_from_slice(bytes));
        let response = match self.upload_target(&path, &put)? {
            UploadTarget::Here(put) => {
                self.send(Request {
                    body: Some(body),
                    ..Request::new(Method::PUT, &put)
                })
                .await?
            }
            UploadTarget::Elsewhere(url) => self.put_elsewhere(url, body).await?,
        };
        match response.status() {
            status if status.is_success() => Ok(()),
            _ => Err(self.status_error(&path, response).await),
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
            _ => Err(self.status_error(&path, response).await),
        }
    }

    /// Where an upload `Location` points: a path on this registry (relative,
    /// or absolute on its own origin), or another origin. Registries behind a
    /// proxy or with a canonical host name answer with another origin; the
    /// bytes go there as the registry asks, but never the credentials.
    fn upload_target(&self, path: &str, location: &str) -> Result<UploadTarget, RegistryError> {
        if location.starts_with('/') {
            return Ok(UploadTarget::Here(location.to_string()));
        }
        let unusable = || RegistryError::UploadLocation {
            registry: self.registry.clone(),
            path: path.to_string(),
            location: location.to_string(),
        };
        let url = reqwest::Url::parse(location).map_err(|_| unusable())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unusable());
        }
        let base = reqwest::Url::parse(&self.base).map_err(|_| unusable())?;
        if url.origin() != base.origin() {
            return Ok(UploadTarget::Elsewhere(url));
        }
        Ok(UploadTarget::Here(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }))
    }

    /// A blob PUT to another origin: no token, no password.
    async fn put_elsewhere(
        &self,
        url: reqwest::Url,
        (content_type, bytes): (&str, Bytes),
    ) -> Result<reqwest::Response, RegistryError> {
        self.http
            .put(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .map_err(|source| self.request_error(source))
    }
}

enum UploadTarget {
    /// A path on the registry, sent with its credentials.
    Here(String),
    Elsewhere(reqwest::Url),
}
