//! Registry authentication details: bearer challenges, which token a request
//! uses, and which token realms may receive credentials.

use std::collections::HashMap;

/// What a token is granted for: the repository of a `/v2/<name>/...` path,
/// else the path without its query (the catalog).
pub(super) fn token_key(path: &str) -> String {
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
pub(super) fn check_realm(realm: &str, insecure_hosts: &[String]) -> Result<String, String> {
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
pub(super) fn host_of_authority(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => host,
        _ => authority,
    }
}

/// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

impl BearerChallenge {
    pub fn parse(header: &str) -> Option<BearerChallenge> {
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
}
