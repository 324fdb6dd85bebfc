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
        "id": REQUEST_ID.fetch_add(1, Ordering::Relaxed),
    });
    let response = http
        .post(format!("{}/execute", url.trim_end_matches('/')))
        .header("Idempotency-Key", request.idempotency_key)
        .json(&body)
        .send()
        .await
        .map_err(|source| target.transport(source))?;
    if !response.status().is_success() {
        return Err(target.http(response).await);
    }
    let text = response
        .text()
        .await
        .map_err(|source| target.transport(source))?;
    let reply: Value = serde_json::from_str(&text)
        .map_err(|source| target.malformed("the body is not JSON", &text, Some(source)))?;
    if let Some(error) = reply.get("error").filter(|error| !error.is_null()) {
        return Err(target.json_rpc(error));
    }
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(target.malformed(
            "the JSON-RPC reply has neither `result` nor `error`",
            &text,
            None,
        )),
    }
}
