//! Template checks before anything runs: handlebars syntax, and paths that start
//! at something templates can see (`workflow.input...` or `steps...`).

use super::validate::Problem;
use crate::template::{self, step_references};

/// Syntax errors, paths templates cannot see, and step paths that skip `outputs`.
pub(crate) fn check_template(pointer: &str, text: &str, errors: &mut Vec<Problem>) {
    if template::too_deep(text) {
        errors.push(Problem::new(
            pointer,
            format!(
                "template blocks or `( )` nest more than {} deep (the limit)",
                template::MAX_TEMPLATE_NESTING
            ),
            Some(
                "split the template into several inputs, or compute the value in a step"
                    .to_string(),
            ),
        ));
        return;
    }
    // Compiling with handlebars is the slow part of validation; plain paths skip it.
    if !is_plain_template(text) {
        match handlebars::Template::compile(text) {
            Err(error) => {
                errors.push(Problem::new(
                    pointer,
                    syntax_message(text, &error),
                    Some("templates look like \"{{ steps.ID.outputs.NAME }}\" or \"{{ eq workflow.input.kind 'a' }}\"; blocks close with {{/if}}".to_string()),
                ));
                return;
            }
            Ok(compiled) => {
                // Partials and unknown helpers would fail only when the step runs.
                if let Some(construct) = template::disallowed(&compiled.elements) {
                    let hint = template::allowed_helpers_hint();
                    errors.push(Problem::new(pointer, construct.to_string(), Some(hint)));
                    return;
                }
            }
        }
    }
    for root in unknown_roots(text) {
        let hint = if root.starts_with("input") || root.starts_with("workflow.") {
            let rest = root
                .split_once('.')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            let rest = rest
                .strip_prefix("input.")
                .or(rest.strip_prefix("inputs."))
                .unwrap_or(rest);
            format!(
                "did you mean `workflow.input.{rest}`? templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`"
            )
        } else {
            "templates read `workflow.input.NAME` and `steps.ID.outputs.NAME`".to_string()
        };
        errors.push(Problem::new(
            pointer,
            format!("template refers to `{root}`, which is not available to templates"),
            Some(hint),
        ));
    }
    for reference in step_references(text) {
        if reference.path.is_empty()
            || reference.path == "outputs"
            || reference.path.starts_with("outputs.")
        {
            continue;
        }
        errors.push(Problem::new(
            pointer,
            format!(
                "template refers to `steps.{}.{}`, but a step's results are under `outputs`",
                reference.step, reference.path
            ),
            Some(format!(
                "write `steps.{}.outputs.{}`",
                reference.step, reference.path
            )),
        ));
    }
}

/// Whether every `{{ }}` in `text` is a plain path, which handlebars always
/// accepts and which calls no helper. Anything else (helper calls, blocks,
/// comments, escapes) goes to the real parser and the check of its helpers.
fn is_plain_template(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if rest[..open].contains("}}") || rest[..open].contains('\\') {
            return false;
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return false;
        };
        if !is_plain_expression(&after[..close]) {
            return false;
        }
        rest = &after[close + 2..];
    }
    !rest.contains("}}") && !rest.contains('\\')
}

fn is_plain_expression(expression: &str) -> bool {
    let mut depth = 0usize;
    let mut words = 0usize;
    let mut characters = expression.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            c if c.is_whitespace() => {}
            '(' if words > 0 => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '"' | '\'' if words > 0 => {
                if !characters.by_ref().any(|inner| inner == character) {
                    return false;
                }
                words += 1;
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '@' => {
                let mut word = String::from(c);
                while let Some(&next) = characters.peek() {
                    if next.is_whitespace() || next == '(' || next == ')' {
                        break;
                    }
                    word.push(next);
                    characters.next();
                }
                let is_path = word.split('.').all(|segment| {
                    segment.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '@')
                        && segment
                            .chars()
                            .skip(1)
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                if !(is_path || (words > 0 && word.parse::<f64>().is_ok())) {
                    return false;
                }
                words += 1;
            }
            _ => return false,
        }
    }
    depth == 0 && words == 1
}

/// A short description of a template syntax error (handlebars' own lists grammar rules).
fn syntax_message(text: &str, error: &handlebars::TemplateError) -> String {
    if let Some(column) = unclosed_braces(text) {
        return format!(
            "template syntax error: the `{{{{` at column {column} of the template has no matching `}}}}`"
        );
    }
    match error.reason() {
        handlebars::TemplateErrorReason::InvalidSyntax(_) => {
            let place = error
                .pos()
                .map(|(line, column)| format!(" at line {line}, column {column} of the template"));
            let block = text.find("{{#").map(|start| {
                let name = text[start + 3..]
                    .split(|c: char| c.is_whitespace() || c == '}')
                    .next()
                    .unwrap_or_default();
                format!(" (is the block `{{{{#{name}}}}}` closed with `{{{{/{name}}}}}`?)")
            });
            format!(
                "template syntax error{}{}",
                place.unwrap_or_default(),
                block.unwrap_or_default()
            )
        }
        reason => format!("template syntax error: {reason}"),
    }
}

/// Column (1-based, in characters) of the first `{{` without a matching `}}`.
fn unclosed_braces(text: &str) -> Option<usize> {
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let next_open = after.find("{{");
        match after.find("}}") {
            Some(close) if next_open.is_none_or(|next| next > close) => {
                offset += open + 2 + close + 2;
                rest = &after[close + 2..];
            }
            _ => return Some(text[..offset + open].chars().count() + 1),
        }
    }
    None
}

/// Paths in a template that start neither at `workflow.input` nor at `steps`.
/// Helper names, literals and paths inside `#each`/`#with` blocks (relative to the block) are skipped.
pub(crate) fn unknown_roots(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let expression = after[..close]
            .trim_start_matches(['{', '~', '&'])
            .trim_end_matches(['}', '~'])
            .trim();
        rest = &after[close + 2..];
        let relative_scope = blocks.iter().any(|name| name != "if" && name != "unless");
        if let Some(closing) = expression.strip_prefix('/') {
            let _ = closing;
            blocks.pop();
            continue;
        }
        if expression.starts_with('!')
            || expression.starts_with('>')
            || expression == "else"
            || expression == "^"
        {
            continue;
        }
        let (expression, opened) = match expression
            .strip_prefix('#')
            .or(expression.strip_prefix('^'))
        {
            Some(inner) => (inner, true),
            None => (
                expression.strip_prefix("else ").unwrap_or(expression),
                false,
            ),
        };
        if !relative_scope {
            found.extend(
                expression_paths(expression)
                    .into_iter()
                    .filter(|path| !is_known_root(path)),
            );
        }
        if opened {
            blocks.push(
                expression
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    found
}

fn is_known_root(path: &str) -> bool {
    path == "workflow.input"
        || path.starts_with("workflow.input.")
        || path.starts_with("workflow.input.[")
        || path.starts_with("steps.")
        || path.starts_with('@')
        // Where a local is read is checked with the step tree (`references.rs`).
        || template::LOCAL_ROOTS
            .iter()
            .any(|local| path == *local || path.strip_prefix(local).is_some_and(|rest| rest.starts_with(['.', '['])))
}

/// The path arguments of one `{{ }}` expression (not helper names, not literals).
fn expression_paths(expression: &str) -> Vec<String> {
    // Each open (sub)expression: its first word, and whether arguments followed it.
    let mut heads: Vec<(Option<String>, bool)> = vec![(None, false)];
    let mut paths = Vec::new();
    let finish = |head: Option<(Option<String>, bool)>, paths: &mut Vec<String>| {
        if let Some((Some(word), false)) = head
            && is_path(&word)
        {
            paths.push(word);
        }
    };
    let mut characters = expression.chars().peekable();
    while let Some(&character) = characters.peek() {
        characters.next();
        if character.is_whitespace() {
            continue;
        }
        if character == ')' {
            finish(heads.pop(), &mut paths);
            continue;
        }
        if let Some(current) = heads.last_mut()
            && current.0.is_some()
        {
            current.1 = true;
        }
        match character {
            '(' => heads.push((None, false)),
            '"' | '\'' => {
                characters.by_ref().find(|&inner| inner == character);
                mark_word(&mut heads, String::new());
            }
            _ => {
                let mut token = String::from(character);
                while let Some(&next) = characters.peek() {
                    if next.is_whitespace() || next == '(' || next == ')' {
                        break;
                    }
                    token.push(next);
                    characters.next();
                }
                let token = token
                    .split_once('=')
                    .map(|(_, value)| value.to_string())
                    .unwrap_or(token);
                let is_head = heads.last().is_some_and(|current| current.0.is_none());
                if is_head {
                    mark_word(&mut heads, token);
                } else if is_path(&token) {
                    paths.push(token);
                }
            }
        }
    }
    while let Some(head) = heads.pop() {
        finish(Some(head), &mut paths);
    }
    paths
}

/// Records the first word of the innermost expression (a helper name if arguments follow).
fn mark_word(heads: &mut [(Option<String>, bool)], word: String) {
    if let Some(current) = heads.last_mut()
        && current.0.is_none()
    {
        current.0 = Some(word);
    }
}

/// Whether a word is a path (not a literal).
fn is_path(word: &str) -> bool {
    !(word.is_empty()
        || word.starts_with('"')
        || word.starts_with('\'')
        || word.parse::<f64>().is_ok()
        || matches!(word, "true" | "false" | "null" | "undefined"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_roots_in_templates() {
        let cases: [(&str, &[&str]); 11] = [
            ("{{ \"text\" }} {{ 42 }}", &[]),
            (
                "{{ lookup workflow.input.map key=nothing.here }}",
                &["nothing.here"],
            ),
            ("{{ workflow.input.requirements }}", &[]),
            ("{{ workflow.input }}", &[]),
            ("Hello {{ workflow.input.name }}!", &[]),
            (
                "{{ eq steps.analyze.outputs.request_type \"code generation\" }}",
                &[],
            ),
            (
                "{{ and (gt steps.a.outputs.n 3) (not workflow.input.skip) }}",
                &[],
            ),
            ("{{ input.name }}", &["input.name"]),
            (
                "{{ eq workflow.inputs.kind 'a' }}",
                &["workflow.inputs.kind"],
            ),
            (
                "{{#each steps.a.outputs.items}}{{ this.name }}{{/each}} {{ other }}",
                &["other"],
            ),
            (
                "{{#if workflow.input.flag}}{{ nope.x }}{{else}}y{{/if}}",
                &["nope.x"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(unknown_roots(text), expected, "{text}");
        }
    }

    #[test]
    fn plain_templates_agree_with_handlebars() {
        let cases = [
            ("{{ workflow.input.requirements }}", true),
            ("Hello {{ workflow.input.name }}!", true),
            ("{{ eq steps.a.outputs.kind \"code generation\" }}", false),
            (
                "{{ and (gt steps.a.outputs.n 3) (not workflow.input.skip) }}",
                false,
            ),
            ("{{ steps.my-step.outputs }}", true),
            ("no template at all", true),
            ("{{#if workflow.input.flag}}yes{{/if}}", false),
            ("{{ workflow.input.name }", false),
            ("{{ }}", false),
            ("{{ eq a (b }}", false),
            ("{{ a..b }}", false),
            ("{{ 'text' }}", false),
            ("{{ a }} }}", false),
        ];
        for (text, plain) in cases {
            assert_eq!(is_plain_template(text), plain, "{text}");
            if plain {
                assert!(
                    handlebars::Template::compile(text).is_ok(),
                    "handlebars rejects {text}"
                );
            }
        }
    }

    #[test]
    fn unclosed_braces_are_found() {
        let cases = [
            ("{{ a }}", None),
            ("x {{ a }", Some(3)),
            ("{{ a }} {{ b", Some(9)),
            ("{{ a {{ b }}", Some(1)),
        ];
        for (text, expected) in cases {
            assert_eq!(unclosed_braces(text), expected, "{text}");
        }
    }
}
