//! Double opt-in, step two. The link in the email opens a page whose form
//! POSTs the token: mail scanners fetch links, and a fetch must not confirm.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::domain::ConfirmationToken;
use crate::store::ConfirmOutcome;

pub fn routes() -> Router<AppState> {
    Router::new().route("/subscriptions/confirm", get(show).post(confirm))
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, Query(param): Query<TokenParam>) -> Response {
    let Some(token) = param
        .token
        .as_deref()
        .and_then(|t| ConfirmationToken::parse(t).ok())
    else {
        return invalid_link(&state);
    };
    match state.store.check_confirmation(&token.key()).await {
        Ok(ConfirmOutcome::Confirmed(_)) => {
            match state.page("pages/confirm.html", json!({ "token": token.as_str() })) {
                Ok(html) => html.into_response(),
                Err(e) => e.into_response(),
            }
        }
        Ok(other) => outcome_page(&state, other),
        Err(e) => super::AppError::from(e).into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn confirm(State(state): State<AppState>, Form(param): Form<TokenParam>) -> Response {
    let Some(token) = param
        .token
        .as_deref()
        .and_then(|t| ConfirmationToken::parse(t).ok())
    else {
        return invalid_link(&state);
    };
    match state.store.confirm(&token.key()).await {
        Ok(outcome) => outcome_page(&state, outcome),
        Err(e) => super::AppError::from(e).into_response(),
    }
}

fn outcome_page(state: &AppState, outcome: ConfirmOutcome) -> Response {
    match outcome {
        ConfirmOutcome::Confirmed(id) => {
            tracing::info!(subscriber = id, "subscription confirmed");
            state.message_page(
                StatusCode::OK,
                "confirmed-heading",
                "confirmed-message",
                false,
            )
        }
        ConfirmOutcome::Expired => state.message_page(
            StatusCode::GONE,
            "confirm-expired-heading",
            "confirm-expired-message",
            true,
        ),
        ConfirmOutcome::Invalid => invalid_link(state),
    }
}

fn invalid_link(state: &AppState) -> Response {
    state.message_page(
        StatusCode::BAD_REQUEST,
        "link-invalid-heading",
        "confirm-invalid-message",
        true,
    )
}
