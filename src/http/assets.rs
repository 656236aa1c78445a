//! The stylesheet and the one script, embedded in the binary.

use axum::http::header;
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::render::{ADMIN_CSS, ADMIN_JS, AUTOSUBMIT_JS, SITE_CSS};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/static/site.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    SITE_CSS,
                )
            }),
        )
        .route(
            "/static/autosubmit.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    AUTOSUBMIT_JS,
                )
            }),
        )
        .route(
            "/static/admin.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    ADMIN_CSS,
                )
            }),
        )
        .route(
            "/static/admin.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    ADMIN_JS,
                )
            }),
        )
}
