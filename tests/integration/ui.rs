//! The web UI in a real headless Chromium (Debian's, through chromedriver)
//! against a real service on a free loopback port: sign in with the token,
//! start a run from the form and watch it complete, an agent output with
//! HTML shown as text, approve a waiting run and see it continue, the runs
//! list; and the UI's guards (cookie only from this origin, the CSP).
//! Screenshots go to `target/browser-screenshots/`.

use std::sync::Arc;

use pallet::api::ServiceOptions;
use pallet::registry::{Registry, RegistryOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::{Service, start};
use crate::support::TestContext;
use crate::support::browser::{Browser, artifact_dir};
use crate::support::legacy_agent::LegacyAgent;
use crate::support::registry::TestRegistry;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// A service with a token, and a browser signed in to it.
async fn signed_in() -> (LegacyAgent, tempfile::TempDir, Service, Browser) {
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let options = ServiceOptions {
        token: Some(TOKEN.to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let browser = Browser::start().await;
    // The UI without the cookie sends a person to the sign-in form.
    browser.goto(&format!("{}/ui", service.base)).await;
    browser.find("#token").await;
    assert!(browser.current_url().await.ends_with("/ui/login"));
    browser
        .find("#token")
        .await
        .send_keys("not the token")
        .await;
    browser.find("#sign-in").await.click().await;
    browser
        .wait_for_text("#login-error", "not the service's token")
        .await;
    browser.find("#token").await.send_keys(TOKEN).await;
    browser.find("#sign-in").await.click().await;
    browser.find("#runs").await;
    let cookies = browser.cookies().await;
    let cookie = cookies
        .iter()
        .find(|cookie| cookie["name"] == "pallet_session")
        .expect("the sign-in cookie");
    // Derived from the token, not the token: other ports of the host see it.
    assert_ne!(cookie["value"], TOKEN);
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    (agent, dir, service, browser)
}

#[tokio::test]
async fn a_run_started_from_the_form_completes_and_its_html_output_is_text() {
    let (_agent, _dir, service, browser) = signed_in().await;
    browser.goto(&format!("{}/ui/start", service.base)).await;
    let workflow = browser.find("#workflow").await;
    workflow.clear().await;
    workflow.send_keys("fast-test").await;
    // Leaving the field loads the workflow's definition: no declared inputs, JSON it is.
    browser.find("h1").await.click().await;
    browser
        .wait_for_text("#definition", "Fast test 1.0.0")
        .await;
    let input = browser.find("#input").await;
    input.clear().await;
    let hostile = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"><b id=\"bold\">bold</b>";
    input
        .send_keys(&json!({ "requirements": hostile }).to_string())
        .await;
    browser
        .screenshot(artifact_dir().join("ui-start.png"))
        .await;
    browser.find("#start").await.click().await;
    browser.wait_for_text("#run-status", "completed").await;
    assert!(browser.current_url().await.contains("/ui/runs/"));

    // The output, opened, is the agent's text as sent, and none of it ran or became markup.
    browser
        .find("tr[data-step=\"only\"] details.step-output summary")
        .await
        .click()
        .await;
    let output = "tr[data-step=\"only\"] details.step-output pre";
    browser
        .wait_for_text(output, "<script>window.pwned = 1</script>")
        .await;
    browser
        .wait_for_text(output, "<b id=\\\"bold\\\">bold</b>")
        .await;
    assert_eq!(
        browser
            .execute("return window.pwned === undefined", &[])
            .await,
        true
    );
    assert!(browser.find_all("#bold").await.is_empty());
    assert!(browser.find_all("main script, main img").await.is_empty());
    // Parts a run does not have are left out, not shown as `null`.
    let stray = browser
        .execute("return [...document.getElementById('main').childNodes].filter((node) => node.nodeType === 3 && node.textContent.trim()).length", &[])
        .await;
    assert_eq!(stray, 0);
    browser.screenshot(artifact_dir().join("ui-run.png")).await;

    // The runs list shows it, completed, and filters by status.
    browser.goto(&format!("{}/ui", service.base)).await;
    browser
        .wait_for_text("#runs tbody", "fast-test@1.0.0")
        .await;
    browser.wait_for_text("#runs tbody", "completed").await;
    browser.screenshot(artifact_dir().join("ui-runs.png")).await;
    browser
        .goto(&format!("{}/ui?status=failed", service.base))
        .await;
    browser.wait_for_text("#runs tbody", "No runs.").await;
    browser
        .goto(&format!("{}/ui?workflow=approval-test", service.base))
        .await;
    browser.wait_for_text("#runs tbody", "No runs.").await;
    browser
        .goto(&format!("{}/ui?workflow=fast-test", service.base))
        .await;
    browser
        .wait_for_text("#runs tbody", "fast-test@1.0.0")
        .await;
    drop(browser);
    service.shutdown().await;
}

#[tokio::test]
async fn the_start_form_is_drawn_from_the_declared_inputs() {
    let (_agent, _dir, service, browser) = signed_in().await;
    browser
        .goto(&format!("{}/ui/start?workflow=typed-test", service.base))
        .await;
    browser
        .wait_for_text("#input-fields", "What it is called")
        .await;
    // The default is filled in; a required field is marked.
    assert_eq!(
        browser.find("#field-count").await.property("value").await,
        "2"
    );
    browser.wait_for_text("#input-fields", "title *").await;
    // The fields replace the JSON box (until "Edit as JSON").
    let shown = browser
        .execute(
            "return getComputedStyle(document.getElementById('input-json')).display",
            &[],
        )
        .await;
    assert_eq!(shown, "none");
    browser.find("#field-title").await.send_keys("Report").await;
    browser.find("#field-loud").await.click().await;
    browser
        .execute(
            "const select = document.getElementById('field-mode'); select.value = JSON.stringify('thorough'); return true",
            &[],
        )
        .await;
    browser
        .screenshot(artifact_dir().join("ui-start-typed.png"))
        .await;
    browser.find("#start").await.click().await;
    browser.wait_for_text("#run-status", "completed").await;
    let id = browser
        .current_url()
        .await
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, run) = service.get(&format!("/workflows/{id}")).await;
    assert_eq!(
        run["input"],
        json!({"title": "Report", "count": 2, "loud": true, "mode": "thorough"}),
        "{run}"
    );
    drop(browser);
    service.shutdown().await;
}

#[tokio::test]
async fn a_waiting_run_is_approved_in_the_browser_and_continues() {
    let (_agent, _dir, service, browser) = signed_in().await;
    let (code, run) = service
        .post(
            "/workflows",
            json!({"workflow": "approval-test", "input": {"text": "draft"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    service.wait_for(&id, "waiting_approval").await;

    browser
        .goto(&format!("{}/ui/runs/{id}", service.base))
        .await;
    browser
        .wait_for_text("#approval h2", "Ship the draft?")
        .await;
    // The workflow's steps in order, the one after the approval not run yet.
    browser
        .wait_for_text("tr[data-step=\"draft\"]", "completed")
        .await;
    browser
        .wait_for_text("tr[data-step=\"review\"]", "approval")
        .await;
    browser
        .wait_for_text("tr[data-step=\"publish\"]", "not run")
        .await;
    browser
        .wait_for_text("tr[data-step=\"publish\"]", "skill last")
        .await;
    // Without the required field the service refuses, and the page says why.
    browser.find("#approve").await.click().await;
    browser.wait_for_text("#approval #problem", "ticket").await;
    browser
        .find("#approval input[data-field=\"ticket\"]")
        .await
        .send_keys("OPS-7")
        .await;
    browser.find("#comment").await.send_keys("looks good").await;
    browser.find("#actor").await.send_keys("ada").await;
    browser
        .screenshot(artifact_dir().join("ui-approval.png"))
        .await;
    // The README's picture (docs/ui.png is a copy): the source without this test's temp dir.
    browser
        .execute(
            "document.querySelectorAll('#main dd')[2].textContent = 'workflows/approval.yaml'",
            &[],
        )
        .await;
    browser
        .screenshot(artifact_dir().join("readme-ui.png"))
        .await;
    browser.find("#approve").await.click().await;
    // The event stream redraws the page as the run goes on to its end.
    browser.wait_for_text("#run-status", "completed").await;
    browser.wait_for_text("#history", "ada").await;
    browser
        .wait_for_text("tr[data-step=\"publish\"]", "completed")
        .await;
    assert!(browser.find_all("#approval").await.is_empty());
    let (_, history) = service.get(&format!("/workflows/{id}/history")).await;
    let decision = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|transition| transition["actor"] == "ada")
        .expect("the decision, by the name typed");
    assert_eq!(decision["to"], "in_progress");
    drop(browser);
    service.shutdown().await;
}

#[tokio::test]
async fn the_cookie_works_only_from_this_origin_and_pages_carry_a_strict_policy() {
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let options = ServiceOptions {
        token: Some(TOKEN.to_string()),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let client = crate::support::http_client();
    let cookie = format!("pallet_session={}", pallet::api::ui::session(TOKEN));
    let body = json!({"workflow": "fast-test", "input": {"requirements": "x"}});
    let post = |origin: Option<&str>| {
        let request = client
            .post(format!("{}/workflows", service.base))
            .header("Cookie", &cookie)
            .json(&body);
        match origin {
            Some(origin) => request.header("Origin", origin),
            None => request,
        }
    };
    for origin in [None, Some("http://evil.example")] {
        let response = post(origin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin:?}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("Origin"),
            "{problem}"
        );
    }
    let response = post(Some(&service.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Reads with the cookie; a wrong cookie is no sign-in.
    let read = client
        .get(format!("{}/workflows", service.base))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let wrong = client
        .get(format!("{}/workflows", service.base))
        .header("Cookie", format!("pallet_session={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // The pages need the token too (the sign-in form and its assets excepted).
    let page = service.send(Method::GET, "/ui").await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline"));
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = anonymous
        .get(format!("{}/ui/start", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
    assert_eq!(redirected.headers()["location"], "/ui/login");
    let script = anonymous
        .get(format!("{}/ui/app.js", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    service.shutdown().await;
}

/// An A2A 1.0 card whose name is markup: the registry page shows it as text.
const CARD: &str = r#"{
  "name": "<i id=\"planner\">planner</i>",
  "description": "plans",
  "version": "1.0.0",
  "supportedInterfaces": [{"url": "http://127.0.0.1:9/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
  "capabilities": {},
  "defaultInputModes": ["application/json"],
  "defaultOutputModes": ["application/json"],
  "skills": [{"id": "create_plan", "name": "Plan", "description": "makes a plan", "tags": ["plan"]}]
}"#;

#[tokio::test]
async fn the_registry_page_lists_pushed_workflows_and_agent_cards() {
    let registry = TestRegistry::start();
    let scratch = TestContext::new();
    scratch.write("first.yaml", FIRST.replace("VERSION", "1.0.0"));
    scratch.write("second.yaml", FIRST.replace("VERSION", "1.1.0"));
    scratch.write("card.json", CARD);
    let address = registry.address.as_str();
    let pushes: [&[&str]; 3] = [
        &["push", "first.yaml", "--registry", address],
        &["push", "second.yaml", "--registry", address],
        &["agents", "push", "card.json", "--registry", address],
    ];
    for arguments in pushes {
        let pushed = scratch.output(arguments);
        assert!(
            pushed.status.success(),
            "{}",
            String::from_utf8_lossy(&pushed.stderr)
        );
    }
    let agent = LegacyAgent::start("helper", &crate::api::SKILLS).await;
    let dir = tempfile::tempdir().unwrap();
    let client = Registry::new(RegistryOptions {
        address: registry.address.clone(),
        insecure_hosts: Vec::new(),
        credentials: None,
        docker_config: None,
        cache_dir: dir.path().join("cache"),
        offline: false,
        timeouts: Default::default(),
    })
    .unwrap();
    let options = ServiceOptions {
        registry: Some(Arc::new(client)),
        ..ServiceOptions::default()
    };
    let service = start(&agent, dir.path(), options).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/ui/registry", service.base)).await;
    browser
        .wait_for_text(
            "#registry-workflows tr[data-repository=\"workflows/shared-plan\"]",
            "1.1.0",
        )
        .await;
    browser
        .wait_for_text(
            "#registry-workflows tr[data-repository=\"workflows/shared-plan\"]",
            "1.0.0",
        )
        .await;
    browser
        .wait_for_text("#registry-agents", "create_plan")
        .await;
    browser
        .wait_for_text("#registry-agents", "A2A 1.0 JSONRPC")
        .await;
    browser
        .wait_for_text("#registry-agents", "<i id=\"planner\">planner</i>")
        .await;
    assert!(browser.find_all("#planner").await.is_empty());
    // A version: its digest, annotations and YAML.
    browser
        .find("button.version[data-tag=\"1.0.0\"]")
        .await
        .click()
        .await;
    browser
        .wait_for_text("#version-source", "version: 1.0.0")
        .await;
    browser
        .wait_for_text("#version", "org.opencontainers.image")
        .await;
    browser.wait_for_text("#version-digest", "sha256:").await;
    browser
        .screenshot(artifact_dir().join("ui-registry.png"))
        .await;
    drop(browser);

    // The same as JSON; an unknown version is a 404 that says so.
    let (code, listed) = service.get("/registry/workflows").await;
    assert_eq!(code, StatusCode::OK);
    let versions: Vec<&str> = listed["workflows"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    let missing = service
        .send(Method::GET, "/registry/workflows/shared-plan/9.9.9")
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    service.shutdown().await;

    // A service without a registry (offline) says why there is nothing to list.
    let offline = start(&agent, dir.path(), ServiceOptions::default()).await;
    let response = offline.send(Method::GET, "/registry/workflows").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("--offline"),
        "{problem}"
    );
    offline.shutdown().await;
}

const FIRST: &str = "metadata: {id: shared-plan, name: Shared plan, version: VERSION}
steps:
  - {id: plan, skill: create_plan, inputs: {title: x}}
";
