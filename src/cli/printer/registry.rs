//! What the registry commands print: pushed, pulled, listed and shown
//! workflows and agent cards. Every field comes from the registry (or a
//! file), so text output is shown through [`terminal_safe`].

use std::path::Path;

use serde_json::{Value, json};

use super::terminal::terminal_safe;
use crate::registry::{Listed, Pulled, Pushed};
use crate::workflow::LoadedWorkflow;

/// `pallet push` and `pallet agents push`: one line (or JSON object) per artifact pushed.
pub fn print_pushed(
    registry: &str,
    name: &str,
    pushed: &Pushed,
    from: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let reference = format!("{}/{}:{}", registry, pushed.repository, pushed.tag);
    if json {
        let line = json!({
            "file": from.display().to_string(),
            "name": name,
            "repository": pushed.repository,
            "version": pushed.version.to_string(),
            "tag": pushed.tag,
            "digest": pushed.digest,
            "reference": reference,
            "uploaded": pushed.uploaded,
            "alias": pushed.alias,
        });
        outln!("{}", serde_json::to_string(&line)?);
    } else {
        let state = if pushed.uploaded {
            "pushed"
        } else {
            "unchanged"
        };
        let alias = pushed
            .alias
            .as_ref()
            .map_or_else(String::new, |alias| format!(", alias {alias}"));
        outln!(
            "{} {} {} {} ({state}){alias}",
            terminal_safe(name),
            pushed.version,
            pushed.digest,
            terminal_safe(&reference.to_string())
        );
    }
    Ok(())
}

/// `pallet pull`: the file written and the digest pulled.
pub fn print_pulled(path: &Path, digest: &str) {
    outln!("{} {}", terminal_safe(&path.display().to_string()), digest);
}

/// `pallet list`: each repository with its versions.
pub fn print_workflows(registry: &str, listed: &[Listed], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<Value> = listed
            .iter()
            .map(crate::registry::views::listed_json)
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if listed.is_empty() {
        errln!("no workflows in registry {}", registry);
    }
    for repository in listed {
        outln!("{}", terminal_safe(&repository.repository));
        for version in &repository.versions {
            outln!("  {} {}", version.version, version.digest);
        }
        if !repository.other_tags.is_empty() {
            outln!(
                "  other tags: {}",
                terminal_safe(&repository.other_tags.join(", "))
            );
        }
        for broken in &repository.unreadable {
            outln!(
                "  warning: tag {} cannot be read: {}",
                terminal_safe(&broken.tag),
                terminal_safe(&broken.problem)
            );
        }
    }
    Ok(())
}

/// `pallet show`: one workflow version.
pub fn print_shown(
    registry: &str,
    pulled: &Pulled,
    workflow: Option<&LoadedWorkflow>,
    json: bool,
) -> anyhow::Result<()> {
    let mut shown = crate::registry::views::shown_json(registry, pulled);
    if let Some(workflow) = workflow {
        shown["inputs"] = super::inputs_json(workflow)["inputs"].clone();
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    let line = |label: &str, value: &Value| {
        if let Some(text) = value.as_str() {
            outln!("{label:<12} {}", terminal_safe(text));
        }
    };
    line("reference", &shown["reference"]);
    line("digest", &shown["digest"]);
    line("tag", &shown["tag"]);
    line("version", &shown["version"]);
    line("file", &shown["file_name"]);
    line("media type", &shown["media_type"]);
    if let Some(config) = shown["config"].as_object() {
        for (key, value) in config {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), String::from);
            outln!("config.{:<5} {}", terminal_safe(key), terminal_safe(&text));
        }
    }
    if let Some(annotations) = shown["annotations"].as_object() {
        outln!("annotations:");
        for (key, value) in annotations {
            outln!(
                "  {}: {}",
                terminal_safe(key),
                terminal_safe(value.as_str().unwrap_or_default())
            );
        }
    }
    if let Some(workflow) = workflow {
        outln!("inputs:");
        for line in super::inputs_lines(workflow) {
            outln!("{line}");
        }
    }
    Ok(())
}

/// `pallet agents list`: one line per card repository (its entry of [`crate::registry::views::listed_json`] and latest card).
pub fn print_cards(registry: &str, entries: &[Value], json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        errln!("no agent cards in registry {}", registry);
    }
    for entry in entries {
        let latest = entry.get("latest");
        // Every field comes from the registry: the whole line is shown inert.
        let line = format!(
            "{} {} {} {} skills: {}",
            entry["repository"].as_str().unwrap_or_default(),
            latest
                .and_then(|version| version["version"].as_str())
                .unwrap_or("-"),
            latest
                .and_then(|version| version["digest"].as_str())
                .unwrap_or("-"),
            entry["url"].as_str().unwrap_or("-"),
            entry["skills"]
                .as_array()
                .map_or_else(String::new, |skills| {
                    skills
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
        );
        outln!("{}", terminal_safe(&line));
    }
    Ok(())
}
