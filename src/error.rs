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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_joins_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::fmt::Error);
        assert_eq!(
            chain_of(&Outer(std::fmt::Error)),
            "outer: an error occurred when formatting an argument"
        );
    }
}
