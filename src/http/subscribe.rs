//! The public sign-up page and endpoint (double opt-in, step one).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::extract::{JsonOrForm, JsonOrFormRejection};
use super::{AppError, AppState};
use crate::config::EmbedSettings;
use crate::domain::{confirmation_seed, EmailError, NameError, SubscriberEmail, SubscriberName};
use crate::i18n::Catalogue;
use crate::store::{now_ms, NewSignup, SignupOutcome};

pub fn routes(embed: &EmbedSettings) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/subscriptions", post(subscribe).layer(cors(embed)))
}

/// JSON sign-ups from scripts on the team's own sites get the CORS headers
/// that let the browser hand them the answer; other sites get none.
fn cors(embed: &EmbedSettings) -> CorsLayer {
    let origins: Vec<HeaderValue> = embed
        .allowed_origins
        .iter()
        .filter_map(|url| HeaderValue::from_str(&url.origin().ascii_serialization()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(3600))
}

/// The configured thank-you page, when the form was posted from one of the
/// allowed sites. Only the configured address is ever a target: nothing in
/// the request chooses where the reader goes, so this is no open redirect.
fn thank_you(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let url = state.settings.embed.thank_you_url.as_ref()?;
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    state
        .settings
        .embed
        .allows(origin)
        .then(|| Redirect::to(url.as_str()).into_response())
}

async fn home(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    state.page("pages/home.html", json!({}))
}

/// The body of a sign-up, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignupPayload {
    pub(super) email: String,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// Why a sign-up was not taken. A form shows the reader the catalogue's
/// sentence; a JSON client gets the precise English error.
#[derive(Debug)]
pub(super) enum Refusal {
    /// A form without the fields it needs (serde's account of it).
    Form(String),
    Json(AppError),
    Email(EmailError),
    Name(NameError),
    Throttled,
    Failed(AppError),
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> AppError {
        match refusal {
            Refusal::Form(detail) => AppError::Invalid(format!("the form is incomplete: {detail}")),
            Refusal::Email(e) => AppError::Invalid(e.to_string()),
            Refusal::Name(e) => AppError::Invalid(e.to_string()),
            Refusal::Throttled => AppError::TooManyRequests(
                "too many sign-ups from your network; please try again later",
            ),
            Refusal::Json(e) | Refusal::Failed(e) => e,
        }
    }
}

impl Refusal {
    /// The sentence for the sign-up page, in the publication's language.
    fn page_message(&self, catalogue: &Catalogue) -> String {
        let key = match self {
            Refusal::Form(detail) => {
                let mut args = fluent_bundle::FluentArgs::new();
                args.set("detail", detail.clone());
                return catalogue.message("signup-error-form", Some(&args));
            }
            Refusal::Email(e) => match e {
                EmailError::Empty => "email-error-empty",
                EmailError::TooLong => "email-error-too-long",
                EmailError::ControlCharacter => "email-error-control",
                EmailError::Whitespace => "email-error-space",
                EmailError::NonAscii => "email-error-non-ascii",
                EmailError::MissingAt => "email-error-no-at",
                EmailError::BadDomain => "email-error-domain",
                EmailError::Invalid(_) => "email-error-invalid",
            },
            Refusal::Name(NameError::TooLong) => "name-error-too-long",
            Refusal::Name(NameError::ControlCharacter) => "name-error-control",
            Refusal::Throttled => "signup-error-throttled",
            Refusal::Json(e) | Refusal::Failed(e) => return e.public_message(),
        };
        catalogue.text(key)
    }
}

/// The same answer for a new, pending or confirmed address, so the endpoint
/// cannot be used to learn who subscribes (a catalogue message).
const ACCEPTED: &str = "signup-accepted";

#[tracing::instrument(skip_all)]
async fn subscribe(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<JsonOrForm<SignupPayload>, JsonOrFormRejection>,
) -> Response {
    // The answer is given in kind: a page to a form, JSON to a script.
    let (payload, from_form) = match request {
        Ok(JsonOrForm::Form(payload)) => (Ok(payload), true),
        Ok(JsonOrForm::Json(payload)) => (Ok(payload), false),
        Err(JsonOrFormRejection::Form(detail)) => (Err(Refusal::Form(detail)), true),
        Err(JsonOrFormRejection::Json(detail)) => (
            Err(Refusal::Json(AppError::Invalid(format!(
                "expected a JSON object {{\"email\": string, \"name\": optional string}}: {detail}"
            )))),
            false,
        ),
        Err(JsonOrFormRejection::UnsupportedMediaType) => {
            return AppError::UnsupportedMediaType(
                "send the sign-up as application/x-www-form-urlencoded or application/json".into(),
            )
            .into_response()
        }
        Err(rejection) => return rejection.into_response(),
    };
    // Per client, so nobody can flood the list (or the mail relay) with
    // sign-ups; per address limits live in the store.
    if state.settings.subscription.signups_per_ip_per_hour > 0 {
        let key = state.client_network(&headers, peer);
        if !state.signup_limiter.try_acquire(&key) {
            tracing::warn!("sign-up throttled for a client");
            return if from_form {
                form_error(&state, Refusal::Throttled)
            } else {
                AppError::from(Refusal::Throttled).into_response()
            };
        }
    }
    let result = match payload {
        Ok(payload) => sign_up(&state, &payload).await,
        Err(e) => Err(e),
    };
    match (result, from_form) {
        (Ok(()), true) => thank_you(&state, &headers).unwrap_or_else(|| accepted_page(&state)),
        (Ok(()), false) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "message": state.catalogue.text(ACCEPTED) })),
        )
            .into_response(),
        (Err(Refusal::Failed(e)), _) => e.into_response(),
        (Err(e @ (Refusal::Email(_) | Refusal::Name(_))), false) => {
            // A script shows `message` to the reader, in the publication's
            // language; `error` stays for whoever wrote the script.
            let message = e.page_message(&state.catalogue);
            let error = AppError::from(e);
            (
                error.status(),
                Json(json!({ "error": error.public_message(), "message": message })),
            )
                .into_response()
        }
        (Err(e), false) => AppError::from(e).into_response(),
        (Err(e), true) => form_error(&state, e),
    }
}

/// Double opt-in, step one: records the sign-up and queues the
/// confirmation mail (also the subscriber API's default way in).
pub(super) async fn sign_up(state: &AppState, payload: &SignupPayload) -> Result<(), Refusal> {
    let email = SubscriberEmail::parse(&payload.email).map_err(Refusal::Email)?;
    let name = match payload.name.as_deref() {
        Some(n) => SubscriberName::parse(n).map_err(Refusal::Name)?,
        None => None,
    };
    let seed = confirmation_seed(now_ms());
    let token = state.signer.confirmation_token(&seed);
    let token_hash = token.key();
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
        .await
        .map_err(|e| Refusal::Failed(e.into()))?;
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

/// The page that thanks a sign-up from the form. It cannot change while the
/// process runs (its words and templates are loaded at start), so it is
/// rendered on first use and kept; a failed render is not kept.
fn accepted_page(state: &AppState) -> Response {
    let kept = &state.signup_accepted_page;
    if let Some(html) = kept.get() {
        return Html(html.clone()).into_response();
    }
    match state.message_html("signup-accepted-heading", ACCEPTED, false) {
        Ok(Html(html)) => Html(kept.get_or_init(|| html).clone()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Shows the form again with the problem, status 422 (429 when throttled).
fn form_error(state: &AppState, refusal: Refusal) -> Response {
    let message = refusal.page_message(&state.catalogue);
    let status = AppError::from(refusal).status();
    match state.page("pages/home.html", json!({ "error": message })) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}
