//! An agent built like the Python original's (`tests/peers/legacy_agent.py`:
//! FastAPI + pydantic 2, `GET /agent-card`, `POST /execute`), run as a child
//! process on a free loopback port and killed when dropped. Every request body
//! it receives is kept in a log file, so tests can read what pallet sent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::a2a_peer::python;

pub struct OriginalAgent {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl OriginalAgent {
    /// Offers `skills` (of `create_plan`, `generate_code`, `review_code`).
    pub async fn start(name: &str, skills: &[&str]) -> OriginalAgent {
        let python = python();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/legacy_agent.py");
        let log = tempfile::NamedTempFile::new().expect("request log");
        let port = free_port();
        let child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(name)
            .arg(skills.join(","))
            .arg("--exit-on-stdin-eof")
            .env("LEGACY_AGENT_LOG", log.path())
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
        let mut agent = OriginalAgent { port, child, log };
        agent.wait_until_ready().await;
        agent
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn card_url(&self) -> String {
        format!("{}/agent-card", self.url())
    }

    /// The card the agent serves, as the original pushed it to the registry.
    pub async fn card(&self) -> Vec<u8> {
        let response = reqwest::get(self.card_url()).await.expect("card request");
        response.bytes().await.expect("card body").to_vec()
    }

    /// The JSON-RPC requests `POST /execute` received, in order.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("logged request is JSON"))
            .collect()
    }

    async fn wait_until_ready(&mut self) {
        let card = self.card_url();
        super::wait_for_card(&mut self.child, &card, "the FastAPI test agent").await;
    }
}

impl Drop for OriginalAgent {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the child binds it itself).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}
