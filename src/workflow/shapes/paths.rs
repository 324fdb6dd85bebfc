//! What a JSON Schema lets a value hold: the JSON types it allows, and
//! whether a path of fields and array indices can exist in a valid value.
//! Generous where it cannot tell cheaply: `patternProperties`, a `$ref`
//! outside the document, `if`/`then`, or a spent budget count as "anything".
//! `properties`, `additionalProperties`, `items`/`prefixItems`, `maxItems`,
//! `type`/`const`/`enum`, local `$ref`s and `allOf` (all must allow),
//! `anyOf`/`oneOf` (one must allow) are followed.

use serde_json::{Map, Value};

pub(crate) use super::types::Types;
use crate::yaml::escape;

/// How many schema nodes one walk visits at most; past it the rest is "anything".
const MAX_VISITS: usize = 10_000;
/// How deep one walk nests (`$ref` chains, path segments); past it, "anything".
const MAX_NESTING: usize = 128;

/// Where a path cannot go on in a schema, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Impossible {
    /// JSON pointer of the schema node that refuses the path.
    pub pointer: String,
    pub reason: String,
    /// The segment refused and the property names the node has, for a suggestion.
    pub segment: Option<String>,
    pub known: Vec<String>,
}

impl Impossible {
    fn new(pointer: &str, reason: String) -> Impossible {
        Impossible {
            pointer: pointer.to_string(),
            reason,
            segment: None,
            known: Vec::new(),
        }
    }
}

/// The types the value at `path` (fields and indices from the value that
/// `schema` describes) may have, when the value itself is one of `kinds`;
/// an error when no valid value has anything there.
pub(crate) fn types_at(schema: &Value, path: &[String], kinds: Types) -> Result<Types, Impossible> {
    let mut walker = Walker {
        root: schema,
        visits: 0,
        nesting: 0,
    };
    walker.node(schema, "", path, kinds)
}

/// The schema nodes that all hold for a value: `schema` itself, its local
/// `$ref`s and its `allOf` members, each with its pointer, recursively.
pub(crate) fn conjuncts(schema: &Value) -> Vec<(&Map<String, Value>, String)> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut pending = vec![(schema, String::new())];
    while let Some((node, pointer)) = pending.pop() {
        let Some(map) = node.as_object() else {
            continue;
        };
        // A node reached twice (a `$ref` cycle) holds once.
        if found.len() >= MAX_VISITS || !seen.insert(std::ptr::from_ref(map)) {
            continue;
        }
        if let Some((target, target_pointer)) = map
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| resolve(schema, reference))
        {
            pending.push((target, target_pointer));
        }
        for (index, member) in members(map, "allOf").enumerate() {
            pending.push((member, format!("{pointer}/allOf/{index}")));
        }
        found.push((map, pointer));
    }
    found
}

fn members<'a>(map: &'a Map<String, Value>, keyword: &str) -> impl Iterator<Item = &'a Value> {
    map.get(keyword)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A `$ref` into the same document (`#`, `#/$defs/step`): the node and its pointer.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<(&'a Value, String)> {
    let pointer = reference.strip_prefix('#')?;
    if !pointer.is_empty() && !pointer.starts_with('/') {
        // An anchor: not followed.
        return None;
    }
    let pointer = pointer.replace("%25", "%").replace("%22", "\"");
    root.pointer(&pointer).map(|node| (node, pointer))
}

struct Walker<'a> {
    root: &'a Value,
    visits: usize,
    /// How many `node` calls are open: bounds the recursion.
    nesting: usize,
}

/// Where the next segment leads in an object or array schema.
enum Child<'a> {
    Schema(&'a Value, String),
    Anything,
    Refused(Impossible),
}

impl<'a> Walker<'a> {
    fn node(
        &mut self,
        schema: &'a Value,
        pointer: &str,
        path: &[String],
        kinds: Types,
    ) -> Result<Types, Impossible> {
        self.visits += 1;
        // Anything: at the end of the path, anything of `kinds`.
        let anything = if path.is_empty() { kinds } else { Types::ALL };
        if self.visits > MAX_VISITS || self.nesting >= MAX_NESTING {
            return Ok(anything);
        }
        self.nesting += 1;
        let outcome = self.node_within_bounds(schema, pointer, path, kinds);
        self.nesting -= 1;
        outcome
    }

    fn node_within_bounds(
        &mut self,
        schema: &'a Value,
        pointer: &str,
        path: &[String],
        kinds: Types,
    ) -> Result<Types, Impossible> {
        let map = match schema {
            Value::Bool(false) => {
                return Err(Impossible::new(
                    pointer,
                    "the schema is `false`: no value is valid there".to_string(),
                ));
            }
            Value::Object(map) => map,
            _ if path.is_empty() => return Ok(kinds),
            _ => return Ok(Types::ALL),
        };
        let mut result = self.own(map, pointer, path, kinds)?;
        if let Some((target, target_pointer)) = map
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| resolve(self.root, reference))
        {
            result = result.and(self.node(target, &target_pointer, path, kinds)?);
        }
        for (index, member) in members(map, "allOf").enumerate() {
            let member_pointer = format!("{pointer}/allOf/{index}");
            result = result.and(self.node(member, &member_pointer, path, kinds)?);
        }
        for keyword in ["anyOf", "oneOf"] {
            if map.get(keyword).and_then(Value::as_array).is_none() {
                continue;
            }
            let mut union = Types::NONE;
            let mut refused = None;
            for (index, branch) in members(map, keyword).enumerate() {
                let branch_pointer = format!("{pointer}/{keyword}/{index}");
                match self.node(branch, &branch_pointer, path, kinds) {
                    Ok(types) => union = union.or(types),
                    Err(impossible) => {
                        refused.get_or_insert(impossible);
                    }
                }
            }
            if union.is_empty() {
                let first = refused.map_or_else(String::new, |first| {
                    format!(
                        " (the first: at {}, {})",
                        show(&first.pointer),
                        first.reason
                    )
                });
                return Err(Impossible::new(
                    &format!("{pointer}/{keyword}"),
                    format!("no branch of `{keyword}` allows it{first}"),
                ));
            }
            result = result.and(union);
        }
        if result.is_empty() {
            return Err(Impossible::new(
                pointer,
                "the schema allows no value there (its parts contradict each other)".to_string(),
            ));
        }
        Ok(result)
    }

    /// The node's own keywords: its types, then the child the next segment names.
    fn own(
        &mut self,
        map: &'a Map<String, Value>,
        pointer: &str,
        path: &[String],
        kinds: Types,
    ) -> Result<Types, Impossible> {
        let declared = Types::declared(map);
        let here = declared.and(kinds);
        if here.is_empty() {
            return Err(Impossible::new(
                pointer,
                format!("the value is {}", declared.describe()),
            ));
        }
        let Some((segment, rest)) = path.split_first() else {
            return Ok(here);
        };
        let mut children = Vec::new();
        if here.has(Types::OBJECT) {
            children.push(object_child(map, pointer, segment));
        }
        if here.has(Types::ARRAY) {
            children.push(array_child(map, pointer, segment));
        }
        if children.is_empty() {
            return Err(Impossible::new(
                pointer,
                format!(
                    "the value is {}, which has no field `{segment}`",
                    here.describe()
                ),
            ));
        }
        let mut end = Types::NONE;
        let mut refused = None;
        for child in children {
            let outcome = match child {
                Child::Anything => Ok(Types::ALL),
                Child::Schema(schema, child_pointer) => {
                    self.node(schema, &child_pointer, rest, Types::ALL)
                }
                Child::Refused(impossible) => Err(impossible),
            };
            match outcome {
                Ok(types) => end = end.or(types),
                Err(impossible) => {
                    refused.get_or_insert(impossible);
                }
            }
        }
        match refused {
            Some(impossible) if end.is_empty() => Err(impossible),
            _ => Ok(end),
        }
    }
}

fn object_child<'a>(map: &'a Map<String, Value>, pointer: &str, segment: &str) -> Child<'a> {
    let properties = map.get("properties").and_then(Value::as_object);
    if let Some(property) = properties.and_then(|properties| properties.get(segment)) {
        return Child::Schema(
            property,
            format!("{pointer}/properties/{}", escape(segment)),
        );
    }
    let patterns = map.get("patternProperties").and_then(Value::as_object);
    if patterns.is_some_and(|patterns| !patterns.is_empty()) {
        return Child::Anything;
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            let known: Vec<String> = properties
                .into_iter()
                .flat_map(|properties| properties.keys().cloned())
                .collect();
            let listed = match known.is_empty() {
                true => "none".to_string(),
                false => known.join(", "),
            };
            Child::Refused(Impossible {
                pointer: format!("{pointer}/additionalProperties"),
                reason: format!(
                    "there is no property `{segment}` and no other is allowed (the properties: {listed})"
                ),
                segment: Some(segment.to_string()),
                known,
            })
        }
        Some(additional @ Value::Object(_)) => {
            Child::Schema(additional, format!("{pointer}/additionalProperties"))
        }
        _ => Child::Anything,
    }
}

fn array_child<'a>(map: &'a Map<String, Value>, pointer: &str, segment: &str) -> Child<'a> {
    let Ok(index) = segment.parse::<usize>() else {
        return Child::Refused(Impossible::new(
            pointer,
            format!(
                "the value is an array, whose items are read by their index (`.0`), not `.{segment}`"
            ),
        ));
    };
    if let Some(most) = map.get("maxItems").and_then(Value::as_u64)
        && index as u64 >= most
    {
        return Child::Refused(Impossible::new(
            &format!("{pointer}/maxItems"),
            format!("the array holds at most {most} items, so there is no item {index}"),
        ));
    }
    let tuple = |keyword: &str| map.get(keyword).and_then(Value::as_array);
    let (after, after_keyword) = match (tuple("prefixItems"), tuple("items")) {
        (Some(prefix), _) => match prefix.get(index) {
            Some(item) => {
                return Child::Schema(item, format!("{pointer}/prefixItems/{index}"));
            }
            None => (map.get("items"), "items"),
        },
        // Before 2020-12, an `items` array is the tuple.
        (None, Some(items)) => match items.get(index) {
            Some(item) => return Child::Schema(item, format!("{pointer}/items/{index}")),
            None => (map.get("additionalItems"), "additionalItems"),
        },
        (None, None) => (map.get("items"), "items"),
    };
    match after {
        Some(schema @ (Value::Object(_) | Value::Bool(false))) => {
            Child::Schema(schema, format!("{pointer}/{after_keyword}"))
        }
        _ => Child::Anything,
    }
}

/// A schema pointer for messages: `/` for the root.
pub(crate) fn show(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

#[cfg(test)]
mod tests;
