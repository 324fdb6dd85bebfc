//! The web UI: a page shell, a script and a style sheet compiled into the
//! binary (`src/api/ui/`), drawn in the browser from the JSON API and its
//! event streams. Plain DOM code and no build step: nothing to install, and
//! no copy of a front-end framework to keep patched. With a token, a sign-in
//! form sets it as an HttpOnly, SameSite=Strict cookie that the API accepts
//! like the bearer header ([`super::auth`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;

const SHELL: &str = include_str!("ui/shell.html");
const LOGIN: &str = include_str!("ui/login.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The cookie the sign-in form sets.
pub const COOKIE: &str = "pallet_session";

/// How long a sign-in lasts.
const SESSION_SECONDS: u32 = 12 * 3600;

/// The cookie's value for `token`: derived, not the token itself. Browsers
/// send a host's cookies to all its ports, so another service on this host
/// may see it; it opens this UI (whose writes also need this origin), not
/// the bearer token scripts use.
pub fn session(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("pallet ui session\n{token}")))
}

/// Only this origin's script and style, no inline code, no framing: an
/// agent output that slipped into the page as HTML could still run nothing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The paths under `/ui` that need no token: what the sign-in page uses.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/ui/login" | "/ui/app.css" | "/ui/app.js")
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(shell))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/start", get(shell))
        .route("/ui/registry", get(shell))
        .route("/ui/runs/{id}", get(shell))
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/ui/login", get(login_form).post(login))
}

fn page(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    page(StatusCode::OK, content_type, text.to_string())
}

async fn shell() -> Response {
    page(
        StatusCode::OK,
        "text/html; charset=utf-8",
        SHELL.to_string(),
    )
}

async fn login_form(State(state): State<Arc<AppState>>) -> Response {
    match state.options.token {
        None => Redirect::to("/ui").into_response(),
        Some(_) => page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            LOGIN.to_string(),
        ),
    }
}

/// `token=...` (a form post): the cookie when it is the service's token.
async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(expected) = state.options.token.as_deref() else {
        return Redirect::to("/ui").into_response();
    };
    let given = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !crate::bearer::matches(&given, expected) {
        let again = LOGIN.replace(
            "<!--message-->",
            r#"<p class="error" id="login-error">That is not the service's token.</p>"#,
        );
        return page(StatusCode::UNAUTHORIZED, "text/html; charset=utf-8", again);
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
        session(expected)
    );
    let mut response = Redirect::to("/ui").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
