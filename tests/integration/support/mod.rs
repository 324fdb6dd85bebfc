//! Test harness: real servers on free loopback ports, and [`TestContext`],
//! the isolated scratch directory every test that runs `pallet` starts from.

pub mod a2a_peer;
pub mod browser;
pub mod context;
pub mod hostile_agent;
pub mod hostile_registry;
pub mod legacy_agent;
pub mod original_agent;
pub mod pallet;
pub mod postgres;
pub mod process;
pub mod records;
pub mod registry;
pub mod sdk_peer;
pub mod snapshot;
pub mod token_server;

pub use context::TestContext;

/// A reqwest client; reqwest is built without a default TLS crypto provider,
/// so the process-wide one is installed first (whichever test comes first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// How long a test peer may take to start.
const STARTUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until `child` (a test peer, named `what`) serves its card at `card`;
/// fails when it exits first or takes longer than [`STARTUP_LIMIT`].
pub async fn wait_for_card(child: &mut std::process::Child, card: &str, what: &str) {
    let started = std::time::Instant::now();
    let client = http_client();
    loop {
        if let Ok(response) = client.get(card).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during startup ({status}); run scripts/setup-test-env.sh");
        }
        assert!(
            started.elapsed() < STARTUP_LIMIT,
            "{what} did not answer within {STARTUP_LIMIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
