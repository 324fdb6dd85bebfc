//! `generate_code`: a plan -> a runnable program with one function per plan
//! step, docstrings and tests, in Python, JavaScript or Rust. With `feedback`
//! (a review), it also makes the changes the review asks for that it knows
//! how to make, and says which in `addressed`.

use serde_json::{Value, json};

use super::code::Language;
use super::render;
use super::tasks::{self, InputKind, KnownTask};
use super::{SkillError, object_field, refine};

/// What the plan asks to build, independent of the language.
pub struct Program {
    pub title: String,
    /// The input all functions share when it is known; None for generic data.
    pub input: Option<InputKind>,
    pub validate_description: String,
    pub functions: Vec<Function>,
    pub test_description: String,
    /// A test of its own for `validate_input` (asked for by a strict review).
    pub test_validation: bool,
}

/// One implementation step.
pub struct Function {
    /// snake_case; renderers convert it to the language's style.
    pub name: String,
    pub description: String,
    /// Set when we can implement it for real.
    pub task: Option<&'static KnownTask>,
}

pub fn generate_code(input: &Value) -> Result<Value, SkillError> {
    let plan = plan_of(input)?;
    let feedback = refine::feedback(input)?;
    let named = Language::from_input(input.get("language").and_then(Value::as_str))?;
    let planned = plan
        .get("language")
        .and_then(Value::as_str)
        .and_then(Language::parse);
    let language = named
        .or(planned)
        .or_else(|| tasks::language_named_in(plan["title"].as_str().unwrap_or("")))
        .unwrap_or(Language::Python);
    let mut program = program(&plan);
    program.test_validation = feedback
        .as_ref()
        .is_some_and(|feedback| feedback.test_validation);
    let rendered = render::render(language, &program);
    let stem = program.functions[0].name.clone();
    let mut output = json!({
        "language": language.name(),
        "filename": format!("{stem}.{}", language.extension()),
        "code": rendered.code,
        "functions": rendered.functions,
        "tests": rendered.tests,
    });
    // Only with feedback, so the output without it stays as it was.
    if let Some(feedback) = feedback {
        output["addressed"] = json!(feedback.addressed);
    }
    Ok(output)
}

/// The plan as an object: given as one, as its JSON text, or as plain
/// requirements text that we plan first.
fn plan_of(input: &Value) -> Result<Value, SkillError> {
    let plan = match object_field(input, "plan") {
        Value::Null => match input.get("plan").and_then(Value::as_str) {
            Some(requirements) => super::plan::create_plan(&json!({"requirements": requirements}))?,
            None => Value::Null,
        },
        plan => plan,
    };
    let has_steps = plan["steps"]
        .as_array()
        .is_some_and(|steps| !steps.is_empty());
    if !has_steps {
        return Err(SkillError::InvalidInput {
            skill: "generate_code".to_string(),
            reason: "the plan has no steps (expected {\"steps\": [{\"name\": ..}, ..]})"
                .to_string(),
        });
    }
    Ok(plan)
}

/// What a plan step is for; plans from elsewhere may lack our `kind` field.
fn step_kind(step: &Value) -> String {
    if let Some(kind) = step["kind"].as_str() {
        return kind.to_string();
    }
    let name = step["name"].as_str().unwrap_or("").to_lowercase();
    if name.contains("test") {
        "test".to_string()
    } else if name.contains("validat") {
        "validate".to_string()
    } else {
        "implement".to_string()
    }
}

fn program(plan: &Value) -> Program {
    let steps = plan["steps"].as_array().cloned().unwrap_or_default();
    let description = |kind: &str, fallback: &str| {
        steps
            .iter()
            .find(|step| step_kind(step) == kind)
            .and_then(|step| step["description"].as_str())
            .unwrap_or(fallback)
            .to_string()
    };
    let title = plan["title"]
        .as_str()
        .unwrap_or("Generated program")
        .to_string();
    let mut functions: Vec<Function> = Vec::new();
    for step in steps.iter().filter(|step| step_kind(step) == "implement") {
        let function = implementation(step);
        if !functions.iter().any(|known| known.name == function.name) {
            functions.push(function);
        }
    }
    if functions.is_empty() {
        let name = tasks::function_name(&title);
        let task = tasks::known_function(&name);
        functions.push(Function {
            name,
            description: title.clone(),
            task,
        });
    }
    // All functions share one input: the first known task's. Known tasks of
    // another input kind become stubs rather than mismatched code.
    let input = functions
        .iter()
        .find_map(|function| function.task.map(|task| task.input));
    for function in &mut functions {
        if function.task.is_some_and(|task| Some(task.input) != input) {
            function.task = None;
        }
    }
    Program {
        validate_description: description(
            "validate",
            "Check the input and reject malformed values early",
        ),
        test_description: description("test", "Check the functions with typical and edge cases"),
        test_validation: false,
        title,
        input,
        functions,
    }
}

fn implementation(step: &Value) -> Function {
    let name_text = step["name"].as_str().unwrap_or("");
    let description = step["description"]
        .as_str()
        .unwrap_or(name_text)
        .to_string();
    let name = match step["function"].as_str() {
        Some(function) if !function.trim().is_empty() => {
            tasks::function_name(&function.replace('_', " "))
        }
        _ => tasks::function_name(name_text.trim_start_matches("Implement ")),
    };
    let task = tasks::known_function(&name)
        .or_else(|| tasks::known_task(&format!("{name_text} {description}")));
    let name = task.map_or(name, |task| task.function.to_string());
    Function {
        name,
        description,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(plan: Value, language: Option<&str>) -> Value {
        generate_code(&json!({"plan": plan, "language": language})).unwrap()
    }

    #[test]
    fn picks_language_and_file_name() {
        let factorial =
            super::super::plan::create_plan(&json!({"requirements": "factorial of a number"}))
                .unwrap();
        let cases = [
            (factorial.clone(), None, "python", "factorial.py"),
            (factorial.clone(), Some("js"), "javascript", "factorial.js"),
            (factorial, Some("rust"), "rust", "factorial.rs"),
            (
                json!("Write a Rust function that reverses a string"),
                None,
                "rust",
                "reverse_string.rs",
            ),
            (
                json!({"title": "t", "steps": [{"name": "Load data", "description": "d", "estimated_time": "1 minute"}]}),
                None,
                "python",
                "load_data.py",
            ),
        ];
        for (plan, language, expected_language, filename) in cases {
            let output = generate(plan.clone(), language);
            assert_eq!(output["language"], expected_language, "{plan}");
            assert_eq!(output["filename"], filename, "{plan}");
        }
    }

    #[test]
    fn one_function_per_step_from_foreign_plans() {
        let plan = json!({"title": "Reports", "steps": [
            {"name": "Validate the input", "description": "check"},
            {"name": "Load data", "description": "read the rows"},
            {"name": "Compute the factorial", "description": "of each row"},
            {"name": "Write unit tests", "description": "cover it"},
        ]});
        let output = generate(plan, None);
        assert_eq!(
            output["functions"],
            json!(["validate_input", "load_data", "factorial"])
        );
        assert_eq!(output["tests"], json!(["test_load_data", "test_factorial"]));
        let code = output["code"].as_str().unwrap();
        assert!(
            code.contains("raise NotImplementedError(\"Implement load_data: read the rows\")"),
            "{code}"
        );
        assert!(code.contains("result *= factor"), "{code}");
    }

    /// Runs a program with an interpreter; None when it is not installed.
    fn run_with(interpreter: &str, filename: &str, code: &str) -> Option<std::process::Output> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(filename);
        std::fs::write(&path, code).unwrap();
        std::process::Command::new(interpreter)
            .arg(&path)
            .output()
            .ok()
    }

    #[test]
    fn generated_programs_run_and_pass_their_tests() {
        let requirements = [
            "Create a function that calculates the factorial of a number",
            "fibonacci numbers",
            "check whether a number is prime",
            "is it a palindrome",
            "reverse a string",
            "sum a list of numbers",
            "find the largest number in a list",
            "parse a CSV file and compute the average",
            "compute the factorial and reverse a string",
            "Say \"hello\" {name} */ \"\"\" to the user",
        ];
        for (language, interpreter) in [("python", "python3"), ("javascript", "node")] {
            for requirement in requirements {
                let output = generate(json!(requirement), Some(language));
                let code = output["code"].as_str().unwrap();
                let Some(run) = run_with(interpreter, output["filename"].as_str().unwrap(), code)
                else {
                    break;
                };
                let stdout = String::from_utf8_lossy(&run.stdout);
                let stderr = String::from_utf8_lossy(&run.stderr);
                assert!(
                    run.status.success(),
                    "{language} {requirement}:\n{code}\n{stderr}"
                );
                assert!(
                    stdout.contains("all tests passed"),
                    "{language} {requirement}: {stdout}"
                );
            }
        }
    }

    /// The refinement loop's two turns: a strict review fails the first
    /// draft, the draft built with that review passes it, and still runs.
    #[test]
    fn feedback_from_a_strict_review_is_addressed() {
        let review = |output: &Value| {
            super::super::review::review_code(&json!({
                "code": output["code"], "language": output["language"],
                "strict": true, "min_score": 90,
            }))
            .unwrap()
        };
        let untested = refine::untested_message;
        for (language, validate) in [
            ("python", "validate_input"),
            ("javascript", "validateInput"),
            ("rust", "validate_input"),
        ] {
            for requirement in ["factorial of a number", "reverse a string", "load the data"] {
                let first = generate(json!(requirement), Some(language));
                assert!(first.get("addressed").is_none(), "{first}");
                let verdict = review(&first);
                let message = untested(validate);
                let flagged = verdict["issues"].as_array().unwrap().iter().any(|found| {
                    found["message"] == message.as_str() && found["severity"] == "warning"
                });
                assert!(flagged, "{language} {requirement}: {verdict}");
                assert_eq!(verdict["approved"], false, "{verdict}");

                let previous = json!({"build": {"result": first}, "review": {"result": verdict}});
                let second = generate_code(&json!({
                    "plan": requirement, "language": language, "feedback": previous,
                }))
                .unwrap();
                assert_eq!(second["addressed"], json!([untested(validate)]), "{second}");
                let test_name = if language == "javascript" {
                    "testValidateInput"
                } else {
                    "test_validate_input"
                };
                assert_eq!(second["tests"][0], test_name, "{second}");
                let verdict = review(&second);
                let still = verdict["issues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|found| found["message"] == message.as_str());
                assert!(!still, "{language} {requirement}: {verdict}");
                if requirement != "load the data" {
                    assert_eq!(verdict["approved"], true, "{language}: {verdict}");
                    assert_eq!(verdict["quality_score"], 100, "{language}: {verdict}");
                }
                let interpreter = match language {
                    "python" => "python3",
                    "javascript" => "node",
                    _ => continue,
                };
                let code = second["code"].as_str().unwrap();
                let filename = second["filename"].as_str().unwrap();
                if let Some(run) = run_with(interpreter, filename, code) {
                    let stderr = String::from_utf8_lossy(&run.stderr);
                    assert!(run.status.success(), "{language}:\n{code}\n{stderr}");
                }
            }
        }
        // A first iteration's null feedback is no feedback.
        let plain = generate(json!("factorial of a number"), None);
        let null =
            generate_code(&json!({"plan": "factorial of a number", "feedback": null})).unwrap();
        assert_eq!(null, plain);
    }

    #[test]
    fn a_plan_without_steps_is_invalid_input() {
        for plan in [json!({"title": "x"}), json!({"steps": []}), json!(42)] {
            let error = generate_code(&json!({"plan": plan})).unwrap_err();
            assert!(error.to_string().contains("no steps"), "{error}");
        }
    }
}
