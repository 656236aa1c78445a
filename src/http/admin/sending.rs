//! Sending from the report page: test copies, the real send (confirmed,
//! optionally scheduled, idempotent), pausing, resuming, cancelling, and the
//! progress the page's script polls. All of it goes through the same
//! `AppState` methods as the API, so both paths obey the same rules.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Json, Router};
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::reports::{report_page, ReportPage};
use super::{error_page, or_error_page, CsrfForm};
use crate::app::{parse_schedule, SendAction, ServiceError};
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};
use crate::store::{now_ms, TriggerOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/reports/{id}/test", post(test_send))
        .route("/admin/reports/{id}/send", post(send))
        .route("/admin/reports/{id}/pause", change_route(SendAction::Pause))
        .route(
            "/admin/reports/{id}/resume",
            change_route(SendAction::Resume),
        )
        .route(
            "/admin/reports/{id}/cancel",
            change_route(SendAction::Cancel),
        )
        .route("/admin/reports/{id}/retry-failed", post(retry_failed))
        .route("/admin/reports/{id}/progress", get(progress))
}

fn back_to_report(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/reports/{id}?done={done}")).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TestForm {
    csrf: String,
    /// Separated by commas (spaces, semicolons and new lines work too).
    addresses: String,
}

fn split_addresses(input: &str) -> Vec<String> {
    input
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

async fn test_send(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(e) = editor.check_csrf(&form.csrf) {
        return error_page(&state, e);
    }
    let addresses = split_addresses(&form.addresses);
    let result = match state.newsletter().queue_test(id, &addresses).await {
        Ok(()) => Ok(back_to_report(id, "test")),
        Err(ServiceError::Invalid(message)) => {
            let page = ReportPage {
                test_addresses: form.addresses,
                test_error: Some(message),
                ..ReportPage::default()
            };
            report_page(&state, &editor, id, StatusCode::UNPROCESSABLE_ENTITY, page).await
        }
        Err(e) => Err(e.into()),
    };
    or_error_page(&state, result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SendForm {
    csrf: String,
    /// The idempotency key the page generated when it was rendered.
    key: String,
    /// A `datetime-local` value, in UTC; empty means now.
    schedule: String,
    /// The confirmation checkbox: present only when ticked.
    confirm: Option<String>,
}

/// How far in the past a schedule may be before it is taken for a mistake
/// rather than "now" (the time it takes to fill in the form).
const PAST_SCHEDULE_GRACE_MS: i64 = 5 * 60 * 1000;

/// Turns a `datetime-local` value ("2026-12-01T08:00", seconds optional),
/// read as UTC, into RFC 3339 for `parse_schedule`. Empty means now.
fn schedule_to_rfc3339(value: &str) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
    .map(|t| {
        Some(
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    })
    .ok_or_else(|| format!("{value:?} is not a date and time; use the form 2026-12-01T08:00 (UTC)"))
}

/// Checks the send form and works out when to send; the message says what
/// to correct.
fn checked_schedule(form: &SendForm) -> Result<i64, String> {
    let key = form.key.trim();
    if key.is_empty() || key.len() > 200 {
        return Err("This form has lost its send key; reload the page and try again.".into());
    }
    if form.confirm.is_none() {
        return Err("Tick the box to confirm the send.".into());
    }
    let rfc3339 = schedule_to_rfc3339(&form.schedule)?;
    if let Some(time) = &rfc3339 {
        // parse_schedule treats a past time as now; from a form, a past time
        // is more likely a wrong date or a local time taken for UTC.
        let at = chrono::DateTime::parse_from_rfc3339(time)
            .map(|t| t.timestamp_millis())
            .map_err(|e| e.to_string())?;
        if at < now_ms() - PAST_SCHEDULE_GRACE_MS {
            return Err(format!(
                "{time} has already passed (times are UTC). Leave the time empty to send now."
            ));
        }
    }
    parse_schedule(rfc3339.as_deref()).map_err(|e| e.to_string())
}

async fn send(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<SendForm>,
) -> Response {
    if let Err(e) = editor.check_csrf(&form.csrf) {
        return error_page(&state, e);
    }
    let scheduled_at = match checked_schedule(&form) {
        Ok(at) => at,
        Err(message) => {
            let key = form.key.trim();
            let page = ReportPage {
                schedule: form.schedule.clone(),
                send_error: Some(message),
                send_key: (!key.is_empty() && key.len() <= 200).then(|| key.to_string()),
                ..ReportPage::default()
            };
            let result =
                report_page(&state, &editor, id, StatusCode::UNPROCESSABLE_ENTITY, page).await;
            return or_error_page(&state, result);
        }
    };
    match state
        .newsletter()
        .trigger_send(id, form.key.trim(), scheduled_at)
        .await
    {
        // A repeated key is this same form submitted again (a double click,
        // a reload): show the send it made.
        Ok(TriggerOutcome::Created(send) | TriggerOutcome::Repeated(send)) => {
            // By its time, not its state: a repeat may read the send before
            // the first request has started it.
            let done = if send.scheduled_at > now_ms() {
                "scheduled"
            } else {
                "sent"
            };
            back_to_report(id, done)
        }
        Ok(TriggerOutcome::AlreadySent(_)) => error_page(
            &state,
            AppError::Conflict(
                "This report has already been sent or scheduled from another form; it is sent \
                 only once."
                    .into(),
            ),
        ),
        Err(e) => error_page(&state, e.into()),
    }
}

/// `POST` from the report page's buttons pausing, resuming or cancelling
/// its send; back to the page with what was done.
fn change_route(action: SendAction) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              editor: SessionEditor,
              Path(id): Path<i64>,
              Form(form): Form<CsrfForm>| async move {
            if let Err(e) = editor.check_csrf(&form.csrf) {
                return error_page(&state, e);
            }
            match state.newsletter().change_send(id, action).await {
                Ok(_) => back_to_report(id, done_after(action)),
                Err(e) => error_page(&state, e.into()),
            }
        },
    )
}

/// The notice shown after `action`.
fn done_after(action: SendAction) -> &'static str {
    match action {
        SendAction::Pause => "paused",
        SendAction::Resume => "resumed",
        SendAction::Cancel => "cancelled",
    }
}

async fn retry_failed(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = editor.check_csrf(&form.csrf) {
        return error_page(&state, e);
    }
    match state.newsletter().retry_failed(id).await {
        Ok(_) => back_to_report(id, "retrying"),
        Err(e) => error_page(&state, e.into()),
    }
}

/// The send's numbers as JSON, for the report page's script.
async fn progress(
    _: SessionEditor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let progress = state.newsletter().report_progress(id).await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(progress),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_on_commas_and_spaces() {
        assert_eq!(
            split_addresses(" a@example.com,b@example.com ;\nc@example.com ,"),
            ["a@example.com", "b@example.com", "c@example.com"]
        );
        assert!(split_addresses(" , ").is_empty());
    }

    #[test]
    fn a_local_datetime_is_read_as_utc() {
        assert_eq!(
            schedule_to_rfc3339("2026-12-01T08:00"),
            Ok(Some("2026-12-01T08:00:00Z".into()))
        );
        assert_eq!(
            schedule_to_rfc3339("2026-12-01T08:00:30"),
            Ok(Some("2026-12-01T08:00:30Z".into()))
        );
        assert_eq!(schedule_to_rfc3339("  "), Ok(None));
        assert!(schedule_to_rfc3339("next tuesday").is_err());
    }

    fn form(schedule: &str, confirm: bool) -> SendForm {
        SendForm {
            csrf: String::new(),
            key: "k".into(),
            schedule: schedule.into(),
            confirm: confirm.then(|| "yes".into()),
        }
    }

    #[test]
    fn a_send_needs_the_box_ticked_and_a_future_time() {
        assert!(checked_schedule(&form("", false)).is_err());
        assert!(checked_schedule(&form("2001-01-01T00:00", true)).is_err());
        let now = now_ms();
        let immediate = checked_schedule(&form("", true)).unwrap();
        assert!(immediate >= now);
        let later = checked_schedule(&form("2999-01-01T00:00", true)).unwrap();
        assert!(later > now + 365 * 24 * 3600 * 1000);
        let mut keyless = form("", true);
        keyless.key = " ".into();
        assert!(checked_schedule(&keyless).is_err());
    }
}
