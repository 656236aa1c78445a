//! The readers page: find a reader by address or status, see when they
//! signed up and confirmed, unsubscribe them by hand, or erase them.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use super::{error_page, or_error_page, render, utc_time, CsrfForm};
use crate::bounces::SuppressionReason;
use crate::domain::SubscriberStatus;
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};
use crate::store::ReaderQuery;

const PAGE_SIZE: i64 = 50;
/// Longer searches cannot match a valid address.
const MAX_SEARCH: usize = 254;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/readers", get(list))
        .route("/admin/readers/{id}/unsubscribe", post(unsubscribe))
        .route("/admin/readers/{id}/delete", post(delete))
        .route("/admin/readers/{id}/unsuppress", post(unsuppress))
        .route("/admin/bounce-messages/{id}", get(bounce_message))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    q: String,
    status: String,
    suppressed: String,
    page: i64,
    done: String,
}

/// The sentence confirming what the last form did; only known words map
/// to a sentence, so the address bar cannot put text on the page.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "unsubscribed" => "The reader is unsubscribed and gets no more reports.",
        "deleted" => "The reader is deleted. Their votes still count, without their address.",
        "unsuppressed" => "The reader is no longer suppressed: the next send reaches them.",
        _ => return None,
    })
}

async fn list(
    State(state): State<AppState>,
    editor: SessionEditor,
    Query(query): Query<ListQuery>,
) -> Response {
    let result = list_page(&state, &editor, query).await;
    or_error_page(&state, result)
}

async fn list_page(
    state: &AppState,
    editor: &SessionEditor,
    query: ListQuery,
) -> Result<Response, AppError> {
    let search = query.q.trim();
    if search.chars().count() > MAX_SEARCH {
        return Err(AppError::Invalid(format!(
            "the search is longer than {MAX_SEARCH} characters"
        )));
    }
    let status = match query.status.as_str() {
        "" | "all" => None,
        other => Some(SubscriberStatus::parse(other).ok_or_else(|| {
            AppError::Invalid("the status must be pending, confirmed or unsubscribed".into())
        })?),
    };
    let suppressed = match query.suppressed.as_str() {
        "" | "any" => None,
        other => Some(SuppressionReason::parse(other).ok_or_else(|| {
            AppError::Invalid("the suppression filter must be bounced or complained".into())
        })?),
    };
    let page = query.page.max(1);
    let found = state
        .store
        .find_readers(&ReaderQuery {
            address: (!search.is_empty()).then(|| search.to_string()),
            status,
            suppressed,
            limit: PAGE_SIZE,
            offset: (page - 1).saturating_mul(PAGE_SIZE),
            before: None,
        })
        .await?;
    let mut readers = Vec::with_capacity(found.readers.len());
    for r in &found.readers {
        let suppression = state.store.suppression(&r.email).await?.map(|s| {
            json!({
                "reason": s.reason.as_str(),
                "detail": s.detail,
                "since": utc_time(s.created_at),
                "message_id": s.message_id,
            })
        });
        readers.push(json!({
                "id": r.id,
                "email": r.email,
                "name": r.name,
                "status": r.status.as_str(),
                "signed_up": utc_time(r.created_at),
                "confirmed": r.confirmed_at.map(utc_time),
                "unsubscribed": r.unsubscribed_at.map(utc_time),
                "suppression": suppression,
        }));
    }
    let pages = (found.matching + PAGE_SIZE - 1) / PAGE_SIZE;
    let link = |page: i64| {
        let query = serde_urlencoded::to_string([
            ("q", search),
            ("status", status.map(SubscriberStatus::as_str).unwrap_or("")),
            (
                "suppressed",
                suppressed.map(SuppressionReason::as_str).unwrap_or(""),
            ),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("/admin/readers?{query}")
    };
    Ok(render(
        state,
        StatusCode::OK,
        "admin/readers.html",
        json!({
            "csrf": editor.csrf_token(),
            "q": search,
            "status": status.map(SubscriberStatus::as_str).unwrap_or(""),
            "suppressed": suppressed.map(SuppressionReason::as_str).unwrap_or(""),
            "readers": readers,
            "matching": found.matching,
            "more": found.more,
            "page": page,
            "pages": pages,
            "previous": (page > 1).then(|| link(page - 1)),
            "next": (page < pages).then(|| link(page + 1)),
            "notice": notice(&query.done),
        }),
    ))
}

async fn unsubscribe(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    act(&state, &editor, &form, id, ReaderAction::Unsubscribe).await
}

async fn delete(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    act(&state, &editor, &form, id, ReaderAction::Delete).await
}

async fn unsuppress(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    act(&state, &editor, &form, id, ReaderAction::Unsuppress).await
}

/// The bounce or complaint a suppression came from, as received: shown as
/// plain text so nothing in it runs in the editor's browser.
async fn bounce_message(
    State(state): State<AppState>,
    _editor: SessionEditor,
    Path(id): Path<i64>,
) -> Response {
    let result = match state.store.bounce_message(id).await {
        Ok(Some(message)) => Ok((
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            message.raw,
        )
            .into_response()),
        Ok(None) => Err(AppError::NotFound("no such message (it may have expired)")),
        Err(e) => Err(e.into()),
    };
    or_error_page(&state, result)
}

/// What an editor can do to one reader.
#[derive(Debug, Clone, Copy)]
enum ReaderAction {
    Unsubscribe,
    Delete,
    Unsuppress,
}

async fn act(
    state: &AppState,
    editor: &SessionEditor,
    form: &CsrfForm,
    id: i64,
    action: ReaderAction,
) -> Response {
    if let Err(e) = editor.check_csrf(&form.csrf) {
        return error_page(state, e);
    }
    let (done, word) = match action {
        ReaderAction::Unsubscribe => (state.store.unsubscribe(id).await, "unsubscribed"),
        ReaderAction::Delete => (state.store.delete_reader(id).await, "deleted"),
        ReaderAction::Unsuppress => (lift(state, id).await, "unsuppressed"),
    };
    let result = match done {
        Ok(true) => {
            tracing::info!(reader = id, action = word, "reader changed by an editor");
            Ok(Redirect::to(&format!("/admin/readers?done={word}")).into_response())
        }
        Ok(false) => Err(AppError::NotFound("no such reader")),
        Err(e) => Err(e.into()),
    };
    or_error_page(state, result)
}

/// Lifts the suppression of reader `id`'s address; false when there is no
/// such reader or nothing to lift.
async fn lift(state: &AppState, id: i64) -> Result<bool, crate::store::StoreError> {
    match state.store.subscriber(id).await? {
        Some(reader) => state.store.lift_suppression(&reader.email).await,
        None => Ok(false),
    }
}
