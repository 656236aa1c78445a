//! The editors' pages: server-rendered, working without JavaScript, with a
//! session cookie and a CSRF token on every form.
//!
//! Handlers here answer with HTML pages, errors included: an editor who
//! mistyped something should see a page with a way back, not a JSON body.
//! The two endpoints meant for the pages' script (live preview, progress)
//! answer JSON like the API does.

mod chart;
mod dashboard;
mod login;
mod preview;
mod readers;
mod reports;
mod sending;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(login::routes())
        .merge(dashboard::routes())
        .merge(reports::routes())
        .merge(sending::routes())
        .merge(preview::routes())
        .merge(readers::routes())
}

/// A form that carries nothing but the CSRF token (the buttons that act on a
/// send). A missing token deserialises as empty, so it is refused with 403
/// like a wrong one rather than as a malformed form.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// Renders an admin template with `status`; a rendering failure becomes the
/// error page.
fn render(
    state: &AppState,
    status: StatusCode,
    template: &str,
    context: serde_json::Value,
) -> Response {
    match state.page(template, context) {
        Ok(html) => (status, html).into_response(),
        Err(e) => error_page(state, e),
    }
}

/// The HTML counterpart of `AppError::into_response`, with a link back to
/// the dashboard.
fn error_page(state: &AppState, error: AppError) -> Response {
    if let AppError::Internal(e) = &error {
        tracing::error!(error = format!("{e:#}"), "admin page failed");
    }
    let status = error.status();
    let context = json!({
        "heading": status.canonical_reason().unwrap_or("Error"),
        "message": error.public_message(),
    });
    match state.page("admin/error.html", context) {
        Ok(html) => (status, html).into_response(),
        // The error page itself failed: fall back to the plain JSON answer.
        Err(_) => error.into_response(),
    }
}

/// The page of a handler's result: the response, or the error page.
fn or_error_page(state: &AppState, result: Result<Response, AppError>) -> Response {
    result.unwrap_or_else(|e| error_page(state, e))
}

/// Unix milliseconds as a short UTC time for people ("2026-12-01 08:00 UTC").
fn utc_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc_time(1_764_576_000_000), "2025-12-01 08:00 UTC");
    }
}
