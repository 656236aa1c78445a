//! Who is asking: editors authenticate with an API token (scripts) or a
//! session cookie (the admin pages). Readers never authenticate; their links
//! carry signed tokens instead.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use subtle::ConstantTimeEq;

use super::{AppError, AppState};
use crate::domain::sha256_hex;
use crate::store::Editor;

/// Name of the admin session cookie.
pub const SESSION_COOKIE: &str = "nl_session";

/// An editor authenticated by `Authorization: Bearer <token>`.
pub struct ApiEditor(pub Editor);

impl FromRequestParts<AppState> for ApiEditor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthorized(
                "send an API token as `Authorization: Bearer <token>`",
            ))?;
        // Looked up by hash: the stored value is useless to a thief, and the
        // lookup does not compare secrets byte by byte.
        match state.store.editor_by_token(&sha256_hex(token)).await? {
            Some(editor) => Ok(ApiEditor(editor)),
            None => Err(AppError::Unauthorized("the API token is not valid")),
        }
    }
}

/// An editor with a valid session cookie. Pages redirect to the login form
/// when there is none.
pub struct SessionEditor {
    pub editor: Editor,
    csrf_token: String,
}

impl SessionEditor {
    /// The token every form of this session must send back.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), AppError> {
        if bool::from(self.csrf_token.as_bytes().ct_eq(sent.as_bytes())) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "the form has expired; reload the page and try again",
            ))
        }
    }
}

impl FromRequestParts<AppState> for SessionEditor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Err(login_redirect(parts));
        };
        match state.store.session(&sha256_hex(cookie.value())).await {
            Ok(Some(session)) => Ok(SessionEditor {
                editor: session.editor,
                csrf_token: session.csrf_token,
            }),
            Ok(None) => Err(login_redirect(parts)),
            Err(e) => Err(AppError::from(e).into_response()),
        }
    }
}

/// Pages go to the login form; anything else gets a plain 401.
fn login_redirect(parts: &Parts) -> Response {
    if parts.method == axum::http::Method::GET {
        Redirect::to("/admin/login").into_response()
    } else {
        AppError::Unauthorized("log in first").into_response()
    }
}
