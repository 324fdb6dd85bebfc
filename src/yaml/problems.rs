//! The messages and hints for YAML problems: scanner errors, unquoted `{{ }}`
//! templates, control characters and too deep nesting.

use super::position::{Position, YamlProblem};
use super::{FileKind, limits};

/// A hint for the scanner's message, for the mistakes people make most.
pub(super) fn syntax_hint(info: &str) -> &'static str {
    if info.contains("tab") {
        "indent with spaces: YAML does not allow tabs for indentation"
    } else if info.contains("mapping values are not allowed") {
        "quote a value that contains \": \" (e.g. skill: \"a: b\"), or check this line's indentation"
    } else if info.contains("quoted scalar") {
        "a quote opened here is never closed"
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        "a `[` or `{` opened here is never closed, or an item lacks its `,`"
    } else if info.contains("expected '-'") || info.contains("expected key") {
        "check the indentation: the items of one list or mapping start in the same column"
    } else {
        "check the indentation, quotes and brackets here; an unclosed quote or bracket may start earlier"
    }
}

/// YAML reads an unquoted `{{ ... }}` value as a nested mapping, which fails in
/// confusing ways: find such a value at or before `line` and say so plainly.
pub(super) fn unquoted_template(text: &str, line: usize) -> Option<YamlProblem> {
    for (index, content) in text.lines().take(line).enumerate() {
        let Some(start) = content.find("{{") else {
            continue;
        };
        let before = content[..start].trim_end();
        if before.ends_with(':')
            || before.ends_with('-')
            || before.ends_with('[')
            || before.ends_with(',')
        {
            return Some(YamlProblem {
                position: Position {
                    line: index + 1,
                    column: content[..start].chars().count() + 1,
                },
                pointer: String::new(),
                message: "unquoted template: YAML reads `{{ ... }}` as a mapping".to_string(),
                hint: Some("put the template in quotes: \"{{ workflow.input.name }}\"".to_string()),
            });
        }
    }
    None
}

pub(super) fn depth_hint(kind: FileKind) -> String {
    format!(
        "flatten the structure: deeply nested lists or mappings are a mistake in {} {} (or an attack)",
        kind.article, kind.name
    )
}

pub(super) fn too_deep() -> String {
    format!(
        "YAML nesting is deeper than {} levels (the limit)",
        limits::MAX_NESTING_DEPTH
    )
}

/// Characters YAML does not allow in a stream (C0 and C1 controls but tab,
/// line breaks and NEL, DEL, U+FFFE and U+FFFF): a NUL would otherwise end
/// the parse silently and hide the rest of the file.
pub(super) fn check_characters(text: &str) -> Result<(), YamlProblem> {
    let allowed = |character: char| match character {
        '\t' | '\n' | '\r' | '\u{85}' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    };
    let Some(offset) = text.find(|character: char| !allowed(character)) else {
        return Ok(());
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    let character = text[offset..].chars().next().unwrap_or_default();
    Err(YamlProblem {
        position: Position { line, column },
        pointer: String::new(),
        message: format!(
            "the file holds the control character U+{:04X}, which YAML does not allow",
            u32::from(character)
        ),
        hint: Some(
            "remove it; write it as an escape inside a double-quoted string (\"\\u0000\") if a value needs it"
                .to_string(),
        ),
    })
}
