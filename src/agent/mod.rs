//! Agents: their cards, discovery of an agent per skill, and one client type
//! that speaks A2A 0.3 and 1.0 (JSON-RPC and HTTP+JSON each) and the original
//! project's legacy protocol; authentication by the card's security schemes
//! ([`auth`]) with secrets from [`credentials`].

mod a2a;
mod answer;
pub mod auth;
pub mod card;
pub mod client;
pub mod credentials;
pub mod discovery;
mod legacy;
pub mod server;

pub use card::{AgentCard, Binding, CardError, Endpoint, Interface, SkillInfo, Version};
pub use client::{
    AgentClient, AgentTask, CallError, CallRequest, DEFAULT_MAX_CONNECTIONS,
    MAX_CONNECTIONS_VARIABLE, StreamSettings, max_connections,
};
pub use discovery::{Discovery, DiscoveryError, StaticDiscovery};
