//! "Was this helpful?" links. The link opens a page that records the answer
//! through a POST (submitted by a small script, with a visible button as a
//! fallback), so the link scanners of mail filters, which fetch every URL,
//! never vote.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState};
use crate::domain::LinkedId;

/// Longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/feedback", get(show).post(record))
}

#[derive(Deserialize)]
struct FeedbackParams {
    token: Option<String>,
    answer: Option<String>,
    comment: Option<String>,
}

/// A checked answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
}

impl Answer {
    fn parse(s: Option<&str>) -> Option<Answer> {
        match s? {
            "yes" => Some(Answer::Yes),
            "no" => Some(Answer::No),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
        }
    }
}

/// The report, reader and answer of a genuine link, or the catalogue
/// message saying why not.
fn verify(
    state: &AppState,
    params: &FeedbackParams,
) -> Result<(LinkedId, LinkedId, Answer), &'static str> {
    let token = params.token.as_deref().ok_or("feedback-link-incomplete")?;
    let (report, reader) = state
        .signer
        .verify_feedback(token)
        .map_err(|_| "feedback-link-invalid")?;
    let answer = Answer::parse(params.answer.as_deref()).ok_or("feedback-link-no-answer")?;
    Ok((report, reader, answer))
}

/// The row ids of the report and reader a genuine link names, or the
/// response when either is gone.
async fn resolve(
    state: &AppState,
    report: &LinkedId,
    reader: &LinkedId,
) -> Result<(i64, i64), Response> {
    let report = match state.store.report_id_of(report).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(refused(state, "feedback-report-gone")),
        Err(e) => return Err(AppError::from(e).into_response()),
    };
    match state.store.subscriber_id_of(reader).await {
        Ok(Some(reader)) => Ok((report, reader)),
        Ok(None) => Err(refused(state, "feedback-link-invalid")),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, Query(params): Query<FeedbackParams>) -> Response {
    let (report, reader, answer) = match verify(&state, &params) {
        Ok(v) => v,
        Err(message) => return refused(&state, message),
    };
    let (report_id, _) = match resolve(&state, &report, &reader).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let report = match state.store.report(report_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return refused(&state, "feedback-report-gone"),
        Err(e) => return AppError::from(e).into_response(),
    };
    render(
        &state,
        StatusCode::OK,
        json!({
            "stage": "confirm",
            "title": report.title,
            "token": params.token,
            "answer": answer.as_str(),
        }),
    )
}

#[tracing::instrument(skip_all)]
async fn record(State(state): State<AppState>, Form(params): Form<FeedbackParams>) -> Response {
    let (report, reader, answer) = match verify(&state, &params) {
        Ok(v) => v,
        Err(message) => return refused(&state, message),
    };
    let (report_id, reader) = match resolve(&state, &report, &reader).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let comment = params
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if let Some(c) = comment {
        if c.chars().count() > MAX_COMMENT_CHARS {
            return render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "stage": "error", "message": "feedback-comment-too-long", "max_comment": MAX_COMMENT_CHARS,
                        "token": params.token, "answer": answer.as_str(), "comment": c }),
            );
        }
    }
    let report = match state.store.report(report_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return refused(&state, "feedback-report-gone"),
        Err(e) => return AppError::from(e).into_response(),
    };
    if let Err(e) = state
        .store
        .record_vote(report_id, reader, answer == Answer::Yes, comment)
        .await
    {
        return AppError::from(e).into_response();
    }
    tracing::info!(report = report_id, "feedback recorded");
    metrics::counter!(crate::metrics::VOTES, "answer" => answer.as_str()).increment(1);
    let other = match answer {
        Answer::Yes => Answer::No,
        Answer::No => Answer::Yes,
    };
    render(
        &state,
        StatusCode::OK,
        json!({
            "stage": "thanks",
            "title": report.title,
            "token": params.token,
            "answer": answer.as_str(),
            "other": other.as_str(),
            "commented": comment.is_some(),
            "max_comment": MAX_COMMENT_CHARS,
        }),
    )
}

fn render(state: &AppState, status: StatusCode, context: serde_json::Value) -> Response {
    match state.page("pages/feedback.html", context) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}

fn refused(state: &AppState, message_key: &str) -> Response {
    state.message_page(
        StatusCode::BAD_REQUEST,
        "feedback-link-broken-heading",
        message_key,
        false,
    )
}
