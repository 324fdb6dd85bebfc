//! Test harness: real servers on free loopback ports.

pub mod legacy_agent;
pub mod registry;
pub mod token_server;
