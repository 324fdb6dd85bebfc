//! The service's errors and their RFC 9457 `application/problem+json` answers.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::chain_of;
use crate::runs::RunError;
use crate::store::StoreError;
use crate::workflow::{InputError, SourceError};

/// When to try again after a 429: runs take seconds, a retry sooner
/// would only be refused again.
const RETRY_AFTER_SECONDS: &str = "2";

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {detail}")]
    BadJson { detail: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error(
        "the run's input is {size} bytes, more than the limit of {limit} (--max-input-bytes, PALLET_MAX_INPUT_BYTES)"
    )]
    InputTooLarge { size: u64, limit: u64 },
    #[error("too busy to start a run")]
    Overloaded(#[from] super::Refusal),
    #[error("the request body did not arrive within {}", humantime::format_duration(*.timeout))]
    BodyTimeout { timeout: std::time::Duration },
    #[error("the request needs `Content-Type: application/json`")]
    NotJson,
    #[error("{detail}")]
    Invalid { detail: String },
    #[error("invalid `{pointer}`: {detail}")]
    InvalidField {
        /// JSON pointer of the field at fault in the request body.
        pointer: &'static str,
        detail: String,
    },
    #[error("cannot use workflow `{reference}`")]
    Workflow {
        reference: String,
        #[source]
        source: SourceError,
    },
    #[error("cannot look up workflow `{reference}` now")]
    WorkflowUnavailable {
        reference: String,
        #[source]
        source: SourceError,
    },
    /// The run's input does not fit the workflow's `inputs` (every problem in `errors`).
    #[error("{}", .0.summary())]
    Input(InputError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(
        "trigger `agent_complete` cannot be posted: pallet's runner records agent completion itself; post `human_approved` or `human_rejected` to decide an approval"
    )]
    AgentCompleteNotPostable,
    #[error("run `{id}` is already executing in this service")]
    Executing { id: String },
    #[error("missing or wrong bearer token (set `Authorization: Bearer <PALLET_API_TOKEN>`)")]
    Unauthorized,
    #[error(
        "a request signed in by the UI's cookie must come from this service's pages (`Origin` is missing or another site); scripts send `Authorization: Bearer <PALLET_API_TOKEN>`"
    )]
    CrossOrigin,
    #[error(
        "this service browses no registry (it runs with --offline); start it without --offline to list the registry"
    )]
    NoRegistry,
    #[error("{doing}")]
    Registry {
        doing: String,
        /// Boxed: the registry's errors are large, and every handler returns this type.
        #[source]
        source: Box<crate::registry::RegistryError>,
    },
    #[error("no route {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Exposed(#[from] crate::bearer::ExposureError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::Run(RunError::Store(error))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::NotJson,
            JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
                ApiError::BadJson {
                    detail: rejection.body_text(),
                }
            }
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge {
                    limit: super::BODY_LIMIT,
                }
            }
            rejection => ApiError::BadJson {
                detail: rejection.body_text(),
            },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::Invalid {
            detail: rejection.body_text(),
        }
    }
}

impl ApiError {
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            detail: detail.into(),
        }
    }

    pub fn field(pointer: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            pointer,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } | ApiError::InputTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. }
            | ApiError::InvalidField { .. }
            | ApiError::Workflow { .. }
            | ApiError::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::WorkflowUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Run(error) => run_status(error),
            ApiError::AgentCompleteNotPostable | ApiError::Executing { .. } => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::NoRegistry => StatusCode::NOT_FOUND,
            ApiError::Registry { source, .. }
                if matches!(
                    **source,
                    crate::registry::RegistryError::RepositoryNotFound { .. }
                        | crate::registry::RegistryError::NoMatchingVersion { .. }
                        | crate::registry::RegistryError::ManifestNotFound { .. }
                ) =>
            {
                StatusCode::NOT_FOUND
            }
            ApiError::Registry { .. } => StatusCode::BAD_GATEWAY,
            ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Exposed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn run_status(error: &RunError) -> StatusCode {
    match error {
        RunError::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
        error if error.is_invalid_request() => StatusCode::UNPROCESSABLE_ENTITY,
        error if error.is_conflict() => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = chain_of(&self);
        // Requests carry the client's text: never raw control characters in
        // the log, and a client's mistake is no server error.
        if status.is_server_error() {
            tracing::error!("{}", printable(&detail));
        } else {
            tracing::debug!("answered {status}: {}", printable(&detail));
        }
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let ApiError::InvalidField { pointer, .. } = &self {
            body["pointer"] = json!(pointer);
        }
        if let ApiError::Input(error) = &self {
            // Pointers into the run's input (`/requirements`), as `pallet run` lists them.
            body["errors"] = json!(error.problems);
            body["declared_inputs"] = json!(error.declared);
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `text` with control characters escaped (`\u{1b}`), for the log.
fn printable(text: &str) -> String {
    text.chars()
        .map(|character| match character.is_control() {
            true => character.escape_unicode().to_string(),
            false => character.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InvalidTransition, RunState};

    #[test]
    fn control_characters_are_escaped_for_the_log() {
        assert_eq!(printable("a\u{1b}[31m\nb"), "a\\u{1b}[31m\\u{a}b");
        assert_eq!(printable("plain é"), "plain é");
    }

    #[test]
    fn each_error_has_its_status() {
        let cases = [
            (ApiError::BadJson { detail: "x".into() }, 400),
            (ApiError::TooLarge { limit: 1 }, 413),
            (ApiError::invalid("short"), 422),
            (ApiError::Unauthorized, 401),
            (ApiError::AgentCompleteNotPostable, 409),
            (ApiError::Executing { id: "x".into() }, 409),
            (ApiError::from(StoreError::NotFound { id: "x".into() }), 404),
            (
                ApiError::from(StoreError::Transition(InvalidTransition {
                    from: RunState::Completed,
                    to: RunState::Cancelled,
                })),
                409,
            ),
            (
                ApiError::Run(RunError::MissingFields {
                    step: "gate".into(),
                    missing: vec!["ticket".into()],
                }),
                422,
            ),
            (
                ApiError::Run(RunError::NestedStep {
                    id: "x".into(),
                    step: "left".into(),
                    parent: "fan".into(),
                }),
                422,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }
}
