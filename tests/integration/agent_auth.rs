//! Agent authentication against real peers: `pallet agent serve` with a
//! token, the JS SDK agent with an API key, and agents that would pass the
//! credential to another origin. The secret must never show in output, logs
//! or run records.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::TestContext;
use crate::support::hostile_agent::{Answer, HostileAgent};
use crate::support::process::Running;
use crate::support::sdk_peer::SdkPeer;

const TOKEN: &str = "pallet-auth-test-token-5d1c9a7e";

fn write_workflow(home: &TestContext, skill: &str) {
    let text = format!(
        "metadata: {{id: auth, name: Auth, version: 1.0.0}}\nsteps:\n  - {{id: call, skill: {skill}, inputs: {{requirements: a factorial function}}, retry: {{max_attempts: 3}}}}\n"
    );
    std::fs::write(home.join("auth.yaml"), text).unwrap();
}

/// `pallet run --file auth.yaml --agent URL --offline` with `env` and `-v`, trace logs.
async fn run(home: &TestContext, agent: &str, env: &[(&str, &str)]) -> Output {
    run_with(home, &["--agent", agent], env).await
}

/// The same with `agents` naming the agents.
async fn run_with(home: &TestContext, agents: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = home.pallet();
    command
        .args(["-v", "run", "--file", "auth.yaml", "--offline"])
        .args(agents)
        .env("RUST_LOG", "trace");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || {
        crate::support::process::output_within(command, Duration::from_secs(60))
            .expect("pallet run ends")
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `dir` (run database, its journal, outputs), searched for `secret`.
fn files_holding(dir: &Path, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, secret));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn start_token_agent(home: &TestContext) -> (Running, String) {
    let definition = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/plan.yaml");
    let mut command = home.pallet();
    command
        .args(["agent", "serve"])
        .arg(definition)
        .args(["--addr", "127.0.0.1:0"])
        .env("PALLET_AGENT_TOKEN", TOKEN);
    Running::until_line(command, "agent `plan` listening on ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_protected_pallet_agent_needs_its_token_and_never_shows_it() {
    let home = TestContext::new();
    let (_agent, base) = start_token_agent(&home);
    write_workflow(&home, "create_plan");

    let missing = run(&home, &base, &[]).await;
    let report = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{report}");
    for expected in [
        "skill `create_plan` is offered only by agents that need a credential pallet does not have",
        "`plan` at ",
        "asks for HTTP bearer (scheme `bearer`)",
        "set PALLET_AGENT_TOKEN_PLAN",
        "credentials.yaml",
    ] {
        assert!(report.contains(expected), "{expected}: {report}");
    }

    let by_env = run(&home, &base, &[("PALLET_AGENT_TOKEN_PLAN", TOKEN)]).await;
    let report = text(&by_env);
    assert_eq!(by_env.status.code(), Some(0), "{report}");
    assert!(!report.contains(TOKEN), "{report}");
    assert!(
        report.contains("TRACE http1 handshake complete"),
        "the HTTP client's trace logs were searched too: {report}"
    );

    let wrong = run(
        &home,
        &base,
        &[("PALLET_AGENT_TOKEN_PLAN", "not-the-token-not-the-token")],
    )
    .await;
    let report = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{report}");
    assert!(
        report.contains("agent `plan` refused skill `create_plan` with HTTP 401 Unauthorized: it asks for HTTP bearer (scheme `bearer`), pallet sent the credential for scheme `bearer` (WWW-Authenticate: Bearer)"),
        "{report}"
    );
    assert!(!report.contains("not-the-token"), "{report}");
    assert!(
        !report.contains("retrying"),
        "a 401 is not transient: {report}"
    );

    let config = home.join("config/pallet");
    std::fs::create_dir_all(&config).unwrap();
    let credentials = config.join("credentials.yaml");
    std::fs::write(
        &credentials,
        format!("agents:\n  plan:\n    url: {base}\n    token: {TOKEN}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let readable = run(&home, &base, &[]).await;
    let report = text(&readable);
    assert_eq!(readable.status.code(), Some(2), "{report}");
    assert!(
        report.contains("can be read by other users (mode 644)"),
        "{report}"
    );
    assert!(report.contains("chmod 600"), "{report}");
    assert!(!report.contains(TOKEN), "{report}");

    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let by_file = run(&home, &base, &[]).await;
    let report = text(&by_file);
    assert_eq!(by_file.status.code(), Some(0), "{report}");
    assert!(!report.contains(TOKEN), "{report}");

    // The run database (and everything else pallet wrote) never holds it.
    let holding = files_holding(&home.join("data"), TOKEN);
    assert!(holding.is_empty(), "{holding:?}");
    let holding = files_holding(&home.join("state"), TOKEN);
    assert!(holding.is_empty(), "{holding:?}");
}

/// A card whose interface is on another port, and an agent that redirects
/// the call to another port: the other server never sees the credential,
/// while the agent's own origin does.
#[tokio::test(flavor = "multi_thread")]
async fn the_credential_never_goes_to_another_origin() {
    let home = TestContext::new();
    write_workflow(&home, "big");
    let other = HostileAgent::a2a(Answer::Small).await;
    let env = [("PALLET_AGENT_TOKEN_HOSTILE", TOKEN)];

    let elsewhere =
        HostileAgent::a2a_with_interface(Answer::Small, &format!("{}/rpc", other.url())).await;
    let output = run(&home, &elsewhere.url(), &env).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(other.rpc_calls("SendMessage") > 0, "{:?}", other.received());

    let redirecting = HostileAgent::a2a(Answer::Redirect {
        status: 307,
        location: format!("{}/rpc", other.url()),
    })
    .await;
    let output = run(&home, &redirecting.url(), &env).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let own: Vec<_> = redirecting
        .received()
        .into_iter()
        .filter(|request| request.rpc_method.as_deref() == Some("SendMessage"))
        .collect();
    assert!(
        own.iter()
            .all(|request| request.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{own:?}"
    );
    assert!(!own.is_empty());

    for request in other.received().iter().chain(elsewhere.received().iter()) {
        if request.method == "GET" {
            assert_eq!(request.authorization, None, "cards are fetched without it");
        }
    }
    let leaked: Vec<_> = other
        .received()
        .into_iter()
        .filter(|request| request.authorization.is_some())
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(!text(&output).contains(TOKEN));
}

/// The JS SDK 1.3.0 agent asking for an API key in a header, given through
/// the agents file's `auth: {token_env: ...}`, on both bindings.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_from_the_agents_file_opens_a_js_sdk_agent() {
    let home = TestContext::new();
    write_workflow(&home, "echo");
    let peer =
        SdkPeer::js_with_api_key("keyed", &["HTTP+JSON", "JSONRPC"], "X-API-Key", TOKEN).await;
    let without = run(&home, &peer.url(), &[]).await;
    let report = text(&without);
    assert_eq!(without.status.code(), Some(1), "{report}");
    assert!(
        report.contains("`keyed` at ")
            && report.contains("asks for API key in header X-API-Key (scheme `apiKey`)"),
        "{report}"
    );
    assert!(report.contains("set PALLET_AGENT_TOKEN_KEYED"), "{report}");

    let agents_file = home.join("agents.yaml");
    std::fs::write(
        &agents_file,
        format!(
            "agents:\n  - url: {}\n    auth: {{token_env: KEYED_KEY}}\n",
            peer.url()
        ),
    )
    .unwrap();
    let agents = ["--agents-file", "agents.yaml"];
    let unset = run_with(&home, &agents, &[]).await;
    let report = text(&unset);
    assert_eq!(unset.status.code(), Some(2), "{report}");
    assert!(
        report.contains("names the environment variable KEYED_KEY, which is not set"),
        "{report}"
    );

    let with_key = run_with(&home, &agents, &[("KEYED_KEY", TOKEN)]).await;
    let report = text(&with_key);
    assert_eq!(with_key.status.code(), Some(0), "{report}");
    assert!(!report.contains(TOKEN), "{report}");

    let wrong = run_with(&home, &agents, &[("KEYED_KEY", "wrong-key-wrong-key")]).await;
    let report = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{report}");
    assert!(
        report.contains("agent `keyed` refused skill `echo` with HTTP 401 Unauthorized: it asks for API key in header X-API-Key (scheme `apiKey`), pallet sent the credential for scheme `apiKey`"),
        "{report}"
    );
    assert!(!report.contains("wrong-key"), "{report}");
    let holding = files_holding(&home.join("data"), TOKEN);
    assert!(holding.is_empty(), "{holding:?}");
}

/// A card read from the registry gets only the credentials file's entry,
/// which names the agent's URL; without one the run fails before its first step.
#[tokio::test(flavor = "multi_thread")]
async fn registry_cards_take_the_credentials_files_entry() {
    let registry = crate::support::registry::TestRegistry::start();
    let home = TestContext::new();
    let (_agent, base) = start_token_agent(&home);
    write_workflow(&home, "create_plan");
    let address = registry.address.clone();
    let mut push = home.pallet();
    push.args(["agents", "push", "--registry", &address, &base]);
    let pushed = tokio::task::spawn_blocking(move || push.output().unwrap())
        .await
        .unwrap();
    assert!(pushed.status.success(), "{}", text(&pushed));
    let agents = ["--registry", address.as_str()];

    let mut command = home.pallet();
    command
        .args(["run", "--file", "auth.yaml"])
        .args(agents)
        .env("PALLET_AGENT_TOKEN_PLAN", TOKEN);
    let without = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = text(&without);
    assert_eq!(without.status.code(), Some(1), "{report}");
    assert!(
        report.contains("asks for HTTP bearer (scheme `bearer`)")
            && report.contains(
                "agents from the registry get credentials only from the credentials file"
            ),
        "the environment's token is not sent to a card from the registry: {report}"
    );

    let config = home.join("config/pallet");
    std::fs::create_dir_all(&config).unwrap();
    let credentials = config.join("credentials.yaml");
    std::fs::write(
        &credentials,
        format!("agents:\n  plan:\n    url: {base}\n    token: {TOKEN}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = home.pallet();
    command
        .args(["-v", "run", "--file", "auth.yaml"])
        .args(agents)
        .env("RUST_LOG", "trace");
    let with_file = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = text(&with_file);
    assert_eq!(with_file.status.code(), Some(0), "{report}");
    assert!(!report.contains(TOKEN), "{report}");
}

/// HTTP basic, against the JS SDK agent: the user name from the agents file,
/// the password from the environment variable it names.
#[tokio::test(flavor = "multi_thread")]
async fn basic_authentication_opens_a_js_sdk_agent() {
    let home = TestContext::new();
    write_workflow(&home, "echo");
    let peer = SdkPeer::js_with_basic("guarded", "pallet", TOKEN).await;
    let without = run(&home, &peer.url(), &[]).await;
    let report = text(&without);
    assert_eq!(without.status.code(), Some(1), "{report}");
    assert!(
        report.contains("asks for HTTP basic (scheme `basic`)"),
        "{report}"
    );
    assert!(
        report.contains("set PALLET_AGENT_USERNAME_GUARDED and PALLET_AGENT_PASSWORD_GUARDED"),
        "{report}"
    );
    std::fs::write(
        home.join("agents.yaml"),
        format!(
            "agents:\n  - url: {}\n    auth: {{username: pallet, password_env: GUARDED_PASSWORD}}\n",
            peer.url()
        ),
    )
    .unwrap();
    let agents = ["--agents-file", "agents.yaml"];
    let with_password = run_with(&home, &agents, &[("GUARDED_PASSWORD", TOKEN)]).await;
    let report = text(&with_password);
    assert_eq!(with_password.status.code(), Some(0), "{report}");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("pallet:{TOKEN}"));
    assert!(
        !report.contains(TOKEN) && !report.contains(&encoded),
        "{report}"
    );
    let wrong = run_with(&home, &agents, &[("GUARDED_PASSWORD", "wrong")]).await;
    let report = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{report}");
    assert!(
        report.contains("HTTP 401 Unauthorized: it asks for HTTP basic (scheme `basic`), pallet sent the credential for scheme `basic` (WWW-Authenticate: Basic realm=\"test\")"),
        "{report}"
    );
    let by_env = run(
        &home,
        &peer.url(),
        &[
            ("PALLET_AGENT_USERNAME_GUARDED", "pallet"),
            ("PALLET_AGENT_PASSWORD_GUARDED", TOKEN),
        ],
    )
    .await;
    assert_eq!(by_env.status.code(), Some(0), "{}", text(&by_env));
}
