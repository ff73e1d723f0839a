//! `[server]`: lookout's own listener (TLS, mTLS, basic auth, limits).

use super::*;

/// The costs the bcrypt crate hashes and verifies with.
pub(super) const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

pub(super) const MIN_READ_HEADER_TIMEOUT: Duration = Duration::from_millis(100);

pub(super) const MAX_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) fn server_settings(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawServer,
) -> Result<ServerSettings, ConfigError> {
    let mut users = BTreeMap::new();
    for (user, hash) in &raw.basic_auth_users {
        let field = format!("server.basic_auth_users.{user}");
        match hash.get_ref().parse::<bcrypt::HashParts>() {
            Err(_) => {
                return Err(ctx.err(
                    hash.span(),
                    field,
                    "not a bcrypt hash (make one with `lookout hash-password`)",
                ));
            }
            // The parser takes any cost, bcrypt itself only these: a hash
            // outside them could never match.
            Ok(parts) if !BCRYPT_COSTS.contains(&parts.get_cost()) => {
                return Err(ctx.err(
                    hash.span(),
                    field,
                    format!(
                        "bcrypt cost {} is outside {}..={}",
                        parts.get_cost(),
                        BCRYPT_COSTS.start(),
                        BCRYPT_COSTS.end()
                    ),
                ));
            }
            Ok(_) => {}
        }
        users.insert(user.clone(), hash.get_ref().clone());
    }
    let tls = match &raw.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(server_tls(ctx, t)?)),
    };
    let read_header_timeout = match &raw.read_header_timeout {
        None => DEFAULT_READ_HEADER_TIMEOUT,
        Some(t)
            if !(MIN_READ_HEADER_TIMEOUT..=MAX_READ_HEADER_TIMEOUT).contains(&t.get_ref().0) =>
        {
            return Err(ctx.err(
                t.span(),
                "server.read_header_timeout",
                "must be between 100ms and 1h",
            ));
        }
        Some(t) => t.get_ref().0,
    };
    let max_connections = limit(
        ctx,
        raw.max_connections.as_ref(),
        "server.max_connections",
        DEFAULT_MAX_CONNECTIONS,
    )?;
    Ok(ServerSettings {
        tls,
        basic_auth_users: users,
        read_header_timeout,
        max_connections,
    })
}

/// exporter-toolkit's `tls_server_config`: a certificate and key, and for
/// mTLS a client CA with `client_auth_type`.
pub(super) fn server_tls(
    ctx: &Ctx<'_>,
    spanned: &Spanned<super::raw::RawTlsServer>,
) -> Result<rustls::ServerConfig, ConfigError> {
    use rustls::pki_types::PrivateKeyDer;
    let t = spanned.get_ref();
    let err = |what: &str, msg: String| {
        ctx.err(
            spanned.span(),
            format!("server.tls_server_config.{what}"),
            msg,
        )
    };
    let certs: Vec<CertificateDer<'static>> = {
        let path = ctx.dir.join(&t.cert_file);
        let pem = file::read(&path, file::Kind::Pem)
            .map_err(|e| err("cert_file", format!("cannot read {}: {e}", path.display())))?;
        CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                err(
                    "cert_file",
                    format!("{} is not valid PEM: {e}", path.display()),
                )
            })?
    };
    if certs.is_empty() {
        return Err(err("cert_file", "holds no certificate".into()));
    }
    let key = {
        let path = ctx.dir.join(&t.key_file);
        let pem = file::read(&path, file::Kind::Pem)
            .map_err(|e| err("key_file", format!("cannot read {}: {e}", path.display())))?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            err(
                "key_file",
                format!("cannot read a private key from {}: {e}", path.display()),
            )
        })?
    };
    let auth_type = t
        .client_auth_type
        .as_deref()
        .unwrap_or(match t.client_ca_file {
            Some(_) => "RequireAndVerifyClientCert",
            None => "NoClientCert",
        });
    // The provider named, not the process default: nothing installs one.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert_file", format!("TLS setup failed: {e}")))?;
    let builder = match (auth_type, &t.client_ca_file) {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let path = ctx.dir.join(ca);
            let mut roots = rustls::RootCertStore::empty();
            let pem = file::read(&path, file::Kind::Pem).map_err(|e| {
                err(
                    "client_ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    err(
                        "client_ca_file",
                        format!("{} is not valid PEM: {e}", path.display()),
                    )
                })?;
                roots
                    .add(cert)
                    .map_err(|e| err("client_ca_file", format!("bad CA certificate: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                err(
                    "client_ca_file",
                    format!("cannot verify clients with it: {e}"),
                )
            })?)
        }
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            return Err(err(
                "client_auth_type",
                format!("{auth_type:?} needs client_ca_file"),
            ));
        }
        (other, _) => {
            return Err(err(
                "client_auth_type",
                format!(
                    "{other:?} is not supported (use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ),
            ));
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        err(
            "key_file",
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    // The listener speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
