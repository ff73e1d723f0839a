//! TLS client settings, built once per distinct `tls` table when the config
//! loads (loading the platform's roots takes milliseconds) and cloned, with
//! the per-probe hooks put in, for each probe.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the system's certificate store could not be loaded: {0}")]
    Platform(rustls::Error),
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A verifier and a client config without per-probe hooks.
#[derive(Clone, Debug)]
pub struct TlsProfile {
    pub base: rustls::ClientConfig,
    pub verifier: Arc<dyn ServerCertVerifier>,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsProfile {
    pub fn build(settings: &TlsSettings) -> Result<TlsProfile, TlsSetupError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
            Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            })
        } else if let Some(ca) = &settings.ca_file {
            let mut roots = RootCertStore::empty();
            for cert in ca.certs.iter() {
                roots.add(cert.clone()).map_err(|e| TlsSetupError::CaFile {
                    path: ca.path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsSetupError::CaFile {
                    path: ca.path.display().to_string(),
                    message: e.to_string(),
                })?
        } else {
            Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(TlsSetupError::Platform)?,
            )
        };
        let mut base = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        base.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsProfile { base, verifier })
    }
}

/// `insecure_skip_verify`: any certificate for any name is accepted, but the
/// handshake signatures are still checked, so the peer holds the key of the
/// certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
