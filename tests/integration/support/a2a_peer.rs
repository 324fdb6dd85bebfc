//! A real A2A 1.0 agent (`tests/peers/a2a_agent.py`, built on the official
//! Python SDK) run as a child process on a free loopback port: one per test
//! with [`A2aPeer::start`] (killed on drop), or one per test binary with
//! [`A2aPeer::shared`].
//!
//! Skills: `echo`, `echo_text`, `pair`, `reply`, `fail`, `slow`, `needs_input`,
//! `invalid`, `metadata` (see the script), plus any the test names. Python comes from `PALLET_TEST_PYTHON`, else the
//! repository's `.venv` made by `scripts/setup-test-env.sh`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// A running A2A agent; the child process is killed when this is dropped.
pub struct A2aPeer {
    pub port: u16,
    child: Child,
}

impl A2aPeer {
    pub async fn start(name: &str) -> A2aPeer {
        A2aPeer::start_with_skills(name, &[]).await
    }

    /// Also offers `extra_skills`, which echo their input like `echo`.
    pub async fn start_with_skills(name: &str, extra_skills: &[&str]) -> A2aPeer {
        let python = python();
        let script = repository_root().join("tests/peers/a2a_agent.py");
        let port = free_port();
        let child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(name)
            .arg(format!("--skills={}", extra_skills.join(",")))
            .arg("--exit-on-stdin-eof")
            // The agent exits when this pipe closes, i.e. when the test process ends.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} {}: {error}; run scripts/setup-test-env.sh",
                    python.display(),
                    script.display()
                )
            });
        let mut peer = A2aPeer { port, child };
        peer.wait_until_ready().await;
        peer
    }

    /// One agent named `shared-a2a-agent` for all tests of the binary that do
    /// not need their own; it exits with the test process.
    pub async fn shared() -> &'static A2aPeer {
        static SHARED: OnceCell<A2aPeer> = OnceCell::const_new();
        SHARED
            .get_or_init(|| A2aPeer::start("shared-a2a-agent"))
            .await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of the agent's card.
    pub fn card_url(&self) -> String {
        format!("{}/.well-known/agent-card.json", self.url())
    }

    /// Asks the agent for a task, as any A2A client would, and returns the task.
    pub async fn get_task(&self, task_id: &str) -> Value {
        let request =
            json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}});
        let reply: Value = http_client()
            .post(format!("{}/", self.url()))
            .header("A2A-Version", "1.0")
            .json(&request)
            .send()
            .await
            .expect("GetTask request")
            .json()
            .await
            .expect("GetTask reply is JSON");
        assert!(
            reply.get("error").is_none(),
            "GetTask {task_id} failed: {reply}"
        );
        reply["result"].clone()
    }

    async fn wait_until_ready(&mut self) {
        let card = self.card_url();
        super::wait_for_card(&mut self.child, &card, "the A2A test agent").await;
    }
}

impl Drop for A2aPeer {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// reqwest is built without a default TLS provider; one must be installed.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("PALLET_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let python = repository_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-env.sh to install the A2A test agent's packages",
        python.display()
    );
    python
}

/// A port that was free a moment ago (the child binds it itself).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}
