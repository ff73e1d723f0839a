//! TLS client settings, built once per distinct `tls` table when the config
//! loads (loading the platform's roots takes milliseconds) and cloned, with
//! the per-probe hooks put in, for each probe.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::model::TlsSettings;

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

/// What the server's own certificate says of itself, for reasons: text
/// from the target, redacted before it is shown like any other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The issuer's name, as `CN=…, O=…`.
    pub issuer: String,
    /// Issued by itself: the subject is the issuer (a self-signed certificate).
    pub self_issued: bool,
    pub not_after: Option<DateTime<Utc>>,
}

impl Leaf {
    pub fn parse(der: &CertificateDer<'_>) -> Option<Leaf> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some(Leaf {
            issuer: cert.issuer().to_string(),
            self_issued: cert.issuer().as_raw() == cert.subject().as_raw(),
            not_after: DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0),
        })
    }
}

/// A TLS failure as one short sentence a person can act on. rustls' own
/// text for most errors is a Debug dump (`invalid peer certificate:
/// UnsupportedSignatureAlgorithmForPublicKeyContext { signature_algorithm_id:
/// [6, 8, …] }`), so no error is shown through it. `host` is the name asked
/// for; `leaf` is what the server's certificate said, when it sent one.
pub fn describe(err: &rustls::Error, host: &str, leaf: Option<&Leaf>) -> String {
    use rustls::Error as E;
    match err {
        E::InvalidCertificate(problem) => describe_certificate(problem, host, leaf),
        E::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            let hint = match alert {
                A::BadCertificate | A::CertificateRequired | A::UnknownCA | A::AccessDenied => {
                    ": it wants a client certificate it trusts"
                }
                A::ProtocolVersion => ": no TLS version in common (lookout speaks TLS 1.2 and 1.3)",
                A::HandshakeFailure | A::InsufficientSecurity => {
                    ": no cipher suite, key exchange or signature scheme in common"
                }
                A::UnrecognisedName => ": it does not serve this host name",
                A::NoApplicationProtocol => ": it speaks neither h2 nor http/1.1",
                _ => "",
            };
            format!(
                "the server refused the handshake (alert \"{}\"){hint}",
                words(alert)
            )
        }
        E::InvalidMessage(m) => {
            let hint = if matches!(m, rustls::InvalidMessage::InvalidContentType) {
                " (not TLS: plain HTTP on this port?)"
            } else {
                ""
            };
            format!(
                "the server sent a malformed TLS message: {}{hint}",
                words(m)
            )
        }
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "the server sent a TLS message out of order".to_owned()
        }
        E::PeerIncompatible(p) => format!("the server is incompatible: {}", words(p)),
        E::PeerMisbehaved(p) => format!("the server broke the TLS protocol: {}", words(p)),
        E::NoCertificatesPresented => "the server sent no certificate".to_owned(),
        E::DecryptError => "a TLS record from the server could not be decrypted".to_owned(),
        E::PeerSentOversizedRecord => "the server sent an oversized TLS record".to_owned(),
        E::NoApplicationProtocol => {
            "the server accepts none of lookout's protocols (ALPN h2, http/1.1)".to_owned()
        }
        E::HandshakeNotComplete => "the handshake did not complete".to_owned(),
        E::General(text) => text.clone(),
        other => format!("TLS error: {}", words(other)),
    }
}

fn describe_certificate(
    problem: &rustls::CertificateError,
    host: &str,
    leaf: Option<&Leaf>,
) -> String {
    use rustls::CertificateError as C;
    let at = |t: &UnixTime| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            .map_or_else(
                || "an unreadable time".to_owned(),
                |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            )
    };
    let self_signed = leaf.is_some_and(|l| l.self_issued);
    let issuer = leaf.map_or("its issuer", |l| l.issuer.as_str());
    match problem {
        C::UnknownIssuer if self_signed => {
            "self-signed certificate, not trusted (put it in tls.ca_file to trust it)".to_owned()
        }
        C::UnknownIssuer => format!(
            "certificate issued by \"{issuer}\", which is not a trusted CA \
             (put that CA in tls.ca_file to trust it)"
        ),
        // webpki found a trusted certificate with the issuer's name whose
        // key is of another type. Debian's ssl-cert "snakeoil" (CN=localhost,
        // RSA) meets every self-signed CN=localhost test certificate so.
        C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } if self_signed => format!(
            "self-signed certificate, not trusted (a trusted certificate is also named \
             \"{issuer}\", with another key type; put this one in tls.ca_file to trust it)"
        ),
        C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
            "certificate's signature does not fit the key type of the trusted \"{issuer}\" \
             (another certificate with the same name?)"
        ),
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm | C::UnsupportedSignatureAlgorithmContext { .. } => {
            "certificate is signed with an algorithm lookout does not accept".to_owned()
        }
        C::BadSignature => format!(
            "certificate's signature does not verify with the key of \"{issuer}\" \
             (a trusted certificate with the same name but another key?)"
        ),
        C::BadEncoding => "certificate is malformed".to_owned(),
        C::ExpiredContext { not_after, .. } => {
            format!("certificate expired at {}", at(not_after))
        }
        C::Expired => "certificate has expired".to_owned(),
        C::NotValidYetContext { not_before, .. } => {
            format!("certificate not valid before {}", at(not_before))
        }
        C::NotValidYet => "certificate is not valid yet".to_owned(),
        C::NotValidForNameContext { presented, .. } => {
            // webpki shows each name as `DnsName("host")`.
            let name = |n: &String| {
                n.strip_prefix("DnsName(\"")
                    .and_then(|n| n.strip_suffix("\")"))
                    .map_or_else(|| n.clone(), str::to_owned)
            };
            let mut names: Vec<String> = presented.iter().take(3).map(name).collect();
            if presented.len() > 3 {
                names.push(format!("{} more", presented.len() - 3));
            }
            let names = if names.is_empty() {
                "no name".to_owned()
            } else {
                names.join(", ")
            };
            format!("certificate not valid for \"{host}\" (it is for {names})")
        }
        C::NotValidForName => format!("certificate not valid for \"{host}\""),
        C::Revoked => "certificate has been revoked".to_owned(),
        C::UnknownRevocationStatus => "certificate's revocation status is unknown".to_owned(),
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            "the certificate revocation list has expired".to_owned()
        }
        C::UnhandledCriticalExtension => {
            "certificate has a critical extension lookout does not understand".to_owned()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "certificate is not for TLS servers (its extended key usage)".to_owned()
        }
        C::InvalidOcspResponse => "the server's stapled OCSP response is invalid".to_owned(),
        C::ApplicationVerificationFailure => "certificate refused by the verifier".to_owned(),
        C::Other(inner) => format!("certificate refused: {inner}"),
        other => format!("certificate refused: {}", words(other)),
    }
}

/// An enum variant's name as words: `NoCipherSuitesInCommon` → "no cipher
/// suites in common". Whatever the variant carries is left out.
fn words(value: &impl std::fmt::Debug) -> String {
    let debug = format!("{value:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What the leaf certificate says, for `probe_ssl_last_chain_info` and
/// the certificate expectations: subject, issuer, DNS and IP
/// subjectAltNames, SHA-256 fingerprint and expiry. `chain_not_after` is
/// the earliest expiry of the chain presented. The version is the
/// caller's to fill.
pub fn certificate_seen(
    leaf: Option<&CertificateDer<'_>>,
    chain_not_after: Option<DateTime<Utc>>,
) -> crate::model::TlsSeen {
    use sha2::{Digest as _, Sha256};
    let mut out = crate::model::TlsSeen {
        chain_not_after,
        ..Default::default()
    };
    let Some(leaf) = leaf else {
        return out;
    };
    out.fingerprint_sha256 = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
        out.subject = cert.subject().to_string();
        out.issuer = cert.issuer().to_string();
        out.leaf_not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => out.san.push((*n).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(std::net::IpAddr::from),
                            _ => None,
                        };
                        out.san.extend(ip.map(|ip| ip.to_string()));
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;

    /// Every error rustls can hand a probe reads as a sentence: no Debug
    /// braces, byte lists or `…Context` names.
    #[test]
    fn every_tls_error_is_a_sentence() {
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_600_000_000));
        let name = ServerName::try_from("localhost").unwrap();
        #[allow(deprecated)]
        let certificate = vec![
            C::BadEncoding,
            C::Expired,
            C::ExpiredContext {
                time: t,
                not_after: t,
            },
            C::NotValidYet,
            C::NotValidYetContext {
                time: t,
                not_before: t,
            },
            C::Revoked,
            C::UnhandledCriticalExtension,
            C::UnknownIssuer,
            C::UnknownRevocationStatus,
            C::ExpiredRevocationList,
            C::ExpiredRevocationListContext {
                time: t,
                next_update: t,
            },
            C::BadSignature,
            C::UnsupportedSignatureAlgorithm,
            C::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: vec![6, 8, 42],
                supported_algorithms: vec![],
            },
            C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: vec![6, 8, 42],
                public_key_algorithm_id: vec![6, 9, 42],
            },
            C::NotValidForName,
            C::NotValidForNameContext {
                expected: name.to_owned(),
                presented: vec!["DnsName(\"other.example\")".into()],
            },
            C::InvalidPurpose,
            C::InvalidOcspResponse,
            C::ApplicationVerificationFailure,
        ];
        let mut errors: Vec<rustls::Error> = certificate
            .into_iter()
            .map(rustls::Error::InvalidCertificate)
            .collect();
        errors.extend([
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
            rustls::Error::AlertReceived(rustls::AlertDescription::Unknown(200)),
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
            rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::IllegalMiddleboxChangeCipherSpec),
            rustls::Error::NoCertificatesPresented,
            rustls::Error::DecryptError,
            rustls::Error::PeerSentOversizedRecord,
            rustls::Error::NoApplicationProtocol,
            rustls::Error::HandshakeNotComplete,
            rustls::Error::FailedToGetCurrentTime,
            rustls::Error::General("the verifier said no".into()),
        ]);
        for leaf in [
            None,
            Some(Leaf {
                issuer: "CN=localhost".into(),
                self_issued: true,
                not_after: None,
            }),
        ] {
            for e in &errors {
                let text = describe(e, "localhost", leaf.as_ref());
                assert!(
                    !text.is_empty()
                        && text.len() < 200
                        && !text.contains(['{', '}', '['])
                        && !text.contains("Context")
                        && !text.contains("_id"),
                    "{e:?} -> {text:?}"
                );
            }
        }
        assert_eq!(
            describe(
                &rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
                "h",
                None
            ),
            "the server is incompatible: no cipher suites in common"
        );
        assert_eq!(
            describe(
                &rustls::Error::InvalidCertificate(C::ExpiredContext {
                    time: t,
                    not_after: t
                }),
                "h",
                None
            ),
            "certificate expired at 2020-09-13 12:26:40 UTC"
        );
    }
}
