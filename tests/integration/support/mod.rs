//! Test harness: real servers on free loopback ports.

pub mod a2a_peer;
pub mod hostile_agent;
pub mod hostile_registry;
pub mod legacy_agent;
pub mod original_agent;
pub mod pallet;
pub mod process;
pub mod registry;
pub mod sdk_peer;
pub mod token_server;

/// A reqwest client; reqwest is built without a default TLS crypto provider,
/// so the process-wide one is installed first (whichever test comes first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
