//! `GET /metrics` for Prometheus, behind a bearer token of its own, and
//! the count of requests it reports.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
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

/// The route label of requests no route matched: one label for all of
/// them, so that requests for made-up paths cannot grow the label set.
const UNMATCHED: &str = "unmatched";

/// Counts every answered request under its route's pattern
/// (`/archive/{slug}`, not each slug), its method and its status.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics::counter!(
        crate::metrics::HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_string(),
    )
    .increment(1);
    response
}

/// The standard methods by name; any other under one label, for the same
/// reason as unmatched paths.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }
}
