//! HTTP basic auth with bcrypt hashes, as Prometheus' exporter-toolkit does
//! it: every route but `/healthz` needs a user, and a wrong password costs
//! the same as a right one (an unknown user is checked against a hash of
//! the same cost, so timing tells nothing about which users exist).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::AppState;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Checked for unknown users.
    decoy: String,
}

impl BasicAuth {
    /// `None` when there are no users: no authentication.
    pub fn new(users: &BTreeMap<String, String>) -> Option<Arc<BasicAuth>> {
        let cost = users
            .values()
            .find_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())?;
        // Any password will do: the decoy only has to cost the same.
        let decoy = bcrypt::hash("lookout-decoy", cost).ok()?;
        Some(Arc::new(BasicAuth {
            users: users.clone(),
            decoy,
        }))
    }

    fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        bcrypt::verify(password, hash).unwrap_or(false) && known
    }
}

fn credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub async fn require(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(auth) = s.auth.clone() else {
        return next.run(req).await;
    };
    // Liveness probes carry no credentials.
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let allowed = match credentials(&req) {
        None => false,
        // bcrypt costs tens of milliseconds of CPU: not on a runtime worker.
        Some((user, password)) => {
            tokio::task::spawn_blocking(move || auth.verify(&user, &password))
                .await
                .unwrap_or(false)
        }
    };
    if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"lookout\"")],
            "authentication required\n",
        )
            .into_response()
    }
}
