//! Agent authentication, client side: the security schemes and requirements
//! a card declares (A2A 1.0 `securitySchemes` + `securityRequirements`, A2A
//! 0.3 `securitySchemes` + `security`, also per skill), and the one header
//! pallet sends for a configured secret, only to the agent's own origin.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::credentials::Secret;

/// One scheme a card declares, by its name in `securitySchemes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub name: String,
    pub kind: SchemeKind,
}

/// The kinds of scheme pallet can answer, and the others by what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeKind {
    Bearer,
    Basic,
    /// An API key in the named request header.
    ApiKeyHeader {
        header: String,
    },
    /// Declared, but pallet cannot answer it (OAuth 2.0, OpenID Connect,
    /// mutual TLS, an API key in a query or cookie, another HTTP scheme).
    Unsupported {
        what: String,
    },
}

/// What a card asks: its schemes and its requirements. A requirement lists
/// alternatives; each alternative names schemes that must all be used (an
/// empty one means no credential is needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub schemes: Vec<Scheme>,
    pub requirements: Vec<Vec<String>>,
}

/// An agent's side of authentication: what its card asks, and the header
/// configured for it (none until discovery found a secret).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Auth {
    pub security: Security,
    pub authentication: Option<Authentication>,
}

/// The header pallet sends to one agent, and where it may go.
#[derive(Clone)]
pub struct Authentication {
    /// The only origin (scheme, host, port) that receives the header.
    origin: url::Origin,
    header: HeaderName,
    value: HeaderValue,
    /// The name of the scheme it answers.
    pub scheme: String,
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value.
        formatter
            .debug_struct("Authentication")
            .field("origin", &self.origin.ascii_serialization())
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl PartialEq for Authentication {
    fn eq(&self, other: &Authentication) -> bool {
        self.origin == other.origin && self.header == other.header && self.scheme == other.scheme
    }
}

impl Authentication {
    /// Adds the header when `request` goes to the agent's own origin, and
    /// says whether it did; any other origin (an interface the card puts
    /// elsewhere) gets nothing.
    pub fn apply(&self, request: &mut reqwest::Request) -> bool {
        let own = request.url().origin() == self.origin;
        if own {
            request
                .headers_mut()
                .insert(self.header.clone(), self.value.clone());
        }
        own
    }

    /// Whether a request to `url` carries the header.
    pub fn is_sent_to(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|url| url.origin() == self.origin)
    }
}

impl Security {
    /// Reads a card's (or a skill's) security fields, in either version's shape.
    pub fn parse(object: &Map<String, Value>) -> Security {
        let schemes = object
            .get("securitySchemes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, scheme)| Scheme {
                name: name.clone(),
                kind: scheme_kind(scheme),
            })
            .collect();
        Security {
            schemes,
            requirements: requirements(object),
        }
    }

    fn scheme(&self, name: &str) -> Option<&Scheme> {
        self.schemes.iter().find(|scheme| scheme.name == name)
    }

    /// The header for `secret`: the first scheme the requirements name (then
    /// the skills' requirements, then any declared scheme) that the secret can
    /// answer. A card that declares no scheme gets a token as a bearer token,
    /// since the user configured one for it.
    pub fn authenticate(
        &self,
        skills: &[&[Vec<String>]],
        secret: &Secret,
        origin: url::Origin,
    ) -> Option<Authentication> {
        let required = std::iter::once(self.requirements.as_slice()).chain(skills.iter().copied());
        let named = required.flatten().flatten().map(String::as_str);
        let declared = self.schemes.iter().map(|scheme| scheme.name.as_str());
        let mut candidates = named.chain(declared).filter_map(|name| self.scheme(name));
        let (header, value, scheme) = if self.schemes.is_empty() {
            let Secret::Token(token) = secret else {
                return None;
            };
            (
                AUTHORIZATION,
                format!("Bearer {token}"),
                "bearer".to_string(),
            )
        } else {
            candidates.find_map(|scheme| {
                let (header, value) = header_for(&scheme.kind, secret)?;
                Some((header, value, scheme.name.clone()))
            })?
        };
        let mut value = HeaderValue::from_str(&value).ok()?;
        // Kept out of Debug output and of HTTP/2 header compression tables.
        value.set_sensitive(true);
        Some(Authentication {
            origin,
            header,
            value,
            scheme,
        })
    }

    /// What is missing to call a skill whose own requirements are
    /// `skill_requirements` (they replace the card's when given), described
    /// for messages; `None` when nothing is required or `authentication`
    /// answers one alternative.
    pub fn missing(
        &self,
        skill_requirements: &[Vec<String>],
        authentication: Option<&Authentication>,
    ) -> Option<String> {
        let requirements = if skill_requirements.is_empty() {
            &self.requirements
        } else {
            skill_requirements
        };
        if requirements.is_empty() || requirements.iter().any(Vec::is_empty) {
            return None;
        }
        let answered = authentication.is_some_and(|authentication| {
            requirements.iter().any(|alternative| {
                alternative
                    .iter()
                    .all(|name| *name == authentication.scheme)
            })
        });
        (!answered).then(|| self.describe(requirements))
    }

    /// `HTTP bearer (scheme `token`) or API key in header X-API-Key (scheme `key`)`.
    pub fn describe(&self, requirements: &[Vec<String>]) -> String {
        let alternatives: Vec<String> = requirements
            .iter()
            .map(|alternative| {
                let schemes: Vec<String> = alternative
                    .iter()
                    .map(|name| match self.scheme(name) {
                        Some(scheme) => format!("{} (scheme `{name}`)", scheme.kind.describe()),
                        None => format!("the undeclared scheme `{name}`"),
                    })
                    .collect();
                schemes.join(" and ")
            })
            .collect();
        alternatives.join(" or ")
    }

    /// What the card asks for, for a 401/403 message: its requirements, else its schemes.
    pub fn asked(&self) -> Option<String> {
        if !self.requirements.is_empty() {
            return Some(self.describe(&self.requirements));
        }
        let all: Vec<Vec<String>> = self
            .schemes
            .iter()
            .map(|scheme| vec![scheme.name.clone()])
            .collect();
        (!all.is_empty()).then(|| self.describe(&all))
    }

    /// Whether every alternative of `requirements` needs HTTP basic, so the
    /// hint names a user name and password rather than a token.
    pub fn asks_for_basic(&self, requirements: &[Vec<String>]) -> bool {
        let basic = |name: &String| {
            self.scheme(name)
                .is_some_and(|scheme| scheme.kind == SchemeKind::Basic)
        };
        !requirements.is_empty()
            && requirements
                .iter()
                .all(|alternative| alternative.iter().any(basic))
    }

    /// Whether the card asks only for kinds pallet cannot answer.
    pub fn only_unsupported(&self, requirements: &[Vec<String>]) -> bool {
        !requirements.is_empty()
            && requirements.iter().all(|alternative| {
                alternative.iter().any(|name| {
                    self.scheme(name)
                        .is_none_or(|scheme| matches!(scheme.kind, SchemeKind::Unsupported { .. }))
                })
            })
    }
}

impl SchemeKind {
    pub fn describe(&self) -> String {
        match self {
            SchemeKind::Bearer => "HTTP bearer".to_string(),
            SchemeKind::Basic => "HTTP basic".to_string(),
            SchemeKind::ApiKeyHeader { header } => format!("API key in header {header}"),
            SchemeKind::Unsupported { what } => format!("{what}, which pallet does not support"),
        }
    }
}

/// The header answering `kind` with `secret`, when it can.
fn header_for(kind: &SchemeKind, secret: &Secret) -> Option<(HeaderName, String)> {
    use base64::Engine as _;
    match (kind, secret) {
        (SchemeKind::Bearer, Secret::Token(token)) => {
            Some((AUTHORIZATION, format!("Bearer {token}")))
        }
        (SchemeKind::ApiKeyHeader { header }, Secret::Token(token)) => Some((
            HeaderName::from_bytes(header.as_bytes()).ok()?,
            token.clone(),
        )),
        (SchemeKind::Basic, Secret::Basic { username, password }) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            Some((AUTHORIZATION, format!("Basic {encoded}")))
        }
        _ => None,
    }
}

/// One scheme in the 1.0 shape (`{"httpAuthSecurityScheme": {"scheme": ..}}`,
/// also snake_case) or the 0.3 one (`{"type": "http", "scheme": ..}`).
fn scheme_kind(scheme: &Value) -> SchemeKind {
    let field = |camel: &str, snake: &str| scheme.get(camel).or_else(|| scheme.get(snake));
    let unsupported = |what: &str| SchemeKind::Unsupported {
        what: what.to_string(),
    };
    if let Some(http) = field("httpAuthSecurityScheme", "http_auth_security_scheme") {
        return http_kind(http["scheme"].as_str());
    }
    if let Some(key) = field("apiKeySecurityScheme", "api_key_security_scheme") {
        return api_key_kind(key["location"].as_str(), key["name"].as_str());
    }
    if field("oauth2SecurityScheme", "oauth2_security_scheme").is_some() {
        return unsupported("OAuth 2.0");
    }
    if field(
        "openIdConnectSecurityScheme",
        "open_id_connect_security_scheme",
    )
    .is_some()
    {
        return unsupported("OpenID Connect");
    }
    if field("mtlsSecurityScheme", "mtls_security_scheme").is_some() {
        return unsupported("mutual TLS");
    }
    match scheme["type"].as_str() {
        Some("http") => http_kind(scheme["scheme"].as_str()),
        Some("apiKey") => api_key_kind(scheme["in"].as_str(), scheme["name"].as_str()),
        Some("oauth2") => unsupported("OAuth 2.0"),
        Some("openIdConnect") => unsupported("OpenID Connect"),
        Some("mutualTLS") => unsupported("mutual TLS"),
        Some(other) => unsupported(&format!("the scheme type `{other}`")),
        None => unsupported("an unreadable scheme"),
    }
}

fn http_kind(scheme: Option<&str>) -> SchemeKind {
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("bearer") => SchemeKind::Bearer,
        Some("basic") => SchemeKind::Basic,
        other => SchemeKind::Unsupported {
            what: format!("HTTP {}", other.unwrap_or("(no scheme)")),
        },
    }
}

fn api_key_kind(location: Option<&str>, name: Option<&str>) -> SchemeKind {
    match (location, name) {
        (Some(location), Some(name))
            if location.eq_ignore_ascii_case("header")
                && HeaderName::from_bytes(name.as_bytes()).is_ok() =>
        {
            SchemeKind::ApiKeyHeader {
                header: name.to_string(),
            }
        }
        // A key in a URL would show in every error message that names the URL.
        (Some(location), Some(name)) => SchemeKind::Unsupported {
            what: format!("API key in {location} `{name}`"),
        },
        _ => SchemeKind::Unsupported {
            what: "API key without location or name".to_string(),
        },
    }
}

/// 1.0 `securityRequirements: [{"schemes": {NAME: {"list": [..]}}}]` or 0.3
/// `security: [{NAME: [..]}]`; the scopes are OAuth's, which pallet does not speak.
pub fn requirements(object: &Map<String, Value>) -> Vec<Vec<String>> {
    let names = |requirement: &Map<String, Value>| requirement.keys().cloned().collect();
    if let Some(list) = object.get("securityRequirements").and_then(Value::as_array) {
        return list
            .iter()
            .filter_map(|requirement| {
                requirement
                    .get("schemes")
                    .and_then(Value::as_object)
                    .map(names)
            })
            .collect();
    }
    object
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|requirement| requirement.as_object().map(names))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn security(card: Value) -> Security {
        Security::parse(card.as_object().unwrap())
    }

    fn origin() -> url::Origin {
        url::Url::parse("http://127.0.0.1:9000/").unwrap().origin()
    }

    #[test]
    fn schemes_in_both_versions() {
        let cases = [
            (
                json!({"httpAuthSecurityScheme": {"scheme": "Bearer"}}),
                SchemeKind::Bearer,
            ),
            (
                json!({"http_auth_security_scheme": {"scheme": "basic"}}),
                SchemeKind::Basic,
            ),
            (
                json!({"apiKeySecurityScheme": {"location": "header", "name": "X-API-Key"}}),
                SchemeKind::ApiKeyHeader {
                    header: "X-API-Key".into(),
                },
            ),
            (
                json!({"type": "http", "scheme": "bearer"}),
                SchemeKind::Bearer,
            ),
            (
                json!({"type": "http", "scheme": "Basic"}),
                SchemeKind::Basic,
            ),
            (
                json!({"type": "apiKey", "in": "header", "name": "X-Key"}),
                SchemeKind::ApiKeyHeader {
                    header: "X-Key".into(),
                },
            ),
        ];
        for (scheme, expected) in cases {
            assert_eq!(scheme_kind(&scheme), expected, "{scheme}");
        }
        let unsupported = [
            (json!({"oauth2SecurityScheme": {"flows": {}}}), "OAuth 2.0"),
            (json!({"type": "oauth2"}), "OAuth 2.0"),
            (json!({"openIdConnectSecurityScheme": {}}), "OpenID Connect"),
            (json!({"type": "mutualTLS"}), "mutual TLS"),
            (
                json!({"type": "apiKey", "in": "query", "name": "key"}),
                "API key in query `key`",
            ),
            (json!({"type": "http", "scheme": "digest"}), "HTTP digest"),
        ];
        for (scheme, expected) in unsupported {
            let kind = scheme_kind(&scheme);
            assert_eq!(
                kind,
                SchemeKind::Unsupported {
                    what: expected.into()
                },
                "{scheme}"
            );
            assert!(kind.describe().contains("which pallet does not support"));
        }
    }

    #[test]
    fn requirements_in_both_versions() {
        let version_1 = json!({"securityRequirements": [
            {"schemes": {"token": {"list": []}}},
            {"schemes": {"key": {"list": []}, "basic": {"list": []}}}]});
        assert_eq!(
            requirements(version_1.as_object().unwrap()),
            [
                vec!["token".to_string()],
                vec!["key".to_string(), "basic".to_string()]
            ]
        );
        let version_03 = json!({"security": [{"token": []}, {}]});
        assert_eq!(
            requirements(version_03.as_object().unwrap()),
            [vec!["token".to_string()], vec![]]
        );
    }

    #[test]
    fn a_secret_answers_the_scheme_it_fits() {
        let card = security(json!({
            "securitySchemes": {
                "basic": {"httpAuthSecurityScheme": {"scheme": "Basic"}},
                "key": {"apiKeySecurityScheme": {"location": "header", "name": "X-API-Key"}}},
            "securityRequirements": [{"schemes": {"basic": {"list": []}}}, {"schemes": {"key": {"list": []}}}]}));
        let token = Secret::Token("t0ken".into());
        let by_key = card.authenticate(&[], &token, origin()).unwrap();
        assert_eq!(
            (by_key.header.as_str(), by_key.scheme.as_str()),
            ("x-api-key", "key")
        );
        assert!(by_key.value.is_sensitive());
        assert!(!format!("{by_key:?}").contains("t0ken"));
        let basic = Secret::Basic {
            username: "bob".into(),
            password: "pw".into(),
        };
        let by_basic = card.authenticate(&[], &basic, origin()).unwrap();
        assert_eq!(by_basic.value, "Basic Ym9iOnB3");
        assert_eq!(card.missing(&[], Some(&by_key)), None);
        assert!(
            card.missing(&[], None).unwrap().contains(
                "HTTP basic (scheme `basic`) or API key in header X-API-Key (scheme `key`)"
            )
        );
        let undeclared = security(json!({}));
        assert_eq!(
            undeclared
                .authenticate(&[], &token, origin())
                .unwrap()
                .value,
            "Bearer t0ken"
        );
        assert_eq!(undeclared.missing(&[], None), None);
    }

    #[test]
    fn what_a_hint_should_ask_for() {
        let card = security(json!({"securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "token": {"type": "http", "scheme": "bearer"},
            "oauth": {"type": "oauth2", "flows": {}}}}));
        let names = |alternatives: &[&[&str]]| -> Vec<Vec<String>> {
            alternatives
                .iter()
                .map(|names| names.iter().map(|name| name.to_string()).collect())
                .collect()
        };
        assert!(card.asks_for_basic(&names(&[&["basic"]])));
        assert!(!card.asks_for_basic(&names(&[&["basic"], &["token"]])));
        assert!(card.only_unsupported(&names(&[&["oauth"]])));
        assert!(card.only_unsupported(&names(&[&["oauth", "token"], &["missing"]])));
        assert!(!card.only_unsupported(&names(&[&["oauth"], &["token"]])));
        assert!(
            card.describe(&names(&[&["oauth"]]))
                .contains("OAuth 2.0, which pallet does not support (scheme `oauth`)")
        );
    }

    #[test]
    fn skills_requirements_replace_the_cards() {
        let card = security(json!({
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}}));
        let skill = vec![vec!["token".to_string()]];
        assert_eq!(card.missing(&[], None), None);
        assert!(card.missing(&skill, None).unwrap().contains("HTTP bearer"));
        let token = Secret::Token("t".into());
        let authentication = card.authenticate(&[&skill], &token, origin());
        assert_eq!(card.missing(&skill, authentication.as_ref()), None);
    }

    #[test]
    fn the_header_goes_only_to_its_origin() {
        let card =
            security(json!({"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}}));
        let authentication = card
            .authenticate(&[], &Secret::Token("t".into()), origin())
            .unwrap();
        let client = crate::agent::client::http_client();
        for (url, sent) in [
            ("http://127.0.0.1:9000/rpc", true),
            ("http://127.0.0.1:9001/rpc", false),
            ("https://127.0.0.1:9000/rpc", false),
            ("http://localhost:9000/rpc", false),
        ] {
            let mut request = client.get(url).build().unwrap();
            assert_eq!(authentication.apply(&mut request), sent, "{url}");
            assert_eq!(request.headers().contains_key(AUTHORIZATION), sent, "{url}");
            assert_eq!(authentication.is_sent_to(url), sent, "{url}");
        }
    }
}
