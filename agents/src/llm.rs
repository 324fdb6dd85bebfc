//! Skills backed by an LLM command: `sh -c COMMAND` gets a prompt on stdin
//! and prints an answer, which must be JSON (possibly in a ```json fence)
//! valid for the skill's output schema.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{SkillError, schema_errors};

/// How much of a bad answer or of stderr an error quotes.
const QUOTED_CHARACTERS: usize = 200;

pub fn run(
    command: &str,
    skill: &str,
    definition: &Value,
    input: &Value,
) -> Result<Value, SkillError> {
    let answer = ask(command, &prompt(skill, definition, input))?;
    let schema = &definition["output_schema"];
    let malformed = |reason: String| SkillError::MalformedAnswer {
        skill: skill.to_string(),
        reason,
        answer_start: answer.chars().take(QUOTED_CHARACTERS).collect(),
    };
    let value = parse_answer(&answer, schema).map_err(malformed)?;
    schema_errors(schema, &value)
        .map_err(|reason| format!("it does not match the output schema: {reason}"))
        .map_err(malformed)?;
    Ok(value)
}

fn prompt(skill: &str, definition: &Value, input: &Value) -> String {
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    format!(
        "You carry out the skill '{skill}' ({name}): {description}.\n\n\
         Input (JSON):\n{input}\n\n\
         Answer with only one JSON value, no explanation, that is valid for this JSON Schema:\n{schema}\n",
        name = definition["name"].as_str().unwrap_or(skill),
        description = definition["description"].as_str().unwrap_or(""),
        input = pretty(input),
        schema = pretty(&definition["output_schema"]),
    )
}

/// Runs the command with the prompt on stdin; its stdout is the answer.
fn ask(command: &str, prompt: &str) -> Result<String, SkillError> {
    let spawn_error = |source| SkillError::LlmSpawn {
        command: program_name(command),
        source,
    };
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    // Written from a thread so a command that answers before reading all of
    // the prompt cannot deadlock us; a command that ignores stdin is fine.
    let mut stdin = child.stdin.take();
    let prompt = prompt.to_string();
    let writer = std::thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            let _ignored = stdin.write_all(prompt.as_bytes());
        }
    });
    let output = child.wait_with_output().map_err(spawn_error)?;
    let _ignored = writer.join();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let characters: Vec<char> = stderr.trim().chars().collect();
        let tail: String = characters[characters.len().saturating_sub(QUOTED_CHARACTERS)..]
            .iter()
            .collect();
        return Err(SkillError::LlmFailed {
            command: program_name(command),
            status: output.status.to_string(),
            stderr_tail: tail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The program a command runs, for errors: the rest of the command (its
/// arguments, `KEY=value` assignments) may hold secrets such as API keys and
/// errors end up in run records.
fn program_name(command: &str) -> String {
    command
        .split_whitespace()
        .find(|word| !word.contains('='))
        .unwrap_or("sh")
        .to_string()
}

/// The JSON in an answer: bare, or inside the first ``` fence. A bare word
/// is accepted when the schema wants a string.
fn parse_answer(answer: &str, schema: &Value) -> Result<Value, String> {
    let text = fenced(answer).unwrap_or(answer).trim();
    if text.is_empty() {
        return Err("the answer is empty".to_string());
    }
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(_) if schema["type"] == "string" && !text.contains(['{', '[', '\n']) => Ok(
            Value::String(text.trim_matches(['"', '\'', '`']).to_string()),
        ),
        Err(error) => Err(format!("it is not JSON ({error})")),
    }
}

/// The body of the first ``` fence (after its language tag), if any.
fn fenced(answer: &str) -> Option<&str> {
    let start = answer.find("```")?;
    let after_tag = answer[start + 3..]
        .find('\n')
        .map(|offset| start + 3 + offset + 1)?;
    let end = answer[after_tag..]
        .find("```")
        .map_or(answer.len(), |offset| after_tag + offset);
    Some(&answer[after_tag..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_bare_fenced_and_word_answers() {
        let object = json!({"type": "object"});
        let string = json!({"type": "string"});
        let cases = [
            ("{\"a\": 1}", &object, Ok(json!({"a": 1}))),
            (
                "Here it is:\n```json\n{\"a\": 1}\n```\nDone.",
                &object,
                Ok(json!({"a": 1})),
            ),
            ("```\n[1, 2]\n```", &object, Ok(json!([1, 2]))),
            ("code_generation\n", &string, Ok(json!("code_generation"))),
            ("\"data_analysis\"", &string, Ok(json!("data_analysis"))),
            ("sure! {a: 1}", &object, Err("it is not JSON")),
            ("  ", &object, Err("the answer is empty")),
        ];
        for (answer, schema, expected) in cases {
            let parsed = parse_answer(answer, schema);
            match expected {
                Ok(value) => assert_eq!(parsed, Ok(value), "{answer}"),
                Err(start) => assert!(parsed.unwrap_err().starts_with(start), "{answer}"),
            }
        }
    }

    /// A stub LLM: a script that saves its prompt and prints a fixed answer.
    fn stub(directory: &std::path::Path, answer: &str) -> String {
        let answer_file = directory.join("answer.txt");
        std::fs::write(&answer_file, answer).unwrap();
        let prompt_file = directory.join("prompt.txt");
        format!(
            "cat > '{}'; cat '{}'",
            prompt_file.display(),
            answer_file.display()
        )
    }

    #[test]
    fn uses_the_command_answer_when_it_fits_the_schema() {
        let directory = tempfile::tempdir().unwrap();
        let command = stub(directory.path(), "```json\n\"data_analysis\"\n```\n");
        let output = crate::testing::run_skill_with(
            "analyze_request",
            json!({"request": "write code"}),
            Some(&command),
        )
        .unwrap();
        assert_eq!(output, json!("data_analysis"));
        let prompt = std::fs::read_to_string(directory.path().join("prompt.txt")).unwrap();
        assert!(prompt.contains("analyze_request"), "{prompt}");
        assert!(prompt.contains("write code"), "{prompt}");
        assert!(
            prompt.contains("text_processing"),
            "the schema is in the prompt: {prompt}"
        );
    }

    #[test]
    fn a_malformed_answer_is_a_clear_error() {
        let directory = tempfile::tempdir().unwrap();
        let cases = [
            (
                "create_plan",
                json!({"requirements": "x"}),
                "I cannot help with that.",
                ["not JSON", "I cannot"],
            ),
            (
                "create_plan",
                json!({"requirements": "x"}),
                "{\"title\": \"t\"}",
                ["\"steps\" is a required", "title"],
            ),
            (
                "analyze_request",
                json!({"request": "x"}),
                "cooking",
                ["output schema", "cooking"],
            ),
        ];
        for (skill, input, answer, expected) in cases {
            let command = stub(directory.path(), answer);
            let error = crate::testing::run_skill_with(skill, input, Some(&command)).unwrap_err();
            assert!(
                matches!(error, SkillError::MalformedAnswer { .. }),
                "{error}"
            );
            let message = error.to_string();
            for fragment in expected {
                assert!(message.contains(fragment), "{message}");
            }
        }
    }

    #[test]
    fn a_failing_command_reports_its_stderr() {
        let error = crate::testing::run_skill_with(
            "analyze_request",
            json!({"request": "x"}),
            Some("echo model offline >&2; exit 3"),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("model offline"), "{message}");
        assert!(message.contains('3'), "{message}");
    }

    #[test]
    fn errors_name_only_the_program_of_the_command() {
        let cases = [
            ("llm --key sk-secret", "llm"),
            ("API_KEY=sk-secret llm -m model", "llm"),
            ("  /usr/bin/llm\t--key sk-secret", "/usr/bin/llm"),
            ("", "sh"),
        ];
        for (command, expected) in cases {
            assert_eq!(program_name(command), expected, "{command:?}");
        }
        let error = crate::testing::run_skill_with(
            "analyze_request",
            json!({"request": "x"}),
            Some("API_KEY=sk-secret exit 3 --key sk-secret"),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SkillError::LlmFailed { .. }), "{message}");
        assert!(!message.contains("sk-secret"), "{message}");
        assert!(message.contains("'exit'"), "{message}");
    }
}
