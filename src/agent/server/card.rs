//! The A2A agent card: A2A 1.0's `supportedInterfaces` (JSON-RPC 1.0 first,
//! then HTTP+JSON 1.0, then JSON-RPC 0.3), plus the 0.3 fields (`url`,
//! `preferredTransport`, `protocolVersion`, `additionalInterfaces`) that 0.3
//! clients read; 1.0 clients use `supportedInterfaces` when it is present.

use serde_json::{Map, Value, json};

use super::definition::AgentDefinition;
use super::wire::JSON_MEDIA_TYPE;

pub use crate::agent::card::SKILL_SCHEMAS_EXTENSION;
/// Where the HTTP+JSON binding is mounted, under the agent's base URL.
pub(super) const REST_PREFIX: &str = "/rest";

/// The card for an agent served at `base` (no trailing slash).
pub(super) fn agent_card(definition: &AgentDefinition, base: &str) -> Value {
    let rpc_url = format!("{base}/");
    let rest_url = format!("{base}{REST_PREFIX}");
    let skills: Vec<Value> = definition
        .skills
        .iter()
        .map(|skill| {
            json!({
                "id": skill.id,
                "name": skill.name,
                "description": skill.description,
                "tags": skill.tags,
                "examples": skill.examples,
                "inputModes": [JSON_MEDIA_TYPE, "text/plain"],
                "outputModes": [JSON_MEDIA_TYPE],
            })
        })
        .collect();
    let schemas: Map<String, Value> = definition
        .skills
        .iter()
        .map(|skill| {
            let schemas =
                json!({"input_schema": skill.input_schema, "output_schema": skill.output_schema});
            (skill.id.clone(), schemas)
        })
        .collect();
    json!({
        "name": definition.name,
        "description": definition.description,
        "version": definition.version,
        "supportedInterfaces": [
            {"url": rpc_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": rest_url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            {"url": rpc_url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ],
        "url": rpc_url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "additionalInterfaces": [{"url": rpc_url, "transport": "JSONRPC"}],
        "capabilities": {
            "streaming": true,
            "pushNotifications": false,
            "extendedAgentCard": false,
            "extensions": [{
                "uri": SKILL_SCHEMAS_EXTENSION,
                "description": "JSON Schemas of the skills' inputs and outputs",
                "params": {"skills": schemas},
            }],
        },
        "defaultInputModes": [JSON_MEDIA_TYPE, "text/plain"],
        "defaultOutputModes": [JSON_MEDIA_TYPE],
        "skills": skills,
    })
}
