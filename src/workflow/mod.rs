//! Workflow definitions: the serde model, the embedded JSON Schema, loading
//! YAML with line:column diagnostics, and the semantic checks run before any step.

pub mod load;
pub mod model;
mod position;
mod references;
pub mod schema;
mod template_checks;
pub mod validate;

pub use load::{Diagnostic, LoadError, LoadedWorkflow, load_file, load_str};
pub use model::{Backoff, Metadata, RetryPolicy, Step, StepKind, StepType, Workflow};
