//! A run's input: `--input-json`, then each `--input`, then the positional requirements.

use std::io::Read;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::cli::args::RunArgs;
use crate::cli::printer::BadInput;
use crate::workflow::Inputs;

/// `--input-json` first, then each `--input`, then the positional requirements.
pub fn resolve_input(args: &RunArgs) -> anyhow::Result<Value> {
    let mut input = match &args.input_json {
        Some(source) => read_input_json(source)?,
        None => Map::new(),
    };
    for pair in &args.inputs {
        let (key, value) = parse_input(pair)?;
        input.insert(key, value);
    }
    if let Some(requirements) = &args.requirements {
        input.insert("requirements".into(), Value::String(requirements.clone()));
    }
    Ok(Value::Object(input))
}

fn read_input_json(source: &str) -> anyhow::Result<Map<String, Value>> {
    let (name, text) = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the input JSON from stdin")?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("cannot read input JSON file {source}"))?;
        (source.to_string(), text)
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BadInput::new(format!(
            "input JSON from {name} is not an object (found {})",
            json_kind(&other)
        ))
        .hint("the workflow input is an object, e.g. {\"requirements\": \"...\"}")
        .into()),
        Err(error) => Err(BadInput::new(format!(
            "input JSON from {name} is not valid JSON at line {} column {}: {error}",
            error.line(),
            error.column()
        ))
        .into()),
    }
}

/// `input` with each `--input KEY=TEXT` read as a number or boolean where
/// the workflow's `inputs` type KEY as one (and only as such: not also as a
/// string), as `workflow_dispatch` reads typed inputs; `KEY:=JSON` and
/// `--input-json` are taken as they are.
pub fn typed_text_inputs(args: &RunArgs, inputs: Option<&Inputs>, mut input: Value) -> Value {
    let (Some(inputs), Value::Object(fields)) = (inputs, &mut input) else {
        return input;
    };
    for pair in &args.inputs {
        let Some(equals) = pair.find('=') else {
            continue;
        };
        let (key, text) = (&pair[..equals], &pair[equals + 1..]);
        if key.ends_with(':') {
            continue;
        }
        let Some(schema) = inputs.field_schema(key) else {
            continue;
        };
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(name)) => vec![name.as_str()],
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        if types.contains(&"string") {
            continue;
        }
        let typed = serde_json::from_str::<Value>(text.trim())
            .ok()
            .filter(|value| {
                types.iter().any(|name| match *name {
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    _ => false,
                })
            });
        // The last `--input` of a key is the one kept, as in `resolve_input`.
        if let Some(typed) = typed
            && fields.get(key) == Some(&Value::String(text.to_string()))
        {
            fields.insert(key.to_string(), typed);
        }
    }
    input
}

/// `key=text` is a string; `key:=JSON` a typed value.
fn parse_input(pair: &str) -> anyhow::Result<(String, Value)> {
    let bad = || {
        BadInput::new(format!("--input `{pair}` is not KEY=VALUE or KEY:=JSON"))
            .hint("e.g. --input name=Ada or --input 'count:=3'")
    };
    let Some(equals) = pair.find('=') else {
        return Err(bad().into());
    };
    let (key, value) = (&pair[..equals], &pair[equals + 1..]);
    if let Some(key) = key.strip_suffix(':') {
        if key.is_empty() {
            return Err(bad().into());
        }
        let value = serde_json::from_str(value).map_err(|error| {
            BadInput::new(format!(
                "--input `{pair}`: the value after `:=` is not JSON ({error})"
            ))
            .hint("quote strings as JSON (key:='\"text\"') or use key=text")
        })?;
        return Ok((key.to_string(), value));
    }
    if key.is_empty() {
        return Err(bad().into());
    }
    Ok((key.to_string(), Value::String(value.to_string())))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
