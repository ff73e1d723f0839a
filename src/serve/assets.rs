//! The stylesheets the pages link to. They are compiled in and served under
//! a name that carries a hash of their content, so a browser may keep them
//! for good and an upgrade that changes one changes its name. The pages'
//! Content-Security-Policy allows styles from here only (`style-src
//! 'self'`): no inline style, no script.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    /// `/static/<stem>.<hash>.css`.
    path: String,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, body: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            path: format!("{PREFIX}{stem}.{hash}.css"),
            body,
        }
    }
}

/// Where the assets are served; the router's route is `/static/{file}`.
pub const PREFIX: &str = "/static/";

static STATUS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("status", include_str!("../../templates/status.css")));
static DETAIL: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("detail", include_str!("../../templates/detail.css")));

/// The status page's stylesheet, as the page links it.
pub fn status_css() -> &'static str {
    &STATUS.path
}

/// The check and flow pages' stylesheet.
pub fn detail_css() -> &'static str {
    &DETAIL.path
}

/// `/static/{file}`: one of the stylesheets, or 404. Caching is set with
/// the other headers (`super::headers`).
pub async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("{PREFIX}{file}");
    match [&*STATUS, &*DETAIL].into_iter().find(|a| a.path == wanted) {
        Some(asset) => (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        let a = Asset::new("x", "body { }");
        let b = Asset::new("x", "body { margin: 0 }");
        assert!(a.path.starts_with("/static/x.") && a.path.ends_with(".css"));
        assert_eq!(a.path.len(), "/static/x.".len() + 8 + ".css".len());
        assert_ne!(a.path, b.path);
        assert_ne!(status_css(), detail_css());
    }
}
