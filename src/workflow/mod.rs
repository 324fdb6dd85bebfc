//! Workflow definitions: the serde model, the embedded JSON Schema, loading
//! YAML with line:column diagnostics, the semantic checks run before any step,
//! the typed `inputs:` a run's input is checked against (`inputs.rs`), and the
//! steps against the schemas their agents publish (`shapes/`).

mod approval_checks;
mod input_checks;
pub mod inputs;
pub mod limits;
pub mod load;
pub mod model;
mod references;
pub mod schema;
pub mod shapes;
pub mod source;
mod template_checks;
mod template_sites;
pub mod validate;

pub use approval_checks::DECISION_FIELDS;
pub use inputs::{InputError, InputInfo, InputProblem, Inputs};
pub use limits::max_workflow_bytes;
pub use load::{Diagnostic, LoadError, LoadedWorkflow, load_file, load_str};
pub use model::{
    Backoff, DEFAULT_MAX_ITEMS, Metadata, OnReject, RetryPolicy, Step, StepKind, StepType,
    TimeoutDecision, Workflow,
};
pub use shapes::{Published, SkillSchemas};
pub use source::{DirectorySource, SourceError, Sources, WorkflowSource};
