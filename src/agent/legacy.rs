//! The original project's protocol: `POST {url}/execute` with a JSON-RPC
//! request whose method is the skill; the answer is `result` or `error`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::client::{CallError, CallRequest, Target};

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    target: Target<'_>,
    request: &CallRequest<'_>,
) -> Result<Value, CallError> {
    let body = json!({
        "jsonrpc": "2.0",
        "method": request.skill,
        "params": request.input,
        // A string: the original agents declare `id: Optional[str]` (pydantic)
        // and refuse a number with HTTP 422.
        "id": REQUEST_ID.fetch_add(1, Ordering::Relaxed).to_string(),
    });
    let request = http
        .post(format!("{}/execute", url.trim_end_matches('/')))
        .header("Idempotency-Key", request.idempotency_key);
    match target.json_rpc_exchange(request, &body, "execute").await? {
        (Some(result), _) => Ok(result),
        (None, text) => Err(target.malformed(
            "the JSON-RPC reply has neither `result` nor `error`",
            &text,
            None,
        )),
    }
}
