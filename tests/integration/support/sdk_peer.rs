//! Real A2A agents built on the other official SDKs, run as child processes
//! on a free loopback port and killed on drop:
//!
//! - `tests/peers/js/agent.mjs` on `@a2a-js/sdk` 1.3.0 (A2A 1.0) or 0.3.14
//!   (A2A 0.3), with the bindings the test names in its card;
//! - `tests/peers/a2a03_agent.py` on the Python `a2a-sdk` 0.3 (JSON-RPC).
//!
//! Both are installed by `scripts/setup-test-env.sh` (`tests/peers/js/node_modules`,
//! `.venv-a2a03`). Node comes from `PALLET_TEST_NODE`, else `node` on the PATH.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Which JavaScript SDK the agent is built on.
#[derive(Clone, Copy)]
pub enum JsSdk {
    /// `@a2a-js/sdk` 1.3.0: A2A 1.0.
    V1,
    /// `@a2a-js/sdk` 0.3.14: A2A 0.3.
    V03,
}

/// A running agent; the child process is killed when this is dropped.
pub struct SdkPeer {
    pub port: u16,
    child: Child,
}

impl SdkPeer {
    /// A JavaScript agent whose card lists `interfaces` in that order: each a
    /// binding (`JSONRPC`, `HTTP+JSON`, `GRPC`), optionally `=URL`. It offers
    /// `echo`, `echo_text`, `words`, `reply`, `fail`, `slow`, `metadata` (see
    /// the script) and `extra_skills`, which echo.
    pub async fn js(name: &str, sdk: JsSdk, interfaces: &[&str], extra_skills: &[&str]) -> SdkPeer {
        SdkPeer::js_with(name, sdk, interfaces, extra_skills, &[]).await
    }

    /// A 1.0 JavaScript agent like [`SdkPeer::js`] whose card requires an API
    /// key in `header` and whose endpoints answer 401 without `key` there.
    pub async fn js_with_api_key(
        name: &str,
        interfaces: &[&str],
        header: &str,
        key: &str,
    ) -> SdkPeer {
        let option = format!("--api-key={header}:{key}");
        SdkPeer::js_with(name, JsSdk::V1, interfaces, &[], &[&option]).await
    }

    /// A 1.0 JavaScript agent whose card requires HTTP basic and whose
    /// endpoints answer 401 without this user name and password.
    pub async fn js_with_basic(name: &str, username: &str, password: &str) -> SdkPeer {
        let option = format!("--basic={username}:{password}");
        SdkPeer::js_with(name, JsSdk::V1, &["JSONRPC"], &[], &[&option]).await
    }

    /// [`SdkPeer::js`] with more of the script's options, e.g. `--streaming`
    /// (the card declares streaming) and `--drop-streams=N` (the first N
    /// event streams break after their first event).
    pub async fn js_with(
        name: &str,
        sdk: JsSdk,
        interfaces: &[&str],
        extra_skills: &[&str],
        options: &[&str],
    ) -> SdkPeer {
        let script = repository_root().join("tests/peers/js/agent.mjs");
        let modules = repository_root().join("tests/peers/js/node_modules");
        assert!(
            modules.exists(),
            "{} is missing: run scripts/setup-test-env.sh to install the JavaScript A2A SDKs",
            modules.display()
        );
        let node = std::env::var_os("PALLET_TEST_NODE").unwrap_or_else(|| "node".into());
        let port = free_port();
        let mut command = Command::new(node);
        command
            .arg(&script)
            .arg(port.to_string())
            .arg(name)
            .arg(match sdk {
                JsSdk::V1 => "--sdk=1",
                JsSdk::V03 => "--sdk=0.3",
            })
            .arg(format!("--interfaces={}", interfaces.join(",")))
            .arg(format!("--skills={}", extra_skills.join(",")))
            .args(options);
        SdkPeer::spawn(command, port).await
    }

    /// A JavaScript A2A 1.0 agent as [`SdkPeer::js`] that also records the
    /// messages it is sent ([`SdkPeer::sends`]); on `port` when given, e.g. to
    /// restart an agent at the same address with its tasks forgotten.
    pub async fn js_recording(name: &str, interfaces: &[&str], port: Option<u16>) -> SdkPeer {
        let script = repository_root().join("tests/peers/js/agent.mjs");
        let node = std::env::var_os("PALLET_TEST_NODE").unwrap_or_else(|| "node".into());
        let port = port.unwrap_or_else(free_port);
        let mut command = Command::new(node);
        command
            .arg(&script)
            .arg(port.to_string())
            .arg(name)
            .arg("--sdk=1")
            .arg(format!("--interfaces={}", interfaces.join(",")))
            .arg("--record-sends");
        SdkPeer::spawn(command, port).await
    }

    /// What a `js_recording` agent was sent: `{skill, idempotencyKey}` per message.
    pub async fn sends(&self) -> Vec<serde_json::Value> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::get(format!("{}/test/sends", self.url()))
            .await
            .expect("GET /test/sends")
            .json()
            .await
            .expect("the sends are JSON")
    }

    /// Stops the agent now (its tasks are forgotten).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A Python a2a-sdk 0.3 agent over JSON-RPC, offering `echo`, `echo_text`,
    /// `fail`, `slow`, `metadata` and `extra_skills`, which echo.
    pub async fn python_03(name: &str, extra_skills: &[&str]) -> SdkPeer {
        let python = repository_root().join(".venv-a2a03/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-test-env.sh to install a2a-sdk 0.3",
            python.display()
        );
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(repository_root().join("tests/peers/a2a03_agent.py"))
            .arg(port.to_string())
            .arg(name)
            .arg(format!("--skills={}", extra_skills.join(",")));
        SdkPeer::spawn(command, port).await
    }

    async fn spawn(mut command: Command, port: u16) -> SdkPeer {
        // The agent exits when this pipe closes, i.e. when the test process ends.
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {command:?}: {error}; run scripts/setup-test-env.sh")
            });
        let mut peer = SdkPeer { port, child };
        peer.wait_until_ready().await;
        peer
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_until_ready(&mut self) {
        let card = format!("{}/.well-known/agent-card.json", self.url());
        super::wait_for_card(&mut self.child, &card, "the A2A test agent").await;
    }
}

impl Drop for SdkPeer {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port that was free a moment ago (the child binds it itself).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}
