//! TLS to the database, with libpq's meanings of the URL's `sslmode` (and
//! `sslrootcert`), which `tokio-postgres` only partly knows (it has no
//! `verify-ca`, `verify-full` or `sslrootcert`):
//!
//! - `disable`: plain TCP.
//! - `allow`, `prefer` (the default): TLS when the server offers it, else
//!   plain; the server's certificate is not checked (as libpq).
//! - `require`: TLS or no connection; the certificate is not checked, unless
//!   `sslrootcert` names roots (then as `verify-ca`, as libpq).
//! - `verify-ca`: TLS, the certificate chains to a root; any host name.
//! - `verify-full`: `verify-ca`, and the certificate names the host.
//!
//! Roots: `sslrootcert=FILE` (PEM), or the system's (`sslrootcert=system`,
//! which as in libpq 16 means `verify-full`, the only check worth making
//! against public roots; also when absent with `verify-full`). A Unix
//! socket gets no TLS. The TLS stack is rustls (already pallet's for
//! HTTPS). No channel binding is offered: SCRAM authenticates without it.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Not at all (libpq's `prefer` and `require`): encryption only.
    Nothing,
    /// The chain, not the name.
    Chain,
    /// The chain and the host name.
    Full,
}

/// What the URL asked for, with `sslmode`/`sslrootcert` taken out of it.
#[derive(Debug)]
pub struct Requested {
    /// The URL for `postgres::Config` (its `sslmode` one it knows).
    pub url: String,
    /// None when the URL names no TLS parameter: what `postgres::Config`
    /// reads from it (its default, `prefer`) stands.
    pub mode: Option<SslMode>,
    check: Check,
    roots: Option<PathBuf>,
}

/// Take libpq's TLS parameters out of `url`; an error says what is wrong.
/// The rest of the URL is kept byte for byte (its percent-encoding, a list
/// of hosts, a socket directory as `host=`), for `postgres::Config`.
pub fn requested(url: &str) -> Result<Requested, String> {
    // The query starts at the first `?` after the credentials, which end at
    // the first `@` (as `postgres::Config` reads a URL): a `?` in a password stays.
    let authority = url.find("://").map_or(0, |at| at + 3);
    let host_part = url[authority..]
        .find('@')
        .map_or(authority, |at| authority + at + 1);
    let (base, query) = match url[host_part..].find('?') {
        Some(at) => (&url[..host_part + at], &url[host_part + at + 1..]),
        None => (url, ""),
    };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        match percent_decoded(key).as_str() {
            "sslmode" => sslmode = Some(percent_decoded(value)),
            "sslrootcert" => sslrootcert = Some(percent_decoded(value)),
            _ => kept.push(piece),
        }
    }
    // As libpq 16: the system's roots are only worth a full check.
    let system = sslrootcert.as_deref() == Some("system");
    let roots = sslrootcert.filter(|_| !system).map(PathBuf::from);
    let default = if system { "verify-full" } else { "prefer" };
    let mode = sslmode.as_deref().unwrap_or(default);
    let (mode, check) = match mode {
        _ if system && mode != "verify-full" => {
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full (not `{mode}`): any publicly trusted certificate would do otherwise"
            ));
        }
        "disable" => (SslMode::Disable, Check::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Check::Nothing),
        "require" if roots.is_some() => (SslMode::Require, Check::Chain),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" if roots.is_none() => {
            return Err(
                "sslmode=verify-ca needs sslrootcert=FILE, the roots to check the chain against (the system's would accept any publicly trusted certificate for any name: use verify-full with those)"
                    .to_string(),
            );
        }
        "verify-ca" => (SslMode::Require, Check::Chain),
        "verify-full" => (SslMode::Require, Check::Full),
        other => {
            return Err(format!(
                "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    let url = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok(Requested {
        url,
        mode: (sslmode.is_some() || system || roots.is_some()).then_some(mode),
        check,
        roots,
    })
}

/// `text` with its `%XX` escapes decoded (as in a URL's query; `+` stays).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The connector for what `requested` asks; an error says what is wrong
/// (an unreadable root file, say).
pub fn connector(requested: &Requested) -> Result<MakeRustls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (requested.check, &requested.roots) {
        (Check::Nothing, _) => Arc::new(Unchecked(provider.clone())),
        (check, Some(path)) => {
            let mut store = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("cannot read sslrootcert {}: {error}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no certificate (PEM expected)",
                    path.display()
                ));
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
            named_or_not(check, webpki)
        }
        (check, None) => named_or_not(
            check,
            Arc::new(crate::tls::LazyVerifier::new(provider.clone())),
        ),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustls(Arc::new(config)))
}

fn named_or_not(
    check: Check,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Arc<dyn ServerCertVerifier> {
    match check {
        Check::Chain => Arc::new(AnyName(verifier)),
        _ => verifier,
    }
}

/// Accepts any certificate but still checks that the server holds its key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the inner verifier's verdict, except on the host name.
#[derive(Debug)]
struct AnyName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// rustls as a `tokio-postgres` TLS connector.
#[derive(Clone)]
pub struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Rustls<S>;
    type TlsConnect = ConnectRustls;
    type Error = io::Error;

    /// `domain` is empty for a Unix socket, which gets no TLS (as with libpq).
    fn make_tls_connect(&mut self, domain: &str) -> io::Result<ConnectRustls> {
        let name = match domain {
            "" => None,
            domain => Some(
                ServerName::try_from(domain.to_string())
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?,
            ),
        };
        Ok(ConnectRustls {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct ConnectRustls {
    config: Arc<rustls::ClientConfig>,
    /// None for a Unix socket.
    name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for ConnectRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Rustls<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Rustls<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            // Only asked when the server offered TLS (never over a socket).
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no TLS over a Unix socket: sslmode=require or verify-* needs a TCP host",
                )
            })?;
            Ok(Rustls(connector.connect(name, stream).await?))
        })
    }
}

/// A TLS stream to the server.
pub struct Rustls<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Rustls<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Rustls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Rustls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_map_to_what_the_client_knows_and_leave_the_other_parameters() {
        let cases = [
            ("postgres://u@h/d", None, Check::Nothing, "postgres://u@h/d"),
            (
                "postgres://u@h/d?sslmode=disable&application_name=x",
                Some(SslMode::Disable),
                Check::Nothing,
                "postgres://u@h/d?application_name=x",
            ),
            (
                "postgres://u@h/d?sslmode=require",
                Some(SslMode::Require),
                Check::Nothing,
                "postgres://u@h/d",
            ),
            (
                "postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem",
                Some(SslMode::Require),
                Check::Chain,
                "postgres://u@h/d",
            ),
            (
                "postgres://u@h/d?sslmode=verify-ca&sslrootcert=ca.pem",
                Some(SslMode::Require),
                Check::Chain,
                "postgres://u@h/d",
            ),
            (
                "postgres://u@h/d?connect_timeout=3&sslmode=verify-full&sslrootcert=system",
                Some(SslMode::Require),
                Check::Full,
                "postgres://u@h/d?connect_timeout=3",
            ),
            // A `?` in the password is the password's.
            (
                "postgres://u:p?w@h/d?sslmode=require",
                Some(SslMode::Require),
                Check::Nothing,
                "postgres://u:p?w@h/d",
            ),
        ];
        for (url, mode, check, rest) in cases {
            let requested = requested(url).unwrap();
            assert_eq!(
                (requested.mode, requested.check, requested.url.as_str()),
                (mode, check, rest),
                "{url}"
            );
        }
        let error = requested("postgres://u@h/d?sslmode=verify").unwrap_err();
        assert!(
            error.contains("`verify`") && error.contains("verify-full"),
            "{error}"
        );
        // The rest stays as written: percent-encoding, host lists, socket directories.
        let kept = "postgres://u@h1:5432,h2:5433/d?options=-c%20statement_timeout%3D5s&application_name=my%20app&host=%2Fvar%2Frun";
        let with_tls = format!("{kept}&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20one.pem");
        let requested_here = requested(&with_tls).unwrap();
        assert_eq!(requested_here.url, kept);
        assert_eq!(requested_here.roots, Some(PathBuf::from("/etc/ca one.pem")));
        // The system's roots with a weaker check, or verify-ca without roots: refused.
        for (url, part) in [
            (
                "postgres://u@h/d?sslmode=require&sslrootcert=system",
                "needs sslmode=verify-full",
            ),
            (
                "postgres://u@h/d?sslmode=verify-ca&sslrootcert=system",
                "needs sslmode=verify-full",
            ),
            (
                "postgres://u@h/d?sslmode=verify-ca",
                "needs sslrootcert=FILE",
            ),
        ] {
            let error = requested(url).unwrap_err();
            assert!(error.contains(part), "{url}: {error}");
        }
        let system = requested("postgres://u@h/d?sslrootcert=system").unwrap();
        assert_eq!(
            (system.mode, system.check),
            (Some(SslMode::Require), Check::Full)
        );
        assert_eq!(percent_decoded("%41%+1%zz%"), "A%+1%zz%");
    }
}
