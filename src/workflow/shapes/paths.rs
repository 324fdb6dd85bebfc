//! What a JSON Schema lets a value hold: the JSON types it allows, and
//! whether a path of fields and array indices can exist in a valid value.
//! Generous where it cannot tell cheaply: `patternProperties`, a `$ref`
//! outside the document, `if`/`then`, or a spent budget count as "anything".
//! `properties`, `additionalProperties`, `items`/`prefixItems`, `maxItems`,
//! `type`/`const`/`enum`, local `$ref`s and `allOf` (all must allow),
//! `anyOf`/`oneOf` (one must allow) are followed.

use serde_json::{Map, Value};

use crate::yaml::escape;

/// How many schema nodes one walk visits at most; past it the rest is "anything".
const MAX_VISITS: usize = 10_000;
/// How deep one walk nests (`$ref` chains, path segments); past it, "anything".
const MAX_NESTING: usize = 128;

/// A set of JSON types; numbers are split into integers and the others so
/// that `integer` and `number` compare as they validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types(u8);

impl Types {
    pub const NONE: Types = Types(0);
    pub const NULL: Types = Types(1);
    pub const BOOLEAN: Types = Types(2);
    pub const OBJECT: Types = Types(4);
    pub const ARRAY: Types = Types(8);
    pub const INTEGER: Types = Types(16);
    pub const FRACTION: Types = Types(32);
    pub const STRING: Types = Types(64);
    pub const ALL: Types = Types(127);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn and(self, other: Types) -> Types {
        Types(self.0 & other.0)
    }

    pub fn or(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    pub fn without(self, other: Types) -> Types {
        Types(self.0 & !other.0)
    }

    pub fn has(self, other: Types) -> bool {
        !self.and(other).is_empty()
    }

    /// A `type` keyword's name; an unknown name restricts nothing.
    fn named(name: &str) -> Types {
        match name {
            "null" => Types::NULL,
            "boolean" => Types::BOOLEAN,
            "object" => Types::OBJECT,
            "array" => Types::ARRAY,
            "integer" => Types::INTEGER,
            "number" => Types::INTEGER.or(Types::FRACTION),
            "string" => Types::STRING,
            _ => Types::ALL,
        }
    }

    /// The type of a value (`1.0` is an integer, as JSON Schema has it).
    pub fn of(value: &Value) -> Types {
        match value {
            Value::Null => Types::NULL,
            Value::Bool(_) => Types::BOOLEAN,
            Value::Object(_) => Types::OBJECT,
            Value::Array(_) => Types::ARRAY,
            Value::String(_) => Types::STRING,
            Value::Number(number) => match number.as_f64() {
                Some(float) if float.fract() != 0.0 => Types::FRACTION,
                _ => Types::INTEGER,
            },
        }
    }

    /// `a string`, `an object or a string`, `a number or null`, for messages.
    pub fn describe(self) -> String {
        if self == Types::ALL {
            return "any value".to_string();
        }
        let number = Types::INTEGER.or(Types::FRACTION);
        let names = [
            (Types::OBJECT, "an object"),
            (Types::ARRAY, "an array"),
            (Types::STRING, "a string"),
            (number, "a number"),
            (Types::INTEGER, "an integer"),
            (Types::FRACTION, "a number with a fraction"),
            (Types::BOOLEAN, "a boolean"),
            (Types::NULL, "null"),
        ];
        let mut left = self;
        let mut shown = Vec::new();
        for (types, name) in names {
            if left.and(types) == types {
                shown.push(name);
                left = left.without(types);
            }
        }
        match shown.as_slice() {
            [] => "nothing".to_string(),
            [one] => (*one).to_string(),
            [first @ .., last] => format!("{} or {last}", first.join(", ")),
        }
    }
}

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
        let declared = declared_types(map);
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

/// The types `type`, `const` and `enum` allow (all when none is given).
fn declared_types(map: &Map<String, Value>) -> Types {
    let mut types = match map.get("type") {
        Some(Value::String(name)) => Types::named(name),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .fold(Types::NONE, |types, name| types.or(Types::named(name))),
        _ => Types::ALL,
    };
    if let Some(value) = map.get("const") {
        types = types.and(Types::of(value));
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        let listed = values
            .iter()
            .fold(Types::NONE, |types, value| types.or(Types::of(value)));
        types = types.and(listed);
    }
    types
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
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('.')
            .filter(|segment| !segment.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A path and what walking it gives: the types described, or where and why it stops.
    type Case = (
        &'static str,
        Result<&'static str, (&'static str, &'static str)>,
    );

    /// `Ok(types described)` or `Err((pointer, reason))`.
    fn at(schema: &Value, text: &str) -> Result<String, (String, String)> {
        types_at(schema, &path(text), Types::ALL)
            .map(Types::describe)
            .map_err(|impossible| (impossible.pointer, impossible.reason))
    }

    #[test]
    fn paths_follow_properties_items_and_additional_properties() {
        let schema = json!({
            "type": "object",
            "required": ["title"],
            "additionalProperties": false,
            "properties": {
                "title": {"type": "string"},
                "steps": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": false},
                "short": {"type": "array", "maxItems": 2},
                "open": {"type": "object"},
                "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                "maybe": {"type": ["object", "null"], "properties": {"x": {"type": "number"}}},
                "never": false,
            }
        });
        let cases: Vec<Case> = vec![
            ("", Ok("an object")),
            ("title", Ok("a string")),
            ("steps.0.name", Ok("a string")),
            ("steps.3.anything", Ok("any value")),
            ("pair.0", Ok("an integer")),
            ("pair.1", Ok("a boolean")),
            ("open.whatever.deep", Ok("any value")),
            ("labels.x", Ok("an integer")),
            ("maybe.x", Ok("a number")),
            ("short.1", Ok("any value")),
            (
                "titel",
                Err((
                    "/additionalProperties",
                    "there is no property `titel` and no other is allowed (the properties: title, steps, pair, short, open, labels, maybe, never)",
                )),
            ),
            (
                "title.length",
                Err((
                    "/properties/title",
                    "the value is a string, which has no field `length`",
                )),
            ),
            (
                "steps.first",
                Err((
                    "/properties/steps",
                    "the value is an array, whose items are read by their index (`.0`), not `.first`",
                )),
            ),
            (
                "pair.2",
                Err((
                    "/properties/pair/items",
                    "the schema is `false`: no value is valid there",
                )),
            ),
            (
                "short.2",
                Err((
                    "/properties/short/maxItems",
                    "the array holds at most 2 items, so there is no item 2",
                )),
            ),
            (
                "labels.x.y",
                Err((
                    "/properties/labels/additionalProperties",
                    "the value is an integer, which has no field `y`",
                )),
            ),
            (
                "never",
                Err((
                    "/properties/never",
                    "the schema is `false`: no value is valid there",
                )),
            ),
        ];
        for (text, expected) in cases {
            let expected = expected
                .map(str::to_string)
                .map_err(|(pointer, reason)| (pointer.to_string(), reason.to_string()));
            assert_eq!(at(&schema, text), expected, "path {text}");
        }
    }

    #[test]
    fn combinators_and_local_references() {
        let schema = json!({
            "$defs": {
                "step": {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string"}}},
                "node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "value": {"type": "integer"}}},
            },
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "step": {"$ref": "#/$defs/step"},
                "tree": {"$ref": "#/$defs/node"},
                "either": {"anyOf": [
                    {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}},
                    {"type": "object", "additionalProperties": false, "properties": {"b": {"type": "integer"}}},
                ]},
                "text": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                "both": {"allOf": [{"properties": {"x": {"type": ["string", "integer"]}}}, {"properties": {"x": {"type": "integer"}}}]},
                "remote": {"$ref": "https://example.com/schema.json"},
            }
        });
        let cases: Vec<Case> = vec![
            ("step.name", Ok("a string")),
            ("tree.child.child.child.value", Ok("an integer")),
            ("either.a", Ok("a string")),
            ("either.b", Ok("an integer")),
            ("text", Ok("a string or null")),
            ("both.x", Ok("an integer")),
            ("remote.anything", Ok("any value")),
            (
                "step.nmae",
                Err((
                    "/$defs/step/additionalProperties",
                    "there is no property `nmae` and no other is allowed (the properties: name)",
                )),
            ),
            (
                "tree.child.value.x",
                Err((
                    "/$defs/node/properties/value",
                    "the value is an integer, which has no field `x`",
                )),
            ),
            (
                "either.c",
                Err((
                    "/properties/either/anyOf",
                    "no branch of `anyOf` allows it (the first: at /properties/either/anyOf/0/additionalProperties, there is no property `c` and no other is allowed (the properties: a))",
                )),
            ),
            (
                "text.x",
                Err((
                    "/properties/text/oneOf",
                    "no branch of `oneOf` allows it (the first: at /properties/text/oneOf/0, the value is a string, which has no field `x`)",
                )),
            ),
        ];
        for (text, expected) in cases {
            let expected = expected
                .map(str::to_string)
                .map_err(|(pointer, reason)| (pointer.to_string(), reason.to_string()));
            assert_eq!(at(&schema, text), expected, "path {text}");
        }
    }

    #[test]
    fn kinds_restrict_the_value_itself() {
        let text = json!({"type": "string", "enum": ["a", "b"]});
        let reason = types_at(&text, &[], Types::OBJECT).unwrap_err().reason;
        assert_eq!(reason, "the value is a string");
        assert_eq!(
            types_at(&text, &[], Types::ALL.without(Types::OBJECT)),
            Ok(Types::STRING)
        );
        let any_number = json!({"type": "number"});
        assert_eq!(
            types_at(&any_number, &[], Types::ALL).map(Types::describe),
            Ok("a number".to_string())
        );
        assert_eq!(Types::of(&json!(1.0)), Types::INTEGER);
        assert_eq!(
            Types::STRING.or(Types::NULL).or(Types::OBJECT).describe(),
            "an object, a string or null"
        );
    }

    #[test]
    fn a_reference_cycle_without_progress_ends_within_the_budget() {
        let schema = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        assert_eq!(at(&schema, "x.y"), Ok("any value".to_string()));
        let pointers: Vec<String> = conjuncts(&schema)
            .into_iter()
            .map(|(_, pointer)| pointer)
            .collect();
        assert_eq!(pointers, ["", "/$defs/a", "/$defs/b"]);
    }
}
