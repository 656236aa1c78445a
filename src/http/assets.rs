//! The stylesheets and scripts, embedded in the binary.

use axum::http::header;
use axum::routing::{get, MethodRouter};
use axum::Router;

use super::AppState;
use crate::render::{ADMIN_CSS, ADMIN_JS, AUTOSUBMIT_JS, SITE_CSS};

const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/site.css", asset(CSS, SITE_CSS))
        .route("/static/autosubmit.js", asset(JAVASCRIPT, AUTOSUBMIT_JS))
        .route("/static/admin.css", asset(CSS, ADMIN_CSS))
        .route("/static/admin.js", asset(JAVASCRIPT, ADMIN_JS))
}

/// `GET` answering with `body`; caches may keep it for an hour.
fn asset(content_type: &'static str, body: &'static str) -> MethodRouter<AppState> {
    get(move || async move {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            body,
        )
    })
}
