//! pallet runs declarative workflows of AI agents: a YAML workflow is checked,
//! shared through an OCI registry like a container image, and run step by
//! step, each step calling an agent that offers the step's skill. The same
//! core serves the command line and an HTTP service. This page is the table
//! of contents; `docs/architecture.md` draws the data flow.
//!
//! Modules, each owning one thing (arrows: a module uses only those after it
//! in this list, so there is no cycle):
//! - [`cli`]: the command line, args (clap types) -> settings -> commands, one printer.
//! - [`api`]: the HTTP service (`pallet serve`): routes, auth, problem documents, OpenAPI, and its client (`--server`).
//! - [`runs`]: the durable-run lifecycle: start, resume, rerun, approve/reject, cancel, approval expiry, leases.
//! - [`store`]: persistence only, behind the [`store::Backend`] trait (SQLite now).
//! - [`builtin`]: the example workflows and agents compiled into the binary (their skills: the `pallet-agents` crate).
//! - [`engine`]: running one workflow: step kinds, timeouts, retries, cancellation, sub-workflows, run records.
//! - [`registry`]: OCI push/pull/list/resolve over one HTTP client, semver, the cache, registry-backed discovery.
//! - [`agent`]: agent cards, discovery, the protocol clients (A2A 0.3/1.0 over JSON-RPC and HTTP+JSON, legacy), auth, the agent server.
//! - [`workflow`]: the workflow model, its JSON Schema, loading with line:column diagnostics, semantic checks, steps against the agents' schemas, sources.
//! - [`template`]: the `{{ }}` templates of inputs and conditions: compile, check, fill; pure, a leaf.
//! - [`yaml`]: the one YAML reader, every problem at file:line:column; a leaf.
//! - [`bearer`], [`http_server`], `tls`, [`error`]: shared helpers (tokens, bounded serving, lazy TLS roots, error chains).
//!
//! Where each command lives: `cli/commands/` — `run` (run.rs), `validate`
//! (validate.rs), `push`/`pull`/`list`/`show` (registry.rs), `agents
//! push|list` (agents.rs), `agent serve|skill` (agent.rs), `serve` (serve.rs),
//! `runs`/`approve`/`reject`/`cancel`/`resume`/`rerun` (runs.rs, and remote.rs with
//! `--server`).
//!
//! Glossary:
//! - **workflow**: a YAML definition (`metadata` + `steps`), identified by id and semver version.
//! - **inputs**: a workflow's typed `workflow.input`: a JSON Schema per field, checked (and defaulted) before any step.
//! - **step**: one node of a workflow: a skill call, or a container (parallel, conditional, switch).
//! - **skill**: a named capability (`create_plan`) that an agent offers.
//! - **agent**: an HTTP service that offers skills and publishes an agent card.
//! - **agent card**: the JSON that names an agent, its URL(s) and its skills.
//! - **run**: one execution of one workflow version with one input.
//! - **durable run**: a run recorded in a run database, so that it outlives its process.
//! - **the original project**: the Python project pallet comes from; its
//!   agents, card layout and registry layout are still supported.
//! - **legacy protocol**: the original project's agent protocol, a card at
//!   `GET /agent-card` and one JSON-RPC call `POST {url}/execute` per skill
//!   (string ids); A2A is the protocol everything else speaks.

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
