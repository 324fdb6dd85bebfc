//! What `pallet agent serve` declares in its card when it requires a token:
//! one HTTP bearer scheme, required for every call (A2A 1.0 shapes).

use serde_json::{Value, json};

/// The scheme's name in the card.
const SCHEME: &str = "bearer";

/// `card` with `securitySchemes` and `securityRequirements` naming the bearer
/// token when `token_required`; unchanged otherwise.
pub(super) fn declared(mut card: Value, token_required: bool) -> Value {
    if token_required && let Some(fields) = card.as_object_mut() {
        fields.insert(
            "securitySchemes".to_string(),
            json!({SCHEME: {"httpAuthSecurityScheme": {
                "scheme": "Bearer",
                "description": "the token the agent was started with (PALLET_AGENT_TOKEN)",
            }}}),
        );
        fields.insert(
            "securityRequirements".to_string(),
            json!([{"schemes": {SCHEME: {"list": []}}}]),
        );
    }
    card
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_token_is_declared_and_pallet_reads_it() {
        let card = json!({"name": "a", "supportedInterfaces": [{"url": "http://h/", "protocolBinding": "JSONRPC"}]});
        assert_eq!(declared(card.clone(), false), card);
        let secured = declared(card, true);
        let parsed = crate::agent::AgentCard::parse("http://h/", &secured).unwrap();
        let asked = parsed.auth.security.missing(&[], None).unwrap();
        assert_eq!(asked, "HTTP bearer (scheme `bearer`)");
    }
}
