//! The editors' JSON API, for scripts: every route needs an API token.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::ApiEditor;
use super::{AppError, AppState};
use crate::domain::{spreadsheet_text, SubscriberEmail};
use crate::store::{now_ms, SaveOutcome, Send, TriggerOutcome};

/// Reports are larger than sign-ups; this is plenty for a weekly issue.
pub const REPORT_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/reports", get(list).post(create))
        .route("/api/reports/{id}", get(show))
        .route("/api/reports/{id}/test", post(test_send))
        .route("/api/reports/{id}/send", post(send))
        .route("/api/reports/{id}/pause", post(pause))
        .route("/api/reports/{id}/resume", post(resume))
        .route("/api/reports/{id}/cancel", post(cancel))
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
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "text/markdown" | "text/plain" => String::from_utf8(body.to_vec())
            .map_err(|_| AppError::BadRequest("the report is not valid UTF-8".into())),
        "application/json" => {
            #[derive(Deserialize)]
            struct Body {
                source: String,
            }
            serde_json::from_slice::<Body>(body)
                .map(|b| b.source)
                .map_err(|e| {
                    AppError::Invalid(format!("expected {{\"source\": \"…markdown…\"}}: {e}"))
                })
        }
        _ => Err(AppError::UnsupportedMediaType(
            "send the report as text/markdown, or as JSON {\"source\": …}".into(),
        )),
    }
}

async fn create(
    _: ApiEditor,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let source = source_from(&headers, &body)?;
    let saved = state.save_report_source(&source).await?;
    let (status, id) = match saved {
        SaveOutcome::Created(id) => (StatusCode::CREATED, id),
        SaveOutcome::Updated(id) => (StatusCode::OK, id),
        SaveOutcome::Frozen(_) => {
            return Err(AppError::Conflict(
                "this report has been sent or scheduled; its text can no longer change".into(),
            ))
        }
    };
    let report = state
        .store
        .report(id)
        .await?
        .ok_or(AppError::NotFound("no such report"))?;
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
    let report = state
        .store
        .report(id)
        .await?
        .ok_or(AppError::NotFound("no such report"))?;
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

/// At most this many test addresses per request: a test is not a send.
const MAX_TEST_ADDRESSES: usize = 20;

async fn test_send(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let request: TestRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("expected {{\"addresses\": [\"…\"]}}: {e}")))?;
    state.queue_test(id, &request.addresses).await?;
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
    match state.trigger_send(id, &key, scheduled_at).await? {
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

/// Parses an RFC 3339 time into Unix milliseconds; `None` means now.
pub fn parse_schedule(value: Option<&str>) -> Result<i64, AppError> {
    let now = now_ms();
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(now),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis().max(now))
            .map_err(|e| {
                AppError::Invalid(format!(
                    "scheduled_at must be an RFC 3339 time such as 2026-12-01T08:00:00Z: {e}"
                ))
            }),
    }
}

async fn pause(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let send = state.change_send(id, SendAction::Pause).await?;
    Ok(Json(json!({ "send": send })).into_response())
}

async fn resume(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let send = state.change_send(id, SendAction::Resume).await?;
    Ok(Json(json!({ "send": send })).into_response())
}

async fn cancel(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let send = state.change_send(id, SendAction::Cancel).await?;
    Ok(Json(json!({ "send": send })).into_response())
}

async fn retry_failed(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let requeued = state.retry_failed(id).await?;
    Ok(Json(json!({ "requeued": requeued })).into_response())
}

async fn stats(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(Json(state.report_progress(id).await?).into_response())
}

async fn feedback(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(Json(state.feedback_summary(id).await?).into_response())
}

/// Every vote and comment, for a spreadsheet.
async fn feedback_csv(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    state.feedback_csv(id).await
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// What an editor can do to a running send.
#[derive(Debug, Clone, Copy)]
pub enum SendAction {
    Pause,
    Resume,
    Cancel,
}

impl AppState {
    /// Parses the Markdown source and stores it as a draft (new or updated).
    pub async fn save_report_source(&self, source: &str) -> Result<SaveOutcome, AppError> {
        let report =
            crate::report::Report::parse(source).map_err(|e| AppError::Invalid(e.to_string()))?;
        Ok(self
            .store
            .save_report(report.slug(), report.title(), source)
            .await?)
    }

    /// Queues test copies of a report to the given addresses.
    pub async fn queue_test(&self, report_id: i64, addresses: &[String]) -> Result<(), AppError> {
        if addresses.is_empty() || addresses.len() > MAX_TEST_ADDRESSES {
            return Err(AppError::Invalid(format!(
                "give between 1 and {MAX_TEST_ADDRESSES} addresses for a test send"
            )));
        }
        let mut parsed = Vec::with_capacity(addresses.len());
        for a in addresses {
            let email =
                SubscriberEmail::parse(a).map_err(|e| AppError::Invalid(format!("{a:?}: {e}")))?;
            parsed.push(email.as_str().to_string());
        }
        self.store
            .report(report_id)
            .await?
            .ok_or(AppError::NotFound("no such report"))?;
        self.store
            .queue_test_sends(report_id, &parsed, now_ms())
            .await?;
        Ok(())
    }

    /// Records the send of a report (idempotent by key and by report).
    pub async fn trigger_send(
        &self,
        report_id: i64,
        key: &str,
        scheduled_at: i64,
    ) -> Result<TriggerOutcome, AppError> {
        self.store
            .report(report_id)
            .await?
            .ok_or(AppError::NotFound("no such report"))?;
        let outcome = self
            .store
            .trigger_send(report_id, key, scheduled_at, now_ms())
            .await?;
        if let TriggerOutcome::Created(send) = &outcome {
            tracing::info!(report = report_id, readers = send.total, state = %send.state, "send triggered");
        }
        Ok(outcome)
    }

    /// Pauses, resumes or cancels the send of a report.
    pub async fn change_send(&self, report_id: i64, action: SendAction) -> Result<Send, AppError> {
        let changed = match action {
            SendAction::Pause => self.store.pause_send(report_id).await?,
            SendAction::Resume => self.store.resume_send(report_id).await?,
            SendAction::Cancel => self.store.cancel_send(report_id).await?,
        };
        let send = self
            .store
            .send_of_report(report_id)
            .await?
            .ok_or(AppError::NotFound("this report has no send"))?;
        if !changed {
            return Err(AppError::Conflict(format!(
                "cannot {} a send that is {}",
                format!("{action:?}").to_lowercase(),
                send.state
            )));
        }
        tracing::info!(report = report_id, state = %send.state, "send changed");
        Ok(send)
    }

    /// Gives every failed delivery of a report's send one more attempt;
    /// returns how many were queued again.
    pub async fn retry_failed(&self, report_id: i64) -> Result<u64, AppError> {
        let last_attempt = self.settings.delivery.max_attempts;
        let moved = self
            .store
            .retry_failed(report_id, last_attempt, now_ms())
            .await?;
        match moved {
            Some(n) => {
                tracing::info!(
                    report = report_id,
                    requeued = n,
                    "failed deliveries queued again"
                );
                Ok(n)
            }
            None => {
                let state = self
                    .store
                    .send_of_report(report_id)
                    .await?
                    .ok_or(AppError::NotFound("this report has no send"))?
                    .state;
                Err(AppError::Conflict(format!(
                    "cannot retry the failures of a send that is {state}"
                )))
            }
        }
    }

    /// Every vote and comment of a report as a CSV download.
    pub async fn feedback_csv(&self, id: i64) -> Result<Response, AppError> {
        let report = self
            .store
            .report(id)
            .await?
            .ok_or(AppError::NotFound("no such report"))?;
        let votes = self.store.votes_of_report(id).await?;
        let mut csv = csv::Writer::from_writer(Vec::new());
        let write = |csv: &mut csv::Writer<Vec<u8>>, record: &[String]| {
            csv.write_record(record)
                .map_err(|e| AppError::Internal(e.into()))
        };
        write(
            &mut csv,
            &[
                "report".into(),
                "reader_email".into(),
                "helpful".into(),
                "comment".into(),
                "voted_at".into(),
                "changed_at".into(),
            ],
        )?;
        for v in votes {
            write(
                &mut csv,
                &[
                    spreadsheet_text(&report.slug).into_owned(),
                    spreadsheet_text(&v.reader_email.unwrap_or_default()).into_owned(),
                    if v.helpful { "yes" } else { "no" }.into(),
                    spreadsheet_text(&v.comment.unwrap_or_default()).into_owned(),
                    rfc3339(v.created_at),
                    rfc3339(v.updated_at),
                ],
            )?;
        }
        let body = csv
            .into_inner()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
        let disposition = format!("attachment; filename=\"feedback-{}.csv\"", report.slug);
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response())
    }

    /// Yes/no counts, response rate and comments of a report.
    pub async fn feedback_summary(&self, report_id: i64) -> Result<serde_json::Value, AppError> {
        self.store
            .report(report_id)
            .await?
            .ok_or(AppError::NotFound("no such report"))?;
        let votes = self.store.helpfulness(report_id).await?;
        let delivered = self.store.delivered_count(report_id).await?;
        let comments = self.store.feedback_comments(report_id, 200).await?;
        let response_rate = if delivered > 0 {
            votes.voters() as f64 / delivered as f64
        } else {
            0.0
        };
        Ok(json!({
            "yes": votes.yes,
            "no": votes.no,
            "voters": votes.voters(),
            "delivered": delivered,
            "response_rate": response_rate,
            "summary": helpful_sentence(votes.yes, votes.voters()),
            "comments": comments,
        }))
    }

    /// The send's state and counts, with the latest failures.
    pub async fn report_progress(&self, report_id: i64) -> Result<serde_json::Value, AppError> {
        self.store
            .report(report_id)
            .await?
            .ok_or(AppError::NotFound("no such report"))?;
        let send = self.store.send_of_report(report_id).await?;
        let stats = self.store.send_stats(report_id, now_ms()).await?;
        let failures = self.store.send_failures(report_id, 100).await?;
        let bounces = self.store.bounce_stats(report_id).await?;
        let done = stats.sent + stats.failed + stats.skipped + stats.cancelled;
        let percent = if stats.total > 0 {
            done * 100 / stats.total
        } else {
            0
        };
        Ok(json!({
            "state": send.as_ref().map(|s| s.state.as_str()).unwrap_or("draft"),
            "pause_reason": send.as_ref().and_then(|s| s.pause_reason.as_deref()),
            "send": send,
            "total": stats.total,
            "queued": stats.queued,
            "in_flight": stats.in_flight,
            "sent": stats.sent,
            "failed": stats.failed,
            "skipped": stats.skipped,
            "paused": stats.paused,
            "cancelled": stats.cancelled,
            "rate_per_sec": stats.rate_per_sec,
            "percent": percent,
            "failures": failures,
            "bounces": bounces,
        }))
    }
}

/// "N out of M found this helpful", as the archive shows it; `None` before
/// anyone answered.
pub fn helpful_sentence(yes: i64, voters: i64) -> Option<String> {
    (voters > 0).then(|| format!("{yes} out of {voters} found this helpful"))
}
