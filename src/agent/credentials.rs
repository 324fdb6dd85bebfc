//! Where an agent's secret comes from, first found wins: the agent's `auth`
//! in the agents file (which names environment variables, never the secret),
//! then `PALLET_AGENT_TOKEN_<NAME>` (or `_USERNAME_`/`_PASSWORD_`), then the
//! credentials file `$XDG_CONFIG_HOME/pallet/credentials.yaml`, whose entries
//! name the agent's URL too. Secrets never reach `Debug` output or messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The largest credentials file read.
pub const MAX_CREDENTIALS_FILE_SIZE: u64 = 64 * 1024;

/// A secret as configured; which header it becomes depends on the card.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// For an HTTP bearer scheme or an API key in a header.
    Token(String),
    /// For HTTP basic.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Token(_) => formatter.write_str("Token(<redacted>)"),
            Secret::Basic { username, .. } => write!(formatter, "Basic({username}, <redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "agent {url} in the agents file: `auth` names the environment variable {variable}, which is not set"
    )]
    MissingVariable { url: String, variable: String },
    #[error(
        "agent {url} in the agents file: `auth` needs `token_env`, or `username` with `password_env`"
    )]
    IncompleteAuth { url: String },
    #[error("cannot read the credentials file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {} can be read by other users (mode {mode:o})", path.display())]
    Readable { path: PathBuf, mode: u32 },
    #[error("credentials file {} is larger than {} bytes", path.display(), MAX_CREDENTIALS_FILE_SIZE)]
    TooLarge { path: PathBuf },
    #[error("credentials file {} is not `agents: {{NAME: {{url: ..., token: ...}}}}`", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        /// Boxed: a located problem is large and rare.
        source: Box<crate::yaml::YamlError>,
    },
    #[error("credentials file {}: agent `{name}` needs `url` and either `token` or `username` with `password`", path.display())]
    IncompleteEntry { path: PathBuf, name: String },
}

impl CredentialError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CredentialError::Readable { path, .. } => {
                Some(format!("run `chmod 600 {}`", path.display()))
            }
            CredentialError::MissingVariable { variable, .. } => {
                Some(format!("export {variable} before running pallet"))
            }
            CredentialError::IncompleteAuth { .. }
            | CredentialError::Parse { .. }
            | CredentialError::IncompleteEntry { .. } => {
                Some("see docs/agents.md#authentication for the accepted shapes".to_string())
            }
            CredentialError::Read { .. } | CredentialError::TooLarge { .. } => None,
        }
    }
}

/// An agent's `auth` in the agents file: names of environment variables.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthEntry {
    token_env: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
}

impl AuthEntry {
    /// The secret the entry points to, read from the environment now.
    pub fn secret(&self, url: &str) -> Result<Secret, CredentialError> {
        let read = |variable: &String| {
            std::env::var(variable)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| CredentialError::MissingVariable {
                    url: url.to_string(),
                    variable: variable.clone(),
                })
        };
        match (&self.token_env, &self.username, &self.password_env) {
            (Some(variable), None, None) => Ok(Secret::Token(read(variable)?)),
            (None, Some(username), Some(variable)) => Ok(Secret::Basic {
                username: username.clone(),
                password: read(variable)?,
            }),
            _ => Err(CredentialError::IncompleteAuth {
                url: url.to_string(),
            }),
        }
    }
}

/// How YAML problems about the whole file name the credentials file.
const CREDENTIALS_FILE: crate::yaml::FileKind = crate::yaml::FileKind {
    article: "a",
    name: "credentials",
    contents: "the credentials file is `agents: {NAME: {url: ..., token: ...}}`",
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    agents: BTreeMap<String, FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    url: Option<String>,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The secrets of the credentials file, by agent name, each with the origin
/// it may go to.
#[derive(Debug, Default)]
pub struct Credentials {
    file: Vec<(String, url::Origin, Secret)>,
}

impl Credentials {
    /// Reads the credentials file when there is one.
    pub fn load() -> Result<Credentials, CredentialError> {
        match default_path() {
            Some(path) if path.exists() => Credentials::read(&path),
            _ => Ok(Credentials::default()),
        }
    }

    /// Reads `path`, refusing a file other users can read (as ssh does).
    pub fn read(path: &Path) -> Result<Credentials, CredentialError> {
        let read_error = |source| CredentialError::Read {
            path: path.to_path_buf(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(CredentialError::Readable {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if metadata.len() > MAX_CREDENTIALS_FILE_SIZE {
            return Err(CredentialError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let origin = path.display().to_string();
        let parsed: CredentialsFile = crate::yaml::from_str(&text, &origin, CREDENTIALS_FILE)
            .map_err(|source| CredentialError::Parse {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        let mut file = Vec::new();
        for (name, entry) in parsed.agents {
            let incomplete = || CredentialError::IncompleteEntry {
                path: path.to_path_buf(),
                name: name.clone(),
            };
            let origin = entry
                .url
                .as_deref()
                .and_then(|url| url::Url::parse(url).ok())
                .map(|url| url.origin())
                .filter(url::Origin::is_tuple)
                .ok_or_else(incomplete)?;
            let secret = match (entry.token, entry.username, entry.password) {
                (Some(token), None, None) => Secret::Token(token),
                (None, Some(username), Some(password)) => Secret::Basic { username, password },
                _ => return Err(incomplete()),
            };
            file.push((name, origin, secret));
        }
        Ok(Credentials { file })
    }

    /// The secret for the agent whose card is named `name`, configured at
    /// `origin`: from the environment, else from the file (whose entry must
    /// name the same origin).
    pub fn secret_for(&self, name: &str, origin: &url::Origin) -> Option<Secret> {
        from_environment(name).or_else(|| {
            self.file
                .iter()
                .find(|(entry, entry_origin, _)| entry == name && entry_origin == origin)
                .map(|(_, _, secret)| secret.clone())
        })
    }
}

impl Credentials {
    /// The file's entry for agent `name`: the origin it is for and its secret.
    pub fn file_entry(&self, name: &str) -> Option<(&url::Origin, &Secret)> {
        self.file
            .iter()
            .find(|(entry, _, _)| entry == name)
            .map(|(_, origin, secret)| (origin, secret))
    }
}

/// `$XDG_CONFIG_HOME/pallet/credentials.yaml`, else `~/.config/pallet/credentials.yaml`.
pub fn default_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("pallet").join("credentials.yaml"))
}

/// `PALLET_AGENT_<WHAT>_<NAME>`: the card's name upper-cased, every
/// character other than a letter or digit written `_` (`code-reviewer` is
/// `CODE_REVIEWER`).
pub fn variable(what: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PALLET_AGENT_{what}_{name}")
}

fn from_environment(name: &str) -> Option<Secret> {
    let read = |what| {
        std::env::var(variable(what, name))
            .ok()
            .filter(|value| !value.is_empty())
    };
    if let Some(token) = read("TOKEN") {
        return Some(Secret::Token(token));
    }
    Some(Secret::Basic {
        username: read("USERNAME")?,
        password: read("PASSWORD")?,
    })
}

/// How to give agent `name` a credential, for the missing-credential hint.
pub fn how_to_give(name: &str, basic: bool) -> String {
    let variables = if basic {
        format!(
            "set {} and {}",
            variable("USERNAME", name),
            variable("PASSWORD", name)
        )
    } else {
        format!("set {}", variable("TOKEN", name))
    };
    format!(
        "{variables}, or give the agent `auth: {{{}}}` in the agents file, or add `{name}: {{url: ..., {}}}` under `agents:` in $XDG_CONFIG_HOME/pallet/credentials.yaml (mode 600); see docs/agents.md#authentication",
        if basic {
            "username: ..., password_env: VARIABLE"
        } else {
            "token_env: VARIABLE"
        },
        if basic {
            "username: ..., password: ..."
        } else {
            "token: ..."
        },
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn variable_names() {
        let cases = [
            ("coder", "PALLET_AGENT_TOKEN_CODER"),
            ("code-reviewer", "PALLET_AGENT_TOKEN_CODE_REVIEWER"),
            ("a.b c", "PALLET_AGENT_TOKEN_A_B_C"),
        ];
        for (name, expected) in cases {
            assert_eq!(variable("TOKEN", name), expected);
        }
    }

    fn file_with(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        file
    }

    #[test]
    fn the_file_binds_each_secret_to_a_name_and_an_origin() {
        let text = "agents:\n  fileagent-one:\n    url: http://127.0.0.1:8001/rpc\n    token: s3cr3t\n  fileagent-two:\n    url: http://127.0.0.1:8002\n    username: bob\n    password: pw\n";
        let file = file_with(text, 0o600);
        let credentials = Credentials::read(file.path()).unwrap();
        let origin = |url: &str| url::Url::parse(url).unwrap().origin();
        let one = origin("http://127.0.0.1:8001/");
        assert_eq!(
            credentials.secret_for("fileagent-one", &one),
            Some(Secret::Token("s3cr3t".into()))
        );
        assert_eq!(credentials.secret_for("fileagent-two", &one), None);
        assert_eq!(
            credentials.secret_for("fileagent-one", &origin("http://127.0.0.1:8009/")),
            None
        );
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_files_are_refused_without_showing_secrets() {
        let cases = [
            (
                "agents:\n  a: {url: http://h:1, token: s3cr3t}\n",
                0o644,
                "can be read by other users (mode 644)",
            ),
            (
                "agents:\n  a: {token: s3cr3t}\n",
                0o600,
                "agent `a` needs `url`",
            ),
            (
                "agents:\n  a: {url: http://h:1, token: s3cr3t, username: b}\n",
                0o600,
                "agent `a` needs `url`",
            ),
            ("agents: [s3cr3t]\n", 0o600, "is not `agents:"),
        ];
        for (text, mode, expected) in cases {
            let file = file_with(text, mode);
            let error = Credentials::read(file.path()).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(!crate::error::chain_of(&error).contains("s3cr3t"));
        }
        let big = file_with(&"#".repeat(MAX_CREDENTIALS_FILE_SIZE as usize + 1), 0o600);
        assert!(matches!(
            Credentials::read(big.path()),
            Err(CredentialError::TooLarge { .. })
        ));
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let cases = [
            (
                "agents:\n  a: {url: http://h:1, tokn: x}\n",
                ":2:24: unknown field `tokn`",
            ),
            ("agents:\n  a: http://h:1\n", ":2:6: invalid type: string"),
            ("agents:\n\ta: {}\n", ":2:2: malformed YAML"),
            ("agents: {}\nextra: 1\n", ":2:1: unknown field `extra`"),
        ];
        for (text, expected) in cases {
            let file = file_with(text, 0o600);
            let error = Credentials::read(file.path()).unwrap_err();
            let chain = crate::error::chain_of(&error);
            let located = format!("{}{expected}", file.path().display());
            assert!(chain.contains(&located), "{text:?}: {chain}");
        }
    }

    #[test]
    fn agents_file_entries_name_variables() {
        let entry: AuthEntry = crate::yaml::from_str(
            "{token_env: PALLET_TEST_NO_SUCH_VARIABLE}",
            "auth",
            CREDENTIALS_FILE,
        )
        .unwrap();
        let error = entry.secret("http://h:1").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("PALLET_TEST_NO_SUCH_VARIABLE, which is not set")
        );
        let inline: Result<AuthEntry, _> =
            crate::yaml::from_str("{token: s3cr3t}", "auth", CREDENTIALS_FILE);
        assert!(inline.is_err());
        let incomplete: AuthEntry =
            crate::yaml::from_str("{username: bob}", "auth", CREDENTIALS_FILE).unwrap();
        assert!(matches!(
            incomplete.secret("u"),
            Err(CredentialError::IncompleteAuth { .. })
        ));
    }
}
