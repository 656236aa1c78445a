//! Rendering full HTML pages with the shared layout.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::{AppError, AppState};

impl AppState {
    /// Renders `template` with `site_name` added to `context`.
    pub fn page(
        &self,
        template: &str,
        mut context: serde_json::Value,
    ) -> Result<Html<String>, AppError> {
        if let Some(map) = context.as_object_mut() {
            map.insert("site_name".into(), json!(self.settings.site_name));
        }
        let context = tera::Context::from_value(context)?;
        Ok(Html(self.tera.render(template, &context)?))
    }

    /// A short page with a heading and a sentence (both catalogue message
    /// ids, so the page speaks the publication's language), with the given
    /// status.
    pub fn message_page(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
        offer_signup: bool,
    ) -> Response {
        match self.message_html(heading, message, offer_signup) {
            Ok(html) => (status, html).into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// The HTML of [`AppState::message_page`].
    pub fn message_html(
        &self,
        heading: &str,
        message: &str,
        offer_signup: bool,
    ) -> Result<Html<String>, AppError> {
        self.page(
            "pages/message.html",
            json!({ "heading": heading, "message": message, "offer_signup": offer_signup }),
        )
    }
}
