//! Reading an agent's answer within bounds: the body never grows past the
//! step's `max_response_size`, and JSON with more values than that size
//! allows is refused before it is parsed, since parsed values cost a hundred
//! bytes or more each.

/// An answer may hold one JSON value per this many bytes of its size limit
/// (262,144 values at the default 16 MiB).
pub const BYTES_PER_JSON_VALUE: u64 = 64;

/// Why a body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit; `size` when the agent announced it.
    TooLarge {
        size: Option<u64>,
    },
    Transport(reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, stopping as soon as it passes
/// `limit`, so a hostile agent costs at most `limit` bytes of memory.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyError> {
    if let Some(size) = response.content_length().filter(|size| *size > limit) {
        return Err(BodyError::TooLarge { size: Some(size) });
    }
    let expected = response.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { size: None });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and drops what is left of `response`'s body, up to `limit` bytes, so
/// that its connection goes back to the pool instead of being closed (an
/// unread body makes the next request to the same agent open a new one). A
/// larger body is not worth the read: the connection is dropped with it.
pub(crate) async fn drain(mut response: reqwest::Response, limit: u64) {
    if response.content_length().is_some_and(|size| size > limit) {
        return;
    }
    let mut read = 0u64;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len() as u64;
        if read > limit {
            return;
        }
    }
}

/// The most JSON values an answer under `limit` bytes may hold.
pub(crate) fn max_json_values(limit: u64) -> u64 {
    (limit / BYTES_PER_JSON_VALUE).max(1024)
}

/// About how many values parsing `text` would make: containers, plus one per
/// `,` and `:` outside strings. A scan of the bytes, no allocation.
pub(crate) fn json_values(text: &str) -> u64 {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' | b',' | b':' => count += 1,
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings() {
        let cases = [
            ("1", 1),
            ("\"a, b: [c]\"", 1),
            ("[1,2,3]", 4),
            ("{\"a\":1}", 3),
            ("[{\"a\":1},{\"a\":1}]", 7),
            ("\"\\\"[,\"", 1),
        ];
        for (text, expected) in cases {
            assert_eq!(json_values(text), expected, "{text}");
        }
        assert_eq!(max_json_values(16 << 20), 262_144);
    }
}
