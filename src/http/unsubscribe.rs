//! One-click unsubscribe (RFC 8058): a POST to the link in the
//! `List-Unsubscribe` header unsubscribes at once; a GET shows a button.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::domain::LinkedId;

pub fn routes() -> Router<AppState> {
    Router::new().route("/unsubscribe", get(show).post(unsubscribe))
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

/// The reader a genuine link names: their public id, or the row id of a
/// link sent before public ids.
fn verify(state: &AppState, param: &TokenParam) -> Option<LinkedId> {
    state
        .signer
        .verify_unsubscribe(param.token.as_deref()?)
        .ok()
}

#[tracing::instrument(skip_all)]
async fn show(State(state): State<AppState>, Query(param): Query<TokenParam>) -> Response {
    if verify(&state, &param).is_none() {
        return invalid_link(&state);
    }
    match state.page("pages/unsubscribe.html", json!({ "token": param.token })) {
        Ok(html) => html.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body (`List-Unsubscribe=One-Click` from mail clients, or our own
/// form's empty one) does not matter: the signed token is the authority.
#[tracing::instrument(skip_all)]
async fn unsubscribe(State(state): State<AppState>, Query(param): Query<TokenParam>) -> Response {
    let Some(reader) = verify(&state, &param) else {
        return invalid_link(&state);
    };
    // A reader no longer on the list (erased) is as unsubscribed as can be.
    let done = match state.store.subscriber_id_of(&reader).await {
        Ok(Some(id)) => state.store.unsubscribe(id).await.map(|_| Some(id)),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match done {
        Ok(id) => {
            tracing::info!(subscriber = id, "unsubscribed");
            state.message_page(
                StatusCode::OK,
                "unsubscribed-heading",
                "unsubscribed-message",
                true,
            )
        }
        Err(e) => super::AppError::from(e).into_response(),
    }
}

fn invalid_link(state: &AppState) -> Response {
    state.message_page(
        StatusCode::BAD_REQUEST,
        "link-invalid-heading",
        "unsubscribe-invalid-message",
        false,
    )
}
