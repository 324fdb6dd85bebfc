//! Agents: their cards, discovery of an agent per skill, and one client type
//! that speaks A2A 1.0 (JSON-RPC) and the original project's legacy protocol.
//! OWNER: agent helper. The types below are the contract the engine uses.

pub mod card;
pub mod client;
pub mod discovery;
pub mod examples;

pub use card::{AgentCard, Endpoint, SkillInfo};
pub use client::{AgentClient, CallError, CallRequest};
pub use discovery::{Discovery, DiscoveryError, StaticDiscovery};
