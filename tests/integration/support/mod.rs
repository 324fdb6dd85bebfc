//! Test harness: real servers on free loopback ports.

pub mod a2a_peer;
pub mod legacy_agent;
