//! HTTP basic auth with bcrypt hashes, as Prometheus' exporter-toolkit does
//! it: every route but `/healthz` needs a user, and a wrong password costs
//! the same as a right one (an unknown user is checked against a decoy hash
//! of a configured user's cost, so timing tells nothing about which users
//! exist).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::access::Access;

/// Verified credentials remembered at most; the set starts over when full.
const REMEMBERED: usize = 1024;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// One decoy hash per cost the users' hashes have, for unknown users.
    decoys: Vec<String>,
    /// Keys the digests below and picks an unknown user's decoy; random per
    /// process, so neither can be computed from outside.
    key: [u8; 32],
    /// Digests of credentials that verified: bcrypt runs once per user and
    /// password, not once per request (exporter-toolkit caches the same way).
    verified: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt runs at most this many at a time, so a flood of wrong
    /// passwords queues here instead of taking every core from the probes.
    slots: Semaphore,
}

impl BasicAuth {
    /// `Ok(None)` when there are no users: no authentication. Fails only on
    /// a hash bcrypt cannot use (config validation refuses those first).
    pub fn new(users: &BTreeMap<String, String>) -> Result<Option<BasicAuth>, bcrypt::BcryptError> {
        if users.is_empty() {
            return Ok(None);
        }
        let mut costs = Vec::new();
        for hash in users.values() {
            costs.push(hash.parse::<bcrypt::HashParts>()?.get_cost());
        }
        costs.sort_unstable();
        costs.dedup();
        // Any password will do: a decoy only has to cost the same.
        let decoys = costs
            .into_iter()
            .map(|cost| bcrypt::hash("lookout-decoy", cost))
            .collect::<Result<_, _>>()?;
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Some(BasicAuth {
            users: users.clone(),
            decoys,
            key,
            verified: Mutex::new(HashSet::new()),
            slots: Semaphore::new(parallel),
        }))
    }

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// The hash a user's password is checked against, and whether the user
    /// exists. An unknown name always gets the same decoy.
    fn hash_for(&self, user: &str) -> (&str, bool) {
        match self.users.get(user) {
            Some(h) => (h, true),
            None => {
                let pick = self.digest(&[b"decoy", user.as_bytes()]);
                let i = u64::from_le_bytes([
                    pick[0], pick[1], pick[2], pick[3], pick[4], pick[5], pick[6], pick[7],
                ]) as usize
                    % self.decoys.len().max(1);
                (self.decoys.get(i).map_or("", String::as_str), false)
            }
        }
    }

    /// Whether `user` and `password` are right. bcrypt runs on the blocking
    /// pool (tens of milliseconds of CPU), at most one per core at a time.
    pub async fn allows(self: Arc<Self>, user: String, password: String) -> bool {
        let (hash, _) = self.hash_for(&user);
        let remembered = self.digest(&[user.as_bytes(), password.as_bytes(), hash.as_bytes()]);
        if self.remembers(&remembered) {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let auth = self.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let (hash, known) = auth.hash_for(&user);
            bcrypt::verify(&password, hash).unwrap_or(false) && known
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
            verified.insert(remembered);
        }
        ok
    }

    fn remembers(&self, digest: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(digest)
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

pub async fn require(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let Some(auth) = access.auth() else {
        return next.run(req).await;
    };
    // Liveness probes carry no credentials.
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let allowed = match credentials(&req) {
        None => false,
        Some((user, password)) => auth.allows(user, password).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn users(list: &[(&str, &str, u32)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(u, p, cost)| (u.to_string(), bcrypt::hash(p, *cost).unwrap()))
            .collect()
    }

    #[test]
    fn no_users_no_auth() {
        assert!(BasicAuth::new(&BTreeMap::new()).unwrap().is_none());
    }

    #[test]
    fn unknown_users_are_checked_against_a_decoy_of_a_configured_cost() {
        let auth = BasicAuth::new(&users(&[("a", "pa", 4), ("b", "pb", 5)]))
            .unwrap()
            .unwrap();
        let mut seen = HashSet::new();
        for name in (0..64).map(|i| format!("nobody{i}")) {
            let (hash, known) = auth.hash_for(&name);
            assert!(!known);
            let cost = hash.parse::<bcrypt::HashParts>().unwrap().get_cost();
            assert!(cost == 4 || cost == 5, "decoy cost {cost}");
            seen.insert(cost);
            // The same name always meets the same decoy.
            assert_eq!(auth.hash_for(&name).0, hash);
        }
        assert_eq!(seen.len(), 2, "both costs are used as decoys");
    }

    #[tokio::test]
    async fn right_wrong_and_unknown() {
        let auth = Arc::new(
            BasicAuth::new(&users(&[("alice", "secret", 4)]))
                .unwrap()
                .unwrap(),
        );
        let allows = |u: &str, p: &str| auth.clone().allows(u.to_owned(), p.to_owned());
        assert!(allows("alice", "secret").await);
        // A second time from the remembered digest, still right.
        assert!(allows("alice", "secret").await);
        assert!(!allows("alice", "wrong").await);
        assert!(!allows("bob", "secret").await);
        // The decoy's own password opens nothing.
        assert!(!allows("bob", "lookout-decoy").await);
    }

    #[test]
    fn a_hash_bcrypt_cannot_use_is_an_error() {
        let mut bad = BTreeMap::new();
        bad.insert(
            "a".to_owned(),
            "$2y$03$abcdefghijklmnopqrstuu5Yf0z8v9pQb7D1kXn3Wq6TtYhJgKx5e".to_owned(),
        );
        assert!(BasicAuth::new(&bad).is_err());
    }
}
