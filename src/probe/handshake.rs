//! TLS over a connected TCP stream, for the kinds that are not HTTP (a TCP
//! check with `tls = true`, a TLS check, gRPC over TLS): one handshake
//! with the check's prebuilt profile, no resumption, and what the handshake
//! showed as a [`TlsSeen`].

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::http::tls_error;
use super::tls::{self, TlsProfile};
use super::trace::{Trace, TraceVerifier};
use crate::model::{TlsSeen, TlsVersion};
use crate::outcome::FailureKind;

pub struct Handshake {
    pub stream: TlsStream<TcpStream>,
    pub seen: TlsSeen,
}

/// Failed handshakes: the kind (`tls`) and a sentence from
/// [`tls::describe`], plus whatever the certificates said before it failed.
pub struct Failed {
    pub reason: (FailureKind, String),
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// Runs the handshake. `alpn` is what to offer (empty: nothing, as a plain
/// TCP client would); `shown` is how the peer is named in a reason.
pub async fn connect(
    tcp: TcpStream,
    server_name: &str,
    profile: &TlsProfile,
    alpn: &[&[u8]],
    shown: &str,
) -> Result<Handshake, Failed> {
    let trace = Arc::new(Trace::default());
    let mut config = profile.base.clone();
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(TraceVerifier {
            inner: profile.verifier.clone(),
            trace: trace.clone(),
        }));
    config.resumption = Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| Failed {
        reason: (
            FailureKind::Tls,
            format!("{server_name:?} is not a name or address TLS can verify"),
        ),
        not_after: None,
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(name, tcp).await {
        Ok(stream) => {
            let seen = seen(&stream, trace.cert_not_after());
            Ok(Handshake { stream, seen })
        }
        Err(e) => {
            let what = match tls_error(&e) {
                Some(tls) => tls::describe(tls, server_name, trace.leaf().as_ref()),
                None => match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        "the peer closed the connection (does it speak TLS on this port?)"
                            .to_owned()
                    }
                    _ => e.to_string(),
                },
            };
            Err(Failed {
                reason: (
                    FailureKind::Tls,
                    format!("TLS handshake with {shown} failed: {what}"),
                ),
                not_after: trace.cert_not_after(),
            })
        }
    }
}

fn seen(stream: &TlsStream<TcpStream>, earliest: Option<chrono::DateTime<chrono::Utc>>) -> TlsSeen {
    let (_, conn) = stream.get_ref();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some(TlsVersion::Tls12),
        _ => None,
    };
    let chain: &[CertificateDer<'_>] = conn.peer_certificates().unwrap_or_default();
    TlsSeen {
        version,
        ..tls::certificate_seen(chain.first(), earliest)
    }
}
