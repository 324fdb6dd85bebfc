//! A real `docker-registry` (distribution 2.8) on a free loopback port, with
//! its storage and config in a tempdir; killed by PID when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::token_server::{TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};

pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    directory: tempfile::TempDir,
    child: Option<Child>,
    /// The token server of a registry using bearer-token auth.
    _token_server: Option<TokenServer>,
}

impl TestRegistry {
    /// Anonymous registry.
    pub fn start() -> TestRegistry {
        Self::start_with(None)
    }

    /// Registry requiring basic auth (htpasswd, bcrypt) for this user.
    pub fn start_with_user(username: &str, password: &str) -> TestRegistry {
        Self::start_with(Some((username, password)))
    }

    /// Registry requiring a bearer token from a token server on another free
    /// loopback port, which grants tokens to this user only.
    pub async fn start_with_token_auth(username: &str, password: &str) -> TestRegistry {
        let directory = tempfile::tempdir().expect("tempdir");
        let token_server = TokenServer::start(directory.path(), username, password).await;
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    \
             issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            token_server.address,
            directory.path().join("token.crt").display()
        );
        let mut registry = Self::configure(directory, &auth);
        registry._token_server = Some(token_server);
        registry.spawn();
        registry
    }

    fn start_with(user: Option<(&str, &str)>) -> TestRegistry {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut auth = String::new();
        if let Some((username, password)) = user {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            let htpasswd = directory.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{username}:{hash}\n")).expect("htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: pallet-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let mut registry = Self::configure(directory, &auth);
        registry.spawn();
        registry
    }

    /// Writes `config.yml` (listening on a free loopback port) without starting.
    fn configure(directory: tempfile::TempDir, auth: &str) -> TestRegistry {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let root = directory.path();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {address}\n  secret: pallet-test-secret\n",
            root.join("storage").display()
        );
        std::fs::write(root.join("config.yml"), config + auth).expect("config");
        TestRegistry {
            address,
            directory,
            child: None,
            _token_server: None,
        }
    }

    fn spawn(&mut self) {
        let root = self.directory.path();
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(root.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&self.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start at {}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The registry's storage directory (its filesystem driver's root).
    pub fn storage(&self) -> PathBuf {
        self.directory.path().join("storage")
    }

    fn log_path(&self) -> PathBuf {
        self.directory.path().join("registry.log")
    }

    /// Stops the registry (kill by PID); its storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// HTTP requests under `/v2/` the registry logged so far (its access log),
    /// once the log has stopped growing: the registry writes a line after it
    /// answered, so a client can be faster than the log.
    pub fn logged_requests(&self) -> usize {
        self.settled(Self::logged_requests_now)
    }

    /// Blob uploads started so far (`POST /v2/<name>/blobs/uploads/`), settled.
    pub fn logged_blob_uploads(&self) -> usize {
        self.settled(Self::logged_blob_uploads_now)
    }

    fn settled(&self, count: fn(&Self) -> usize) -> usize {
        let mut last = count(self);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = count(self);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    fn logged_requests_now(&self) -> usize {
        self.logged_lines(|line| {
            ["GET", "HEAD", "PUT", "POST", "PATCH"]
                .iter()
                .any(|method| line.contains(&format!("\"{method} /v2/")))
        })
    }

    fn logged_blob_uploads_now(&self) -> usize {
        self.logged_lines(|line| line.contains("\"POST /v2/") && line.contains("/blobs/uploads/"))
    }

    fn logged_lines(&self, keep: impl Fn(&str) -> bool) -> usize {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines().filter(|line| keep(line)).count()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Pushes a file the way the original Python project did (through oras): one
/// `application/yaml` (or other) layer titled with the file name, an empty
/// config, a `v1`-style tag. Speaks the distribution API directly, not pallet.
pub async fn push_like_original(
    address: &str,
    repository: &str,
    tag: &str,
    file_name: &str,
    media_type: &str,
    bytes: &[u8],
) {
    use sha2::Digest;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{address}/v2/{repository}");
    let digest = |bytes: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let config = b"{}".to_vec();
    for blob in [&config, &bytes.to_vec()] {
        let started = http
            .post(format!("{base}/blobs/uploads/"))
            .send()
            .await
            .expect("start a blob upload");
        assert_eq!(started.status(), 202, "start a blob upload");
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = match location.starts_with('/') {
            true => format!("http://{address}{location}"),
            false => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{separator}digest={}", digest(blob)))
            .header("content-type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await
            .expect("upload a blob");
        assert_eq!(put.status(), 201, "upload a blob");
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.unknown.config.v1+json",
            "digest": digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": media_type,
            "digest": digest(bytes),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.title": file_name},
        }],
    });
    let put = http
        .put(format!("{base}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .expect("push in the original layout");
    assert_eq!(put.status(), 201, "push in the original layout");
}
