//! The editors' JSON API, for scripts: every route needs an API token.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::ApiEditor;
use super::extract::{is_markdown, media_type, utf8_text};
use super::{AppError, AppState};
use crate::app::{parse_schedule, SendAction};
use crate::store::{SaveOutcome, TriggerOutcome};

/// Reports are larger than sign-ups; this is plenty for a weekly issue.
pub const REPORT_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/reports", get(list).post(create))
        .route("/api/reports/{id}", get(show))
        .route("/api/reports/{id}/test", post(test_send))
        .route("/api/reports/{id}/send", post(send))
        .route("/api/reports/{id}/pause", change_route(SendAction::Pause))
        .route("/api/reports/{id}/resume", change_route(SendAction::Resume))
        .route("/api/reports/{id}/cancel", change_route(SendAction::Cancel))
        .route("/api/reports/{id}/retry-failed", post(retry_failed))
        .route("/api/reports/{id}/stats", get(stats))
        .route("/api/reports/{id}/feedback", get(feedback))
        .route("/api/reports/{id}/feedback.csv", get(feedback_csv))
        .layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT))
}

async fn list(_: ApiEditor, State(state): State<AppState>) -> Result<Response, AppError> {
    Ok(Json(state.store.list_reports().await?).into_response())
}

/// The Markdown source, sent as is (`text/markdown`, `text/plain`) or as
/// `{"source": "…"}`.
fn source_from(headers: &HeaderMap, body: &Bytes) -> Result<String, AppError> {
    let media_type = media_type(headers);
    if is_markdown(&media_type) {
        return utf8_text(body, "the report");
    }
    if media_type != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "send the report as text/markdown, or as JSON {\"source\": …}".into(),
        ));
    }
    #[derive(Deserialize)]
    struct Body {
        source: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.source)
        .map_err(|e| AppError::Invalid(format!("expected {{\"source\": \"…markdown…\"}}: {e}")))
}

async fn create(
    _: ApiEditor,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let source = source_from(&headers, &body)?;
    let saved = state.newsletter().save_report_source(&source).await?;
    let (status, id) = match saved {
        SaveOutcome::Created(id) => (StatusCode::CREATED, id),
        SaveOutcome::Updated(id) => (StatusCode::OK, id),
        SaveOutcome::Frozen(_) => {
            return Err(AppError::Conflict(
                "this report has been sent or scheduled; its text can no longer change".into(),
            ))
        }
    };
    let report = state.newsletter().report(id).await?;
    Ok((
        status,
        Json(json!({ "id": report.id, "slug": report.slug, "title": report.title })),
    )
        .into_response())
}

async fn show(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let report = state.newsletter().report(id).await?;
    let send = state.store.send_of_report(id).await?;
    Ok(Json(json!({
        "id": report.id,
        "slug": report.slug,
        "title": report.title,
        "source": report.source,
        "created_at": report.created_at,
        "updated_at": report.updated_at,
        "send": send,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct TestRequest {
    addresses: Vec<String>,
}

async fn test_send(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let request: TestRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("expected {{\"addresses\": [\"…\"]}}: {e}")))?;
    state
        .newsletter()
        .queue_test(id, &request.addresses)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": request.addresses.len() })),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    /// RFC 3339 time; absent or past means now.
    scheduled_at: Option<String>,
}

async fn send(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            AppError::BadRequest(
                "an Idempotency-Key header (1 to 200 characters) is required to send".into(),
            )
        })?
        .to_string();
    let request: SendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SendRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AppError::Invalid(format!(
                "expected {{\"scheduled_at\": \"RFC 3339 time\"}}: {e}"
            ))
        })?
    };
    let scheduled_at = parse_schedule(request.scheduled_at.as_deref())?;
    match state
        .newsletter()
        .trigger_send(id, &key, scheduled_at)
        .await?
    {
        TriggerOutcome::Created(send) => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "send": send }))).into_response())
        }
        TriggerOutcome::Repeated(send) => {
            Ok((StatusCode::OK, Json(json!({ "send": send }))).into_response())
        }
        TriggerOutcome::AlreadySent(send) => Ok((
            StatusCode::CONFLICT,
            Json(
                json!({ "error": "this report has already been sent or scheduled", "send": send }),
            ),
        )
            .into_response()),
    }
}

/// `POST` pausing, resuming or cancelling the report's send.
fn change_route(action: SendAction) -> MethodRouter<AppState> {
    post(
        move |_: ApiEditor, State(state): State<AppState>, Path(id): Path<i64>| async move {
            let send = state.newsletter().change_send(id, action).await?;
            Ok::<_, AppError>(Json(json!({ "send": send })))
        },
    )
}

async fn retry_failed(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let requeued = state.newsletter().retry_failed(id).await?;
    Ok(Json(json!({ "requeued": requeued })).into_response())
}

async fn stats(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(Json(state.newsletter().report_progress(id).await?).into_response())
}

async fn feedback(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(Json(state.newsletter().feedback_summary(id).await?).into_response())
}

/// Every vote and comment, for a spreadsheet.
async fn feedback_csv(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    feedback_csv_download(&state, id).await
}

/// Every vote and comment of report `id` as a CSV download (the pages
/// offer the same file).
pub async fn feedback_csv_download(state: &AppState, id: i64) -> Result<Response, AppError> {
    let csv = state.newsletter().feedback_csv(id).await?;
    let disposition = format!("attachment; filename=\"{}\"", csv.filename);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv.body,
    )
        .into_response())
}
