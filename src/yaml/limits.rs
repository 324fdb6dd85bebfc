//! The bounds on every YAML file pallet reads (workflows, agent definitions,
//! agents files, credentials), checked while it is parsed so that every later
//! walk over its tree is safe. Each one is listed in the README's `## Limits`.

/// Deepest nesting of YAML collections (mappings and lists), the top-level
/// mapping counting as 1: bounds the stack of every recursive walk over values.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Most nodes all alias expansions of one file may produce together: far
/// above any real file, far below what exhausts memory ("billion laughs").
pub const MAX_ALIAS_NODES: usize = 100_000;

/// How many bytes YAML aliases may add to a document of `input_bytes`, and how
/// large its index of positions may grow: ten times the file, at least 1 MiB,
/// at most 16 MiB ("billion laughs" and long keys repeated on every nested node).
pub fn max_expanded_bytes(input_bytes: usize) -> usize {
    input_bytes
        .saturating_mul(10)
        .clamp(1024 * 1024, 16 * 1024 * 1024)
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
    fn expanded_bytes_scale_with_the_file_within_bounds() {
        let cases = [
            (0, 1024 * 1024),
            (200 * 1024, 2000 * 1024),
            (1024 * 1024, 10 * 1024 * 1024),
            (100 * 1024 * 1024, 16 * 1024 * 1024),
        ];
        for (input, expected) in cases {
            assert_eq!(max_expanded_bytes(input), expected, "{input}");
        }
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
