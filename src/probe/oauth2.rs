//! OAuth2 client credentials (RFC 6749 §4.4): the token a check sends as
//! `Authorization: Bearer …`, fetched from the token endpoint and cached.
//!
//! One cache per [`Prober`](super::Prober), so per loaded config, shared by
//! every check and flow step with the same client (token URL, client id,
//! client secret fingerprint, scopes, audience, client authentication, TLS
//! settings). A token is reused until shortly before it expires. Runs that
//! need a token while one is being fetched wait for that fetch (one fetch
//! in flight per client), within their own timeout. A failed fetch is
//! shared with the runs that were waiting for it and then forgotten: the
//! next run asks again. Every token the cache holds (the current one of
//! each client and the one before it, which a run in flight may still be
//! sending) is known to the daemon's redactor through [`Learned`].
//!
//! The client secret goes only to the token endpoint; the exchange follows
//! no redirects, so it cannot go anywhere else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use url::Url;
use url::form_urlencoded;

use super::http::{root_cause, tls_error};
use super::tls::{self, TlsProfile};
use crate::model::{ClientAuth, OAuth2};
use crate::secret::{Learned, Secret, SecretOrigin};

/// The most of a token endpoint's answer that is read.
pub const MAX_TOKEN_BODY_BYTES: usize = 64 * 1024;
/// How long a token is used when the endpoint gives no `expires_in` and the
/// token is not a JWT with an `exp`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The longest a token is used before it is fetched again, whatever its
/// lifetime says.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token is fetched again this long before it expires: 10 % of its
/// lifetime, at most a minute.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// What makes two checks' tokens interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    client_id: String,
    secret: String,
    scopes: Vec<String>,
    audience: Option<String>,
    client_auth: ClientAuth,
    tls_profile: usize,
}

impl Key {
    fn of(client: &OAuth2, tls_profile: usize) -> Key {
        Key {
            token_url: client.token_url.to_string(),
            client_id: client.client_id.clone(),
            secret: client.client_secret.fingerprint().to_owned(),
            scopes: client.scopes.clone(),
            audience: client.audience.clone(),
            client_auth: client.client_auth,
            tls_profile,
        }
    }
}

/// The tokens of a config's OAuth2 clients: one entry per distinct client
/// the config names (so as many as the config has, never more), none
/// dropped while the config runs, so a matrix over many clients never
/// makes them fetch for each other.
pub struct Tokens {
    clients: Mutex<HashMap<Key, Arc<Client>>>,
    learned: Learned,
}

struct Client {
    /// This client's slot in `learned`, emptied when the last run holding
    /// the client is done with it (not before: its answer may echo it).
    slot: u64,
    learned: Learned,
    state: tokio::sync::Mutex<State>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.learned.set(self.slot, Vec::new());
    }
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// The last fetch's failure and when it ended: given to the runs that
    /// were already waiting then, never to a later one.
    failure: Option<(Instant, String)>,
}

#[derive(Clone)]
struct Token {
    secret: Secret,
    /// Fetched again from here on.
    refresh_at: Instant,
    /// When it stops being valid (from when it was asked for).
    expires_at: Instant,
}

impl Tokens {
    /// `learned` is told every token the cache holds.
    pub fn new(learned: Learned) -> Tokens {
        Tokens {
            clients: Mutex::new(HashMap::new()),
            learned,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Client>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self, key: Key) -> Arc<Client> {
        self.lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Client {
                    slot: Learned::slot(),
                    learned: self.learned.clone(),
                    state: tokio::sync::Mutex::new(State::default()),
                })
            })
            .clone()
    }

    /// A token for `client`: the cached one while it is fresh, else a new
    /// one, all within `timeout`. The error is a reason for a `token`
    /// failure, not yet redacted or cut.
    pub async fn token(
        &self,
        client: &OAuth2,
        profile: &TlsProfile,
        tls_profile: usize,
        timeout: Duration,
    ) -> Result<Secret, String> {
        let entry = self.client(Key::of(client, tls_profile));
        let asked = Instant::now();
        let work = async {
            let mut state = entry.state.lock().await;
            // Fresh, and alive until this run's timeout is over: a run
            // never sends a token that expires on the way.
            let now = Instant::now();
            if let Some(t) = &state.token
                && now < t.refresh_at
                && now + timeout < t.expires_at
            {
                return Ok(t.secret.clone());
            }
            if let Some((at, why)) = &state.failure
                && *at >= asked
            {
                return Err(why.clone());
            }
            match fetch(client, profile).await {
                Ok(token) => {
                    // The token before stays known: a run that sent it may
                    // still be reading an answer that echoes it.
                    let mut known = vec![token.secret.clone()];
                    known.extend(state.token.take().map(|t| t.secret));
                    self.learned.set(entry.slot, known);
                    state.failure = None;
                    let secret = token.secret.clone();
                    state.token = Some(token);
                    Ok(secret)
                }
                Err(why) => {
                    state.failure = Some((Instant::now(), why.clone()));
                    Err(why)
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "token endpoint {}: timed out after {}",
                    shown(&client.token_url),
                    humantime::format_duration(timeout)
                ))
            })
    }
}

/// The token URL as reasons show it: without its query.
fn shown(url: &Url) -> &str {
    &url[..url::Position::AfterPath]
}

fn http_client(profile: &TlsProfile) -> reqwest::Result<reqwest::Client> {
    let mut tls = profile.base.clone();
    tls.dangerous()
        .set_certificate_verifier(profile.verifier.clone());
    super::http::client_builder(tls).build()
}

/// The form of the token request (`application/x-www-form-urlencoded`).
fn form(client: &OAuth2) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !client.scopes.is_empty() {
        form.append_pair("scope", &client.scopes.join(" "));
    }
    if let Some(audience) = &client.audience {
        form.append_pair("audience", audience);
    }
    if client.client_auth == ClientAuth::Body {
        form.append_pair("client_id", &client.client_id);
        form.append_pair("client_secret", client.client_secret.expose());
    }
    form.finish()
}

/// One token request.
async fn fetch(client: &OAuth2, profile: &TlsProfile) -> Result<Token, String> {
    let url = shown(&client.token_url);
    let http = http_client(profile)
        .map_err(|e| format!("could not build the HTTP client: {}", root_cause(&e)))?;
    let mut request = http
        .post(client.token_url.clone())
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .body(form(client));
    if client.client_auth == ClientAuth::Basic {
        // RFC 6749 §2.3.1: each form-encoded before Basic's base64.
        // The redactor knows this form of the pair (`Redactor::new`).
        let id = crate::secret::form_encode(&client.client_id);
        let secret = crate::secret::form_encode(client.client_secret.expose());
        request = request.basic_auth(id, Some(secret));
    }
    let sent_at = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("token endpoint {url}: {}", transport(&e, &client.token_url)))?;
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_TOKEN_BODY_BYTES - body.len();
                if chunk.len() > room {
                    return Err(format!(
                        "token endpoint {url} answered {} with more than {} KiB",
                        status.as_u16(),
                        MAX_TOKEN_BODY_BYTES / 1024
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "token endpoint {url}: the answer broke off: {}",
                    root_cause(&e)
                ));
            }
        }
    }
    if status.is_redirection() {
        return Err(format!(
            "token endpoint {url} answered {} (a redirect; token requests follow none)",
            status.as_u16()
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "token endpoint {url} answered {}: {}",
            status.as_u16(),
            error_text(status, &body)
        ));
    }
    let (secret, expires_in) = token_of(&body)
        .map_err(|why| format!("token endpoint {url} answered {}: {why}", status.as_u16()))?;
    let lives = lifetime(expires_in, &secret);
    let reuse = refresh_after(lives);
    // `secret` shows as its fingerprint.
    tracing::debug!(
        token_endpoint = url,
        token = %secret,
        reused_for = %humantime::format_duration(Duration::from_secs(reuse.as_secs())),
        "fetched an OAuth2 token"
    );
    Ok(Token {
        refresh_at: sent_at + reuse,
        expires_at: sent_at + lives,
        secret,
    })
}

/// What a failed request's error says, without the URL reqwest puts in.
fn transport(e: &reqwest::Error, url: &Url) -> String {
    if let Some(tls) = tls_error(e) {
        return format!(
            "TLS failed: {}",
            tls::describe(tls, url.host_str().unwrap_or("?"), None)
        );
    }
    let cause = root_cause(e);
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else {
        cause
    }
}

/// RFC 6749 §5.2's `error` and `error_description`, else the body itself
/// (cut by the caller's redaction and cut).
fn error_text(status: StatusCode, body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    match (field("error"), field("error_description")) {
        (Some(error), Some(description)) => format!("{error}: {description}"),
        (Some(error), None) => error.to_owned(),
        (None, _) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no explanation")
                    .to_owned()
            } else {
                text.to_owned()
            }
        }
    }
}

/// The token of a successful answer and its `expires_in`, if given. The
/// errors never quote the body (it may hold the token).
fn token_of(body: &[u8]) -> Result<(Secret, Option<Duration>), String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| "the body is not JSON (expected access_token, token_type)".to_owned())?;
    let Some(fields) = json.as_object() else {
        return Err("the body is not a JSON object (expected access_token, token_type)".into());
    };
    let Some(token) = fields
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err("no access_token in the answer".into());
    };
    match fields.get("token_type").and_then(serde_json::Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(t) => {
            let shown: String = t.chars().filter(|c| !c.is_control()).take(32).collect();
            return Err(format!("token_type {shown:?}, expected Bearer"));
        }
        None => return Err("no token_type in the answer (expected Bearer)".into()),
    }
    if HeaderValue::try_from(format!("Bearer {token}")).is_err() {
        return Err("the access_token cannot be sent in a header".into());
    }
    let expires_in = match fields.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            // A number, or (some servers) a number in a string.
            let secs = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
                .filter(|s| s.is_finite())
                .ok_or("expires_in is not a number")?;
            Some(Duration::from_secs_f64(
                secs.clamp(0.0, MAX_LIFETIME.as_secs_f64()),
            ))
        }
    };
    // Not from a `[secrets]` entry and never shown but by fingerprint.
    Ok((
        Secret::new(token.to_owned(), SecretOrigin::Literal),
        expires_in,
    ))
}

/// How long a token lives: `expires_in`, else its JWT `exp`, else
/// [`DEFAULT_LIFETIME`]; never more than [`MAX_LIFETIME`].
fn lifetime(expires_in: Option<Duration>, token: &Secret) -> Duration {
    let lifetime = expires_in.unwrap_or_else(|| match token.expiry() {
        Some(e) => {
            let left = e.at.saturating_sub(chrono::Utc::now().timestamp());
            Duration::from_secs(left.max(0).unsigned_abs())
        }
        None => DEFAULT_LIFETIME,
    });
    lifetime.min(MAX_LIFETIME)
}

/// When a token of `lifetime` is fetched again: a margin before it expires
/// (10 % of it, at most a minute), so a run never sends one that expires
/// on the way.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub((lifetime / 10).min(MAX_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry per client, none dropped while the cache lives; a
    /// client's tokens leave the redactor when the last holder of the
    /// client is done with it (a run still reading an answer keeps them).
    #[test]
    fn the_cache_keeps_each_client_and_forgets_when_the_last_holder_goes() {
        let learned = Learned::default();
        let tokens = Tokens::new(learned.clone());
        let client = |i: usize| OAuth2 {
            token_url: Url::parse("https://idp.example/token").unwrap(),
            client_id: format!("client-{i}"),
            client_secret: Secret::new("s3cret-value".into(), SecretOrigin::Literal),
            scopes: Vec::new(),
            audience: None,
            client_auth: ClientAuth::Basic,
        };
        let token = |i: usize| Secret::new(format!("token-of-client-{i}"), SecretOrigin::Literal);
        let first = tokens.client(Key::of(&client(0), 0));
        learned.set(first.slot, vec![token(0)]);
        for i in 1..300 {
            let c = tokens.client(Key::of(&client(i), 0));
            learned.set(c.slot, vec![token(i)]);
        }
        assert_eq!(tokens.lock().len(), 300, "none dropped");
        assert_eq!(learned.len(), 300);
        // The same client again is the same entry.
        assert!(Arc::ptr_eq(&first, &tokens.client(Key::of(&client(0), 0))));
        // Another TLS profile is another client.
        assert!(!Arc::ptr_eq(&first, &tokens.client(Key::of(&client(0), 1))));
        // The cache goes (a reload); a run still holds client 0.
        drop(tokens);
        assert_eq!(learned.len(), 1, "client 0's token, still in use");
        drop(first);
        assert!(learned.is_empty());
    }

    #[test]
    fn a_token_is_fetched_again_before_it_expires() {
        for (lifetime, again) in [
            (Duration::from_secs(3600), Duration::from_secs(3540)),
            (Duration::from_secs(300), Duration::from_secs(270)),
            (Duration::from_secs(2), Duration::from_millis(1800)),
            (Duration::ZERO, Duration::ZERO),
        ] {
            assert_eq!(refresh_after(lifetime), again, "{lifetime:?}");
        }
    }

    #[test]
    fn the_lifetime_comes_from_expires_in_then_the_jwt_then_the_default() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let exp = chrono::Utc::now().timestamp() + 600;
        let jwt = Secret::new(
            format!("{}.{}.sig", b64("{}"), b64(&format!("{{\"exp\":{exp}}}"))),
            SecretOrigin::Literal,
        );
        let opaque = Secret::new("opaque-token-value".into(), SecretOrigin::Literal);
        assert_eq!(
            lifetime(Some(Duration::from_secs(30)), &jwt),
            Duration::from_secs(30)
        );
        let from_jwt = lifetime(None, &jwt);
        assert!(from_jwt <= Duration::from_secs(600) && from_jwt >= Duration::from_secs(590));
        assert_eq!(lifetime(None, &opaque), DEFAULT_LIFETIME);
        assert_eq!(
            lifetime(Some(Duration::from_secs(10 << 30)), &opaque),
            MAX_LIFETIME
        );
    }

    #[test]
    fn answers_that_are_not_a_bearer_token() {
        for (body, why) in [
            ("<html>", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"token_type":"Bearer"}"#, "no access_token"),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                "no access_token",
            ),
            (r#"{"access_token":"t0k3n-value"}"#, "no token_type"),
            (
                r#"{"access_token":"t0k3n-value","token_type":"mac"}"#,
                "token_type \"mac\"",
            ),
            (
                r#"{"access_token":"t0k\n3n","token_type":"bearer"}"#,
                "cannot be sent",
            ),
            (
                r#"{"access_token":"t0k3n-value","token_type":"Bearer","expires_in":"soon"}"#,
                "expires_in is not a number",
            ),
        ] {
            match token_of(body.as_bytes()) {
                Err(e) => {
                    assert!(e.contains(why), "{body}: {e}");
                    assert!(!e.contains("t0k"), "{body}: {e}");
                }
                Ok(_) => panic!("{body} was taken for a token"),
            }
        }
        let (token, expires_in) =
            token_of(br#"{"access_token":"t0k3n-value","token_type":"bearer","expires_in":"60"}"#)
                .unwrap();
        assert_eq!(token.expose(), "t0k3n-value");
        assert_eq!(expires_in, Some(Duration::from_secs(60)));
    }

    #[test]
    fn error_answers_are_explained_by_rfc_6749_fields_else_the_body() {
        let s = StatusCode::UNAUTHORIZED;
        assert_eq!(
            error_text(
                s,
                br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
            ),
            "invalid_client: Client authentication failed"
        );
        assert_eq!(
            error_text(s, br#"{"error":"invalid_scope"}"#),
            "invalid_scope"
        );
        assert_eq!(error_text(s, b"  upstream down \n"), "upstream down");
        assert_eq!(error_text(s, b""), "Unauthorized");
    }

    #[test]
    fn the_form_is_encoded_and_holds_the_secret_only_for_body_auth() {
        let mut client = OAuth2 {
            token_url: Url::parse("https://idp.example/token").unwrap(),
            client_id: "look out".into(),
            client_secret: Secret::new("s3cr&t=".into(), SecretOrigin::Literal),
            scopes: vec!["read".into(), "write:all".into()],
            audience: Some("https://api.example/".into()),
            client_auth: ClientAuth::Basic,
        };
        assert_eq!(
            form(&client),
            "grant_type=client_credentials&scope=read+write%3Aall&audience=https%3A%2F%2Fapi.example%2F"
        );
        client.client_auth = ClientAuth::Body;
        client.scopes.clear();
        client.audience = None;
        assert_eq!(
            form(&client),
            "grant_type=client_credentials&client_id=look+out&client_secret=s3cr%26t%3D"
        );
    }
}
