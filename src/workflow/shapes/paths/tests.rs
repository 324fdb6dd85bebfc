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
