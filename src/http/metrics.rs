//! `GET /metrics` for Prometheus, behind a bearer token of its own.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some(expected) = state.settings.metrics_token.as_ref() else {
        return Err(AppError::NotFound(
            "metrics are off; set metrics_token to turn them on",
        ));
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(sent.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return Err(AppError::Unauthorized(
            "send the metrics token as `Authorization: Bearer <token>`",
        ));
    }
    let Some(handle) = crate::metrics::install() else {
        return Err(AppError::NotFound(
            "metrics are recorded elsewhere in this process",
        ));
    };
    // The queue depth is read from the database at each scrape and written
    // here rather than kept in the shared recorder: it belongs to this
    // database, and every process reports the same, true number.
    let depth = state.store.queued_jobs().await?;
    let mut body = handle.render();
    let name = crate::metrics::QUEUE_DEPTH;
    body.push_str(&format!(
        "# HELP {name} Messages waiting in the outbox\n# TYPE {name} gauge\n{name} {depth}\n"
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}
