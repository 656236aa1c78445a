//! The public sign-up page and endpoint (double opt-in, step one).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState};
use crate::domain::{random_token, SubscriberEmail, SubscriberName};
use crate::store::{now_ms, NewSignup, SignupOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/subscriptions", post(subscribe))
}

async fn home(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    state.page("pages/home.html", json!({}))
}

/// The body of a sign-up, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupPayload {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

/// A sign-up from a form or a JSON client; the answer is given in kind.
struct SignupRequest {
    payload: Result<SignupPayload, AppError>,
    from_form: bool,
}

impl<S: Send + Sync> FromRequest<S> for SignupRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let (payload, from_form) = match content_type.as_str() {
            "application/x-www-form-urlencoded" => (
                serde_urlencoded::from_bytes::<SignupPayload>(&body)
                    .map_err(|e| AppError::Invalid(format!("the form is incomplete: {e}"))),
                true,
            ),
            "application/json" => (parse_json(&body), false),
            _ => {
                return Err(AppError::UnsupportedMediaType(
                    "send the sign-up as application/x-www-form-urlencoded or application/json"
                        .into(),
                )
                .into_response())
            }
        };
        Ok(SignupRequest { payload, from_form })
    }
}

/// Only a JSON object will do (serde would also take an array for a struct).
fn parse_json(body: &[u8]) -> Result<SignupPayload, AppError> {
    let invalid = |detail: String| {
        AppError::Invalid(format!(
            "expected a JSON object {{\"email\": string, \"name\": optional string}}: {detail}"
        ))
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("the body is not an object".into()));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// The same answer for a new, pending or confirmed address, so the endpoint
/// cannot be used to learn who subscribes.
const ACCEPTED: &str =
    "Thanks! If the address can receive mail, a confirmation link is on its way. \
                        Please check your inbox.";

#[tracing::instrument(skip_all)]
async fn subscribe(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: SignupRequest,
) -> Response {
    let from_form = request.from_form;
    // Per client, so nobody can flood the list (or the mail relay) with
    // sign-ups; per address limits live in the store.
    if state.settings.subscription.signups_per_ip_per_hour > 0 {
        let key = state.client_ip(&headers, peer).to_string();
        if !state.signup_limiter.try_acquire(&key) {
            tracing::warn!("sign-up throttled for a client");
            let e = AppError::TooManyRequests(
                "too many sign-ups from your network; please try again later",
            );
            return if from_form {
                form_error(&state, e)
            } else {
                e.into_response()
            };
        }
    }
    let result = match request.payload {
        Ok(payload) => sign_up(&state, &payload).await,
        Err(e) => Err(e),
    };
    match (result, from_form) {
        (Ok(()), true) => state.message_page(StatusCode::OK, "Check your inbox", ACCEPTED, false),
        (Ok(()), false) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "message": ACCEPTED })),
        )
            .into_response(),
        (Err(e @ AppError::Internal(_)), _) | (Err(e), false) => e.into_response(),
        (Err(e), true) => form_error(&state, e),
    }
}

async fn sign_up(state: &AppState, payload: &SignupPayload) -> Result<(), AppError> {
    let email =
        SubscriberEmail::parse(&payload.email).map_err(|e| AppError::Invalid(e.to_string()))?;
    let name = match payload.name.as_deref() {
        Some(n) => SubscriberName::parse(n).map_err(|e| AppError::Invalid(e.to_string()))?,
        None => None,
    };
    let seed = random_token();
    let token = state.signer.confirmation_token(&seed);
    let token_hash = token.hash();
    let outcome = state
        .store
        .sign_up(&NewSignup {
            email: &email,
            name: name.as_ref(),
            seed: &seed,
            token_hash: &token_hash,
            expires_at: now_ms() + state.settings.confirmation_ttl().as_millis() as i64,
            confirmations_per_day: state.settings.subscription.confirmations_per_day,
        })
        .await?;
    let label = match outcome {
        SignupOutcome::ConfirmationQueued => "confirmation_queued",
        SignupOutcome::AlreadyConfirmed => "already_confirmed",
        SignupOutcome::RateLimited => "rate_limited",
    };
    metrics::counter!(crate::metrics::SIGNUPS, "outcome" => label).increment(1);
    if outcome == SignupOutcome::RateLimited {
        tracing::info!("sign-up: confirmation mail limit reached for an address; none sent");
    }
    Ok(())
}

/// Shows the form again with the problem, status 422.
fn form_error(state: &AppState, error: AppError) -> Response {
    let status = error.status();
    match state.page(
        "pages/home.html",
        json!({ "error": error.public_message() }),
    ) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}
