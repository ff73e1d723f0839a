//! Secrets: API keys, tokens and passwords.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show a
//! fingerprint. Only the request builder in `probe::http` calls
//! [`Secret::expose`]. Everything a target sends back passes through the
//! [`Redactor`] before it is stored, logged or rendered, so a target that echoes
//! a key (in a body, a header or a redirect URL) cannot leak it either.

mod decode;
pub mod jwt;
mod redact;
mod show;

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use redact::{Learned, PIECE_CHARS, Redactor, form_encode};
pub use show::{clean, quote};

/// Where a secret's value came from; shown instead of the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretOrigin {
    /// A named entry of the `[secrets]` table.
    Named(String),
    /// A literal `value = "..."` in a check's `auth` (used for deliberately bad keys).
    Literal,
}

#[derive(Clone)]
pub struct Secret {
    value: Arc<SecretString>,
    fingerprint: Arc<str>,
    origin: SecretOrigin,
    expiry: Option<Expiry>,
}

/// When a credential stops working: the `exp` of a JWT, or what the
/// `[secrets]` entry declares (`expires = "…"`) for a key that is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds.
    pub at: i64,
    /// Declared in `[secrets]`, not read from the value.
    pub declared: bool,
}

impl Secret {
    pub fn new(value: String, origin: SecretOrigin) -> Self {
        let fingerprint = fingerprint(&value).into();
        let expiry = jwt::expiry(&value).map(|at| Expiry {
            at,
            declared: false,
        });
        Secret {
            value: Arc::new(SecretString::from(value)),
            fingerprint,
            origin,
            expiry,
        }
    }

    /// The same secret with the expiry its `[secrets]` entry declares
    /// (Unix seconds), which wins over a JWT's own `exp`.
    pub fn declaring_expiry(mut self, at: i64) -> Self {
        self.expiry = Some(Expiry { at, declared: true });
        self
    }

    /// When the credential expires, if that is known.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// A `[secrets]` entry that was not read (`check-config --no-secrets`):
    /// a stand-in value that fits anywhere a credential goes, and a
    /// fingerprint that says so.
    pub fn unread(name: &str) -> Self {
        Secret {
            value: Arc::new(SecretString::from("lookout-unread-secret")),
            fingerprint: "not read (--no-secrets)".into(),
            origin: SecretOrigin::Named(name.to_owned()),
            expiry: None,
        }
    }

    /// The plain value. Only the request builder may call this.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// `sha256:` and the first 8 hex digits of the SHA-256 of the value:
    /// enough to tell keys apart, never a prefix of the key itself.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn origin(&self) -> &SecretOrigin {
        &self.origin
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A declared expiry is part of the config: a reload that changes
        // it changes the check (the value's own `exp` follows from the
        // fingerprint).
        match self.expiry {
            Some(Expiry { at, declared: true }) => {
                write!(f, "Secret({}, expires {at})", self.fingerprint)
            }
            _ => write!(f, "Secret({})", self.fingerprint),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint)
    }
}

fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The current config's [`Redactor`], shared by every runner of a daemon:
/// a reload re-reads the secrets, and jobs it leaves alone keep running on
/// the runner of the config they came from, yet must scrub the new values.
/// It also holds the secrets learned at run time ([`Learned`]: the OAuth2
/// tokens the runners' caches hold), which every redactor it hands out
/// scrubs too, including ones handed out before a token was fetched.
#[derive(Clone, Default)]
pub struct SharedRedactor(Arc<std::sync::RwLock<Redactor>>, Learned);

impl SharedRedactor {
    pub fn new(redactor: Redactor) -> SharedRedactor {
        SharedRedactor(
            Arc::new(std::sync::RwLock::new(redactor)),
            Learned::default(),
        )
    }

    /// The redactor now (a few `Arc` clones), with the learned secrets.
    pub fn get(&self) -> Redactor {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .learning(&self.1)
    }

    /// Where run-time secrets are put, so that every redactor of this
    /// daemon scrubs them.
    pub fn learned(&self) -> &Learned {
        &self.1
    }

    pub fn set(&self, redactor: Redactor) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = redactor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(v: &str) -> Secret {
        Secret::new(v.to_owned(), SecretOrigin::Named("k".into()))
    }

    #[test]
    fn debug_and_display_show_only_the_fingerprint() {
        let s = secret("hk_test_0123456789abcdef");
        for shown in [format!("{s:?}"), format!("{s}")] {
            assert!(!shown.contains("hk_test"), "{shown}");
            assert!(shown.contains("sha256:"), "{shown}");
        }
    }

    #[test]
    fn fingerprint_is_stable_and_not_a_prefix() {
        let a = secret("abcdefgh");
        assert_eq!(a.fingerprint(), secret("abcdefgh").fingerprint());
        assert_ne!(a.fingerprint(), secret("abcdefgi").fingerprint());
        assert!(!a.fingerprint().contains("abcd"));
        assert_eq!(a.fingerprint().len(), "sha256:".len() + 8);
    }
}
