//! A bearer-token server for `docker-registry`'s `auth.token` mode: grants
//! RS256 JWTs (signed with a throwaway key by the `openssl` CLI, certificate
//! in the `x5c` header) to one user, for the scopes asked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

pub const TOKEN_SERVICE: &str = "pallet-test";
pub const TOKEN_ISSUER: &str = "pallet-test-issuer";

struct Issuer {
    key: PathBuf,
    certificate_der: Vec<u8>,
    expected_authorization: String,
}

pub struct TokenServer {
    pub address: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TokenServer {
    /// Writes `token.key` and `token.crt` (the registry's root bundle) into `directory`.
    pub async fn start(directory: &Path, username: &str, password: &str) -> TokenServer {
        let key = directory.join("token.key");
        let certificate = directory.join("token.crt");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pallet-test-token",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &certificate.display().to_string(),
        ]);
        let certificate_der = openssl(&[
            "x509",
            "-in",
            &certificate.display().to_string(),
            "-outform",
            "DER",
        ]);
        let issuer = Arc::new(Issuer {
            key,
            certificate_der,
            expected_authorization: format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            ),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let address = listener.local_addr().expect("token server address");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/token", get(grant)).with_state(issuer);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        TokenServer {
            address,
            _shutdown: shutdown,
        }
    }
}

async fn grant(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    if authorization != Some(issuer.expected_authorization.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let access: Vec<serde_json::Value> = query
        .iter()
        .filter(|(name, _)| name == "scope")
        .flat_map(|(_, scope)| scope.split(' '))
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = chrono::Utc::now().timestamp();
    let header =
        json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&issuer.certificate_der)]});
    let claims = json!({
        "iss": TOKEN_ISSUER, "sub": "test", "aud": TOKEN_SERVICE, "exp": now + 300, "nbf": now - 10,
        "iat": now, "jti": uuid::Uuid::new_v4().to_string(), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(&issuer.key, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    axum::Json(json!({"token": token, "access_token": token})).into_response()
}

/// RS256 = RSASSA-PKCS1-v1_5 over SHA-256, exactly what `openssl dgst -sign` writes.
fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write signing input");
    let output = child.wait_with_output().expect("openssl signs");
    assert!(output.status.success(), "openssl dgst failed");
    output.stdout
}

fn openssl(arguments: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(arguments)
        .stderr(Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(output.status.success(), "openssl {arguments:?} failed");
    output.stdout
}
