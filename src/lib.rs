//! pallet runs declarative workflows of AI agents.
//!
//! A workflow is a YAML file ([`workflow`]) checked against an embedded JSON Schema
//! and by semantic checks, published to and pulled from an OCI [`registry`] as a
//! versioned artifact (or taken from the [`builtin`] examples). Each step names a *skill*; the [`engine`] finds an agent
//! offering it ([`agent::Discovery`]), resolves the step's `{{ }}` inputs
//! ([`template`]), calls the agent under a timeout ([`agent::AgentClient`], A2A 0.3 and 1.0
//! over JSON-RPC or HTTP+JSON, polled or streamed over SSE, or the legacy protocol) and stores the output for later steps. Durable runs
//! ([`runs`]: recorded in a run database, [`store`], SQLite) survive a crash, are resumed without re-running completed
//! steps, and can wait for a human approval. The [`api`] (HTTP service) and the
//! [`cli`] are thin layers over these.
//!
//! Glossary:
//! - **workflow**: a YAML definition (`metadata` + `steps`), identified by id and semver version.
//! - **step**: one node of a workflow: a skill call, or a container (parallel, conditional, switch).
//! - **skill**: a named capability (`create_plan`) that an agent offers.
//! - **agent**: an HTTP service that offers skills and publishes an agent card.
//! - **agent card**: the JSON that names an agent, its URL(s) and its skills.
//! - **run**: one execution of one workflow version with one input.
//! - **durable run**: a run recorded in a run database, so that it outlives its process.

pub mod agent;
pub mod api;
pub mod bearer;
pub mod builtin;
pub mod cli;
pub mod engine;
pub mod error;
pub mod http_server;
pub mod registry;
pub mod runs;
pub mod store;
pub mod template;
mod tls;
pub mod workflow;
pub mod yaml;
