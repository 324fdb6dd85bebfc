//! Reads from the registry over plain HTTP GET/HEAD, one request per call and
//! counted, so a warm resolve is exactly one round-trip. (oci-client probes
//! `/v2/` before every anonymous request, which would double that.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode, header};

use super::{Credentials, RegistryError};

/// Manifest media types asked for; without them the registry answers 404.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    base: String,
    registry: String,
    credentials: Option<Credentials>,
    requests: Arc<AtomicUsize>,
}

impl Transport {
    pub fn new(
        scheme: &str,
        registry: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|source| RegistryError::Client {
                registry: registry.to_string(),
                source,
            })?;
        Ok(Transport {
            http,
            base: format!("{scheme}://{registry}"),
            registry: registry.to_string(),
            credentials,
            requests: Arc::default(),
        })
    }

    /// HTTP requests made so far (for tests and diagnostics).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let response = request
            .send()
            .await
            .map_err(|source| self.request_error(source))?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
            }),
            _ => Ok(response),
        }
    }

    pub fn request_error(&self, source: reqwest::Error) -> RegistryError {
        if source.is_connect() || source.is_timeout() {
            RegistryError::NotAnswering {
                registry: self.registry.clone(),
                source,
            }
        } else {
            RegistryError::Request {
                registry: self.registry.clone(),
                source,
            }
        }
    }

    fn status_error(&self, path: &str, status: StatusCode) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            path: path.to_string(),
            status: status.as_u16(),
        }
    }

    /// `GET /v2/`: whether the registry answers at all.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let response = self.send(Method::GET, "/v2/", None).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(self.status_error("/v2/", status)),
        }
    }

    /// The digest a tag (or digest) points at, from one HEAD; `None` when unknown.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .send(Method::HEAD, &path, Some(MANIFEST_ACCEPT))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|value| value.to_str().ok());
                Ok(digest.map(String::from))
            }
            status => Err(self.status_error(&path, status)),
        }
    }

    /// Manifest bytes for a tag or digest; `None` when unknown.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.get_bytes(&path, Some(MANIFEST_ACCEPT)).await
    }

    /// Blob bytes; `None` when unknown.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        self.get_bytes(&format!("/v2/{repository}/blobs/{digest}"), None)
            .await
    }

    async fn get_bytes(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let response = self.send(Method::GET, path, accept).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|source| self.request_error(source))?;
                Ok(Some(bytes.to_vec()))
            }
            status => Err(self.status_error(path, status)),
        }
    }

    /// All tags of a repository (unsorted); `None` when the repository is unknown.
    pub async fn tags(&self, repository: &str) -> Result<Option<Vec<String>>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let path = format!("/v2/{repository}/tags/list");
        let Some(bytes) = self.get_bytes(&path, None).await? else {
            return Ok(None);
        };
        let list: TagList =
            serde_json::from_slice(&bytes).map_err(|source| self.body_error(&path, source))?;
        Ok(Some(list.tags.unwrap_or_default()))
    }

    /// Every repository, following the catalog's `Link` pagination.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            repositories: Option<Vec<String>>,
        }
        let mut repositories = Vec::new();
        let mut path = "/v2/_catalog?n=1000".to_string();
        loop {
            let response = self.send(Method::GET, &path, None).await?;
            if !response.status().is_success() {
                return Err(self.status_error(&path, response.status()));
            }
            let next = next_link(response.headers());
            let bytes = response
                .bytes()
                .await
                .map_err(|source| self.request_error(source))?;
            let page: Catalog =
                serde_json::from_slice(&bytes).map_err(|source| self.body_error(&path, source))?;
            repositories.extend(page.repositories.unwrap_or_default());
            match next {
                Some(next) => path = next,
                None => return Ok(repositories),
            }
        }
    }

    fn body_error(&self, path: &str, source: serde_json::Error) -> RegistryError {
        RegistryError::Body {
            registry: self.registry.clone(),
            path: path.to_string(),
            source,
        }
    }
}

/// `Link: </v2/_catalog?last=x&n=1000>; rel="next"` -> the path inside `<>`.
fn next_link(headers: &header::HeaderMap) -> Option<String> {
    let link = headers.get(header::LINK)?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    link.contains("rel=\"next\"")
        .then(|| link[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_next_link() {
        let cases = [
            (
                Some(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
                Some("/v2/_catalog?last=b&n=2"),
            ),
            (Some(r#"</v2/_catalog?last=b>; rel="prev""#), None),
            (None, None),
        ];
        for (value, expected) in cases {
            let mut headers = header::HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::LINK, value.parse().unwrap());
            }
            assert_eq!(next_link(&headers).as_deref(), expected, "{value:?}");
        }
    }
}
