//! Who may connect and who may read: the listener's TLS config and the
//! basic auth users. Both come from `[server]` and a reload swaps them
//! whole, so a removed user or a rotated certificate takes effect for the
//! next connection or request, without a restart.

use std::sync::{Arc, RwLock};

use crate::config::ServerSettings;

use super::auth::BasicAuth;

#[derive(Default)]
pub struct Access {
    current: RwLock<Current>,
}

#[derive(Default, Clone)]
struct Current {
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
}

impl Access {
    pub fn new(server: &ServerSettings) -> Result<Access, bcrypt::BcryptError> {
        let access = Access::default();
        access.set(server)?;
        Ok(access)
    }

    /// Takes a (re)loaded config's settings; on an error nothing changes.
    pub fn set(&self, server: &ServerSettings) -> Result<(), bcrypt::BcryptError> {
        let next = Current {
            tls: server.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            auth: BasicAuth::new(&server.basic_auth_users)?.map(Arc::new),
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The TLS acceptor for a new connection; `None` serves plain HTTP.
    pub fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.read().tls
    }

    /// The users for a request; `None` lets everyone in.
    pub fn auth(&self) -> Option<Arc<BasicAuth>> {
        self.read().auth
    }

    fn read(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
