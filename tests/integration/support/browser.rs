//! A real headless Chromium driven through Debian's `chromedriver` (W3C
//! WebDriver over HTTP, spoken here with reqwest). [`Browser::start`] runs
//! chromedriver on a free loopback port, in a process group of its own with
//! `HOME` and XDG directories in a temp directory (which also holds
//! Chromium's `--user-data-dir`), so the real home is never touched. On drop
//! the session is deleted (best effort; a screenshot is saved first when the
//! test is panicking) and the whole group, Chromium included, is killed.
//!
//! Every method panics with what went wrong (tests read straight through);
//! lookups wait up to [`WAIT_LIMIT`] for the page to catch up.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use super::pallet::{Spawned, command_in};

/// How long chromedriver may take to answer `/status`.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How long creating a session (starting Chromium) may take.
const SESSION_LIMIT: Duration = Duration::from_secs(60);
/// How long one WebDriver command may take (a page load is bounded by the
/// session's own `pageLoad` timeout, below this).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How long [`Browser::find`] and [`Browser::wait_for_text`] poll.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// Start attempts, each on a new free port (another process may take it first).
const ATTEMPTS: usize = 3;
/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const INSTALL_HINT: &str =
    "run scripts/setup-test-env.sh (installs Debian's chromium and chromium-driver)";

/// `<workspace>/target/browser-screenshots`, created: where tests save
/// screenshots (CI keeps it as an artifact).
pub fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));
    dir
}

/// A WebDriver error answer (`value.error`, `value.message`) or a transport failure.
#[derive(Debug)]
struct WebDriverError {
    /// The W3C error code (`no such element`, ...), or `transport`.
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.error, self.message)
    }
}

/// What a [`Browser`] and its [`Element`]s share: the session's base URL.
struct Session {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    base: String,
}

impl Session {
    /// One WebDriver command (`path` relative to the session); its `value`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        request(
            &self.client,
            method,
            &format!("{}{path}", self.base),
            body,
            COMMAND_LIMIT,
        )
        .await
    }

    /// [`Session::call`], panicking with `what` on an error.
    async fn expect(&self, method: Method, path: &str, body: Option<Value>, what: &str) -> Value {
        self.call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver: {what}: {error}"))
    }

    async fn find(self: &Arc<Self>, css: &str) -> Result<Element, WebDriverError> {
        let body = json!({"using": "css selector", "value": css});
        let value = self.call(Method::POST, "/element", Some(body)).await?;
        Ok(self.element(&value, css))
    }

    fn element(self: &Arc<Self>, value: &Value, css: &str) -> Element {
        let id = value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver: no element reference in {value}"));
        Element {
            session: self.clone(),
            id: id.to_string(),
            selector: css.to_string(),
        }
    }

    async fn page_source(&self) -> String {
        let value = self
            .expect(Method::GET, "/source", None, "page source")
            .await;
        value.as_str().unwrap_or_default().to_string()
    }
}

/// One WebDriver request; W3C answers are `{"value": ...}`, errors carry
/// `value.error` with a 4xx/5xx status.
async fn request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
    limit: Duration,
) -> Result<Value, WebDriverError> {
    let transport = |error: reqwest::Error| WebDriverError {
        error: "transport".to_string(),
        message: format!("{url}: {error}"),
    };
    let mut builder = client.request(method, url).timeout(limit);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await.map_err(transport)?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(transport)?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    match status.is_success() {
        true => Ok(value),
        false => Err(WebDriverError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        }),
    }
}

/// A headless Chromium session; see the module documentation.
pub struct Browser {
    session: Arc<Session>,
    /// chromedriver's group leader (Chromium runs in its group).
    driver: Option<Spawned>,
    /// HOME, XDG directories, the profile and chromedriver's log; removed
    /// after the processes are gone (fields drop in order).
    _directory: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium session (about a second).
    pub async fn start() -> Browser {
        let chromedriver = on_path("chromedriver")
            .unwrap_or_else(|| panic!("chromedriver is not on PATH: {INSTALL_HINT}"));
        let chromium = on_path("chromium")
            .unwrap_or_else(|| panic!("chromium is not on PATH: {INSTALL_HINT}"));
        let directory = tempfile::Builder::new()
            .prefix("pallet-browser-")
            .tempdir()
            .expect("tempdir");
        let root = directory.path();
        for name in ["home", "cache", "data", "config", "state", "profile"] {
            std::fs::create_dir_all(root.join(name)).expect("browser directories");
        }
        let client = super::http_client();
        let (driver, address) = start_driver(&chromedriver, root, &client).await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root (as in CI and containers) cannot use Chromium's sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    // A container's /dev/shm is often too small for Chromium.
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", root.join("profile").display()),
                    "--window-size=1280,900",
                ],
            },
            "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
        }}});
        let created = request(
            &client,
            Method::POST,
            &format!("http://{address}/session"),
            Some(capabilities),
            SESSION_LIMIT,
        )
        .await;
        let id = match created {
            Ok(value) => value["sessionId"].as_str().map(str::to_string),
            Err(error) => panic!(
                "chromedriver could not start Chromium ({error}); its log (tail):\n{}",
                log_tail(root)
            ),
        };
        let id = id.expect("chromedriver answered a new session without sessionId");
        Browser {
            session: Arc::new(Session {
                client,
                base: format!("http://{address}/session/{id}"),
            }),
            driver: Some(driver),
            _directory: directory,
        }
    }

    /// Navigates to `url` and waits for the load (the session's `pageLoad`: 30 s).
    pub async fn goto(&self, url: &str) {
        let body = json!({"url": url});
        let what = format!("go to {url}");
        self.session
            .expect(Method::POST, "/url", Some(body), &what)
            .await;
    }

    pub async fn current_url(&self) -> String {
        let value = self
            .session
            .expect(Method::GET, "/url", None, "current URL")
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    pub async fn title(&self) -> String {
        let value = self
            .session
            .expect(Method::GET, "/title", None, "title")
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, waiting up to [`WAIT_LIMIT`] for one.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            match self.session.find(css).await {
                Ok(element) => return element,
                Err(error) if error.error == "no such element" => {}
                Err(error) => panic!("WebDriver: find `{css}`: {error}"),
            }
            if started.elapsed() > WAIT_LIMIT {
                panic!(
                    "no element matches `{css}` after {WAIT_LIMIT:?} at {}; page source (start):\n{}",
                    self.current_url().await,
                    excerpt(&self.page_source().await, 4000)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every element matching `css` now (no waiting: none is an answer).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({"using": "css selector", "value": css});
        let what = format!("find all `{css}`");
        let value = self
            .session
            .expect(Method::POST, "/elements", Some(body), &what)
            .await;
        let references = value.as_array().cloned().unwrap_or_default();
        references
            .iter()
            .map(|reference| self.session.element(reference, css))
            .collect()
    }

    /// The first element matching `css` once its text contains `text`,
    /// waiting up to [`WAIT_LIMIT`] (the element may also appear or be
    /// replaced meanwhile).
    pub async fn wait_for_text(&self, css: &str, text: &str) -> Element {
        let started = Instant::now();
        let mut last = None;
        loop {
            // Absent or replaced (stale) meanwhile: look again; anything else is a bug.
            let answer = match self.session.find(css).await {
                Ok(element) => element
                    .session
                    .call(Method::GET, &element.path("/text"), None)
                    .await
                    .map(|value| (element, value)),
                Err(error) => Err(error),
            };
            match answer {
                Ok((element, value)) => {
                    let actual = value.as_str().unwrap_or_default().to_string();
                    if actual.contains(text) {
                        return element;
                    }
                    last = Some(actual);
                }
                Err(error)
                    if error.error == "no such element"
                        || error.error == "stale element reference" => {}
                Err(error) => panic!("WebDriver: text of `{css}`: {error}"),
            }
            if started.elapsed() > WAIT_LIMIT {
                match last {
                    Some(actual) => panic!(
                        "the text of `{css}` did not contain {text:?} within {WAIT_LIMIT:?}; \
                         it is {actual:?}"
                    ),
                    None => panic!(
                        "no element matches `{css}` (waiting for text {text:?}) after \
                         {WAIT_LIMIT:?}; page source (start):\n{}",
                        excerpt(&self.page_source().await, 4000)
                    ),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `script` (a function body: `return ...` gives the result) with
    /// `args` (`arguments[0]`, ...; an element as [`Element::reference`]).
    pub async fn execute(&self, script: &str, args: &[Value]) -> Value {
        let body = json!({"script": script, "args": args});
        let what = format!("execute {script:?}");
        self.session
            .expect(Method::POST, "/execute/sync", Some(body), &what)
            .await
    }

    /// Saves a PNG of the viewport at `path` (creating its parent
    /// directories); returns `path`.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> PathBuf {
        let value = self
            .session
            .expect(Method::GET, "/screenshot", None, "screenshot")
            .await;
        write_png(&value, path.as_ref());
        path.as_ref().to_path_buf()
    }

    pub async fn page_source(&self) -> String {
        self.session.page_source().await
    }

    /// Sets a cookie for the current page's domain (so navigate there first).
    pub async fn add_cookie(&self, name: &str, value: &str) {
        let body = json!({"cookie": {"name": name, "value": value}});
        let what = format!("add cookie {name}");
        self.session
            .expect(Method::POST, "/cookie", Some(body), &what)
            .await;
    }

    /// The current page's cookies as W3C cookie objects (`name`, `value`,
    /// `domain`, `path`, `httpOnly`, `secure`, ...).
    pub async fn cookies(&self) -> Vec<Value> {
        let value = self
            .session
            .expect(Method::GET, "/cookie", None, "cookies")
            .await;
        value.as_array().cloned().unwrap_or_default()
    }

    /// Best effort, from a thread of its own with its own runtime: `Drop`
    /// cannot await, and the test's runtime may be single-threaded or gone.
    fn finish(&self) {
        let base = self.session.base.clone();
        // The test's name is this thread's; the file is written in the helper,
        // where a failure cannot panic twice (that would abort the test binary).
        let failure = std::thread::panicking().then(|| {
            let test = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .replace("::", "-");
            format!("{test}-failure.png")
        });
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = super::http_client();
                let limit = Duration::from_secs(10);
                if let Some(name) = failure
                    && let Ok(value) = request(
                        &client,
                        Method::GET,
                        &format!("{base}/screenshot"),
                        None,
                        limit,
                    )
                    .await
                {
                    let path = artifact_dir().join(name);
                    write_png(&value, &path);
                    eprintln!("browser screenshot at failure: {}", path.display());
                }
                let _ = request(&client, Method::DELETE, &base, None, limit).await;
            });
        })
        .join();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.finish();
        if let Some(driver) = self.driver.take() {
            let group = driver.pid();
            drop(driver);
            // Killed processes die asynchronously; wait (a while) so that the
            // profile is not removed under a Chromium still writing to it.
            let deadline = Instant::now() + Duration::from_secs(2);
            while group_alive(group) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// An element of the page, by its WebDriver reference.
pub struct Element {
    session: Arc<Session>,
    id: String,
    /// The selector that found it, for messages.
    selector: String,
}

impl Element {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    async fn expect(&self, method: Method, rest: &str, body: Option<Value>, what: &str) -> Value {
        let what = format!("{what} `{}`", self.selector);
        self.session
            .expect(method, &self.path(rest), body, &what)
            .await
    }

    pub async fn click(&self) {
        self.expect(Method::POST, "/click", Some(json!({})), "click")
            .await;
    }

    /// Types `text` into the element (appending to what it holds).
    pub async fn send_keys(&self, text: &str) {
        let body = json!({"text": text});
        self.expect(Method::POST, "/value", Some(body), "type into")
            .await;
    }

    pub async fn clear(&self) {
        self.expect(Method::POST, "/clear", Some(json!({})), "clear")
            .await;
    }

    /// The rendered (visible) text.
    pub async fn text(&self) -> String {
        let value = self.expect(Method::GET, "/text", None, "text of").await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The HTML attribute `name`, `None` when absent.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        let rest = format!("/attribute/{name}");
        let value = self.expect(Method::GET, &rest, None, "attribute of").await;
        value.as_str().map(str::to_string)
    }

    /// The DOM property `name` (e.g. `value`, `checked`), `null` when absent.
    pub async fn property(&self, name: &str) -> Value {
        let rest = format!("/property/{name}");
        self.expect(Method::GET, &rest, None, "property of").await
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn reference(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// Starts chromedriver under `root` and waits for `/status` to say ready;
/// the guard and `127.0.0.1:PORT`.
async fn start_driver(
    chromedriver: &Path,
    root: &Path,
    client: &reqwest::Client,
) -> (Spawned, String) {
    for _ in 0..ATTEMPTS {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(root.join("chromedriver.log")).expect("log file");
        let mut command = command_in(chromedriver, root);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let mut driver = Spawned::spawn(&mut command);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = driver.try_wait() {
                let log = log_tail(root);
                if log.contains("bind() failed") || log.contains("already in use") {
                    break;
                }
                panic!("chromedriver exited during startup ({status}); its log (tail):\n{log}");
            }
            let status = request(
                client,
                Method::GET,
                &format!("http://{address}/status"),
                None,
                Duration::from_secs(2),
            )
            .await;
            if let Ok(value) = status
                && value["ready"] == json!(true)
            {
                return (driver, address);
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "chromedriver was not ready at {address} within {STARTUP_LIMIT:?}; its log \
                 (tail):\n{}",
                log_tail(root)
            );
            tokio::time::sleep(POLL).await;
        }
    }
    panic!("chromedriver found its port taken {ATTEMPTS} times")
}

/// Whether a process of `group` still runs. Zombies do not count: Chromium's
/// zygotes are reparented to PID 1, which (in containers) may reap them late.
fn group_alive(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `PID (COMM) STATE PPID PGRP ...`; COMM may hold spaces and parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        matches!(fields.as_slice(), [state, _, pgrp, ..]
            if *state != "Z" && *state != "X" && pgrp.parse() == Ok(group))
    })
}

/// The file `program` names on PATH, as `which` finds it.
fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Decodes a base64 PNG answer into `path`, creating its parent directories.
fn write_png(value: &Value, path: &Path) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("WebDriver: screenshot is not base64: {error}"));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|error| panic!("create {}: {error}", parent.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

fn log_tail(root: &Path) -> String {
    let log = std::fs::read_to_string(root.join("chromedriver.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn excerpt(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A port nobody listened on a moment ago (the race is retried, see [`ATTEMPTS`]).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
