//! The JSON Schemas a card publishes for its skills' input and output:
//! pallet's card extension [`SKILL_SCHEMAS_EXTENSION`] (in
//! `capabilities.extensions[]` of A2A 1.0 and 0.3 cards alike, its
//! `params.skills` mapping each skill id to `{input_schema, output_schema}`),
//! else the original project's `input_schema`/`output_schema` on the skill.
//! A schema is outside input: one that is too large, too deep or not a JSON
//! Schema counts as none, with a warning, and never fails a run.

use std::io;

use serde_json::{Map, Value};

/// The card extension that publishes the skills' JSON Schemas.
pub const SKILL_SCHEMAS_EXTENSION: &str = "urn:pallet:skill-schemas:v1";
/// The largest schema read from a card, as compact JSON; a larger one is ignored.
pub const MAX_SKILL_SCHEMA_BYTES: usize = 256 * 1024;
/// The deepest nesting of objects and arrays in a schema read from a card.
pub const MAX_SKILL_SCHEMA_DEPTH: usize = 64;

/// Why a published schema is not used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IgnoredSchema {
    #[error("it is larger than {MAX_SKILL_SCHEMA_BYTES} bytes as JSON (the limit)")]
    TooLarge,
    #[error("it nests deeper than {MAX_SKILL_SCHEMA_DEPTH} levels (the limit)")]
    TooDeep,
    #[error("it is not a JSON Schema: {0}")]
    Invalid(String),
}

/// `params.skills` of the card's schemas extension, when it has one.
pub(super) fn extension(card: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let extensions = card.get("capabilities")?.get("extensions")?.as_array()?;
    extensions
        .iter()
        .find(|extension| extension["uri"] == SKILL_SCHEMAS_EXTENSION)?
        .get("params")?
        .get("skills")?
        .as_object()
}

/// The schema `field` (`input_schema` or `output_schema`) of skill `id`:
/// from the extension, else from the skill's own entry; a schema that
/// cannot be used is left out with a warning naming the agent.
pub(super) fn published(
    agent: &str,
    id: &str,
    field: &str,
    extension: Option<&Map<String, Value>>,
    skill: &Value,
) -> Option<Value> {
    let present = |value: Option<&Value>| value.filter(|value| !value.is_null()).cloned();
    let declared = present(extension.and_then(|skills| skills.get(id)?.get(field)))
        .or_else(|| present(skill.get(field)))?;
    match checked(declared) {
        Ok(schema) => Some(schema),
        Err(reason) => {
            tracing::warn!(
                "agent `{agent}`: the {field} of skill `{id}` is ignored (its steps are not checked against it): {reason}"
            );
            None
        }
    }
}

/// `schema` when it is within the bounds and compiles as a JSON Schema.
pub fn checked(schema: Value) -> Result<Value, IgnoredSchema> {
    let mut size = ByteCount(0);
    // Stops writing at once past the limit: the count is all that matters.
    if serde_json::to_writer(&mut size, &schema).is_err() || size.0 > MAX_SKILL_SCHEMA_BYTES {
        return Err(IgnoredSchema::TooLarge);
    }
    if deeper_than(&schema, MAX_SKILL_SCHEMA_DEPTH) {
        return Err(IgnoredSchema::TooDeep);
    }
    jsonschema::validator_for(&schema)
        .map_err(|error| IgnoredSchema::Invalid(error.to_string()))?;
    Ok(schema)
}

/// Counts bytes written, failing past [`MAX_SKILL_SCHEMA_BYTES`].
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len();
        if self.0 > MAX_SKILL_SCHEMA_BYTES {
            return Err(io::Error::other("too large"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether objects and arrays nest more than `limit` levels in `value`
/// (serde_json's own bound of 128 keeps the recursion short).
fn deeper_than(value: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(fields) => Box::new(fields.values()),
        Value::Array(items) => Box::new(items.iter()),
        _ => return false,
    };
    if limit == 0 {
        return true;
    }
    children
        .into_iter()
        .any(|child| deeper_than(child, limit - 1))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        let mut schema = json!({"type": "string"});
        for _ in 0..levels {
            schema = json!({"type": "object", "properties": {"x": schema}});
        }
        schema
    }

    #[test]
    fn schemas_past_the_bounds_or_not_compiling_are_ignored() {
        let long = "x".repeat(MAX_SKILL_SCHEMA_BYTES);
        let cases = [
            (json!({"type": "object"}), Ok(())),
            (json!(true), Ok(())),
            (
                json!({"type": "string", "description": long}),
                Err(IgnoredSchema::TooLarge),
            ),
            // Each level of `nested` is two levels of JSON.
            (nested(MAX_SKILL_SCHEMA_DEPTH / 2 - 1), Ok(())),
            (
                nested(MAX_SKILL_SCHEMA_DEPTH / 2 + 1),
                Err(IgnoredSchema::TooDeep),
            ),
        ];
        for (schema, expected) in cases {
            let shown = schema.to_string().chars().take(80).collect::<String>();
            assert_eq!(checked(schema).map(|_| ()), expected, "{shown}");
        }
        let error = checked(json!({"type": 12})).unwrap_err();
        assert!(
            matches!(&error, IgnoredSchema::Invalid(reason) if reason.contains("12")),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("it is not a JSON Schema: "),
            "{error}"
        );
    }

    #[test]
    fn the_extension_comes_before_the_skill_entry() {
        let card = json!({"capabilities": {"extensions": [
            {"uri": "urn:other", "params": {"skills": {"s": {"input_schema": {"type": "string"}}}}},
            {"uri": SKILL_SCHEMAS_EXTENSION, "params": {"skills": {
                "s": {"input_schema": {"type": "object"}, "output_schema": null}}}},
        ]}});
        let extension = extension(card.as_object().unwrap());
        let skill = json!({"id": "s", "input_schema": {"type": "array"}, "output_schema": {"type": "number"}});
        assert_eq!(
            published("a", "s", "input_schema", extension, &skill),
            Some(json!({"type": "object"}))
        );
        // `null` in the extension is no schema there: the skill's own is used.
        assert_eq!(
            published("a", "s", "output_schema", extension, &skill),
            Some(json!({"type": "number"}))
        );
        let broken = json!({"id": "s", "input_schema": {"type": "nonsense"}});
        assert_eq!(published("a", "s", "input_schema", None, &broken), None);
    }
}
