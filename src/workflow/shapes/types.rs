//! Sets of JSON types, as a schema allows them and as messages name them.

use serde_json::{Map, Value};

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

    /// The types `type`, `const` and `enum` allow (all when none is given).
    pub fn declared(map: &Map<String, Value>) -> Types {
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
