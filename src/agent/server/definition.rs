//! The agent definition file (YAML or JSON): the agent's name and the skills it
//! offers, each implemented by a command. Loading resolves the commands and
//! compiles the skills' JSON Schemas once, so serving never re-parses them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::ServerError;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_CONCURRENCY: usize = 4;
/// How many schema violations one error message lists.
const REPORTED_VIOLATIONS: usize = 3;

/// One agent: what `pallet agent serve` hosts.
#[derive(Debug, Clone)]
pub struct AgentDefinition {
    pub name: String,
    pub description: String,
    pub version: String,
    pub skills: Vec<SkillDefinition>,
    /// The definition file's directory: skill commands run there.
    pub directory: PathBuf,
}

/// One skill and the command that implements it.
#[derive(Debug, Clone)]
pub struct SkillDefinition {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub examples: Vec<String>,
    /// The command's argv, with `pallet` and relative paths resolved.
    pub run: Vec<String>,
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    input_validator: Option<Arc<jsonschema::Validator>>,
    output_validator: Option<Arc<jsonschema::Validator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: String,
    description: String,
    version: Option<String>,
    skills: Vec<RawSkill>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSkill {
    id: String,
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    examples: Vec<String>,
    run: Vec<String>,
    timeout: Option<RawTimeout>,
    max_concurrency: Option<usize>,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
}

/// `timeout: 120` (seconds) or `timeout: "2m"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTimeout {
    Seconds(f64),
    Text(String),
}

impl AgentDefinition {
    /// Reads and checks a definition file; `.json` files are parsed as JSON,
    /// anything else as YAML.
    pub fn load(path: &Path) -> Result<AgentDefinition, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let directory = std::path::absolute(directory).unwrap_or_else(|_| directory.to_path_buf());
        Self::from_text(&text, path, &directory)
    }

    /// Checks a definition held in memory (the built-in example agents);
    /// `origin` names it in errors and picks the format, relative commands
    /// resolve against `directory`.
    pub fn from_text(
        text: &str,
        origin: &Path,
        directory: &Path,
    ) -> Result<AgentDefinition, ServerError> {
        let is_json = origin
            .extension()
            .is_some_and(|extension| extension == "json");
        let raw =
            parse(text, origin, is_json).map_err(|(location, source)| ServerError::Parse {
                path: origin.to_path_buf(),
                location,
                source,
            })?;
        from_raw(raw, directory.to_path_buf()).map_err(|message| ServerError::Invalid {
            path: origin.to_path_buf(),
            message,
        })
    }

    pub fn skill(&self, id: &str) -> Option<&SkillDefinition> {
        self.skills.iter().find(|skill| skill.id == id)
    }

    /// The skill ids, for error messages.
    pub fn skill_list(&self) -> String {
        let ids: Vec<&str> = self.skills.iter().map(|skill| skill.id.as_str()).collect();
        ids.join(", ")
    }
}

impl SkillDefinition {
    /// Checks an input against the skill's input schema.
    pub fn check_input(&self, input: &Value) -> Result<(), String> {
        check(self.input_validator.as_deref(), input, "input")
    }

    /// Checks an output against the skill's output schema.
    pub fn check_output(&self, output: &Value) -> Result<(), String> {
        check(self.output_validator.as_deref(), output, "output")
    }
}

type ParseFailure = (String, Box<dyn std::error::Error + Send + Sync>);

/// How YAML problems about the whole file name a definition file.
pub const DEFINITION_FILE: crate::yaml::FileKind = crate::yaml::FileKind {
    article: "an",
    name: "agent definition",
    contents: "an agent definition needs `name`, `description` and `skills`",
};

fn parse(text: &str, origin: &Path, is_json: bool) -> Result<RawDefinition, ParseFailure> {
    if is_json {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let location = match error.path().to_string() {
                root if root == "." => "the top level".to_string(),
                path => format!("`{path}`"),
            };
            (location, Box::new(error.into_inner()) as _)
        })
    } else {
        let file = origin.display().to_string();
        crate::yaml::from_str(text, &file, DEFINITION_FILE).map_err(|error| {
            let location = location(&error.problem.pointer);
            (location, Box::new(error) as _)
        })
    }
}

/// A JSON pointer as a field path (`/skills/0/run` -> `` `skills[0].run` ``).
fn location(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the top level".to_string();
    }
    let mut path = String::new();
    for segment in pointer[1..].split('/') {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    format!("`{path}`")
}

fn from_raw(raw: RawDefinition, directory: PathBuf) -> Result<AgentDefinition, String> {
    if raw.name.trim().is_empty() {
        return Err("`name` is empty".to_string());
    }
    if raw.skills.is_empty() {
        return Err("`skills` is empty: an agent offers at least one skill".to_string());
    }
    let mut seen = HashSet::new();
    let mut skills = Vec::with_capacity(raw.skills.len());
    for (index, skill) in raw.skills.into_iter().enumerate() {
        if !seen.insert(skill.id.clone()) {
            return Err(format!("skill `{}` is defined twice", skill.id));
        }
        let skill = skill_from_raw(skill, &directory)
            .map_err(|message| format!("skills[{index}]: {message}"))?;
        skills.push(skill);
    }
    Ok(AgentDefinition {
        name: raw.name,
        description: raw.description,
        version: raw.version.unwrap_or_else(|| "1.0.0".to_string()),
        skills,
        directory,
    })
}

fn skill_from_raw(raw: RawSkill, directory: &Path) -> Result<SkillDefinition, String> {
    if raw.id.trim().is_empty() {
        return Err("`id` is empty".to_string());
    }
    let timeout = match raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(timeout) => {
            parse_timeout(&timeout).map_err(|message| format!("`timeout`: {message}"))?
        }
    };
    let max_concurrency = raw.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    if max_concurrency == 0 {
        return Err("`max_concurrency` must be at least 1".to_string());
    }
    let run = resolve_command(&raw.run, directory)?;
    let input_validator = compile(raw.input_schema.as_ref(), "input_schema")?;
    let output_validator = compile(raw.output_schema.as_ref(), "output_schema")?;
    Ok(SkillDefinition {
        name: raw.name.unwrap_or_else(|| raw.id.clone()),
        id: raw.id,
        description: raw.description,
        tags: raw.tags,
        examples: raw.examples,
        run,
        timeout,
        max_concurrency,
        input_schema: raw.input_schema,
        output_schema: raw.output_schema,
        input_validator,
        output_validator,
    })
}

fn parse_timeout(timeout: &RawTimeout) -> Result<Duration, String> {
    let duration = match timeout {
        RawTimeout::Seconds(seconds) if seconds.is_finite() && *seconds > 0.0 => {
            Duration::from_secs_f64(*seconds)
        }
        RawTimeout::Seconds(seconds) => {
            return Err(format!("{seconds} is not a positive number of seconds"));
        }
        RawTimeout::Text(text) => humantime::parse_duration(text.trim())
            .map_err(|error| format!("`{text}` is not a duration like `90s` or `2m` ({error})"))?,
    };
    if duration.is_zero() {
        return Err("must be more than zero".to_string());
    }
    Ok(duration)
}

/// `pallet` means this executable, so example agents need no install step;
/// relative paths that exist next to the definition file are made absolute.
fn resolve_command(run: &[String], directory: &Path) -> Result<Vec<String>, String> {
    let Some(program) = run.first() else {
        return Err("`run` is empty: it needs the command's argv".to_string());
    };
    let mut resolved = Vec::with_capacity(run.len());
    if program == "pallet" {
        let executable = std::env::current_exe()
            .map_err(|error| format!("`run`: cannot locate the pallet executable ({error})"))?;
        resolved.push(executable.to_string_lossy().into_owned());
    } else {
        resolved.push(resolve_path(program, directory));
    }
    resolved.extend(
        run[1..]
            .iter()
            .map(|argument| resolve_path(argument, directory)),
    );
    Ok(resolved)
}

fn resolve_path(argument: &str, directory: &Path) -> String {
    let path = Path::new(argument);
    if argument.is_empty() || argument.starts_with('-') || path.is_absolute() {
        return argument.to_string();
    }
    let candidate = directory.join(path);
    if candidate.exists() {
        candidate.to_string_lossy().into_owned()
    } else {
        argument.to_string()
    }
}

fn compile(
    schema: Option<&Value>,
    field: &str,
) -> Result<Option<Arc<jsonschema::Validator>>, String> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    jsonschema::validator_for(schema)
        .map(|validator| Some(Arc::new(validator)))
        .map_err(|error| format!("`{field}` is not a valid JSON Schema: {error}"))
}

fn check(
    validator: Option<&jsonschema::Validator>,
    value: &Value,
    what: &str,
) -> Result<(), String> {
    let Some(validator) = validator else {
        return Ok(());
    };
    let violations: Vec<String> = validator
        .iter_errors(value)
        .take(REPORTED_VIOLATIONS)
        .map(|error| {
            let pointer = error.instance_path().as_str();
            let pointer = if pointer.is_empty() { "/" } else { pointer };
            format!("at `{pointer}`: {error}")
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what} does not match the {what} schema: {}",
            violations.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load_text(text: &str, file_name: &str) -> Result<AgentDefinition, ServerError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        AgentDefinition::load(&path)
    }

    #[test]
    fn loads_yaml_with_defaults() {
        let definition = load_text(
            "name: plan\ndescription: Plans\nskills:\n  - id: create_plan\n    run: [sh, -c, cat]\n",
            "plan.yaml",
        )
        .unwrap();
        let skill = &definition.skills[0];
        assert_eq!(definition.version, "1.0.0");
        assert_eq!(skill.name, "create_plan");
        assert_eq!(skill.timeout, DEFAULT_TIMEOUT);
        assert_eq!(skill.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(skill.run, vec!["sh", "-c", "cat"]);
    }

    #[test]
    fn loads_json() {
        let text = json!({"name": "a", "description": "d", "skills": [{"id": "s", "run": ["true"], "timeout": "2m"}]});
        let definition = load_text(&text.to_string(), "a.json").unwrap();
        assert_eq!(definition.skills[0].timeout, Duration::from_secs(120));
    }

    #[test]
    fn rejects_bad_definitions_naming_the_problem() {
        let cases = [
            ("name: a\ndescription: d\nskills: []\n", "`skills` is empty"),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: []}\n",
                "skills[0]: `run` is empty",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x]}\n  - {id: s, run: [x]}\n",
                "skill `s` is defined twice",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], timeout: soon}\n",
                "`timeout`: `soon` is not a duration",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], timeout: -1}\n",
                "`timeout`: -1 is not a positive",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], max_concurrency: 0}\n",
                "`max_concurrency` must be at least 1",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], input_schema: {type: 12}}\n",
                "`input_schema` is not a valid JSON Schema",
            ),
        ];
        for (text, expected) in cases {
            let error = load_text(text, "agent.yaml").unwrap_err();
            let ServerError::Invalid { message, .. } = &error else {
                panic!("expected an invalid-definition error for {text:?}, got {error:?}");
            };
            assert!(
                message.contains(expected),
                "{message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_location() {
        let cases = [
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], timeut: 3}\n",
                "`skills[0].timeut`",
                "unknown field `timeut`",
            ),
            (
                "name: a\nskills: []\n",
                "the top level",
                "missing field `description`",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: x}\n",
                "`skills[0].run`",
                "invalid type",
            ),
        ];
        for (text, expected_location, expected_cause) in cases {
            let error = load_text(text, "agent.yaml").unwrap_err();
            let ServerError::Parse {
                location, source, ..
            } = &error
            else {
                panic!("expected a parse error for {text:?}, got {error:?}");
            };
            assert_eq!(location, expected_location, "for {text:?}");
            assert!(
                source.to_string().contains(expected_cause),
                "{source} should contain {expected_cause:?}"
            );
        }
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let cases = [
            (
                "name: a\ndescription: d\nskills:\n  - {id: s, run: [x], timeut: 3}\n",
                "agent.yaml:4:23: unknown field `timeut`",
            ),
            (
                "name: a\nskills: []\n",
                "agent.yaml:1:1: missing field `description`",
            ),
            (
                "name: a\ndescription: d\nskills:\n  - id: s\n    run: x\n",
                "agent.yaml:5:10: invalid type: string \"x\"",
            ),
            (
                "name: a\ndescription: [d\n",
                "agent.yaml:3:1: malformed YAML",
            ),
            ("", "agent.yaml:1:1: the agent definition file is empty"),
        ];
        for (text, expected) in cases {
            let error = load_text(text, "agent.yaml").unwrap_err();
            let chain = crate::error::chain_of(&error);
            assert!(chain.contains(expected), "{text:?}: {chain}");
        }
    }

    #[test]
    fn resolves_pallet_and_relative_paths() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("skill.sh"), "cat").unwrap();
        let run = ["pallet", "skill.sh", "missing.sh", "-c"].map(String::from);
        let resolved = resolve_command(&run, directory.path()).unwrap();
        assert_eq!(
            resolved[0],
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert_eq!(
            resolved[1],
            directory.path().join("skill.sh").to_string_lossy()
        );
        assert_eq!(resolved[2..], ["missing.sh", "-c"]);
    }

    #[test]
    fn schema_checks_name_the_pointer() {
        let validator = compile(
            Some(&json!({"type": "object", "properties": {"n": {"type": "integer"}}})),
            "input_schema",
        )
        .unwrap();
        let cases = [
            (json!({"n": 1}), None),
            (
                json!({"n": "one"}),
                Some("at `/n`: \"one\" is not of type \"integer\""),
            ),
            (json!([]), Some("at `/`: [] is not of type \"object\"")),
        ];
        for (value, expected) in cases {
            let result = check(validator.as_deref(), &value, "input");
            match expected {
                None => assert!(result.is_ok(), "{value} should pass: {result:?}"),
                Some(expected) => {
                    let message = result.unwrap_err();
                    assert!(
                        message.contains(expected),
                        "{message:?} should contain {expected:?}"
                    );
                }
            }
        }
    }
}
