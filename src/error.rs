//! Shared error helpers. Each module has its own error enum; this only turns
//! them (and the sizes their messages name) into text.

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

/// `1048576` as `1 MiB`, `10520180` as `10.0 MiB`, small sizes in bytes.
pub fn describe_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
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

    #[test]
    fn sizes_read_in_their_largest_whole_unit() {
        let cases = [
            (1024 * 1024, "1 MiB"),
            (16 * 1024 * 1024, "16 MiB"),
            (2048, "2 KiB"),
            (1000, "1000 bytes"),
            (10_520_180, "10.0 MiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(describe_bytes(bytes), expected);
        }
    }
}
