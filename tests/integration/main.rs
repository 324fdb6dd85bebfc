//! One integration test binary; each module covers one area against real servers.

mod a2a_versions;
mod agent;
mod agent_auth;
mod agent_serve_conformance;
mod api;
mod api_hardening;
mod bootstrap;
mod cli;
mod cli_registry;
mod durable;
mod engine;
mod examples;
mod fuzz;
mod hostile;
mod hostile_agents;
mod original;
mod output;
mod reattach;
mod registry;
mod registry_hostile;
mod registry_interop;
mod remote;
mod server;
mod streaming;
mod support;
mod validate;
