//! `POST /webhooks/<provider>`: bounces and complaints reported by the
//! sending providers, each call authenticated as its provider documents.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::{AppError, AppState};
use crate::bounces::webhooks::{
    mailgun_events, postmark_events, sendgrid_events, ses_events, SnsOutcome, WebhookError,
};
use crate::bounces::Intake;

/// Providers batch events; a SendGrid call may carry many.
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/{provider}", post(webhook))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
}

#[tracing::instrument(skip_all, fields(provider = %provider))]
async fn webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let hooks = &state.settings.bounces.webhooks;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let events = match provider.as_str() {
        "ses" => match ses_events(&body, hooks).await.map_err(refused)? {
            SnsOutcome::Subscribed => {
                return Ok(Json(json!({ "subscribed": true })).into_response())
            }
            SnsOutcome::Ignored => Vec::new(),
            SnsOutcome::Events(events) => events,
        },
        "postmark" => postmark_events(
            &body,
            header("authorization"),
            hooks.postmark_username.as_ref(),
            hooks.postmark_password.as_ref(),
        )
        .map_err(refused)?,
        "mailgun" => mailgun_events(
            &body,
            hooks.mailgun_signing_key.as_ref(),
            hooks.max_age_secs,
        )
        .map_err(refused)?,
        "sendgrid" => sendgrid_events(
            &body,
            header("x-twilio-email-event-webhook-signature"),
            header("x-twilio-email-event-webhook-timestamp"),
            hooks.sendgrid_public_key.as_deref(),
            hooks.max_age_secs,
        )
        .map_err(refused)?,
        _ => return Err(AppError::NotFound("no such webhook")),
    };
    let intake = Intake::new(
        state.store.clone(),
        state.signer.clone(),
        state
            .settings
            .bounce_address()
            .map_err(|e| AppError::Internal(e.into()))?,
        state.settings.bounces.clone(),
    );
    let recorded = intake
        .ingest_events(&events, &provider, &body)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Json(json!({
        "recorded": recorded.iter().filter(|r| !r.duplicate).count(),
        "suppressed": recorded.iter().filter(|r| r.suppressed).count(),
    }))
    .into_response())
}

fn refused(e: WebhookError) -> AppError {
    match e {
        WebhookError::NotConfigured => AppError::NotFound("this provider's webhook is not set up"),
        WebhookError::Unauthorized(why) => {
            tracing::warn!(why, "a webhook call was refused");
            AppError::Unauthorized(why)
        }
        WebhookError::Malformed(why) => AppError::BadRequest(why),
        // The provider retries; the failure is ours to look into.
        e @ WebhookError::Upstream(_) => AppError::Internal(e.into()),
    }
}
