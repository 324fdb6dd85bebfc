//! Test harness: real servers on free loopback ports.

pub mod a2a_peer;
pub mod hostile_registry;
pub mod legacy_agent;
pub mod process;
pub mod registry;
pub mod token_server;
