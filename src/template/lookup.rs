//! Reading paths from the [`Scope`], and describing what is there when a path
//! does not exist.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{Location, Scope, TemplateError};

/// The names at the root of the template context.
pub(super) const ROOTS: [&str; 6] = ["workflow", "steps", "item", "index", "loop", "error"];

/// The roots only some steps see, bound by the construct around them; the
/// workflow's checks say which step may read which.
pub const LOCAL_ROOTS: [&str; 4] = ["item", "index", "loop", "error"];

/// How error messages call the root of the template context.
pub(super) const ROOT_NAME: &str = "the template context";

/// Where a path stops existing: the index of the first missing segment and
/// what the part before it holds.
#[derive(Debug)]
pub(super) struct Missing {
    pub(super) at: usize,
    pub(super) found: String,
}

impl Missing {
    pub(super) fn error(self, step: &str, location: &Location, path: &[String]) -> TemplateError {
        TemplateError::MissingPath {
            step: step.to_string(),
            location: location.clone(),
            path: display_path(path),
            parent: display_path(&path[..self.at.min(path.len())]),
            found: self.found,
        }
    }
}

/// The value at a scope path, borrowed from the scope when it exists as such.
pub(super) fn lookup<'a>(scope: &Scope<'a>, path: &[String]) -> Result<Cow<'a, Value>, Missing> {
    let missing = |at: usize, found: String| Err(Missing { at, found });
    let segment = |index: usize| path.get(index).map(String::as_str);
    let (start, consumed) = match (segment(0), segment(1), segment(2)) {
        (Some("workflow"), None, _) => {
            return Ok(Cow::Owned(Value::Object(Map::from_iter([(
                "input".into(),
                scope.input.clone(),
            )]))));
        }
        (Some("workflow"), Some("input"), _) => (scope.input, 2),
        (Some("workflow"), Some(_), _) => return missing(1, "has: input".into()),
        (Some("steps"), None, _) => {
            // Outer maps first, so that inner outputs win on insertion.
            let maps = scope.outer.iter().rev().copied().chain([scope.steps]);
            let steps = maps
                .flatten()
                .map(|(id, outputs)| (id.clone(), wrap_outputs(outputs)));
            return Ok(Cow::Owned(Value::Object(steps.collect())));
        }
        (Some("steps"), Some(id), rest) => {
            let Some(outputs) = scope.step(id) else {
                return missing(1, describe_steps(scope));
            };
            match rest {
                None => return Ok(Cow::Owned(wrap_outputs(outputs))),
                Some("outputs") => (outputs, 3),
                Some(_) => return missing(2, "has: outputs".into()),
            }
        }
        (Some(local), _, _) if LOCAL_ROOTS.contains(&local) => {
            match scope.locals.and_then(|locals| locals.get(local)) {
                Some(value) => (value, 1),
                None => return missing(0, describe_roots(scope.locals)),
            }
        }
        _ => return missing(0, describe_roots(scope.locals)),
    };
    let mut current = start;
    for (offset, name) in path[consumed..].iter().enumerate() {
        current = match child(current, name) {
            Some(value) => value,
            None => return missing(consumed + offset, describe(current)),
        };
    }
    Ok(Cow::Borrowed(current))
}

fn wrap_outputs(outputs: &Value) -> Value {
    Value::Object(Map::from_iter([("outputs".into(), outputs.clone())]))
}

fn child<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(fields) => fields.get(name),
        Value::Array(items) => items.get(name.parse::<usize>().ok()?),
        _ => None,
    }
}

/// What a value holds, for error messages: `has: code, language`, `is a string`.
fn describe(value: &Value) -> String {
    const SHOWN_KEYS: usize = 20;
    match value {
        Value::Object(fields) if fields.is_empty() => "is an empty object".into(),
        Value::Object(fields) => {
            let mut keys: Vec<&str> = fields.keys().map(String::as_str).take(SHOWN_KEYS).collect();
            if fields.len() > SHOWN_KEYS {
                keys.push("...");
            }
            format!("has: {}", keys.join(", "))
        }
        Value::Array(items) if items.len() == 1 => "is an array of 1 item".into(),
        Value::Array(items) => format!("is an array of {} items", items.len()),
        Value::String(_) => "is a string".into(),
        Value::Number(_) => "is a number".into(),
        Value::Bool(_) => "is a boolean".into(),
        Value::Null => "is null".into(),
    }
}

/// The roots a template can read here: the two global ones and the locals bound.
pub(super) fn describe_roots(locals: Option<&Map<String, Value>>) -> String {
    let bound = locals.into_iter().flat_map(|locals| locals.keys());
    let mut text = String::from("has: workflow, steps");
    for name in bound {
        text.push_str(", ");
        text.push_str(name);
    }
    text
}

fn describe_steps(scope: &Scope) -> String {
    let maps = [scope.steps].into_iter().chain(scope.outer.iter().copied());
    let mut ids: Vec<&str> = maps
        .flat_map(|map| map.keys().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.is_empty() {
        true => "has no step outputs yet".into(),
        false => format!("has: {}", ids.join(", ")),
    }
}

/// `steps.build.outputs.items.0`; a segment that is not a plain name is bracketed.
fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        return ROOT_NAME.into();
    }
    let plain = |name: &str| {
        name.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    let shown: Vec<Cow<str>> = path
        .iter()
        .map(|name| match plain(name) {
            true => Cow::Borrowed(name.as_str()),
            false => Cow::Owned(format!("[{name}]")),
        })
        .collect();
    shown.join(".")
}

/// Places `value` at `path` in `root`, creating objects on the way.
pub(super) fn insert(root: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for name in parents {
        let Value::Object(fields) = node else { return };
        node = fields
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(fields) = node {
        fields.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('.').map(str::to_string).collect()
    }

    #[test]
    fn descriptions_say_what_a_value_holds() {
        let many: Map<String, Value> = (0..25).map(|n| (format!("k{n}"), json!(n))).collect();
        let cases = [
            (
                json!({"code": 1, "language": 2}),
                "has: code, language".to_string(),
            ),
            (json!({}), "is an empty object".into()),
            (json!([1, 2]), "is an array of 2 items".into()),
            (json!("x"), "is a string".into()),
            (json!(1.5), "is a number".into()),
            (json!(false), "is a boolean".into()),
            (Value::Null, "is null".into()),
            (
                Value::Object(many),
                format!(
                    "has: {}, ...",
                    (0..20)
                        .map(|n| format!("k{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(describe(&value), expected, "{value}");
        }
    }

    #[test]
    fn paths_display_with_brackets_around_odd_names() {
        let cases = [
            (vec![], ROOT_NAME),
            (
                path("steps.plan.outputs.items.0"),
                "steps.plan.outputs.items.0",
            ),
            (
                vec!["workflow".into(), "input".into(), "a b.c".into()],
                "workflow.input.[a b.c]",
            ),
        ];
        for (segments, expected) in cases {
            assert_eq!(display_path(&segments), expected);
        }
    }

    #[test]
    fn inserted_values_build_a_sparse_context() {
        let mut root = json!({});
        insert(
            &mut root,
            &path("steps.plan.outputs.result"),
            json!({"a": 1}),
        );
        insert(&mut root, &path("steps.plan.outputs.items.0"), json!("x"));
        insert(&mut root, &path("workflow.input"), json!("text"));
        assert_eq!(
            root,
            json!({
                "steps": {"plan": {"outputs": {"result": {"a": 1}, "items": {"0": "x"}}}},
                "workflow": {"input": "text"},
            })
        );
    }

    #[test]
    fn locals_are_read_where_bound_and_named_where_not() {
        let (input, steps) = (json!({}), HashMap::new());
        let locals = Map::from_iter([
            ("item".to_string(), json!({"file": "a.rs"})),
            ("index".to_string(), json!(3)),
        ]);
        let bound = Scope {
            input: &input,
            steps: &steps,
            locals: Some(&locals),
            outer: &[],
        };
        assert_eq!(*lookup(&bound, &path("item.file")).unwrap(), json!("a.rs"));
        assert_eq!(*lookup(&bound, &path("index")).unwrap(), json!(3));
        let Err(missing) = lookup(&bound, &path("error.message")) else {
            panic!("error is not bound")
        };
        assert_eq!(missing.found, "has: workflow, steps, item, index");
        let unbound = Scope {
            locals: None,
            outer: &[],
            ..bound
        };
        let Err(missing) = lookup(&unbound, &path("item")) else {
            panic!("item is not bound")
        };
        assert_eq!(
            (missing.at, missing.found.as_str()),
            (0, "has: workflow, steps")
        );
    }

    #[test]
    fn lookups_borrow_from_the_scope_or_say_where_they_stop() {
        let input = json!({"list": [{"name": "a"}]});
        let steps = HashMap::from([("plan".to_string(), json!({"result": 1}))]);
        let scope = Scope {
            input: &input,
            steps: &steps,
            locals: None,
            outer: &[],
        };
        let found = [
            ("workflow.input.list.0.name", json!("a")),
            ("steps.plan.outputs.result", json!(1)),
            ("steps.plan", json!({"outputs": {"result": 1}})),
            ("workflow", json!({"input": input})),
            ("steps", json!({"plan": {"outputs": {"result": 1}}})),
        ];
        for (text, expected) in found {
            let value = lookup(&scope, &path(text)).unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(*value, expected, "{text}");
        }
        assert!(matches!(
            lookup(&scope, &path("workflow.input.list")).unwrap(),
            Cow::Borrowed(_)
        ));
        let missing = [
            ("workflow.input.list.1", 3, "is an array of 1 item"),
            ("workflow.input.list.x", 3, "is an array of 1 item"),
            ("workflow.output", 1, "has: input"),
            ("steps.build.outputs", 1, "has: plan"),
            ("steps.plan.result", 2, "has: outputs"),
            ("input.x", 0, "has: workflow, steps"),
        ];
        for (text, at, found) in missing {
            let Err(missing) = lookup(&scope, &path(text)) else {
                panic!("{text} exists")
            };
            assert_eq!((missing.at, missing.found.as_str()), (at, found), "{text}");
        }
    }
}
