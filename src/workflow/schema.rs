//! The embedded JSON Schema (`schemas/workflow.schema.json`), the single source of truth for structure.
//! OWNER: workflow helper.

pub const WORKFLOW_SCHEMA: &str = include_str!("../../schemas/workflow.schema.json");
