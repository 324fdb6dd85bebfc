//! Bounds on what one request may cost: its body must arrive within the
//! body timeout and be at most [`super::ServiceOptions::body_limit`] bytes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Read the whole body before the handler runs, within the body timeout: a
/// client trickling a body would otherwise hold a connection and a handler.
pub async fn read_body(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let timeout = state.options.body_timeout;
    let limit = state.options.body_limit();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await;
    match read {
        Err(_) => ApiError::BodyTimeout { timeout }.into_response(),
        Ok(Err(error)) => {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                ApiError::TooLarge { limit }.into_response()
            } else {
                ApiError::BadJson {
                    detail: format!("the request body could not be read ({error})"),
                }
                .into_response()
            }
        }
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}
