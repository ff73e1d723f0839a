//! Secrets: API keys, tokens and passwords.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show a
//! fingerprint. Only the request builder in `probe::http` calls
//! [`Secret::expose`]. Everything a target sends back passes through the
//! [`Redactor`] before it is stored, logged or rendered, so a target that echoes
//! a key (in a body, a header or a redirect URL) cannot leak it either.

mod decode;
mod redact;
mod show;

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use redact::{PIECE_CHARS, Redactor};
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
}

impl Secret {
    pub fn new(value: String, origin: SecretOrigin) -> Self {
        let fingerprint = fingerprint(&value).into();
        Secret {
            value: Arc::new(SecretString::from(value)),
            fingerprint,
            origin,
        }
    }

    /// A `[secrets]` entry that was not read (`check-config --no-secrets`):
    /// a stand-in value that fits anywhere a credential goes, and a
    /// fingerprint that says so.
    pub fn unread(name: &str) -> Self {
        Secret {
            value: Arc::new(SecretString::from("lookout-unread-secret")),
            fingerprint: "not read (--no-secrets)".into(),
            origin: SecretOrigin::Named(name.to_owned()),
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
        write!(f, "Secret({})", self.fingerprint)
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
#[derive(Clone, Default)]
pub struct SharedRedactor(Arc<std::sync::RwLock<Redactor>>);

impl SharedRedactor {
    pub fn new(redactor: Redactor) -> SharedRedactor {
        SharedRedactor(Arc::new(std::sync::RwLock::new(redactor)))
    }

    /// The redactor now (two `Arc` clones).
    pub fn get(&self) -> Redactor {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
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
