//! The registry's own words when it refuses a request, for the error pallet shows.

/// Largest error body read for its detail: a distribution error document is
/// a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// The registry's own words for a refusal: the first entry of a distribution
/// error document (`{"errors": [{"code", "message"}]}`), as ` (CODE:
/// message)`; empty when the body is not one, too large or slow (the status
/// alone is then the error).
pub(super) async fn refusal_detail(mut response: reqwest::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Document {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_ERROR_BODY_BYTES {
            return String::new();
        }
        body.extend_from_slice(&chunk);
    }
    let Ok(document) = serde_json::from_slice::<Document>(&body) else {
        return String::new();
    };
    let Some(entry) = document.errors.into_iter().next() else {
        return String::new();
    };
    let text = match (entry.code, entry.message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => return String::new(),
    };
    // Outside text in a message: kept to one short line.
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    format!(" ({text})")
}
