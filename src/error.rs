//! Shared error helpers. Each module has its own error enum; this only renders them.

/// An error and its causes on one line, `outer: inner: innermost`, for records
/// and logs that keep a single string.
pub fn chain_of(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
