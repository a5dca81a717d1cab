//! TLS for the PostgreSQL store: libpq's `sslmode`, carried out with rustls (ring provider).
//!
//! | mode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | – |
//! | `allow`, `prefer` | if the server offers it (tokio-postgres's `prefer`: TLS is tried first) | chain checked only when a root certificate is given |
//! | `require` | always | chain checked only when a root certificate is given (as libpq does) |
//! | `verify-ca` | always | chain checked against the roots |
//! | `verify-full` | always | chain and host name checked |
//!
//! The roots are the `sslrootcert` file (PEM), the PEM given to
//! [`PostgresStoreBuilder::tls_root_pem`](super::PostgresStoreBuilder::tls_root_pem), or,
//! when neither is given (or with `sslrootcert=system`), Mozilla's roots compiled into the
//! crate (`webpki-roots`), not the operating system's store.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::fatal;
use crate::store::StoreError;

/// How a [`PostgresStore`](super::PostgresStore) uses TLS: libpq's `sslmode` (see the
/// table in the [module docs](super::PostgresStore#tls)).
///
/// ```
/// use bitcoin_checkout::store::SslMode;
///
/// let mode: SslMode = "verify-full".parse()?;
/// assert_eq!(mode, SslMode::VerifyFull);
/// assert!(mode.verifies_host());
/// assert!("verify_full".parse::<SslMode>().is_err());
/// # Ok::<(), bitcoin_checkout::store::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it (as `prefer`: tokio-postgres tries TLS first).
    Allow,
    /// TLS if the server offers it; the certificate is checked only against a given root.
    Prefer,
    /// Always TLS; the certificate is checked only against a given root.
    Require,
    /// Always TLS, the certificate chain checked against the roots.
    VerifyCa,
    /// Always TLS, the certificate chain and the server's host name checked.
    VerifyFull,
}

impl SslMode {
    /// The name libpq uses (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the connection fails unless it is encrypted.
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    /// Whether the certificate chain is always checked.
    pub fn verifies_chain(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }

    /// Whether the server's host name is checked against its certificate.
    pub fn verifies_host(self) -> bool {
        self == Self::VerifyFull
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = StoreError;

    /// libpq's names; anything else is refused (not retryable).
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(fatal(format!(
                    "unknown sslmode {:?}: use disable, allow, prefer, require, verify-ca or verify-full",
                    crate::money::truncate_for_error(other)
                )));
            }
        })
    }
}

/// Where the trusted roots come from.
#[derive(Clone)]
pub(super) enum Roots {
    /// None given: Mozilla's roots serve `verify-ca`/`verify-full`; weaker modes check nothing.
    Default,
    /// `sslrootcert=system`: Mozilla's roots.
    System,
    /// PEM certificates (from the `sslrootcert` file or given in code); `origin` names them in
    /// errors.
    Pem { pem: Vec<u8>, origin: String },
}

/// The TLS side of a store: the mode tokio-postgres negotiates and the connector, if any.
pub(super) struct Tls {
    pub(super) negotiate: tokio_postgres::config::SslMode,
    pub(super) connector: Option<MakeRustlsConnect>,
}

impl Tls {
    /// Builds the connector for `mode`: the application's own rustls configuration if it
    /// gave one (used as it is), else one made from `roots`.
    pub(super) fn new(
        mode: SslMode,
        roots: &Roots,
        custom: Option<Arc<ClientConfig>>,
    ) -> Result<Self, StoreError> {
        use tokio_postgres::config::SslMode as Negotiate;
        let negotiate = match mode {
            SslMode::Disable => {
                return Ok(Self {
                    negotiate: Negotiate::Disable,
                    connector: None,
                });
            }
            // tokio-postgres has no `allow` (plain first, TLS if the server insists): both
            // ask for TLS first and go on in plain text if the server refuses it.
            SslMode::Allow | SslMode::Prefer => Negotiate::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Negotiate::Require,
        };
        let config = match custom {
            Some(config) => config,
            None => Arc::new(client_config(mode, roots)?),
        };
        Ok(Self {
            negotiate,
            // tokio-postgres-rustls takes the configuration by value: an `Arc` shared with the
            // application is cloned (a configuration is small).
            connector: Some(MakeRustlsConnect::new(Arc::unwrap_or_clone(config))),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl fmt::Display) -> StoreError {
    fatal(format!("TLS: {what}: {e}"))
}

/// The roots to check a chain against, if any are to be checked.
fn root_store(roots: &Roots, mode: SslMode) -> Result<Option<RootCertStore>, StoreError> {
    let mozilla = || RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    match roots {
        Roots::Default if mode.verifies_chain() => Ok(Some(mozilla())),
        Roots::Default => Ok(None),
        Roots::System => Ok(Some(mozilla())),
        Roots::Pem { pem, origin } => {
            let mut store = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| tls_error(&format!("cannot read {origin}"), e))?;
                store
                    .add(cert)
                    .map_err(|e| tls_error(&format!("unusable certificate in {origin}"), e))?;
            }
            if store.is_empty() {
                return Err(tls_error(origin, "no certificate in it"));
            }
            Ok(Some(store))
        }
    }
}

fn client_config(mode: SslMode, roots: &Roots) -> Result<ClientConfig, StoreError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("no protocol version", e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (root_store(roots, mode)?, mode) {
        (Some(store), SslMode::VerifyFull) => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                .build()
                .map_err(|e| tls_error("cannot build the verifier", e))?
        }
        (Some(store), _) => Arc::new(ChainOnly {
            roots: Arc::new(store),
            provider,
        }),
        (None, _) => Arc::new(Unverified { provider }),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The handshake-signature checks both verifiers share: the provider's algorithms, as
/// rustls' own verifier runs them (only the certificate check differs between them).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// `verify-ca` (and `require` with a root): the chain must lead to a trusted root; the
/// name in the certificate is not compared with the host (libpq's `verify-ca`).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// `prefer`, `allow` and `require` without a root: encrypted, the certificate unchecked
/// (libpq's behaviour; it guards against reading, not against a server in the middle).
/// The handshake's signatures are still checked, so the session is bound to the key the
/// certificate carries.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
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

    handshake_signatures!();
}

/// Whether a driver error is a TLS failure that no retry can fix (a certificate refused,
/// a server without TLS under a mode that requires it): the message says so.
pub(super) fn classify(e: &tokio_postgres::Error) -> Option<StoreError> {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(refused(tls));
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            // A socket that failed during the handshake (a server restarting) is a
            // connection error like any other, retryable: only rustls's verdicts are kept.
            return io
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .map(refused);
        }
        source = s.source();
    }
    // tokio-postgres's own TLS errors (the server has no TLS) carry no type of their own.
    let text = e.to_string();
    text.starts_with("error performing TLS handshake").then(|| {
        let detail = e.source().map(|s| s.to_string()).unwrap_or_default();
        fatal(format!("TLS handshake failed: {detail}"))
    })
}

fn refused(e: &rustls::Error) -> StoreError {
    let retryable = !matches!(
        e,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InvalidCertRevocationList(_)
    );
    let message = match e {
        rustls::Error::InvalidCertificate(_) => {
            format!("postgres: TLS: the server's certificate was refused: {e}")
        }
        _ => format!("postgres: TLS handshake failed: {e}"),
    };
    StoreError::Backend { message, retryable }
}
