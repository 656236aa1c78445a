//! Request bodies read by their `Content-Type`: the one place that decides
//! what kind of body a client sent.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::AppError;

/// The media type of a request, without parameters and in lower case
/// (`"application/json"` for `Application/JSON; charset=utf-8`); empty
/// when none was sent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether the media type is one a Markdown report is sent as.
pub fn is_markdown(media_type: &str) -> bool {
    matches!(media_type, "text/markdown" | "text/plain")
}

/// A body as text; a 400 when it is not UTF-8.
pub fn utf8_text(body: &Bytes, what: &str) -> Result<String, AppError> {
    String::from_utf8(body.to_vec())
        .map_err(|_| AppError::BadRequest(format!("{what} is not valid UTF-8")))
}

/// A JSON object as `T`: serde alone would also take an array for a
/// struct. The error is serde's account, for the caller to word.
pub fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("the body is not an object".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// A body sent as a JSON object or as a URL-encoded form, read as `T`.
/// Which of the two it was is kept, so the answer can be given in kind:
/// JSON to a script, a page to a browser.
#[derive(Debug, PartialEq)]
pub enum JsonOrForm<T> {
    Json(T),
    Form(T),
}

/// Why a body was not a `JsonOrForm`.
#[derive(Debug)]
pub enum JsonOrFormRejection {
    /// Neither JSON nor a form (415).
    UnsupportedMediaType,
    /// JSON that is not the object expected; serde's account.
    Json(String),
    /// A form without the fields expected; serde's account.
    Form(String),
    /// The body could not be read (too large, cut off).
    Body(BytesRejection),
}

impl IntoResponse for JsonOrFormRejection {
    fn into_response(self) -> Response {
        match self {
            JsonOrFormRejection::UnsupportedMediaType => AppError::UnsupportedMediaType(
                "send the body as application/json or application/x-www-form-urlencoded".into(),
            )
            .into_response(),
            JsonOrFormRejection::Json(detail) => {
                AppError::Invalid(format!("expected a JSON object: {detail}")).into_response()
            }
            JsonOrFormRejection::Form(detail) => {
                AppError::Invalid(format!("the form is incomplete: {detail}")).into_response()
            }
            JsonOrFormRejection::Body(rejection) => rejection.into_response(),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = JsonOrFormRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media_type = media_type(req.headers());
        let is_form = match media_type.as_str() {
            "application/x-www-form-urlencoded" => true,
            "application/json" => false,
            _ => return Err(JsonOrFormRejection::UnsupportedMediaType),
        };
        let body = Bytes::from_request(req, state)
            .await
            .map_err(JsonOrFormRejection::Body)?;
        if is_form {
            serde_urlencoded::from_bytes(&body)
                .map(JsonOrForm::Form)
                .map_err(|e| JsonOrFormRejection::Form(e.to_string()))
        } else {
            json_object(&body)
                .map(JsonOrForm::Json)
                .map_err(JsonOrFormRejection::Json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Signup {
        email: String,
    }

    async fn read(
        content_type: Option<&str>,
        body: &str,
    ) -> Result<JsonOrForm<Signup>, JsonOrFormRejection> {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        JsonOrForm::from_request(request, &()).await
    }

    fn signup(email: &str) -> Signup {
        Signup {
            email: email.into(),
        }
    }

    async fn answer(rejection: JsonOrFormRejection) -> (StatusCode, String) {
        let response = rejection.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, json["error"].as_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn json_and_forms_are_read_and_told_apart() {
        assert_eq!(
            read(
                Some("Application/JSON; charset=utf-8"),
                r#"{"email":"a@example.com"}"#
            )
            .await
            .unwrap(),
            JsonOrForm::Json(signup("a@example.com"))
        );
        assert_eq!(
            read(
                Some("application/x-www-form-urlencoded"),
                "email=a%40example.com"
            )
            .await
            .unwrap(),
            JsonOrForm::Form(signup("a@example.com"))
        );
    }

    #[tokio::test]
    async fn any_other_content_type_is_refused_with_415_saying_what_to_send() {
        for content_type in [Some("text/plain"), Some("multipart/form-data"), None] {
            let rejection = read(content_type, "email=a%40example.com")
                .await
                .unwrap_err();
            let (status, message) = answer(rejection).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
            assert!(message.contains("application/json"), "{message}");
            assert!(
                message.contains("application/x-www-form-urlencoded"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_json_array_or_an_incomplete_form_is_unprocessable() {
        let array = read(Some("application/json"), r#"[{"email":"a@example.com"}]"#)
            .await
            .unwrap_err();
        assert!(matches!(array, JsonOrFormRejection::Json(_)));
        let (status, message) = answer(array).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("not an object"), "{message}");

        let form = read(Some("application/x-www-form-urlencoded"), "name=Ana")
            .await
            .unwrap_err();
        assert!(matches!(form, JsonOrFormRejection::Form(_)));
        let (status, message) = answer(form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("email"), "{message}");
    }

    #[test]
    fn the_media_type_drops_parameters_and_case() {
        let mut headers = HeaderMap::new();
        assert_eq!(media_type(&headers), "");
        headers.insert(
            header::CONTENT_TYPE,
            "Text/Markdown ; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(media_type(&headers), "text/markdown");
        assert!(is_markdown(&media_type(&headers)));
    }
}
