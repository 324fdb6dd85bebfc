//! Credentials from Docker's `config.json`, as `docker login` leaves them:
//! a per-registry `credHelpers` entry, else the `credsStore` helper, else the
//! inline `auths` entry (base64 `user:password`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use serde::Deserialize;

use super::{Credentials, RegistryError};

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|value| !value.is_empty()) {
        Some(directory) => Some(PathBuf::from(directory).join("config.json")),
        None => Some(
            PathBuf::from(std::env::var_os("HOME")?)
                .join(".docker")
                .join("config.json"),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Credentials for `registry` (`host:port`) in the Docker config at `path`;
/// `None` when the file or an entry is absent.
pub fn docker_credentials(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, RegistryError> {
    lookup(path, registry, None)
}

/// Credentials for one registry, looked up in the Docker config only the
/// first time a request needs them: commands that never reach the registry
/// never spawn a credential helper, and a broken config or helper is a
/// warning (anonymous access), not a failure.
#[derive(Clone, Default)]
pub struct LazyCredentials {
    docker_config: Option<PathBuf>,
    registry: String,
    search_path: Option<std::ffi::OsString>,
    found: Arc<OnceLock<Option<Credentials>>>,
}

impl LazyCredentials {
    /// Credentials given outright (flags): no lookup ever.
    pub fn given(credentials: Option<Credentials>) -> Self {
        LazyCredentials {
            found: Arc::new(OnceLock::from(credentials)),
            ..LazyCredentials::default()
        }
    }

    /// Looked up in the Docker config at `path` for `registry` when first needed.
    pub fn from_docker_config(path: PathBuf, registry: &str) -> Self {
        LazyCredentials {
            docker_config: Some(path),
            registry: registry.to_string(),
            ..LazyCredentials::default()
        }
    }

    pub fn get(&self) -> Option<&Credentials> {
        self.found
            .get_or_init(|| {
                let path = self.docker_config.as_deref()?;
                lookup(path, &self.registry, self.search_path.as_deref()).unwrap_or_else(|error| {
                    tracing::warn!("{error}; going on without credentials");
                    None
                })
            })
            .as_ref()
    }
}

/// `search_path` replaces `PATH` when finding `docker-credential-*` helpers (tests).
fn lookup(
    path: &Path,
    registry: &str,
    search_path: Option<&OsStr>,
) -> Result<Option<Credentials>, RegistryError> {
    let invalid = |problem: String| RegistryError::DockerConfig {
        path: path.to_path_buf(),
        problem,
    };
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(invalid(error.to_string())),
    };
    let config: DockerConfig =
        serde_json::from_slice(&text).map_err(|error| invalid(error.to_string()))?;
    let helper = config
        .cred_helpers
        .get(registry)
        .or(config.creds_store.as_ref());
    if let Some(helper) = helper {
        // A broken helper (e.g. Docker Desktop's, uninstalled) must not stop
        // pallet: anonymous access still works for public registries.
        match run_helper(helper, registry, search_path) {
            Ok(Some(credentials)) => return Ok(Some(credentials)),
            Ok(None) => {}
            Err(problem) => tracing::warn!(
                helper = %format!("docker-credential-{helper}"),
                config = %path.display(),
                "{problem}; going on without its credentials for {registry}"
            ),
        }
    }
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| server_host(key) == registry)
        .map(|(_, entry)| entry);
    entry
        .map(|entry| inline_credentials(entry).map_err(invalid))
        .transpose()
        .map(Option::flatten)
}

/// `https://host:port/v1/` -> `host:port` (how `docker login` may write keys).
fn server_host(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

fn inline_credentials(entry: &AuthEntry) -> Result<Option<Credentials>, String> {
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|auth| !auth.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .map_err(|error| format!("`auth` is not base64 ({error})"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8".to_string())?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or("`auth` is not `user:password`")?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// Runs `docker-credential-<helper> get`; `None` when it knows no credentials.
fn run_helper(
    helper: &str,
    registry: &str,
    search_path: Option<&OsStr>,
) -> Result<Option<Credentials>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    if let Some(search_path) = search_path {
        command.env("PATH", search_path);
    }
    let spawned = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child =
        spawned.map_err(|error| format!("cannot run credential helper {program} ({error})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("credential helper {program} failed ({error})"))?;
    if !output.status.success() {
        // Helpers exit non-zero with "credentials not found in native keychain".
        return Ok(None);
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|error| {
        format!("credential helper {program} answered unreadable JSON ({error})")
    })?;
    // `<token>` marks an identity token, which needs an OAuth exchange pallet does not do.
    Ok((answer.username != "<token>").then_some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(directory: &Path, text: &str) -> PathBuf {
        let path = directory.join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn credentials(username: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            username: username.into(),
            password: password.into(),
        })
    }

    #[test]
    fn reads_inline_auths() {
        let directory = tempfile::tempdir().unwrap();
        let path = config(
            directory.path(),
            r#"{"auths": {
                "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0"},
                "https://registry.example.invalid/v1/": {"username": "bob", "password": "pw"},
                "empty.example.invalid": {}
            }}"#,
        );
        let cases = [
            ("127.0.0.1:5000", credentials("alice", "s3cret")),
            ("registry.example.invalid", credentials("bob", "pw")),
            ("empty.example.invalid", None),
            ("other:5000", None),
        ];
        for (registry, expected) in cases {
            assert_eq!(
                docker_credentials(&path, registry).unwrap(),
                expected,
                "{registry}"
            );
        }
        assert_eq!(
            docker_credentials(&directory.path().join("absent.json"), "x").unwrap(),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn looks_credentials_up_once_and_only_when_needed() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let calls = directory.path().join("calls");
        let helper = directory.path().join("docker-credential-counting");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\necho called >> '{}'\necho '{{\"Username\":\"erin\",\"Secret\":\"y\"}}'\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = config(directory.path(), r#"{"credsStore": "counting"}"#);
        let lazy = LazyCredentials {
            search_path: Some(directory.path().as_os_str().to_owned()),
            ..LazyCredentials::from_docker_config(path.clone(), "h:1")
        };
        let copy = lazy.clone();
        assert!(
            !calls.exists(),
            "the helper ran before credentials were needed"
        );
        assert_eq!(copy.get().cloned(), credentials("erin", "y"));
        assert_eq!(lazy.get().cloned(), credentials("erin", "y"));
        assert_eq!(std::fs::read_to_string(&calls).unwrap(), "called\n");

        std::fs::write(&path, r#"{"auths": "#).unwrap();
        let broken = LazyCredentials::from_docker_config(path, "h:1");
        assert_eq!(broken.get(), None);
        assert_eq!(LazyCredentials::given(None).get(), None);
    }

    #[test]
    fn reports_broken_config_with_its_path() {
        let directory = tempfile::tempdir().unwrap();
        let cases = [r#"{"auths": "#, r#"{"auths": {"h:1": {"auth": "***"}}}"#];
        for text in cases {
            let path = config(directory.path(), text);
            let error = docker_credentials(&path, "h:1").unwrap_err().to_string();
            assert!(error.contains("config.json"), "{error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn asks_credential_helpers() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let helper = directory.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = h:1 ]; then echo '{\"ServerURL\":\"h:1\",\"Username\":\"carol\",\"Secret\":\"x\"}'; \
             else echo 'credentials not found' >&2; exit 1; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = config(
            directory.path(),
            r#"{"credsStore": "fake", "auths": {"h:2": {"auth": "ZGF2ZTpwdw=="}}, "credHelpers": {"h:3": "missing"}}"#,
        );
        let search_path = Some(directory.path().as_os_str());
        assert_eq!(
            lookup(&path, "h:1", search_path).unwrap(),
            credentials("carol", "x")
        );
        assert_eq!(
            lookup(&path, "h:2", search_path).unwrap(),
            credentials("dave", "pw")
        );
        // A helper that cannot run is a warning, not an error: anonymous access.
        assert_eq!(lookup(&path, "h:3", search_path).unwrap(), None);
        let desktop = config(directory.path(), r#"{"credsStore": "desktop"}"#);
        assert_eq!(lookup(&desktop, "h:1", search_path).unwrap(), None);
    }
}
