//! The parts of an approval decision and of a runs filter given as arguments:
//! `--actor`, `--field NAME=VALUE`, `--status STATE`.

use serde_json::{Map, Value};

use crate::cli::printer::{BadInput, terminal_safe};
use crate::store::RunState;

/// Longest `--actor` accepted (characters).
pub const ACTOR_MAX_CHARS: usize = 128;

/// `--actor`, else `$USER`, else `unknown`. An actor is recorded with the
/// run and shown later: a given one with control characters, or longer than
/// [`ACTOR_MAX_CHARS`], is refused.
pub fn actor(given: Option<String>) -> anyhow::Result<String> {
    let acceptable =
        |name: &str| name.chars().count() <= ACTOR_MAX_CHARS && !name.chars().any(char::is_control);
    if let Some(name) = &given
        && (name.is_empty() || !acceptable(name))
    {
        return Err(BadInput::new(format!(
            "--actor `{}` is not a name: it is empty, has control characters or is longer than {ACTOR_MAX_CHARS} characters",
            terminal_safe(name)
        ))
        .hint("e.g. --actor ada")
        .into());
    }
    Ok(given
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.is_empty() && acceptable(name))
        .unwrap_or_else(|| "unknown".to_string()))
}

pub fn parse_fields(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut fields = Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            return Err(BadInput::new(format!("--field `{pair}` is not NAME=VALUE"))
                .hint("e.g. --field ticket=OPS-12")
                .into());
        };
        fields.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(fields)
}

/// `--status` as a run state.
pub fn parse_status(status: Option<&str>) -> anyhow::Result<Option<RunState>> {
    let Some(text) = status else {
        return Ok(None);
    };
    let state = RunState::parse(text).ok_or_else(|| {
        BadInput::new(format!("--status `{text}` is not a run state")).hint(format!(
            "one of {}",
            RunState::ALL.map(RunState::as_str).join(", ")
        ))
    })?;
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_name_value_pairs() {
        let cases: [(&[&str], Option<Value>); 4] = [
            (&[], Some(serde_json::json!({}))),
            (
                &["ticket=OPS-1", "note=a=b"],
                Some(serde_json::json!({"ticket": "OPS-1", "note": "a=b"})),
            ),
            (&["=value"], None),
            (&["novalue"], None),
        ];
        for (pairs, expected) in cases {
            let pairs: Vec<String> = pairs.iter().map(|pair| pair.to_string()).collect();
            let found = parse_fields(&pairs).ok().map(Value::Object);
            assert_eq!(found, expected, "{pairs:?}");
        }
    }
}
