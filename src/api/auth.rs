//! The token check for every route but `/health` and the sign-in page: the
//! bearer header, or the cookie the UI's sign-in sets. A request that
//! changes something on the strength of the cookie alone must come from a
//! page of this service (its `Origin`), so another site cannot make a
//! signed-in browser send it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{ApiError, AppState, ui};

pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.options.token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/health" || ui::is_public(path) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if crate::bearer::authorized(given, expected) {
        return next.run(request).await;
    }
    let session = ui::session(expected);
    // Any of them: a cookie another port of this host set may come first.
    let by_cookie =
        cookies(headers, ui::COOKIE).any(|value| crate::bearer::matches(value, &session));
    if by_cookie {
        let reads = matches!(*request.method(), Method::GET | Method::HEAD);
        if reads || same_origin(headers) {
            return next.run(request).await;
        }
        return ApiError::CrossOrigin.into_response();
    }
    // A person at the UI signs in; a program gets the problem document.
    if path == "/ui" || path.starts_with("/ui/") {
        return Redirect::to("/ui/login").into_response();
    }
    ApiError::Unauthorized.into_response()
}

fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Origin` names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .and_then(|origin| url::Url::parse(origin).ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            let authority = match origin.port() {
                Some(port) => format!("{}:{port}", origin.host_str().unwrap_or_default()),
                None => origin.host_str().unwrap_or_default().to_string(),
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}
