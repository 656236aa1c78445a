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

use super::CsrfForm;
use crate::domain::{random_token, sha256_hex};
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
    let page = state.page("admin/login.html", json!({}))?;
    Ok(([own_origin_policy()], page).into_response())
}

/// Under the site-wide `no-referrer`, browsers send `Origin: null` with
/// the login form, which could not be told from another site's post.
fn own_origin_policy() -> (axum::http::HeaderName, &'static str) {
    (axum::http::header::REFERRER_POLICY, "same-origin")
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// Failed attempts one client may make against one account in the window.
const PER_CLIENT_AND_ACCOUNT: usize = 5;
/// Attempts one client may make in the window, whatever the accounts.
const PER_CLIENT: usize = 20;
/// Attempts on one account, from every client, after which only clients
/// with no failure on record may still try it. The owner at their usual
/// desk thereby still logs in while others guess from many addresses.
const PER_ACCOUNT: usize = 20;
/// Attempts on one account after which even clients with no failure on
/// record are turned away, unless their browser has logged in to it before
/// (its device cookie): guessers with endless addresses get this many
/// guesses, and the owner at their own browser still gets in.
const PER_ACCOUNT_FROM_ANYWHERE: usize = 100;

/// The cookie that marks a browser an editor has logged in from.
const DEVICE_COOKIE: &str = "nl_device";
/// How long a browser stays known.
const DEVICE_DAYS: i64 = 365;

/// Longest address an editor can have; anything longer is no login.
const MAX_EMAIL_BYTES: usize = 254;

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    if !state.same_origin(&headers) {
        tracing::warn!("login refused: posted from another site");
        return Ok(failed(
            &state,
            StatusCode::FORBIDDEN,
            "This form was sent from another site. Open the login page and try again.",
        ));
    }
    let email = form.email.trim().to_ascii_lowercase();
    // Taken before anything is counted: a login turned away for want of a
    // slot has learnt nothing, so it does not count against anybody.
    let Some(slot) = state.password_checks.try_slot() else {
        tracing::warn!("login refused: every password check slot is busy");
        let mut response = failed(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy. Try again in a moment.",
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            "1".parse().expect("static"),
        );
        return Ok(response);
    };
    let client = state.client_network(&headers, peer);
    let client_key = format!("client:{client}");
    let pair_key = format!("pair:{client}:{email}");
    let account_key = format!("account:{email}");
    // Read before counting (every attempt reads, known address or not): a
    // browser is known by the account's password as it stands.
    let credentials = if email.len() <= MAX_EMAIL_BYTES {
        state.store.admin_credentials(&email).await?
    } else {
        None
    };
    let known_browser = match (&credentials, jar.get(DEVICE_COOKIE)) {
        (Some((_, hash)), Some(cookie)) => {
            state
                .signer
                .is_login_device_of(cookie.value(), &email, hash)
        }
        _ => false,
    };
    let account_max = if known_browser {
        usize::MAX
    } else if state.login_limiter.count(&client_key) > 0 {
        PER_ACCOUNT
    } else {
        PER_ACCOUNT_FROM_ANYWHERE
    };
    let keys = [
        (client_key.as_str(), PER_CLIENT),
        (pair_key.as_str(), PER_CLIENT_AND_ACCOUNT),
        (account_key.as_str(), account_max),
    ];
    // Counted before the check, so a burst cannot slip past the limit
    // while the first attempts are still being verified.
    if !state.login_limiter.try_acquire_all(&keys) {
        tracing::warn!("login throttled");
        return Ok(failed(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a few minutes and try again.",
        ));
    }
    let device_token = credentials
        .as_ref()
        .map(|(_, hash)| state.signer.login_device_token(&email, hash));
    let (editor, hash) = credentials.unzip();
    let ok = slot.verify(form.password, hash).await;
    let Some(editor) = editor.filter(|_| ok) else {
        return Ok(failed(
            &state,
            StatusCode::UNAUTHORIZED,
            "The email or the password is wrong.",
        ));
    };
    state.login_limiter.clear(&pair_key);
    state.login_limiter.clear(&client_key);

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
    let https = state.settings.base_url.scheme() == "https";
    let cookie = private_cookie(
        (SESSION_COOKIE, session_id),
        "/",
        time::Duration::hours(SESSION_HOURS),
        https,
    );
    let device = private_cookie(
        (DEVICE_COOKIE, device_token.unwrap_or_default()),
        "/admin/login",
        time::Duration::days(DEVICE_DAYS),
        https,
    );
    Ok((jar.add(cookie).add(device), Redirect::to("/admin")).into_response())
}

/// A cookie only our own pages send back, never readable by a script.
fn private_cookie(
    pair: (&'static str, String),
    path: &'static str,
    max_age: time::Duration,
    https: bool,
) -> Cookie<'static> {
    Cookie::build(pair)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https)
        .max_age(max_age)
        .build()
}

fn failed(state: &AppState, status: StatusCode, message: &str) -> Response {
    match state.page("admin/login.html", json!({ "error": message })) {
        Ok(html) => (status, [own_origin_policy()], html).into_response(),
        Err(e) => e.into_response(),
    }
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
