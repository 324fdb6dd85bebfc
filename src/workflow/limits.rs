//! The bounds on a workflow file, checked once when it is loaded so that every
//! later walk over its tree (schema check, semantic checks, templates, the
//! engine) is safe by construction. Each one is listed in the README's
//! `## Limits` section.

use std::sync::OnceLock;

/// The YAML bounds, shared by every YAML file pallet reads.
pub use crate::yaml::limits::{MAX_NESTING_DEPTH, max_expanded_bytes};

/// Largest workflow file, in bytes, unless [`MAX_WORKFLOW_BYTES_ENV`] says otherwise.
pub const DEFAULT_MAX_WORKFLOW_BYTES: usize = 1024 * 1024;

/// Environment variable that changes [`DEFAULT_MAX_WORKFLOW_BYTES`] (a number of bytes).
pub const MAX_WORKFLOW_BYTES_ENV: &str = "PALLET_MAX_WORKFLOW_BYTES";

/// Deepest nesting of container steps (parallel, conditional, switch) inside each other.
pub const MAX_CONTAINER_DEPTH: usize = 16;

/// Longest step id, workflow id or `outputs` name, in characters: ids become file names.
pub const MAX_ID_LENGTH: usize = 128;

/// The largest `max_items` a for_each step may set (the default is
/// [`super::model::DEFAULT_MAX_ITEMS`]): every item's steps are recorded.
pub const MAX_ITEMS: usize = 10_000;

/// The largest `max_iterations` a loop step may set.
pub const MAX_ITERATIONS: u32 = 1000;

/// Most inputs an `inputs:` block may declare.
pub const MAX_INPUTS: usize = 100;

/// Deepest nesting of mappings and lists inside one input's JSON Schema
/// (`properties` of `items` of ... ): deeper schemas are mistakes or attacks.
pub const MAX_INPUT_SCHEMA_DEPTH: usize = 16;

/// Largest `inputs:` block, in bytes of compact JSON: it is compiled into a
/// validator for every workflow value and checked on every run.
pub const MAX_INPUTS_BYTES: usize = 64 * 1024;

/// Most problems reported for one file; the rest are counted.
pub const MAX_DIAGNOSTICS: usize = 100;

/// The largest workflow file accepted, in bytes: [`DEFAULT_MAX_WORKFLOW_BYTES`]
/// or the value of `PALLET_MAX_WORKFLOW_BYTES` (read once). The CLI, the
/// registry and the API all bound what they read with it.
pub fn max_workflow_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(MAX_WORKFLOW_BYTES_ENV)
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .filter(|bytes| *bytes > 0)
            .unwrap_or(DEFAULT_MAX_WORKFLOW_BYTES)
    })
}
