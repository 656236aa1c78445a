//! The HTTP layer's one error type: users see what they can act on, the log
//! gets the rest.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Well-formed but unacceptable input (422).
    #[error("{0}")]
    Invalid(String),
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// No or unknown credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Credentials fine, request not allowed (403), e.g. a bad CSRF token.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request clashes with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts (429).
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// The service cannot do it right now (503), e.g. its disk is full; the
    /// message says so, and the client may try again later.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Our fault. Logged in full, shown as a generic message.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        // The store has logged a failing disk once; each request need not.
        match e.storage_problem() {
            Some(problem) => AppError::Unavailable(problem.public_message()),
            None => AppError::Internal(e.into()),
        }
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(message) => AppError::Invalid(message),
            ServiceError::NotFound(message) => AppError::NotFound(message),
            ServiceError::Conflict(message) => AppError::Conflict(message),
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(e) => AppError::Internal(e),
        }
    }
}

impl From<tera::Error> for AppError {
    fn from(e: tera::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("rendering a template"))
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The sentence a user may see.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "something went wrong on our side; please try again later".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut response = (
            self.status(),
            Json(json!({ "error": self.public_message() })),
        )
            .into_response();
        if matches!(self, AppError::Unavailable(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("60"),
            );
        }
        if matches!(self, AppError::Unauthorized(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
