//! Reads from the registry over plain HTTP GET/HEAD, one request per call and
//! counted, so a warm resolve is exactly one round-trip. (oci-client probes
//! `/v2/` before every anonymous request, which would double that.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode, header};

use super::artifact::is_sha256_digest;
use super::docker_config::LazyCredentials;
use super::{Credentials, RegistryError, Timeouts};

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

#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    base: String,
    registry: String,
    credentials: LazyCredentials,
    /// Hosts the user allows over plain HTTP (also for token realms).
    insecure_hosts: Vec<String>,
    requests: Arc<AtomicUsize>,
    /// Bearer tokens by what they were granted for (a repository, or the catalog).
    tokens: Arc<Mutex<HashMap<String, String>>>,
    timeouts: Timeouts,
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
            requests: Arc::default(),
            tokens: Arc::default(),
            timeouts,
        })
    }

    /// The credentials (looked up now if not yet): also used for uploads.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.get()
    }

    /// HTTP requests made so far (for tests and diagnostics).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// One request; on a bearer challenge, one token request and one retry.
    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let key = token_key(path);
        let token = self.tokens.lock().expect("token lock").get(&key).cloned();
        let response = self
            .send_once(method.clone(), path, accept, token.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.check_access(path, response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok());
        let Some(challenge) = challenge.and_then(BearerChallenge::parse) else {
            return self.check_access(path, response);
        };
        let token = self.fetch_token(path, &challenge).await?;
        self.tokens
            .lock()
            .expect("token lock")
            .insert(key, token.clone());
        let response = self.send_once(method, path, accept, Some(&token)).await?;
        self.check_access(path, response)
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        request = match (token, self.credentials.get()) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(credentials)) => {
                request.basic_auth(&credentials.username, Some(&credentials.password))
            }
            (None, None) => request,
        };
        self.requests.fetch_add(1, Ordering::SeqCst);
        request
            .send()
            .await
            .map_err(|source| self.request_error(source))
    }

    fn check_access(
        &self,
        path: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, RegistryError> {
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
            }),
            _ => Ok(response),
        }
    }

    /// Asks the challenge's realm for a token (with the credentials, if any).
    async fn fetch_token(
        &self,
        path: &str,
        challenge: &BearerChallenge,
    ) -> Result<String, RegistryError> {
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
        self.requests.fetch_add(1, Ordering::SeqCst);
        let response = request
            .send()
            .await
            .map_err(|source| self.request_error(source))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                path: path.to_string(),
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

    fn status_error(&self, path: &str, status: StatusCode) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            path: path.to_string(),
            status: status.as_u16(),
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
        let response = self.send(Method::GET, path, accept).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                Ok(Some(self.read_capped(path, response, limit).await?))
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
            let response = self.send(Method::GET, &path, None).await?;
            if !response.status().is_success() {
                return Err(self.status_error(&path, response.status()));
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

/// What a token is granted for: the repository of a `/v2/<name>/...` path,
/// else the path without its query (the catalog).
fn token_key(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let name = path.strip_prefix("/v2/").unwrap_or(path);
    for marker in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some((repository, _)) = name.split_once(marker) {
            return repository.to_string();
        }
    }
    name.to_string()
}

/// The host of a token realm that may receive credentials: https, or plain
/// http only to a loopback host or one listed as insecure (as for registries).
fn check_realm(realm: &str, insecure_hosts: &[String]) -> Result<String, String> {
    let url = reqwest::Url::parse(realm).map_err(|error| format!("not a URL ({error})"))?;
    let host = url.host_str().ok_or("no host")?.to_string();
    match url.scheme() {
        "https" => Ok(host),
        "http" => {
            let authority = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.clone(),
            };
            let plain_allowed = super::RegistryAddress::parse(&authority, insecure_hosts)
                .is_ok_and(|address| address.plain_http);
            if plain_allowed {
                Ok(host)
            } else {
                Err("plain http to a host that is neither loopback nor listed as insecure".into())
            }
        }
        other => Err(format!("scheme `{other}` is not https")),
    }
}

/// `host:port` -> `host` (`[::1]:5000` -> `[::1]`, as URLs write it).
fn host_of_authority(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => host,
        _ => authority,
    }
}

/// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`.
#[derive(Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

impl BearerChallenge {
    fn parse(header: &str) -> Option<BearerChallenge> {
        let (scheme, parameters) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let parameters = parse_parameters(parameters);
        Some(BearerChallenge {
            realm: parameters.get("realm")?.clone(),
            service: parameters.get("service").cloned(),
            scope: parameters.get("scope").cloned(),
        })
    }
}

/// `a="x,y",b=z` -> {a: "x,y", b: "z"}; commas inside quotes belong to the value.
fn parse_parameters(text: &str) -> HashMap<String, String> {
    let mut parameters = HashMap::new();
    let mut rest = text.trim();
    while let Some((name, after)) = rest.split_once('=') {
        let name = name
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value, remaining),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        parameters.insert(name, value.trim().to_string());
        rest = remaining.trim().trim_start_matches(',');
    }
    parameters
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
    fn parses_bearer_challenges() {
        let full = r#"Bearer realm="http://127.0.0.1:1/token",service="test",scope="repository:workflows/a:pull,push""#;
        let expected = BearerChallenge {
            realm: "http://127.0.0.1:1/token".into(),
            service: Some("test".into()),
            scope: Some("repository:workflows/a:pull,push".into()),
        };
        assert_eq!(BearerChallenge::parse(full), Some(expected));
        let bare = BearerChallenge::parse("bearer realm=http://h/t, service=s").unwrap();
        assert_eq!(
            (bare.realm.as_str(), bare.service.as_deref(), bare.scope),
            ("http://h/t", Some("s"), None)
        );
        assert_eq!(BearerChallenge::parse(r#"Basic realm="registry""#), None);
        assert_eq!(BearerChallenge::parse(r#"Bearer service="no realm""#), None);
    }

    #[test]
    fn token_realms_need_https_unless_loopback_or_insecure() {
        let insecure = vec!["registry.internal.invalid".to_string()];
        let cases = [
            (
                "https://auth.example.invalid/token",
                Ok("auth.example.invalid"),
            ),
            ("http://127.0.0.1:5001/token", Ok("127.0.0.1")),
            ("http://localhost/token", Ok("localhost")),
            ("http://[::1]:8/token", Ok("[::1]")),
            (
                "http://registry.internal.invalid:80/t",
                Ok("registry.internal.invalid"),
            ),
            ("http://attacker.example.invalid/token", Err("plain http")),
            ("ftp://auth.example.invalid/token", Err("scheme `ftp`")),
            ("/token", Err("not a URL")),
        ];
        for (realm, expected) in cases {
            match (check_realm(realm, &insecure), expected) {
                (Ok(host), Ok(expected)) => assert_eq!(host, expected, "{realm}"),
                (Err(problem), Err(expected)) => {
                    assert!(problem.contains(expected), "{realm}: {problem}")
                }
                (got, _) => panic!("{realm}: {got:?}"),
            }
        }
        for (authority, host) in [("h:5000", "h"), ("h", "h"), ("[::1]:5000", "[::1]")] {
            assert_eq!(host_of_authority(authority), host, "{authority}");
        }
    }

    /// A loopback server answering every request with `head` (status line
    /// and headers) and an empty body.
    async fn answering(head: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // As Registry::new does: reqwest is built without a crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let answer = format!("{head}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        address
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
        let credentials = LazyCredentials::given(Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }));
        let transport = Transport::new(
            "http",
            &address,
            credentials,
            Vec::new(),
            Timeouts::default(),
        )
        .unwrap();
        let error = transport.tags("workflows/demo").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::UnsafeTokenRealm { .. }),
            "{error}"
        );
    }

    #[test]
    fn keys_tokens_by_repository() {
        let cases = [
            ("/v2/workflows/a/manifests/1.0.0", "workflows/a"),
            ("/v2/workflows/a/blobs/sha256:00", "workflows/a"),
            ("/v2/workflows/a/tags/list", "workflows/a"),
            ("/v2/_catalog?n=1000", "_catalog"),
        ];
        for (path, key) in cases {
            assert_eq!(token_key(path), key, "{path}");
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
