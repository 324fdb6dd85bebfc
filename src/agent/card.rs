//! Agent cards: A2A 1.0 (`/.well-known/agent-card.json`) and legacy (`/agent-card`).

use serde::Serialize;
use serde_json::Value;

/// What pallet needs of an agent card, whatever protocol it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentCard {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub endpoint: Endpoint,
    pub skills: Vec<SkillInfo>,
}

/// Where and how to call an agent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Endpoint {
    /// A2A 1.0 JSON-RPC binding: POST JSON-RPC to `url`.
    A2a { url: String },
    /// The original project's agents: POST `{url}/execute`.
    Legacy { url: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkillInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

impl AgentCard {
    pub fn offers(&self, skill: &str) -> bool {
        self.skills.iter().any(|offered| offered.id == skill)
    }
}
