//! TLS for clients that mostly speak plain HTTP: what reqwest configures by
//! default (the platform's verifier, TLS 1.2 and 1.3, ALPN h2 then
//! http/1.1), except that the root certificates load on first use. Loading
//! them parses every file under the system's certificate directories, some
//! milliseconds per client, which a run on plain-HTTP agents never needs.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

/// A rustls client configuration for `ClientBuilder::tls_backend_preconfigured`.
pub(crate) fn config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // reqwest builds its other clients with the process default: keep them alike.
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LazyVerifier::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The platform's verifier, built (root certificates loaded) on first use.
#[derive(Debug)]
pub(crate) struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Verifier, rustls::Error>>,
}

impl LazyVerifier {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> LazyVerifier {
        LazyVerifier {
            provider,
            verifier: OnceLock::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_loaded(&self) -> bool {
        self.verifier.get().is_some()
    }

    fn verifier(&self) -> Result<&Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?
            .verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?
            .verify_tls13_signature(message, cert, signature)
    }

    /// Asked for every handshake's hello: the provider's schemes, as the
    /// platform verifier answers, without loading the roots.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_certificates_load_at_the_first_verification_only() {
        use rustls::client::danger::ServerCertVerifier;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = LazyVerifier::new(provider.clone());
        assert_eq!(
            verifier.supported_verify_schemes(),
            rustls_platform_verifier::Verifier::new(provider)
                .unwrap()
                .supported_verify_schemes()
        );
        assert!(!verifier.is_loaded());
        let name = rustls::pki_types::ServerName::try_from("agent.invalid").unwrap();
        let not_a_certificate = rustls::pki_types::CertificateDer::from(vec![1, 2, 3]);
        let verified = verifier.verify_server_cert(
            &not_a_certificate,
            &[],
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        );
        assert!(verified.is_err());
        assert!(verifier.is_loaded());
    }
}
