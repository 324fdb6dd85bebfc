//! `create_plan`: requirements text -> steps (validate, implement each piece,
//! test), their dependencies and time estimates.

use serde_json::{Value, json};

use super::code::Language;
use super::tasks::{self, InputKind};
use super::{SkillError, text_field};

/// One step of a plan before it becomes JSON.
struct Step {
    name: String,
    description: String,
    minutes: u32,
    kind: &'static str,
    function: String,
}

pub fn create_plan(input: &Value) -> Result<Value, SkillError> {
    let requirements = text_field(input, "requirements").trim();
    let named = Language::from_input(input.get("language").and_then(Value::as_str))?;
    let language = named
        .or_else(|| tasks::language_named_in(requirements))
        .unwrap_or(Language::Python);
    let steps = plan_steps(requirements);
    let total: u32 = steps.iter().map(|step| step.minutes).sum();
    let dependencies = dependencies(&steps);
    Ok(json!({
        "title": title(requirements),
        "requirements": requirements,
        "language": language.name(),
        "steps": steps.iter().map(|step| json!({
            "name": step.name,
            "description": step.description,
            "estimated_time": duration(step.minutes),
            "kind": step.kind,
            "function": step.function,
        })).collect::<Vec<_>>(),
        "dependencies": dependencies,
        "estimated_total_time": duration(total),
    }))
}

fn title(requirements: &str) -> String {
    let mut title = tasks::capitalised(requirements);
    if title.chars().count() > 80 {
        title = title.chars().take(77).collect::<String>() + "...";
    }
    title
}

fn plan_steps(requirements: &str) -> Vec<Step> {
    let implement = implementation_steps(requirements);
    let functions: Vec<String> = implement.iter().map(|step| step.function.clone()).collect();
    let listed = functions.join(", ");
    let validation = match tasks::known_task(requirements).map(|task| task.input) {
        Some(InputKind::Count) => {
            "Check that the input is a non-negative integer; reject other values with a clear error"
                .to_string()
        }
        Some(InputKind::Text) => {
            "Check that the input is a string; reject other values with a clear error".to_string()
        }
        Some(InputKind::Numbers) => {
            "Check that the input is a list of numbers; reject other values with a clear error"
                .to_string()
        }
        None => format!("Check the inputs of {listed}; reject missing or malformed values early"),
    };
    let mut steps = vec![Step {
        name: "Validate input".to_string(),
        description: validation,
        minutes: 10,
        kind: "validate",
        function: "validate_input".to_string(),
    }];
    steps.extend(implement);
    steps.push(Step {
        name: "Write tests".to_string(),
        description: format!("Test {listed} with typical cases, edge cases and invalid input"),
        minutes: 15,
        kind: "test",
        function: format!("test_{}", functions[0]),
    });
    steps
}

/// One implementation step per piece of work the requirements ask for.
fn implementation_steps(requirements: &str) -> Vec<Step> {
    let clauses = tasks::clauses(requirements);
    if let Some(task) = tasks::known_task(requirements).filter(|_| clauses.len() == 1) {
        return vec![Step {
            name: format!("Implement {}", task.function),
            description: task.summary.to_string(),
            minutes: 15,
            kind: "implement",
            function: task.function.to_string(),
        }];
    }
    let mut steps: Vec<Step> = Vec::new();
    for clause in clauses {
        let function = tasks::function_name(&clause);
        if steps.iter().any(|step| step.function == function) {
            continue;
        }
        let known = tasks::known_function(&function);
        steps.push(Step {
            name: format!("Implement {function}"),
            description: known.map_or_else(
                || tasks::capitalised(&clause),
                |task| task.summary.to_string(),
            ),
            minutes: if known.is_some() { 15 } else { 30 },
            kind: "implement",
            function,
        });
    }
    steps
}

/// Implementation steps need validated input; tests need every implementation.
fn dependencies(steps: &[Step]) -> Vec<Value> {
    let implementations: Vec<&str> = steps
        .iter()
        .filter(|step| step.kind == "implement")
        .map(|step| step.name.as_str())
        .collect();
    let mut dependencies: Vec<Value> = implementations
        .iter()
        .map(|name| json!({"step": name, "requires": ["Validate input"]}))
        .collect();
    dependencies.push(json!({"step": "Write tests", "requires": implementations}));
    dependencies
}

/// "45 minutes", "1 hour", "1 hour 20 minutes".
fn duration(minutes: u32) -> String {
    let plural =
        |count: u32, unit: &str| format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    match (minutes / 60, minutes % 60) {
        (0, rest) => plural(rest, "minute"),
        (hours, 0) => plural(hours, "hour"),
        (hours, rest) => format!("{} {}", plural(hours, "hour"), plural(rest, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn functions(plan: &Value) -> Vec<String> {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["function"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn plans_follow_the_requirements() {
        let cases = [
            (
                "Create a function that calculates the factorial of a number",
                vec!["validate_input", "factorial", "test_factorial"],
                "40 minutes",
                "python",
            ),
            (
                "parse a CSV file and compute the average",
                vec![
                    "validate_input",
                    "parse_csv_file",
                    "compute_average",
                    "test_parse_csv_file",
                ],
                "1 hour 25 minutes",
                "python",
            ),
            (
                "Write a Rust function that reverses a string",
                vec!["validate_input", "reverse_string", "test_reverse_string"],
                "40 minutes",
                "rust",
            ),
        ];
        for (requirements, expected, total, language) in cases {
            let plan = create_plan(&json!({"requirements": requirements})).unwrap();
            assert_eq!(functions(&plan), expected, "{requirements}");
            assert_eq!(plan["estimated_total_time"], total, "{requirements}");
            assert_eq!(plan["language"], language, "{requirements}");
        }
    }

    #[test]
    fn tests_depend_on_every_implementation() {
        let plan = create_plan(&json!({"requirements": "read a file and count words"})).unwrap();
        let last = plan["dependencies"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(
            last,
            json!({"step": "Write tests", "requires": ["Implement read_file", "Implement count_words"]})
        );
    }

    #[test]
    fn an_explicit_language_wins_and_an_unknown_one_fails() {
        let plan =
            create_plan(&json!({"requirements": "sum a list in python", "language": "javascript"}))
                .unwrap();
        assert_eq!(plan["language"], "javascript");
        let error = create_plan(&json!({"requirements": "x", "language": "cobol"})).unwrap_err();
        assert!(error.to_string().contains("'cobol'"), "{error}");
    }

    #[test]
    fn formats_durations() {
        let cases = [
            (1, "1 minute"),
            (45, "45 minutes"),
            (60, "1 hour"),
            (125, "2 hours 5 minutes"),
        ];
        for (minutes, expected) in cases {
            assert_eq!(duration(minutes), expected);
        }
    }
}
