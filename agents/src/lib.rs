//! The example agents: their definition files (`agents/*.yaml`, embedded in
//! [`AGENTS`]) and their skills, deterministic and useful without any LLM.
//!
//! Each skill takes a JSON input and returns a JSON output of the shape its
//! definition declares. The host (`pallet agent skill NAME`) reads the
//! definitions and hands [`run_skill`] the skill's entry; this crate parses no
//! YAML and knows nothing of pallet. With an LLM command given, the skills ask
//! that command instead (see [`llm`]).

mod aggregate;
mod build;
mod code;
mod llm;
mod performance;
mod plan;
mod refine;
mod render;
mod review;
mod router;
mod security;
mod tasks;

use serde_json::Value;

/// The environment variable naming a shell command that answers prompts.
pub const LLM_COMMAND_VARIABLE: &str = "PALLET_LLM_CMD";

/// One example agent: its definition file and the skills it carries out.
pub struct Agent {
    /// The definition's file name in `agents/` (`plan.yaml`).
    pub file: &'static str,
    /// The definition file's text (YAML): name, skills, their schemas and commands.
    pub definition: &'static str,
    pub skills: &'static [Skill],
}

/// One skill and its deterministic implementation.
pub struct Skill {
    pub id: &'static str,
    pub handler: fn(&Value) -> Result<Value, SkillError>,
}

/// The example agents, in the order the table in `agents/README.md` lists them.
pub const AGENTS: &[Agent] = &[
    agent(
        "plan.yaml",
        include_str!("../plan.yaml"),
        &[skill("create_plan", plan::create_plan)],
    ),
    agent(
        "build.yaml",
        include_str!("../build.yaml"),
        &[skill("generate_code", build::generate_code)],
    ),
    agent(
        "test.yaml",
        include_str!("../test.yaml"),
        &[skill("review_code", review::review_code)],
    ),
    agent(
        "router.yaml",
        include_str!("../router.yaml"),
        &[skill("analyze_request", router::analyze_request)],
    ),
    agent(
        "security.yaml",
        include_str!("../security.yaml"),
        &[skill("security_scan", security::security_scan)],
    ),
    agent(
        "performance.yaml",
        include_str!("../performance.yaml"),
        &[skill("performance_check", performance::performance_check)],
    ),
    agent(
        "aggregate.yaml",
        include_str!("../aggregate.yaml"),
        &[skill("aggregate_results", aggregate::aggregate_results)],
    ),
];

const fn agent(file: &'static str, definition: &'static str, skills: &'static [Skill]) -> Agent {
    Agent {
        file,
        definition,
        skills,
    }
}

const fn skill(id: &'static str, handler: fn(&Value) -> Result<Value, SkillError>) -> Skill {
    Skill { id, handler }
}

const SKILLS: &[&str] = &[
    "create_plan",
    "generate_code",
    "review_code",
    "analyze_request",
    "security_scan",
    "performance_check",
    "aggregate_results",
];

#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("unknown skill '{skill}' (known skills: {known})")]
    UnknownSkill { skill: String, known: String },
    #[error("the input for skill '{skill}' is not JSON")]
    InputNotJson {
        skill: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid input for skill '{skill}': {reason}")]
    InvalidInput { skill: String, reason: String },
    #[error("unsupported language '{language}' (supported: python, javascript, rust)")]
    UnsupportedLanguage { language: String },
    #[error("agent definition '{file}' is invalid: {reason}")]
    Definition { file: String, reason: String },
    #[error("could not run the LLM command '{command}'")]
    LlmSpawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the LLM command '{command}' failed ({status}): {stderr_tail}")]
    LlmFailed {
        command: String,
        status: String,
        stderr_tail: String,
    },
    #[error(
        "the LLM answer for skill '{skill}' is malformed: {reason}; the answer starts with: {answer_start:?}"
    )]
    MalformedAnswer {
        skill: String,
        reason: String,
        answer_start: String,
    },
}

/// The names of all example skills.
pub fn skills() -> &'static [&'static str] {
    SKILLS
}

/// The LLM command in `PALLET_LLM_CMD`, when it is set and not blank.
pub fn llm_command() -> Option<String> {
    std::env::var(LLM_COMMAND_VARIABLE)
        .ok()
        .filter(|command| !command.trim().is_empty())
}

/// Runs one skill given its entry in its agent definition (id, schemas, ...):
/// checks the input against the entry's `input_schema`, then asks the LLM
/// command when one is given, else runs the deterministic implementation.
pub fn run_skill(
    skill: &str,
    definition: &Value,
    input: Value,
    llm_command: Option<&str>,
) -> Result<Value, SkillError> {
    check_input(skill, definition, &input)?;
    match llm_command {
        Some(command) => llm::run(command, skill, definition, &input),
        None => run_deterministic(skill, &input),
    }
}

/// Reads a skill's input from JSON text, as `pallet agent skill NAME` gets it on stdin.
pub fn input_from_text(skill: &str, text: &str) -> Result<Value, SkillError> {
    serde_json::from_str(text).map_err(|source| SkillError::InputNotJson {
        skill: skill.to_string(),
        source,
    })
}

fn run_deterministic(skill: &str, input: &Value) -> Result<Value, SkillError> {
    let handler = AGENTS
        .iter()
        .flat_map(|agent| agent.skills)
        .find(|entry| entry.id == skill)
        .map(|entry| entry.handler)
        .ok_or_else(|| unknown_skill(skill))?;
    handler(input)
}

/// The error for a skill no example agent offers, listing those they do.
pub fn unknown_skill(skill: &str) -> SkillError {
    SkillError::UnknownSkill {
        skill: skill.to_string(),
        known: SKILLS.join(", "),
    }
}

fn check_input(skill: &str, definition: &Value, input: &Value) -> Result<(), SkillError> {
    let Some(schema) = definition.get("input_schema") else {
        return Ok(());
    };
    schema_errors(schema, input).map_err(|reason| SkillError::InvalidInput {
        skill: skill.to_string(),
        reason,
    })
}

/// Checks `instance` against `schema`; the error lists every violation.
pub fn schema_errors(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = jsonschema::draft202012::new(schema).map_err(|error| error.to_string())?;
    let messages: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            format!("{at}: {error}")
        })
        .collect();
    if messages.is_empty() {
        Ok(())
    } else {
        Err(messages.join("; "))
    }
}

/// A string field of the input, or "" when absent or not a string.
fn text_field<'a>(input: &'a Value, field: &str) -> &'a str {
    input.get(field).and_then(Value::as_str).unwrap_or("")
}

/// An object-valued input that may also arrive as its JSON text (templates
/// can render objects to strings).
fn object_field(input: &Value, field: &str) -> Value {
    match input.get(field) {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        Some(value) => value.clone(),
        None => Value::Null,
    }
}

/// `(rule, line)` of each finding of a checking skill's output, for tests.
#[cfg(test)]
fn rules_and_lines(output: &serde_json::Value) -> Vec<(String, u64)> {
    output["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap().to_string(),
                finding["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{run_skill_on_text, run_skill_with, skill_definition};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_skill_list_follows_the_agent_table() {
        let table: Vec<&str> = AGENTS
            .iter()
            .flat_map(|agent| agent.skills)
            .map(|skill| skill.id)
            .collect();
        assert_eq!(table, skills());
    }

    #[test]
    fn every_skill_has_a_definition_with_compilable_schemas() {
        for skill in skills() {
            let definition = skill_definition(skill).unwrap();
            for key in ["input_schema", "output_schema"] {
                let schema = &definition[key];
                assert!(schema.is_object(), "{skill} has no {key}");
                jsonschema::draft202012::new(schema)
                    .unwrap_or_else(|error| panic!("{skill} {key}: {error}"));
            }
            let run = definition["run"].as_array().unwrap();
            assert_eq!(run.last().unwrap(), *skill);
        }
    }

    #[test]
    fn unknown_skill_names_it_and_lists_known_ones() {
        let error = run_skill_with("fly", json!({}), None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("'fly'"), "{message}");
        assert!(message.contains("create_plan, generate_code"), "{message}");
    }

    #[test]
    fn input_text_must_be_json() {
        let error = run_skill_on_text("create_plan", "requirements: x").unwrap_err();
        assert!(matches!(error, SkillError::InputNotJson { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "the input for skill 'create_plan' is not JSON"
        );
    }

    #[test]
    fn input_is_checked_against_the_input_schema() {
        let error = run_skill_with("create_plan", json!({"text": "x"}), None).unwrap_err();
        assert!(matches!(error, SkillError::InvalidInput { .. }), "{error}");
        assert!(error.to_string().contains("requirements"), "{error}");
    }

    /// Sample inputs of every skill, valid for its input schema; the output
    /// must be valid for its output schema.
    fn samples() -> Vec<(&'static str, Value)> {
        let python = "def add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n";
        vec![
            (
                "create_plan",
                json!({"requirements": "Create a function that calculates the factorial of a number"}),
            ),
            (
                "create_plan",
                json!({"requirements": "parse a CSV file, compute the average and plot a chart", "language": "rust"}),
            ),
            ("generate_code", json!({"plan": "reverse a string"})),
            (
                "generate_code",
                json!({"plan": "read a log file and count errors", "language": "javascript"}),
            ),
            ("review_code", json!({"code": python, "language": "python"})),
            (
                "review_code",
                json!({"code": "def broken(:\n", "language": null}),
            ),
            (
                "analyze_request",
                json!({"request": "Analyze the sales data in this CSV"}),
            ),
            ("security_scan", json!({"code": "eval(input())\n"})),
            (
                "performance_check",
                json!({"code": "for a in x:\n    for b in y:\n        pass\n"}),
            ),
            (
                "aggregate_results",
                json!({"quality": {}, "security": {}, "performance": {}}),
            ),
        ]
    }

    #[test]
    fn outputs_satisfy_the_output_schemas() {
        for (skill, input) in samples() {
            let definition = skill_definition(skill).unwrap();
            let output = run_skill_with(skill, input.clone(), None)
                .unwrap_or_else(|error| panic!("{skill} {input}: {error}"));
            schema_errors(&definition["output_schema"], &output)
                .unwrap_or_else(|reason| panic!("{skill} {input} -> {output}: {reason}"));
        }
    }

    #[test]
    fn object_fields_accept_json_text() {
        let input = json!({"a": "{\"x\": 1}", "b": {"y": 2}, "c": "plain"});
        let cases = [
            ("a", json!({"x": 1})),
            ("b", json!({"y": 2})),
            ("c", Value::Null),
            ("d", Value::Null),
        ];
        for (field, expected) in cases {
            assert_eq!(object_field(&input, field), expected, "{field}");
        }
    }
}
