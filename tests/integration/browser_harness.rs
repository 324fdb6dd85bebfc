//! The browser harness itself: a real headless Chromium loads a page from a
//! throwaway local server, types, clicks, sees the script's effect and saves
//! a screenshot.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::json;

use crate::support::browser::{Browser, artifact_dir};

/// A button whose script writes the typed name into `#status`; `#literal`
/// holds markup that must stay text (escaped by the server).
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Harness smoke</title></head>
<body>
<p id="status">idle</p>
<p id="literal">&lt;script&gt;window.injected = true&lt;/script&gt;</p>
<input id="name" value="draft">
<button id="go" data-kind="primary">Go</button>
<ul><li class="item">one</li><li class="item">two</li></ul>
<script>
document.getElementById("go").addEventListener("click", () => {
    const name = document.getElementById("name").value;
    setTimeout(() => { document.getElementById("status").textContent = "hello " + name; }, 100);
});
</script>
</body></html>"#;

/// Serves [`PAGE`] at `/` on a free loopback port until the runtime ends.
async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the page server");
    let address = listener.local_addr().expect("page server address");
    let app = Router::new().route("/", get(|| async { Html(PAGE) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}/")
}

#[tokio::test]
async fn drives_a_real_chromium() {
    let url = serve_page().await;
    let browser = Browser::start().await;

    browser.goto(&url).await;
    assert_eq!(browser.current_url().await, url);
    assert_eq!(browser.title().await, "Harness smoke");

    let literal = browser.find("#literal").await;
    assert_eq!(
        literal.text().await,
        "<script>window.injected = true</script>"
    );
    assert!(browser.find_all("#literal script").await.is_empty());
    assert_eq!(
        browser.execute("return window.injected", &[]).await,
        json!(null)
    );

    let items = browser.find_all("li.item").await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].text().await, "two");

    let name = browser.find("#name").await;
    name.clear().await;
    name.send_keys("pallet").await;
    assert_eq!(name.property("value").await, json!("pallet"));
    let button = browser.find("#go").await;
    assert_eq!(
        button.attribute("data-kind").await.as_deref(),
        Some("primary")
    );
    assert_eq!(button.attribute("missing").await, None);
    button.click().await;
    let status = browser.wait_for_text("#status", "hello pallet").await;
    assert_eq!(status.text().await, "hello pallet");
    let tag = browser
        .execute("return arguments[0].tagName", &[status.reference()])
        .await;
    assert_eq!(tag, json!("P"));

    browser.add_cookie("flavor", "oat").await;
    let cookies = browser.cookies().await;
    assert!(
        cookies
            .iter()
            .any(|cookie| cookie["name"] == "flavor" && cookie["value"] == "oat"),
        "{cookies:?}"
    );
    assert!(browser.page_source().await.contains("id=\"literal\""));

    let path = browser.screenshot(artifact_dir().join("harness.png")).await;
    let png = std::fs::read(&path).expect("read the screenshot");
    assert!(png.len() > 8, "empty screenshot at {}", path.display());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
