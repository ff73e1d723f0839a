//! What a probe is told to send, and how it may trust the answer: the
//! request, its credential and its TLS settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName};
use rustls::pki_types::CertificateDer;
use url::Url;

use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<bytes::Bytes>,
    pub auth: Auth,
    /// Bounds the whole probe: connect, redirects and body.
    pub timeout: Duration,
    pub max_body_bytes: u64,
    /// 0: redirects are not followed and the 3xx itself is judged.
    pub max_redirects: u32,
    pub tls_profile: usize,
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `api_key` (prefix "") and `bearer` (`Authorization`, prefix "Bearer ").
    Header {
        name: HeaderName,
        prefix: &'static str,
        secret: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    Query {
        param: String,
        secret: Secret,
    },
    /// `oauth2_client_credentials`: a token fetched from `token_url` (and
    /// cached) is sent as `Authorization: Bearer …`.
    OAuth2(Arc<OAuth2>),
}

/// An OAuth2 client (RFC 6749 §4.4, client credentials grant). The client
/// secret goes only to `token_url`; the token only to the check's origin.
#[derive(Clone, Debug)]
pub struct OAuth2 {
    /// https, or http on a loopback host.
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Sent space-separated as `scope`; none: no `scope` parameter.
    pub scopes: Vec<String>,
    /// Sent as `audience` when set (Auth0, Okta and others want it).
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
}

/// How the client proves who it is to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Body,
}

impl OAuth2 {
    /// `scheme://host:port` of the token endpoint.
    pub fn origin(&self) -> String {
        self.token_url.origin().ascii_serialization()
    }
}

impl Auth {
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Header { prefix: "", .. } => "api_key",
            Auth::Header { .. } => "bearer",
            Auth::Basic { .. } => "basic",
            Auth::Query { .. } => "query",
            Auth::OAuth2(_) => "oauth2_client_credentials",
        }
    }

    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Auth::None => None,
            Auth::Header { secret, .. } | Auth::Query { secret, .. } => Some(secret),
            Auth::Basic { password, .. } => Some(password),
            Auth::OAuth2(o) => Some(&o.client_secret),
        }
    }

    /// Where the credential goes, without the credential: `header X-API-Key`.
    pub fn placement(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Header { name, .. } => Some(format!("header {name}")),
            Auth::Basic { username, .. } => Some(format!("basic user {username}")),
            Auth::Query { param, .. } => Some(format!("query parameter {param}")),
            Auth::OAuth2(o) => Some(format!(
                "header Authorization (OAuth2 token from {})",
                o.origin()
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub ca_file: Option<CaFile>,
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Debug)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Arc<[CertificateDer<'static>]>,
}

impl PartialEq for CaFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for CaFile {}
