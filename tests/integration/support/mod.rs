//! Test harness: real servers on free loopback ports.

pub mod a2a_peer;
pub mod hostile_agent;
pub mod legacy_agent;
pub mod registry;
pub mod sdk_peer;
pub mod token_server;
