//! The one HTTP client for the registry's distribution API, reads and
//! uploads alike: one counted request per call, so a warm resolve is exactly
//! one round-trip, every answer read with a size bound, and one bearer-token
//! flow.
//!
//! Not oci-client: its 0.18 reads manifests, tag lists and error bodies
//! whole with no size bound (a hostile registry could fill memory), probes
//! `/v2/` before the first request of each operation (a warm run would be
//! two round-trips) and has no total request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::{Method, StatusCode, header};

use super::artifact::is_sha256_digest;
use super::challenge::{BearerChallenge, check_realm, host_of_authority, token_key};
use super::docker_config::LazyCredentials;
use super::{RegistryError, Timeouts};

/// Manifest media types asked for; without them the registry answers 404.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

/// Largest manifest, tag list, catalog page or token answer read: an
/// artifact's manifest is under a kilobyte, so this only stops a hostile
/// registry from filling memory.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// Largest blob read, whatever its descriptor claims (a workflow or card is
/// a few kilobytes).
pub const MAX_BLOB_BYTES: u64 = 16 * 1024 * 1024;

mod refusal;
mod upload;

use refusal::refusal_detail;

#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    base: String,
    registry: String,
    credentials: LazyCredentials,
    /// Hosts the user allows over plain HTTP (also for token realms).
    insecure_hosts: Vec<String>,
    /// GET and HEAD requests (and the token requests they needed).
    reads: Arc<AtomicUsize>,
    /// Bearer tokens by what they were granted for (a repository, or the catalog).
    tokens: Arc<Mutex<HashMap<String, String>>>,
    timeouts: Timeouts,
}

/// One request to the registry: `path` is below its origin (`/v2/...`).
struct Request<'a> {
    method: Method,
    path: &'a str,
    accept: Option<&'a str>,
    /// Content type and bytes of an upload.
    body: Option<(&'static str, Bytes)>,
}

impl<'a> Request<'a> {
    fn new(method: Method, path: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            accept: None,
            body: None,
        }
    }

    fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
}

impl Transport {
    pub fn new(
        scheme: &str,
        registry: &str,
        credentials: LazyCredentials,
        insecure_hosts: Vec<String>,
        timeouts: Timeouts,
    ) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .read_timeout(timeouts.read)
            .timeout(timeouts.total)
            .tls_backend_preconfigured(crate::tls::config())
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
            insecure_hosts,
            reads: Arc::default(),
            tokens: Arc::default(),
            timeouts,
        })
    }

    /// HTTP reads made so far (GET and HEAD, with their token requests),
    /// for tests and diagnostics; uploads are not counted.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// One request; on a bearer challenge, one token request and one retry
    /// (also when a cached token lacks the scope, e.g. pull-only for an upload).
    async fn send(&self, request: Request<'_>) -> Result<reqwest::Response, RegistryError> {
        let key = token_key(request.path);
        let token = self.tokens.lock().expect("token lock").get(&key).cloned();
        let response = self.send_once(&request, token.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.check_access(request.path, response).await;
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok());
        let Some(challenge) = challenge.and_then(BearerChallenge::parse) else {
            return self.check_access(request.path, response).await;
        };
        let token = self.fetch_token(&request, &challenge).await?;
        self.tokens
            .lock()
            .expect("token lock")
            .insert(key, token.clone());
        let response = self.send_once(&request, Some(&token)).await?;
        self.check_access(request.path, response).await
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = format!("{}{}", self.base, request.path);
        let mut builder = self.http.request(request.method.clone(), url);
        if let Some(accept) = request.accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        if let Some((content_type, bytes)) = &request.body {
            builder = builder
                .header(header::CONTENT_TYPE, *content_type)
                .body(bytes.clone());
        } else if !request.is_read() {
            builder = builder.header(header::CONTENT_LENGTH, 0);
        }
        builder = match (token, self.credentials.get()) {
            (Some(token), _) => builder.bearer_auth(token),
            (None, Some(credentials)) => {
                builder.basic_auth(&credentials.username, Some(&credentials.password))
            }
            (None, None) => builder,
        };
        self.count(request);
        builder
            .send()
            .await
            .map_err(|source| self.request_error(source))
    }

    fn count(&self, request: &Request<'_>) {
        if request.is_read() {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn check_access(
        &self,
        path: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, RegistryError> {
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
                detail: refusal_detail(response).await,
            }),
            _ => Ok(response),
        }
    }

    /// Asks the challenge's realm for a token (with the credentials, if any).
    async fn fetch_token(
        &self,
        for_request: &Request<'_>,
        challenge: &BearerChallenge,
    ) -> Result<String, RegistryError> {
        let path = for_request.path;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let realm_host =
            check_realm(&challenge.realm, &self.insecure_hosts).map_err(|problem| {
                RegistryError::UnsafeTokenRealm {
                    registry: self.registry.clone(),
                    realm: challenge.realm.clone(),
                    problem,
                }
            })?;
        if realm_host != host_of_authority(&self.registry) {
            tracing::warn!(
                registry = %self.registry,
                realm = %challenge.realm,
                "the registry sends for tokens to another host; credentials go there"
            );
        }
        let mut request = self.http.get(&challenge.realm);
        let query: Vec<(&str, &str)> =
            [("service", &challenge.service), ("scope", &challenge.scope)]
                .into_iter()
                .filter_map(|(name, value)| value.as_deref().map(|value| (name, value)))
                .collect();
        request = request.query(&query);
        if let Some(credentials) = self.credentials.get() {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        self.count(for_request);
        let response = request
            .send()
            .await
            .map_err(|source| self.request_error(source))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
                detail: refusal_detail(response).await,
            });
        }
        let bytes = self
            .read_capped(&challenge.realm, response, MAX_DOCUMENT_BYTES)
            .await?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|source| self.body_error(&challenge.realm, source))?;
        answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
                detail: " (the token answer holds no token)".to_string(),
            })
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

    /// The body of `response`, refused as soon as more than `limit` bytes
    /// arrive (never read whole first); a stall is [`RegistryError::Stalled`].
    async fn read_capped(
        &self,
        path: &str,
        mut response: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            registry: self.registry.clone(),
            path: path.to_string(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| self.body_error_of(path, source))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// An answer's body that stopped coming: the registry answered, so this
    /// is not "not answering" (which would let the CLI fall back silently).
    fn body_error_of(&self, path: &str, source: reqwest::Error) -> RegistryError {
        if !source.is_timeout() {
            return RegistryError::Request {
                registry: self.registry.clone(),
                source,
            };
        }
        RegistryError::Stalled {
            registry: self.registry.clone(),
            path: path.to_string(),
            read: humantime::format_duration(self.timeouts.read).to_string(),
            total: humantime::format_duration(self.timeouts.total).to_string(),
            source,
        }
    }

    /// An unexpected answer, with the registry's own words for it.
    async fn status_error(&self, path: &str, response: reqwest::Response) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            path: path.to_string(),
            status: response.status().as_u16(),
            detail: refusal_detail(response).await,
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
            .send(Request {
                accept: Some(MANIFEST_ACCEPT),
                ..Request::new(Method::HEAD, &path)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|value| value.to_str().ok());
                match digest {
                    Some(digest) if !is_sha256_digest(digest) => {
                        Err(RegistryError::InvalidDigest {
                            digest: digest.to_string(),
                            origin: format!(
                                "registry {} (Docker-Content-Digest of {path})",
                                self.registry
                            ),
                        })
                    }
                    digest => Ok(digest.map(String::from)),
                }
            }
            _ => Err(self.status_error(&path, response).await),
        }
    }

    /// Manifest bytes for a tag or digest; `None` when unknown.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.get_bytes(&path, Some(MANIFEST_ACCEPT), MAX_DOCUMENT_BYTES)
            .await
    }

    /// Blob bytes, at most `size` (its descriptor's); `None` when unknown.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
        size: i64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let size = u64::try_from(size).unwrap_or(0);
        if size > MAX_BLOB_BYTES {
            return Err(RegistryError::TooLarge {
                registry: self.registry.clone(),
                path,
                limit: MAX_BLOB_BYTES,
            });
        }
        self.get_bytes(&path, None, size).await
    }

    async fn get_bytes(
        &self,
        path: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let response = self
            .send(Request {
                accept,
                ..Request::new(Method::GET, path)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                Ok(Some(self.read_capped(path, response, limit).await?))
            }
            _ => Err(self.status_error(path, response).await),
        }
    }

    /// All tags of a repository (unsorted); `None` when the repository is unknown.
    pub async fn tags(&self, repository: &str) -> Result<Option<Vec<String>>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let path = format!("/v2/{repository}/tags/list");
        let Some(bytes) = self.get_bytes(&path, None, MAX_DOCUMENT_BYTES).await? else {
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
            let response = self.send(Request::new(Method::GET, &path)).await?;
            if !response.status().is_success() {
                return Err(self.status_error(&path, response).await);
            }
            let next = next_link(response.headers());
            let bytes = self
                .read_capped(&path, response, MAX_DOCUMENT_BYTES)
                .await?;
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

    /// A loopback server answering every request with `head` (status line
    /// and headers) and an empty body.
    async fn answering(head: &'static str) -> String {
        recording(head).await.0
    }

    #[tokio::test]
    async fn refuses_a_manifest_digest_that_is_not_sha256_hex() {
        let address =
            answering("HTTP/1.1 200 OK\r\ndocker-content-digest: sha256:../../victim").await;
        let transport = Transport::new(
            "http",
            &address,
            LazyCredentials::given(None),
            Vec::new(),
            Timeouts::default(),
        )
        .unwrap();
        let error = transport
            .manifest_digest("workflows/demo", "1.0.0")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RegistryError::InvalidDigest { digest, .. } if digest == "sha256:../../victim"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn refuses_to_send_credentials_to_a_plain_http_realm_elsewhere() {
        let address = answering(
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://attacker.example.invalid/token\"",
        )
        .await;
        let transport = with_password(&address);
        let error = transport.tags("workflows/demo").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::UnsafeTokenRealm { .. }),
            "{error}"
        );
    }

    /// A plain-HTTP transport to `address` that has a username and password.
    fn with_password(address: &str) -> Transport {
        let credentials = LazyCredentials::given(Some(super::super::Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }));
        Transport::new(
            "http",
            address,
            credentials,
            Vec::new(),
            Timeouts::default(),
        )
        .unwrap()
    }

    /// A server that answers every request with `head` and hands each
    /// request's head (lowercased) to the test.
    async fn recording(
        head: &'static str,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, heads) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let read = stream.read(&mut buffer).await.unwrap_or(0);
                let _ = seen.send(String::from_utf8_lossy(&buffer[..read]).to_lowercase());
                let answer = format!("{head}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (address, heads)
    }

    #[tokio::test]
    async fn an_upload_on_another_origin_gets_the_bytes_but_no_credentials() {
        let (elsewhere, mut heads) = recording("HTTP/1.1 201 Created").await;
        let location: &'static str = Box::leak(
            format!("HTTP/1.1 202 Accepted\r\nlocation: http://{elsewhere}/uploads/1?state=x")
                .into_boxed_str(),
        );
        let address = answering(location).await;
        let transport = with_password(&address);
        transport
            .upload_blob("workflows/demo", "sha256:00", b"x")
            .await
            .unwrap();
        let head = heads.recv().await.unwrap();
        assert!(
            head.starts_with("put /uploads/1?state=x&digest=sha256:00 "),
            "{head}"
        );
        assert!(!head.contains("authorization"), "{head}");
        assert_eq!(transport.reads(), 0, "uploads are not counted as reads");
    }

    #[tokio::test]
    async fn refuses_an_upload_location_that_is_no_http_url() {
        for head in [
            "HTTP/1.1 202 Accepted\r\nlocation: file:///etc/passwd",
            "HTTP/1.1 202 Accepted\r\nlocation: uploads/1",
            "HTTP/1.1 202 Accepted",
        ] {
            let address = answering(head).await;
            let transport = Transport::new(
                "http",
                &address,
                LazyCredentials::given(None),
                Vec::new(),
                Timeouts::default(),
            )
            .unwrap();
            let error = transport
                .upload_blob("workflows/demo", "sha256:00", b"x")
                .await
                .unwrap_err();
            assert!(
                matches!(error, RegistryError::UploadLocation { .. }),
                "{head}: {error}"
            );
        }
    }

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
