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
}

impl Auth {
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Header { prefix: "", .. } => "api_key",
            Auth::Header { .. } => "bearer",
            Auth::Basic { .. } => "basic",
            Auth::Query { .. } => "query",
        }
    }

    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Auth::None => None,
            Auth::Header { secret, .. } | Auth::Query { secret, .. } => Some(secret),
            Auth::Basic { password, .. } => Some(password),
        }
    }

    /// Where the credential goes, without the credential: `header X-API-Key`.
    pub fn placement(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Header { name, .. } => Some(format!("header {name}")),
            Auth::Basic { username, .. } => Some(format!("basic user {username}")),
            Auth::Query { param, .. } => Some(format!("query parameter {param}")),
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
