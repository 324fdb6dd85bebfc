//! A registry address (`host:port`) and whether it is reached over plain HTTP.

use std::net::IpAddr;

use super::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAddress {
    /// `host:port` (or `host`), exactly as used in URLs and references.
    pub authority: String,
    /// Plain HTTP: only for loopback hosts or hosts the user listed as insecure.
    pub plain_http: bool,
}

impl RegistryAddress {
    pub fn parse(text: &str, insecure_hosts: &[String]) -> Result<Self, RegistryError> {
        let invalid = |problem: &str| RegistryError::InvalidAddress {
            address: text.to_string(),
            problem: problem.to_string(),
        };
        if text.contains("://") {
            return Err(invalid("give host:port without a scheme"));
        }
        if text.is_empty() || text.contains('/') || text.chars().any(char::is_whitespace) {
            return Err(invalid("expected host:port, e.g. 127.0.0.1:5000"));
        }
        let host =
            host_of(text).ok_or_else(|| invalid("expected host:port, e.g. 127.0.0.1:5000"))?;
        let listed = insecure_hosts
            .iter()
            .any(|insecure| insecure == text || insecure == host);
        Ok(RegistryAddress {
            authority: text.to_string(),
            plain_http: listed || is_loopback(host),
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }
}

/// The host part of `host[:port]`, brackets of an IPv6 literal removed.
fn host_of(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port)).then_some(host);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if is_port(port) && !host.is_empty() && !host.contains(':') => {
            Some(host)
        }
        Some(_) => None,
        None => Some(authority),
    }
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_or_listed_hosts() {
        let insecure = vec!["registry.lan".to_string(), "10.0.0.5:5000".to_string()];
        let cases = [
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3:80", true),
            ("[::1]:5000", true),
            ("LOCALHOST", true),
            ("registry.lan:5000", true),
            ("10.0.0.5:5000", true),
            ("10.0.0.5:5001", false),
            ("registry.example", false),
            ("192.168.1.10:5000", false),
        ];
        for (text, plain) in cases {
            let address = RegistryAddress::parse(text, &insecure).unwrap();
            assert_eq!(address.plain_http, plain, "{text}");
            assert_eq!(address.authority, text);
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        let cases = [
            ("http://localhost:5000", "without a scheme"),
            ("", "expected host:port"),
            ("localhost:port", "expected host:port"),
            ("localhost:5000/path", "expected host:port"),
            ("[::1", "expected host:port"),
        ];
        for (text, expected) in cases {
            let error = RegistryAddress::parse(text, &[]).unwrap_err().to_string();
            assert!(
                error.contains(expected) && error.contains(text),
                "{text}: {error}"
            );
        }
    }
}
