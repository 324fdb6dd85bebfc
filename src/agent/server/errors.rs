//! The errors an A2A request can get, independent of the binding: each carries
//! its JSON-RPC code (A2A 1.0 §5.4); HTTP+JSON maps the code to a status.

pub(super) const PARSE_ERROR: i64 = -32700;
pub(super) const INVALID_REQUEST: i64 = -32600;
pub(super) const METHOD_NOT_FOUND: i64 = -32601;
pub(super) const INVALID_PARAMS: i64 = -32602;
/// Used only when the server is at its stream limit.
pub(super) const INTERNAL_ERROR: i64 = -32603;
pub(super) const TASK_NOT_FOUND: i64 = -32001;
pub(super) const TASK_NOT_CANCELABLE: i64 = -32002;
pub(super) const PUSH_NOTIFICATION_NOT_SUPPORTED: i64 = -32003;
pub(super) const UNSUPPORTED_OPERATION: i64 = -32004;
pub(super) const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
pub(super) const VERSION_NOT_SUPPORTED: i64 = -32009;

/// A refused request: the code, a message for people and, for invalid
/// parameters, the JSON pointer of the field at fault.
#[derive(Debug, PartialEq)]
pub(super) struct RpcError {
    pub(super) code: i64,
    pub(super) message: String,
    pub(super) field: Option<String>,
}

impl RpcError {
    pub(super) fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Invalid params at `pointer` (e.g. `/message/parts/0`).
    pub(super) fn invalid_field(pointer: &str, problem: &str) -> RpcError {
        RpcError {
            code: INVALID_PARAMS,
            message: format!("invalid params at `{pointer}`: {problem}"),
            field: Some(pointer.to_string()),
        }
    }

    /// The A2A error name as HTTP+JSON's `ErrorInfo.reason` spells it.
    pub(super) fn reason(&self) -> &'static str {
        match self.code {
            TASK_NOT_FOUND => "TASK_NOT_FOUND",
            TASK_NOT_CANCELABLE => "TASK_NOT_CANCELABLE",
            PUSH_NOTIFICATION_NOT_SUPPORTED => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            UNSUPPORTED_OPERATION => "UNSUPPORTED_OPERATION",
            CONTENT_TYPE_NOT_SUPPORTED => "CONTENT_TYPE_NOT_SUPPORTED",
            VERSION_NOT_SUPPORTED => "VERSION_NOT_SUPPORTED",
            PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS => "INVALID_ARGUMENT",
            METHOD_NOT_FOUND => "NOT_FOUND",
            _ => "UNAVAILABLE",
        }
    }

    /// The HTTP status of this error on the HTTP+JSON binding.
    pub(super) fn http_status(&self) -> u16 {
        match self.code {
            TASK_NOT_FOUND | METHOD_NOT_FOUND => 404,
            INTERNAL_ERROR => 503,
            _ => 400,
        }
    }

    /// `google.rpc` details: the field at fault, or the A2A error's `ErrorInfo`.
    pub(super) fn details(&self) -> serde_json::Value {
        match &self.field {
            Some(field) => serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": self.message}],
            }]),
            None => serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason(),
                "domain": "a2a-protocol.org",
            }]),
        }
    }
}

pub(super) fn task_not_found(id: &str) -> RpcError {
    RpcError::new(TASK_NOT_FOUND, format!("task `{id}` not found"))
}

pub(super) fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(INVALID_PARAMS, message)
}
