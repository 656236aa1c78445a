//! Logging in and out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::domain::{random_token, sha256_hex, verify_password};
use crate::http::auth::{SessionEditor, SESSION_COOKIE};
use crate::http::{AppError, AppState};
use crate::store::now_ms;

/// How long a session lasts without logging in again.
const SESSION_HOURS: i64 = 12;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(form).post(login))
        .route("/admin/logout", post(logout))
}

async fn form(State(state): State<AppState>) -> Result<Response, AppError> {
    Ok(state.page("admin/login.html", json!({}))?.into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let email = form.email.trim().to_ascii_lowercase();
    // Per address and per client: guessing one editor's password from many
    // machines, or many passwords from one, both hit a limit.
    let keys = [
        format!("email:{email}"),
        format!("ip:{}", state.client_ip(&headers, peer)),
    ];
    if keys.iter().any(|k| !state.login_limiter.allows(k)) {
        tracing::warn!("login throttled");
        return Ok(failed(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a few minutes and try again.",
        ));
    }
    let credentials = state.store.admin_credentials(&email).await?;
    let password = form.password;
    let (editor, ok) = match credentials {
        Some((editor, hash)) => {
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|e| AppError::Internal(e.into()))?;
            (Some(editor), ok)
        }
        None => (None, false),
    };
    let Some(editor) = editor.filter(|_| ok) else {
        keys.iter().for_each(|k| state.login_limiter.record(k));
        return Ok(failed(
            &state,
            StatusCode::UNAUTHORIZED,
            "The email or the password is wrong.",
        ));
    };
    keys.iter().for_each(|k| state.login_limiter.clear(k));

    // A fresh session id at every login: an id planted before login is useless.
    if let Some(old) = jar.get(SESSION_COOKIE) {
        state.store.delete_session(&sha256_hex(old.value())).await?;
    }
    let session_id = random_token();
    let expires_at = now_ms() + SESSION_HOURS * 3600 * 1000;
    state
        .store
        .create_session(
            editor.id,
            &sha256_hex(&session_id),
            &random_token(),
            expires_at,
        )
        .await?;
    tracing::info!(editor = editor.id, "editor logged in");
    let cookie = Cookie::build((SESSION_COOKIE, session_id))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.base_url.scheme() == "https")
        .max_age(time::Duration::hours(SESSION_HOURS))
        .build();
    Ok((jar.add(cookie), Redirect::to("/admin")).into_response())
}

fn failed(state: &AppState, status: StatusCode, message: &str) -> Response {
    match state.page("admin/login.html", json!({ "error": message })) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    editor: SessionEditor,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    editor.check_csrf(&form.csrf)?;
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state
            .store
            .delete_session(&sha256_hex(cookie.value()))
            .await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/admin/login")).into_response())
}
