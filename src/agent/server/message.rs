//! The client's message (A2A 1.0 JSON): checks it and turns its parts into
//! the skill's input.
//!
//! Each part gives one value: a data part its data; a text part the text as
//! a string when the skill's input schema has `type: string`, else the text
//! parsed as JSON when it is JSON, else `{"text": TEXT}`. One part is the
//! input as it is; several parts must each give an object, merged in order
//! (a key given by two parts is refused). File parts (`raw`, `url`) are not
//! accepted: skills take JSON.

use serde_json::{Map, Value};

use super::definition::SkillDefinition;
use super::errors::{CONTENT_TYPE_NOT_SUPPORTED, RpcError};

const ROLES: [&str; 2] = ["ROLE_USER", "ROLE_AGENT"];
const CONTENTS: [&str; 4] = ["text", "raw", "url", "data"];

/// Checks the message at `pointer` (e.g. `/params/message`) against the spec:
/// a `messageId`, a known `role`, at least one part, each with one content.
pub(super) fn check(message: Option<&Value>, pointer: &str) -> Result<(), RpcError> {
    let Some(message) = message.and_then(Value::as_object) else {
        return Err(RpcError::invalid_field(
            pointer,
            "a message object is required",
        ));
    };
    if message
        .get("messageId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let field = format!("{pointer}/messageId");
        return Err(RpcError::invalid_field(
            &field,
            "a non-empty string is required",
        ));
    }
    let role = message.get("role").and_then(Value::as_str);
    if !role.is_some_and(|role| ROLES.contains(&role)) {
        let field = format!("{pointer}/role");
        let problem = format!("must be one of {}", ROLES.join(", "));
        return Err(RpcError::invalid_field(&field, &problem));
    }
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| {
            RpcError::invalid_field(&format!("{pointer}/parts"), "at least one part is required")
        })?;
    for (index, part) in parts.iter().enumerate() {
        check_part(part, &format!("{pointer}/parts/{index}"))?;
    }
    Ok(())
}

fn check_part(part: &Value, pointer: &str) -> Result<(), RpcError> {
    let Some(part) = part.as_object() else {
        return Err(RpcError::invalid_field(pointer, "a part must be an object"));
    };
    let contents: Vec<&str> = CONTENTS
        .into_iter()
        .filter(|content| part.contains_key(*content))
        .collect();
    let problem = format!("a part needs exactly one of {}", CONTENTS.join(", "));
    let [content] = contents.as_slice() else {
        return Err(RpcError::invalid_field(pointer, &problem));
    };
    if *content != "data" && !part[*content].is_string() {
        let field = format!("{pointer}/{content}");
        return Err(RpcError::invalid_field(&field, "must be a string"));
    }
    Ok(())
}

/// The skill's input from the parts of a checked message.
pub(super) fn input_of(
    message: &Value,
    skill: &SkillDefinition,
    pointer: &str,
) -> Result<Value, RpcError> {
    let parts = message["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut values = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        values.push(part_value(
            part,
            skill,
            &format!("{pointer}/parts/{index}"),
        )?);
    }
    if values.len() == 1 {
        return Ok(values.remove(0));
    }
    let mut merged = Map::new();
    for (index, value) in values.into_iter().enumerate() {
        let field = format!("{pointer}/parts/{index}");
        let Value::Object(object) = value else {
            let problem = "with several parts, each part must give a JSON object (they are merged)";
            return Err(RpcError::invalid_field(&field, problem));
        };
        for (key, value) in object {
            if merged.insert(key.clone(), value).is_some() {
                let problem = format!("key `{key}` is given by an earlier part too");
                return Err(RpcError::invalid_field(&field, &problem));
            }
        }
    }
    Ok(Value::Object(merged))
}

fn part_value(part: &Value, skill: &SkillDefinition, pointer: &str) -> Result<Value, RpcError> {
    if let Some(data) = part.get("data") {
        return Ok(data.clone());
    }
    let Some(text) = part.get("text").and_then(Value::as_str) else {
        let message = format!(
            "file parts are not supported at `{pointer}`: skill `{}` takes JSON; send a data or text part",
            skill.id
        );
        return Err(RpcError::new(CONTENT_TYPE_NOT_SUPPORTED, message));
    };
    Ok(text_value(text, skill.input_schema.as_ref()))
}

fn text_value(text: &str, schema: Option<&Value>) -> Value {
    let wants_string = schema.and_then(|schema| schema.get("type")) == Some(&Value::from("string"));
    if wants_string {
        return Value::String(text.to_string());
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::json!({"text": text}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_are_checked_field_by_field() {
        let good = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]});
        assert_eq!(check(Some(&good), "/params/message"), Ok(()));
        let cases = [
            (json!(null), "/params/message"),
            (
                json!({"role": "ROLE_USER", "parts": [{"text": "a"}]}),
                "/params/message/messageId",
            ),
            (
                json!({"messageId": "m", "parts": [{"text": "a"}]}),
                "/params/message/role",
            ),
            (
                json!({"messageId": "m", "role": "user", "parts": [{"text": "a"}]}),
                "/params/message/role",
            ),
            (
                json!({"messageId": "m", "role": "ROLE_USER"}),
                "/params/message/parts",
            ),
            (
                json!({"messageId": "m", "role": "ROLE_USER", "parts": []}),
                "/params/message/parts",
            ),
            (
                json!({"messageId": "m", "role": "ROLE_USER", "parts": [{}]}),
                "/params/message/parts/0",
            ),
            (
                json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a"}, {"text": "a", "data": 1}]}),
                "/params/message/parts/1",
            ),
            (
                json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": 3}]}),
                "/params/message/parts/0/text",
            ),
        ];
        for (message, pointer) in cases {
            let error = check(Some(&message), "/params/message").unwrap_err();
            assert_eq!(error.field.as_deref(), Some(pointer), "for {message}");
            assert!(error.message.contains(pointer), "{}", error.message);
        }
    }

    #[test]
    fn one_part_is_the_input_and_several_merge_their_objects() {
        let yaml = "name: a\ndescription: d\nskills:\n  - id: s\n    run: [cat]\n";
        let path = std::path::Path::new("agent.yaml");
        let definition = super::super::definition::AgentDefinition::from_text(yaml, path, path)
            .expect("a valid definition");
        let skill = &definition.skills[0];
        let input = |parts: Value| input_of(&json!({"parts": parts}), skill, "/message");
        assert_eq!(input(json!([{"data": [1]}])), Ok(json!([1])));
        assert_eq!(
            input(json!([{"text": "hi"}, {"data": {"b": 2}}])),
            Ok(json!({"text": "hi", "b": 2}))
        );
        let error = input(json!([{"data": {"a": 1}}, {"data": [2]}])).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("/message/parts/1"));
        let error = input(json!([{"data": {"a": 1}}, {"text": "{\"a\": 2}"}])).unwrap_err();
        assert!(error.message.contains("key `a`"), "{}", error.message);
        let error = input(json!([{"raw": "AA=="}])).unwrap_err();
        assert_eq!(error.code, CONTENT_TYPE_NOT_SUPPORTED);
    }

    #[test]
    fn text_is_json_a_string_or_a_text_object() {
        let string_schema = json!({"type": "string"});
        let cases = [
            ("{\"a\": 1}", None, json!({"a": 1})),
            ("[1, 2]", None, json!([1, 2])),
            ("hello", None, json!({"text": "hello"})),
            ("hello", Some(&string_schema), json!("hello")),
            ("{\"a\": 1}", Some(&string_schema), json!("{\"a\": 1}")),
        ];
        for (text, schema, expected) in cases {
            assert_eq!(text_value(text, schema), expected, "for {text}");
        }
    }
}
