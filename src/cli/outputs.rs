//! The results of a run on disk, as the original project wrote them to `app/`.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::engine::{RunRecord, StepRecord, StepStatus};

/// Lists what the last run wrote, so the next one removes exactly those files
/// and never leaves a previous run's results beside its own.
const MANIFEST: &str = ".pallet-files";

/// Names the generated code file may not take: they hold the run's own record.
const RESERVED: &[&str] = &[
    "run.json",
    "metadata.json",
    "plan.json",
    "review.json",
    "steps",
    MANIFEST,
];

/// Writes the run's files into `dir` and returns their names.
pub fn write(dir: &Path, record: &RunRecord) -> anyhow::Result<Vec<String>> {
    remove_previous(dir)?;
    let steps_dir = dir.join("steps");
    std::fs::create_dir_all(&steps_dir)
        .with_context(|| format!("cannot create {}", steps_dir.display()))?;
    let mut written = Vec::new();
    write_file(dir, "run.json", &pretty(record), &mut written)?;
    write_file(
        dir,
        "metadata.json",
        &pretty(&metadata(record)),
        &mut written,
    )?;
    for step in &record.steps {
        let name = format!("steps/{}.json", file_safe(&step.id));
        write_file(dir, &name, &pretty(step), &mut written)?;
    }
    if let Some(plan) = result_of_skill(record, "create_plan") {
        write_file(dir, "plan.json", &pretty(plan), &mut written)?;
    }
    if let Some(review) = result_of_skill(record, "review_code") {
        write_file(dir, "review.json", &pretty(review), &mut written)?;
    }
    if let Some(build) = result_of_skill(record, "generate_code")
        && let Some(code) = build["code"].as_str()
    {
        write_file(dir, &code_file_name(build), code, &mut written)?;
    }
    let manifest = written.join("\n") + "\n";
    std::fs::write(dir.join(MANIFEST), manifest)
        .with_context(|| format!("cannot write {}", dir.join(MANIFEST).display()))?;
    Ok(written)
}

fn remove_previous(dir: &Path) -> anyhow::Result<()> {
    let Ok(previous) = std::fs::read_to_string(dir.join(MANIFEST)) else {
        return Ok(());
    };
    for name in previous.lines().filter(|name| is_own_file_name(name)) {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot remove the previous run's {}", path.display())
                });
            }
        }
    }
    Ok(())
}

/// A name this module could have written: `NAME` or `steps/NAME`, nothing that climbs out.
fn is_own_file_name(name: &str) -> bool {
    let file = name.strip_prefix("steps/").unwrap_or(name);
    !file.is_empty() && file_safe(file) == file && !file.starts_with('.')
}

fn write_file(dir: &Path, name: &str, text: &str, written: &mut Vec<String>) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(name.to_string());
    Ok(())
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn metadata(record: &RunRecord) -> Value {
    let review = result_of_skill(record, "review_code");
    let timings: serde_json::Map<String, Value> = record
        .steps
        .iter()
        .map(|step| (step.id.clone(), json!(step.duration_ms)))
        .collect();
    json!({
        "run_id": record.run_id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "workflow_source": record.workflow_source,
        "digest": digest(&record.workflow_source),
        "status": record.status,
        "input": record.input,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_ms": record.duration_ms,
        "step_duration_ms": timings,
        "approved": review.and_then(|review| review.get("approved")).cloned(),
        "quality_score": review.and_then(|review| review.get("quality_score")).cloned(),
    })
}

/// The digest a run used: from a registry origin, "built-in", else null.
fn digest(workflow_source: &str) -> Value {
    if workflow_source.starts_with(crate::builtin::BUILTIN_ORIGIN) {
        return json!("built-in");
    }
    crate::registry::source::digest_of_origin(workflow_source)
        .map_or(Value::Null, |digest| json!(digest))
}

/// The result of the last completed step calling `skill`: its outputs, unwrapped
/// from `{NAME: result}` when the step stored it under an `outputs` name.
/// Child runs (`execute_workflow`) count, so the smart router's pipeline is written too.
fn result_of_skill<'a>(record: &'a RunRecord, skill: &str) -> Option<&'a Value> {
    let step = last_completed(record, skill)?;
    let outputs = step.outputs.as_ref()?;
    match outputs.as_object() {
        Some(fields) if fields.len() == 1 => fields.values().next(),
        _ => Some(outputs),
    }
}

fn last_completed<'a>(record: &'a RunRecord, skill: &str) -> Option<&'a StepRecord> {
    record.steps.iter().rev().find_map(|step| {
        let own = step.status == StepStatus::Completed && step.skill.as_deref() == Some(skill);
        if own {
            return Some(step);
        }
        step.child
            .as_deref()
            .and_then(|child| last_completed(child, skill))
    })
}

/// The agent's file name when it is a plain name, else `main.<extension>`.
fn code_file_name(build: &Value) -> String {
    if let Some(name) = build["filename"].as_str()
        && !name.is_empty()
        && file_safe(name) == name
        && !name.starts_with('.')
        && !RESERVED.contains(&name)
    {
        return name.to_string();
    }
    let extension = match build["language"].as_str().unwrap_or("python") {
        "javascript" | "js" => "js",
        "typescript" | "ts" => "ts",
        "rust" => "rs",
        "go" => "go",
        "java" => "java",
        _ => "py",
    };
    format!("main.{extension}")
}

/// Keeps names inside the output directory.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_file_names_stay_inside_and_never_replace_the_record() {
        let cases = [
            (json!({"filename": "factorial.py"}), "factorial.py"),
            (
                json!({"filename": "../escape.py", "language": "python"}),
                "main.py",
            ),
            (
                json!({"filename": "run.json", "language": "rust"}),
                "main.rs",
            ),
            (
                json!({"filename": "steps", "language": "javascript"}),
                "main.js",
            ),
            (json!({"filename": ".bashrc"}), "main.py"),
            (json!({"language": "go"}), "main.go"),
        ];
        for (build, expected) in cases {
            assert_eq!(code_file_name(&build), expected, "{build}");
        }
    }

    #[test]
    fn manifest_names_that_climb_out_are_ignored() {
        assert!(is_own_file_name("plan.json"));
        assert!(is_own_file_name("steps/build.json"));
        for name in [
            "../x",
            "steps/../../x",
            "/etc/passwd",
            "",
            ".pallet-files",
            "a/b",
        ] {
            assert!(!is_own_file_name(name), "{name}");
        }
    }
}
