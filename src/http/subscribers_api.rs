//! The subscriber API, for the team's other software (a CRM, a shop, a
//! sign-up form elsewhere): list, add, read, unsubscribe and erase readers
//! with an API token. Errors are JSON like the rest of the API.
//!
//! Adding is double opt-in by default: the reader gets the same
//! confirmation mail as from the sign-up page. A reader is added as already
//! confirmed only with the consent another system recorded (when and
//! where), which is stored as the proof.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

use super::auth::ApiEditor;
use super::extract::json_object;
use super::subscribe::{sign_up, SignupPayload};
use super::{AppError, AppState};
use crate::domain::{LinkedId, SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::store::{Consent, PreconfirmedOutcome, ReaderQuery, Subscriber};

/// Readers per page unless asked otherwise, and at most.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/subscribers", get(list).post(add))
        .route("/api/subscribers/{id}", get(show).delete(erase))
        .route("/api/subscribers/{id}/unsubscribe", post(unsubscribe))
}

/// `?status=&limit=&offset=`, checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// The id of the last subscriber of the page before (what `next` uses).
    after: Option<String>,
}

async fn list(
    _: ApiEditor,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let params: ListParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
            AppError::BadRequest(format!("query: {e} (use status, limit, offset, after)"))
        })?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            SubscriberStatus::parse(s).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "status {s:?} is not one of pending, confirmed, unsubscribed"
                ))
            })
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::BadRequest("offset must not be negative".into()));
    }
    // Pages that follow a subscriber by id stay put while readers sign up
    // between two requests; an offset would shift by each newcomer.
    let before = match params.after.as_deref() {
        Some(after) => Some(parse_id(&state, after).await?),
        None => None,
    };
    let page = state
        .store
        .find_readers(&ReaderQuery {
            address: None,
            status,
            suppressed: None,
            limit,
            offset,
            before,
        })
        .await?;
    let full = page.readers.len() as i64 == limit;
    let next = page.readers.last().filter(|_| full).map(|last| {
        let mut next = format!("/api/subscribers?limit={limit}&after={}", last.public_id);
        if let Some(status) = status {
            next.push_str(&format!("&status={}", status.as_str()));
        }
        next
    });
    Ok(Json(json!({
        "subscribers": page.readers,
        "total": page.matching,
        "limit": limit,
        "offset": offset,
        "next": next,
    }))
    .into_response())
}

/// The body of an add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPayload {
    email: String,
    #[serde(default)]
    name: Option<String>,
    /// Present only for a reader already confirmed elsewhere.
    #[serde(default)]
    consent: Option<ConsentPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentPayload {
    /// RFC 3339, e.g. `2026-11-02T09:30:00Z`.
    at: String,
    /// Where the reader said yes, e.g. `shop checkout, newsletter box`.
    source: String,
}

impl ConsentPayload {
    fn parse(&self) -> Result<Consent, AppError> {
        let at = DateTime::parse_from_rfc3339(&self.at).map_err(|e| {
            AppError::Invalid(format!(
                "consent.at {:?} is not an RFC 3339 time such as 2026-11-02T09:30:00Z: {e}",
                self.at
            ))
        })?;
        let consent_at = at.timestamp_millis();
        if consent_at > crate::store::now_ms() {
            return Err(AppError::Invalid("consent.at is in the future".into()));
        }
        let source = self.source.trim();
        if source.is_empty() || source.chars().count() > 200 || source.chars().any(char::is_control)
        {
            return Err(AppError::Invalid(
                "consent.source must say where the reader agreed, in up to 200 characters on one line"
                    .into(),
            ));
        }
        Ok(Consent {
            consent_at,
            source: source.to_string(),
        })
    }
}

async fn add(
    _: ApiEditor,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, AppError> {
    let invalid = |detail: String| {
        AppError::Invalid(format!(
            "expected {{\"email\": string, \"name\": optional string, \"consent\": optional {{\"at\": RFC 3339, \"source\": string}}}}: {detail}"
        ))
    };
    let payload: AddPayload = json_object(&body).map_err(invalid)?;
    let email =
        SubscriberEmail::parse(&payload.email).map_err(|e| AppError::Invalid(e.to_string()))?;
    let name = match payload.name.as_deref() {
        Some(n) => SubscriberName::parse(n).map_err(|e| AppError::Invalid(e.to_string()))?,
        None => None,
    };
    let Some(consent) = payload.consent else {
        // Double opt-in, exactly as from the sign-up page.
        let signup = SignupPayload {
            email: payload.email.clone(),
            name: payload.name.clone(),
        };
        sign_up(&state, &signup).await.map_err(AppError::from)?;
        let subscriber = state
            .store
            .subscriber_by_email(&email)
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a sign-up left no subscriber")))?;
        return Ok((StatusCode::ACCEPTED, Json(view(subscriber, None))).into_response());
    };
    let consent = consent.parse()?;
    match state
        .store
        .add_preconfirmed(&email, name.as_ref(), &consent)
        .await?
    {
        PreconfirmedOutcome::Added(subscriber) => {
            tracing::info!(
                subscriber = subscriber.id,
                "reader added as confirmed through the API"
            );
            Ok((StatusCode::CREATED, Json(view(subscriber, Some(consent)))).into_response())
        }
        PreconfirmedOutcome::Exists(subscriber) => Err(AppError::Conflict(format!(
            "the address is already on the list as {} (subscriber {})",
            subscriber.status.as_str(),
            subscriber.public_id
        ))),
    }
}

/// A subscriber as the API shows it.
fn view(subscriber: Subscriber, consent: Option<Consent>) -> serde_json::Value {
    let mut value = json!(subscriber);
    value["consent"] = json!(consent);
    value
}

/// The row id of the reader whose public id is in the path; a JSON error,
/// like every other, when it is not one or names nobody.
async fn parse_id(state: &AppState, id: &str) -> Result<i64, AppError> {
    let id = uuid::Uuid::try_parse(id)
        .map_err(|_| AppError::BadRequest(format!("{id:?} is not a subscriber id")))?;
    state
        .store
        .subscriber_id_of(&LinkedId::Public(id))
        .await?
        .ok_or(AppError::NotFound("no such subscriber"))
}

async fn found(state: &AppState, id: i64) -> Result<Subscriber, AppError> {
    state
        .store
        .subscriber(id)
        .await?
        .ok_or(AppError::NotFound("no such subscriber"))
}

async fn show(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&state, &id).await?;
    show_after(&state, id).await
}

async fn unsubscribe(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&state, &id).await?;
    state.store.unsubscribe(id).await?;
    tracing::info!(subscriber = id, "unsubscribed through the API");
    show_after(&state, id).await
}

/// The subscriber `id` with its consent, as it stands now.
async fn show_after(state: &AppState, id: i64) -> Result<Response, AppError> {
    let subscriber = found(state, id).await?;
    let consent = state.store.consent_of(id).await?;
    Ok(Json(view(subscriber, consent)).into_response())
}

/// Erases the reader (address, name, comments), as a data-protection
/// request asks; the counts of past sends stay.
async fn erase(
    _: ApiEditor,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&state, &id).await?;
    if !state.store.delete_reader(id).await? {
        return Err(AppError::NotFound("no such subscriber"));
    }
    tracing::info!(subscriber = id, "reader erased through the API");
    Ok(StatusCode::NO_CONTENT.into_response())
}
