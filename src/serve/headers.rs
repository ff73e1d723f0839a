//! The headers every answer of the server carries, set in one place: a
//! layer around the whole router, outside basic auth (so its 401s carry
//! them) and around the fallback (so 404s do).
//!
//! - `Content-Security-Policy`: for HTML, [`PAGE_CSP`]: nothing but the
//!   served stylesheets (no script at all, no inline style, no frames, no
//!   forms, no `<base>`); for anything else, badges included, [`LOCKED_CSP`]:
//!   nothing at all, so an SVG or a JSON answer opened in a browser can
//!   never run script. (A badge shown as an `<img>` elsewhere is not
//!   affected by `frame-ancestors`.)
//! - `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! - `Cache-Control` by route: the stylesheets, whose names carry their
//!   content's hash, for a year; badges `no-cache` (kept, but asked again
//!   each time they are shown); everything else, the page, the API,
//!   `/metrics` and every error, `no-store`: it is live data.
//!
//! The only answers without them are the few hyper writes itself before a
//! request reaches the router (431 for oversized headers, 400 for a request
//! it cannot parse): no body, so nothing to render, sniff or cache.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of every HTML page.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// The policy of everything else: nothing may load or run.
pub const LOCKED_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The stylesheets: their names change with their content.
pub const CACHE_ASSET: &str = "public, max-age=31536000, immutable";
/// Badges: embedded in other pages; a cache must ask again each time.
pub const CACHE_BADGE: &str = "no-cache";
/// Live data and errors.
pub const CACHE_NONE: &str = "no-store";

#[derive(Clone, Copy)]
enum Route {
    Asset,
    Badge,
    Other,
}

impl Route {
    fn of(path: &str) -> Route {
        if path.starts_with(super::assets::PREFIX) {
            Route::Asset
        } else if path.starts_with("/badge/") {
            Route::Badge
        } else {
            Route::Other
        }
    }

    fn cache_control(self, status: StatusCode) -> &'static str {
        match self {
            Route::Asset if status.is_success() => CACHE_ASSET,
            Route::Badge if status.is_success() => CACHE_BADGE,
            Route::Asset | Route::Badge | Route::Other => CACHE_NONE,
        }
    }
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// The layer: runs the rest of the router, then sets the headers.
pub async fn secure(req: Request, next: Next) -> Response {
    let route = Route::of(req.uri().path());
    let mut response = next.run(req).await;
    let csp = if is_html(&response) {
        PAGE_CSP
    } else {
        LOCKED_CSP
    };
    let cache = route.cache_control(response.status());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
