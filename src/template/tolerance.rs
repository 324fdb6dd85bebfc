//! Which reads of a template tolerate a missing value. A path an `{{#if}}`
//! or `{{#unless}}` tests, and a path inside the block that runs only when
//! such a test found its subject (`{{#if steps.X}}…{{ steps.X.outputs.y }}…{{/if}}`),
//! read a missing value as missing (falsy) instead of failing the render.
//! The subject of a test is `steps.ID`, `workflow.input.NAME`, or a local's
//! first field (`loop.previous`). An `if:` guard tolerates every missing read.

use handlebars::Template;
use handlebars::template::{HelperTemplate, Parameter, TemplateElement};

use super::compile::{lookup_path, scope_path, single_expression, without_extensions};

/// One path a template reads, and whether its absence is tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub path: Vec<String>,
    pub tolerates_absence: bool,
}

/// What a test on `path` proves present: `steps.ID`, `workflow.input.NAME`, `loop.previous`.
fn subject(path: &[String]) -> &[String] {
    let length = match path.first().map(String::as_str) {
        Some("workflow") => 3,
        _ => 2,
    };
    &path[..length.min(path.len())]
}

/// Every path `elements` read, in order; `guards` are the test paths of
/// the `if`/`unless` blocks around them whose subjects are known present.
pub(super) fn collect(
    elements: &[TemplateElement],
    guards: &mut Vec<Vec<String>>,
    found: &mut Vec<Read>,
) {
    for element in elements {
        let (TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper)
        | TemplateElement::HelperBlock(helper)) = element
        else {
            continue;
        };
        let test = helper.block && matches!(helper.name.as_name(), Some("if" | "unless"));
        parameters(helper, test, guards, found);
        let subjects: Vec<Vec<String>> = if test {
            helper.params.iter().filter_map(scope_path).collect()
        } else {
            Vec::new()
        };
        let unless = helper.name.as_name() == Some("unless");
        for (block, proven) in [(&helper.template, !unless), (&helper.inverse, unless)] {
            let Some(block) = block else { continue };
            let mark = guards.len();
            if proven {
                guards.extend(subjects.iter().cloned());
            }
            collect(&block.elements, guards, found);
            guards.truncate(mark);
        }
    }
}

fn parameters(
    helper: &HelperTemplate,
    test: bool,
    guards: &mut Vec<Vec<String>>,
    found: &mut Vec<Read>,
) {
    let all = std::iter::once(&helper.name)
        .chain(&helper.params)
        .chain(helper.hash.values());
    for parameter in all {
        match parameter {
            Parameter::Subexpression(inner) => {
                if let TemplateElement::Expression(inner) = inner.as_element() {
                    parameters(inner, test, guards, found);
                }
            }
            other => found.extend(scope_path(other).map(|path| Read {
                tolerates_absence: test
                    || guards.iter().any(|guard| path.starts_with(subject(guard))),
                path,
            })),
        }
    }
}

/// The reads to look up before a render, none a prefix of another: a kept
/// path tolerates absence only if every read it covers does.
pub(super) fn merge(reads: Vec<Read>) -> Vec<Read> {
    let paths = without_extensions(reads.iter().map(|read| read.path.clone()).collect());
    paths
        .into_iter()
        .map(|path| Read {
            tolerates_absence: reads
                .iter()
                .filter(|read| read.path.starts_with(&path))
                .all(|read| read.tolerates_absence),
            path,
        })
        .collect()
}

/// Every path `text` reads, with its tolerance; none for a text that does
/// not parse (its own error says why).
pub fn reads(text: &str) -> Vec<Read> {
    let Ok(template) = Template::compile(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect(&template.elements, &mut Vec::new(), &mut found);
    found
}

/// The steps whose absence every read of them in `text` tolerates
/// (`{{#if steps.X}}…{{/if}}`), each once.
pub fn tolerated_absences(text: &str) -> Vec<String> {
    let reads = reads(text);
    let step = |read: &Read| match read.path.as_slice() {
        [root, id, ..] if root == "steps" => Some(id.clone()),
        _ => None,
    };
    let mut ids: Vec<String> = Vec::new();
    for read in &reads {
        if let Some(id) = step(read)
            && !ids.contains(&id)
            && reads
                .iter()
                .filter(|other| step(other).as_ref() == Some(&id))
                .all(|other| other.tolerates_absence)
        {
            ids.push(id);
        }
    }
    ids
}

/// The steps a truthy guard proves present: `{{ steps.X… }}`, or
/// `{{ and steps.X… steps.Y… }}` (each path given directly).
pub fn guard_requires(text: &str) -> Vec<String> {
    let Ok(template) = Template::compile(text) else {
        return Vec::new();
    };
    let Some(expression) = single_expression(&template) else {
        return Vec::new();
    };
    let paths: Vec<Vec<String>> = match lookup_path(expression) {
        Some(path) => vec![path],
        None if expression.name.as_name() == Some("and") => {
            expression.params.iter().filter_map(scope_path).collect()
        }
        None => Vec::new(),
    };
    paths
        .into_iter()
        .filter_map(|path| match path.as_slice() {
            [root, id, ..] if root == "steps" => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tolerant(text: &str) -> Vec<(String, bool)> {
        reads(text)
            .into_iter()
            .map(|read| (read.path.join("."), read.tolerates_absence))
            .collect()
    }

    #[test]
    fn tests_and_the_blocks_they_guard_tolerate_absence() {
        let cases: Vec<(&str, Vec<(&str, bool)>)> = vec![
            (
                "{{ steps.a.outputs.x }}",
                vec![("steps.a.outputs.x", false)],
            ),
            (
                "{{#if steps.a}}{{ steps.a.outputs.x }}{{else}}{{ steps.a.outputs.y }}{{/if}}",
                vec![
                    ("steps.a", true),
                    ("steps.a.outputs.x", true),
                    ("steps.a.outputs.y", false),
                ],
            ),
            (
                "{{#unless steps.a.outputs.ok}}no{{else}}{{ steps.a.outputs.z }}{{/unless}}",
                vec![("steps.a.outputs.ok", true), ("steps.a.outputs.z", true)],
            ),
            (
                "{{#if (eq steps.a.outputs.k 'x')}}{{ steps.a.outputs.k }}{{/if}}",
                vec![("steps.a.outputs.k", true), ("steps.a.outputs.k", false)],
            ),
            (
                "{{#if loop.previous}}{{ loop.previous.draft }}{{ loop.iteration }}{{/if}}",
                vec![
                    ("loop.previous", true),
                    ("loop.previous.draft", true),
                    ("loop.iteration", false),
                ],
            ),
            (
                "{{#if workflow.input.a}}{{ workflow.input.a }}{{ workflow.input.b }}{{/if}}",
                vec![
                    ("workflow.input.a", true),
                    ("workflow.input.a", true),
                    ("workflow.input.b", false),
                ],
            ),
        ];
        for (text, expected) in cases {
            let expected: Vec<(String, bool)> = expected
                .into_iter()
                .map(|(path, flag)| (path.to_string(), flag))
                .collect();
            assert_eq!(tolerant(text), expected, "{text}");
        }
        assert_eq!(
            tolerated_absences(
                "{{#if steps.a}}{{ steps.a.outputs.x }}{{/if}} {{ steps.b.outputs }}"
            ),
            vec!["a"]
        );
        assert!(tolerated_absences("{{#if steps.a}}x{{/if}} {{ steps.a.outputs.y }}").is_empty());
    }

    #[test]
    fn merged_reads_tolerate_only_what_every_covered_read_does() {
        let read = |path: &str, tolerates_absence| Read {
            path: path.split('.').map(str::to_string).collect(),
            tolerates_absence,
        };
        assert_eq!(
            merge(vec![read("steps.a", true), read("steps.a.outputs.x", true)]),
            vec![read("steps.a", true)]
        );
        assert_eq!(
            merge(vec![
                read("steps.a", true),
                read("steps.a.outputs.x", false)
            ]),
            vec![read("steps.a", false)]
        );
    }

    #[test]
    fn guards_that_prove_a_step_present() {
        assert_eq!(guard_requires("{{ steps.a.outputs.ok }}"), vec!["a"]);
        assert_eq!(
            guard_requires("{{ and steps.a steps.b.outputs.x }}"),
            vec!["a", "b"]
        );
        assert!(guard_requires("{{ not steps.a }}").is_empty());
        assert!(guard_requires("{{ or steps.a steps.b }}").is_empty());
        assert!(guard_requires("{{ workflow.input.flag }}").is_empty());
    }
}
