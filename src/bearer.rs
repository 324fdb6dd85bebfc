//! Bearer tokens, shared by `pallet serve` and `pallet agent serve`: reading
//! `Authorization`, comparing in constant time, and the rule for listening
//! beyond loopback (a strong token or nothing).

use std::net::SocketAddr;

/// Shortest token accepted for a non-loopback address.
pub const MIN_TOKEN_CHARS: usize = 16;

/// How to make a good token, shown when one is refused.
pub const TOKEN_HINT: &str = "generate one with `openssl rand -hex 32`";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    #[error(
        "refusing to listen on {addr} without a token: set {variable}, or listen on a loopback address such as 127.0.0.1"
    )]
    NoToken {
        addr: SocketAddr,
        variable: &'static str,
    },
    #[error("refusing to listen on {addr}: {variable} {problem}")]
    WeakToken {
        addr: SocketAddr,
        variable: &'static str,
        problem: String,
    },
}

/// Refuse to expose a service beyond this machine without a strong token
/// (named by `variable` in the error); loopback needs none.
pub fn check_exposure(
    addr: SocketAddr,
    token: Option<&str>,
    variable: &'static str,
) -> Result<(), ExposureError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        return Err(ExposureError::NoToken { addr, variable });
    };
    let weak = |problem: String| ExposureError::WeakToken {
        addr,
        variable,
        problem,
    };
    if token.chars().any(char::is_whitespace) {
        return Err(weak("contains whitespace".to_string()));
    }
    let length = token.chars().count();
    if length < MIN_TOKEN_CHARS {
        return Err(weak(format!(
            "has {length} characters; it needs at least {MIN_TOKEN_CHARS}"
        )));
    }
    Ok(())
}

/// The token of an `Authorization: Bearer TOKEN` header value; the scheme is
/// case-insensitive (RFC 9110 section 11.1, RFC 6750).
pub fn token_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Whether the request's `Authorization` value carries `expected`.
pub fn authorized(authorization: Option<&str>, expected: &str) -> bool {
    authorization
        .and_then(token_of)
        .is_some_and(|given| same(given.as_bytes(), expected.as_bytes()))
}

/// Whether a token given another way (a cookie, a form) is `expected`.
pub fn matches(given: &str, expected: &str) -> bool {
    same(given.as_bytes(), expected.as_bytes())
}

/// Compare without stopping at the first difference, so the time taken does
/// not tell how much of a guessed token was right.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        let cases: [(&str, &str, bool); 5] = [
            ("secret", "secret", true),
            ("secreT", "secret", false),
            ("secret1", "secret", false),
            ("secre", "secret", false),
            ("", "secret", false),
        ];
        for (given, expected, equal) in cases {
            assert_eq!(
                same(given.as_bytes(), expected.as_bytes()),
                equal,
                "{given}"
            );
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("abc", None),
        ];
        for (header, expected) in cases {
            assert_eq!(token_of(header), expected, "{header}");
        }
    }

    #[test]
    fn only_loopback_listens_without_a_strong_token() {
        let strong = "0123456789abcdef";
        let cases = [
            ("127.0.0.1:8080", None, true),
            ("[::1]:8080", None, true),
            ("127.0.0.1:8080", Some("x"), true),
            ("0.0.0.0:8080", None, false),
            ("0.0.0.0:8080", Some(""), false),
            ("0.0.0.0:8080", Some("x"), false),
            ("0.0.0.0:8080", Some("                "), false),
            ("0.0.0.0:8080", Some("0123456789 abcdef"), false),
            ("0.0.0.0:8080", Some("0123456789abcde"), false),
            ("0.0.0.0:8080", Some(strong), true),
            ("192.168.1.4:80", Some(strong), true),
        ];
        for (addr, token, allowed) in cases {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(
                check_exposure(addr, token, "PALLET_API_TOKEN").is_ok(),
                allowed,
                "{addr} {token:?}"
            );
        }
    }
}
