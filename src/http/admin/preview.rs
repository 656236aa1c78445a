//! What readers will see, before they see it: a report rendered exactly as
//! the sender renders it, filled in for a made-up reader whose links lead
//! nowhere.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::app::{self, Sample};
use crate::http::api::REPORT_BODY_LIMIT;
use crate::http::auth::SessionEditor;
use crate::http::extract::{is_markdown, media_type, utf8_text};
use crate::http::{AppError, AppState};
use crate::report::Report;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/reports/{id}/preview", get(html_preview))
        .route("/admin/reports/{id}/preview.txt", get(text_preview))
        .route(
            "/admin/preview",
            post(live_preview).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
}

/// The header the pages' script sends the session's CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

/// The preview is framed by the report page, which the site-wide headers
/// forbid; this loosens framing to our own pages only. The email HTML gets
/// no scripts, and may show remote images as a mail client would.
const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; \
                           frame-ancestors 'self'; form-action 'none'; base-uri 'none'";

/// Parses and renders `source` the way a send would. A source that does not
/// parse, or does not render, is the editor's to fix: `Invalid`, with the
/// parser's message.
pub(super) fn render_sample(state: &AppState, source: &str) -> Result<Sample, AppError> {
    let report = Report::parse(source).map_err(|e| AppError::Invalid(e.to_string()))?;
    app::render_sample(&state.settings, &state.tera, &report, "Sample Reader")
        .map_err(|e| AppError::Invalid(e.to_string()))
}

/// The stored source of report `id`.
async fn stored_source(state: &AppState, id: i64) -> Result<String, AppError> {
    Ok(state.newsletter().report(id).await?.source)
}

/// The saved version's email HTML, for the report page's iframe.
async fn html_preview(
    _: SessionEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Response {
    let result = match stored_source(&state, id).await {
        Ok(source) => render_sample(&state, &source),
        Err(e) => Err(e),
    };
    let (status, content_type, body) = match result {
        Ok(sample) => (StatusCode::OK, "text/html; charset=utf-8", sample.html),
        // Shown inside the frame, where a JSON body would be unreadable.
        Err(e) => (
            e.status(),
            "text/plain; charset=utf-8",
            format!("No preview: {}", e.public_message()),
        ),
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The saved version's plain-text part.
async fn text_preview(
    _: SessionEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let source = stored_source(&state, id).await?;
    let sample = render_sample(&state, &source)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        sample.text,
    )
        .into_response())
}

/// Renders unsaved text for the editing form's live preview. The token
/// comes in a header because the body is the Markdown itself.
async fn live_preview(
    editor: SessionEditor,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    editor.check_csrf(sent)?;
    if !is_markdown(&media_type(&headers)) {
        return Err(AppError::UnsupportedMediaType(
            "send the report as text/markdown".into(),
        ));
    }
    let source = utf8_text(&body, "the report")?;
    let sample = render_sample(&state, &source)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "subject": sample.subject, "html": sample.html, "text": sample.text })),
    )
        .into_response())
}
