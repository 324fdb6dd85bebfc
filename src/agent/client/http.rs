//! The shared HTTP clients of agent calls and card fetches, and their
//! redirect rules.

use std::sync::OnceLock;
use std::time::Duration;

/// How long connecting to an agent may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `url` without its user name and password, for messages and logs.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Agent calls follow a redirect only to the same scheme, host and port, and
/// only a 307 or 308 (which keep the method and body); reqwest turns a
/// 301/302/303 of a POST into a GET, which is never what an agent call means.
/// A redirect not followed comes back as the answer and fails the call with
/// the Location named. Cards have their own rule ([`card_http_client`]).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        let keeps_request = matches!(attempt.status().as_u16(), 307 | 308);
        if same_origin && keeps_request && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Redirects followed at most, for agent calls and card fetches alike.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client of agent calls: pooled connections, short connect
/// timeout. Shared (a clone is a handle) so that all calls reuse the same
/// connections. Its TLS settings are [`crate::tls::config`]: the system's root
/// certificates are loaded at the first https connection, not here.
pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(redirect_policy()))
        .clone()
}

/// The client of card fetches: a card GET has no body, no idempotency key and
/// no credentials of pallet's, so it follows up to [`MAX_REDIRECTS`] redirects
/// of any kind, to any origin (cards are often moved with a 301 or 302).
/// reqwest drops `Authorization`, `Cookie` and `Proxy-Authorization` when a
/// redirect changes the scheme, host or port; no `Referer` is sent either.
/// Its own pool: reqwest has no redirect policy per request.
pub(crate) fn card_http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(reqwest::redirect::Policy::limited(MAX_REDIRECTS)))
        .clone()
}

fn build_client(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // No more idle connections to one agent than requests may be in
        // flight to it: one opened while another was on its way back to the
        // pool is closed rather than kept.
        .pool_max_idle_per_host(super::limit::max_connections())
        .redirect(redirects)
        .referer(false)
        .tls_backend_preconfigured(crate::tls::config())
        .build()
        .expect("the HTTP client configuration is static and valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_client_builds_with_the_lazy_tls_configuration() {
        let config = crate::tls::config();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let _client = http_client();
    }
}
