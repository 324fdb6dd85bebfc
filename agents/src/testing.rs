//! What the tests need of a host: the skills' definition entries, read from
//! the embedded YAML (pallet reads them at run time with its own YAML module;
//! this conversion, test-only, needs no positions since the tests check the files).

use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use super::{AGENTS, SkillError, input_from_text, run_skill, unknown_skill};

/// The skill's entry in its agent definition file (id, schemas, ...).
pub fn skill_definition(skill: &str) -> Result<Value, SkillError> {
    for agent in AGENTS {
        let documents = YamlLoader::load_from_str(agent.definition).map_err(|error| {
            SkillError::Definition {
                file: agent.file.to_string(),
                reason: error.to_string(),
            }
        })?;
        let card = json(&documents[0]);
        let found = card["skills"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["id"] == skill);
        if let Some(entry) = found {
            return Ok(entry.clone());
        }
    }
    Err(unknown_skill(skill))
}

/// [`run_skill`] with the skill's definition looked up, as the host does.
pub fn run_skill_with(
    skill: &str,
    input: Value,
    llm_command: Option<&str>,
) -> Result<Value, SkillError> {
    run_skill(skill, &skill_definition(skill)?, input, llm_command)
}

/// [`run_skill_with`] on JSON text, without an LLM command.
pub fn run_skill_on_text(skill: &str, text: &str) -> Result<Value, SkillError> {
    let definition = skill_definition(skill)?;
    run_skill(skill, &definition, input_from_text(skill, text)?, None)
}

fn json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(number) => Value::from(*number),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Boolean(flag) => Value::Bool(*flag),
        Yaml::Array(items) => Value::Array(items.iter().map(json).collect()),
        Yaml::Hash(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.as_str().unwrap_or_default().to_string(), json(value)))
                .collect::<Map<String, Value>>(),
        ),
        _ => Value::Null,
    }
}
