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
}
