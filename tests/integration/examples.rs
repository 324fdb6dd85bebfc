//! The example agents: their definition files in `agents/`, and their skills
//! chained the way the example workflows chain them, with every output
//! checked against the output schema its definition file publishes.

use std::path::{Path, PathBuf};
use std::process::Command;

use pallet::builtin::{run_skill_with, skills};
use serde_json::{Value, json};

fn agents_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agents")
}

/// Every definition file, parsed.
fn definitions() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(agents_directory())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, pallet::yaml::from_snippet(&text).unwrap())
        })
        .collect()
}

/// A skill's entry, read from the files on disk (not the embedded copies).
fn skill_entry(skill: &str) -> Value {
    definitions()
        .into_iter()
        .flat_map(|(_, card)| card["skills"].as_array().cloned().unwrap_or_default())
        .find(|entry| entry["id"] == skill)
        .unwrap_or_else(|| panic!("no definition file offers {skill}"))
}

/// Runs a skill without any LLM, checking input and output against the
/// schemas of its definition file.
fn run(skill: &str, input: Value) -> Value {
    let entry = skill_entry(skill);
    assert_valid(&entry["input_schema"], &input, &format!("{skill} input"));
    let output =
        run_skill_with(skill, input, None).unwrap_or_else(|error| panic!("{skill}: {error}"));
    assert_valid(&entry["output_schema"], &output, &format!("{skill} output"));
    output
}

fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let validator = jsonschema::draft202012::new(schema)
        .unwrap_or_else(|error| panic!("{what} schema: {error}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| error.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{what} {instance} is invalid: {errors:?}"
    );
}

#[test]
fn definition_files_follow_the_agent_format() {
    let mut offered = Vec::new();
    for (file, card) in definitions() {
        assert_eq!(card["name"], file.as_str(), "{file}: name matches the file");
        assert!(
            card["description"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{file}"
        );
        semver::Version::parse(card["version"].as_str().unwrap()).unwrap();
        for entry in card["skills"].as_array().unwrap() {
            let id = entry["id"].as_str().unwrap();
            for field in ["name", "description"] {
                assert!(
                    entry[field].as_str().is_some_and(|text| !text.is_empty()),
                    "{id} {field}"
                );
            }
            assert!(
                entry["tags"].is_array() && entry["examples"].is_array(),
                "{id}"
            );
            assert_eq!(
                entry["run"],
                json!(["pallet", "agent", "skill", id]),
                "{id}"
            );
            assert!(
                entry["timeout"].as_u64().is_some_and(|seconds| seconds > 0),
                "{id}"
            );
            assert!(
                entry["max_concurrency"]
                    .as_u64()
                    .is_some_and(|count| count > 0),
                "{id}"
            );
            for key in ["input_schema", "output_schema"] {
                jsonschema::draft202012::new(&entry[key])
                    .unwrap_or_else(|error| panic!("{id} {key}: {error}"));
            }
            offered.push(id.to_string());
        }
    }
    offered.sort();
    let mut expected: Vec<String> = skills().iter().map(|skill| skill.to_string()).collect();
    expected.sort();
    assert_eq!(
        offered, expected,
        "each skill is offered by exactly one definition file"
    );
}

/// code-generation-v1: plan -> build -> test.
#[test]
fn code_generation_pipeline_produces_approved_code() {
    let requirements = "Create a function that calculates the factorial of a number";
    let plan = run("create_plan", json!({"requirements": requirements}));
    let build = run("generate_code", json!({"plan": plan}));
    assert_eq!(build["language"], "python");
    assert_eq!(build["filename"], "factorial.py");
    let code = build["code"].as_str().unwrap();
    assert!(code.contains("def factorial(n):"), "{code}");
    let review = run(
        "review_code",
        json!({"code": build["code"], "language": build["language"]}),
    );
    assert_eq!(review["approved"], true, "{review}");
    assert_eq!(review["metrics"]["test_functions"], 1, "{review}");
}

/// The same pipeline for work we cannot implement: stubs, honestly not approved.
#[test]
fn unknown_work_gives_stubs_that_are_not_approved() {
    let plan = run(
        "create_plan",
        json!({"requirements": "parse a CSV file and compute the average"}),
    );
    let build = run("generate_code", json!({"plan": plan.to_string()}));
    assert_eq!(
        build["functions"],
        json!(["validate_input", "parse_csv_file", "compute_average"])
    );
    let review = run(
        "review_code",
        json!({"code": build["code"], "language": build["language"]}),
    );
    assert_eq!(review["approved"], false, "{review}");
    let stubs = review["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issue| issue["message"] == "unimplemented stub")
        .count();
    assert_eq!(stubs, 2, "{review}");
}

/// smart-router-v1 compares the whole result with its switch cases.
#[test]
fn router_returns_the_switch_case_name() {
    let cases = [
        (
            "Create a function that calculates the factorial of a number",
            "code_generation",
        ),
        (
            "Analyze last month's sales data and plot the trend",
            "data_analysis",
        ),
        ("Translate this paragraph into French", "text_processing"),
        ("Hello there", "general"),
    ];
    for (request, expected) in cases {
        assert_eq!(
            run("analyze_request", json!({"request": request})),
            json!(expected),
            "{request}"
        );
    }
}

/// parallel-analysis-v1: three analyses of one piece of code, then aggregation.
#[test]
fn parallel_analysis_flags_risky_slow_code() {
    let code = "import os\n\n\ndef find_pairs(items, wanted):\n    \"\"\"Pairs of items that sum to wanted.\"\"\"\n    pairs = []\n    for a in items:\n        for b in items:\n            if a + b == wanted:\n                pairs.append((a, b))\n    return pairs\n\n\ndef run(command):\n    \"\"\"Run a command.\"\"\"\n    return eval(command)\n";
    let quality = run("review_code", json!({"code": code, "language": "python"}));
    let security = run("security_scan", json!({"code": code}));
    let performance = run("performance_check", json!({"code": code}));
    assert_eq!(security["risk_level"], "high");
    assert_eq!(security["findings"][0]["line"], 16);
    assert_eq!(performance["complexity_estimate"], "O(n^2)");
    assert_eq!(performance["findings"][0]["line"], 8);
    let aggregate = run(
        "aggregate_results",
        json!({"quality": quality, "security": security, "performance": performance}),
    );
    assert_eq!(aggregate["passed"], false, "{aggregate}");
    assert_eq!(aggregate["security"]["findings"], 1, "{aggregate}");
}

/// Generated Rust builds as a test binary and its tests pass.
#[test]
fn generated_rust_compiles_and_passes_its_tests() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    for requirements in [
        "Write a Rust function for the factorial of a number",
        "parse a CSV file and compute the average in Rust",
    ] {
        let build = run("generate_code", json!({"plan": requirements}));
        assert_eq!(build["language"], "rust");
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join(build["filename"].as_str().unwrap());
        std::fs::write(&source, build["code"].as_str().unwrap()).unwrap();
        let binary = directory.path().join("generated_tests");
        let compiled = Command::new(&rustc)
            .args(["--edition", "2021", "--test", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .unwrap();
        assert!(
            compiled.status.success(),
            "{requirements}: {}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        let tested = Command::new(&binary).output().unwrap();
        assert!(
            tested.status.success(),
            "{requirements}: {}",
            String::from_utf8_lossy(&tested.stdout)
        );
    }
}

/// With an LLM command, the skill's answer comes from it, still checked
/// against the published schema; the command gets the input and the schema.
#[test]
fn an_llm_command_supplies_the_content() {
    let directory = tempfile::tempdir().unwrap();
    let plan = json!({
        "title": "Factorial",
        "steps": [{"name": "Implement factorial", "description": "loop", "estimated_time": "5 minutes"}],
        "dependencies": [],
        "estimated_total_time": "5 minutes",
    });
    let answer = directory.path().join("answer.md");
    std::fs::write(
        &answer,
        format!("Here is the plan:\n```json\n{plan}\n```\n"),
    )
    .unwrap();
    let prompt = directory.path().join("prompt.txt");
    let command = format!("cat > '{}'; cat '{}'", prompt.display(), answer.display());
    let input = json!({"requirements": "factorial of a number"});
    let output = run_skill_with("create_plan", input, Some(&command)).unwrap();
    assert_eq!(output, plan);
    let prompt = std::fs::read_to_string(prompt).unwrap();
    assert!(
        prompt.contains("factorial of a number") && prompt.contains("estimated_total_time"),
        "{prompt}"
    );
    let build = run_skill_with("generate_code", json!({"plan": output}), None).unwrap();
    assert!(
        build["code"]
            .as_str()
            .unwrap()
            .contains("def factorial(n):"),
        "{build}"
    );
}
