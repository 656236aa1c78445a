//! Writing reports: the form for a new one, saving (new or updated draft),
//! and the report page that gathers the source, the preview, the test and
//! send forms and a running send's progress.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::preview::render_sample;
use super::{error_page, or_error_page, render, utc_time};
use crate::app::{FeedbackSummary, ReportProgress, ReportState, ServiceError};
use crate::domain::{random_token, SendState, SubscriberStatus};
use crate::http::api::{feedback_csv_download, REPORT_BODY_LIMIT};
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};
use crate::store::{BounceStats, SaveOutcome, Send};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/reports/new", get(new_form))
        .route(
            "/admin/reports",
            // A form-encoded body can be up to three times the text (every
            // non-ASCII byte becomes %XX), so the report limit is scaled.
            post(save).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT * 3)),
        )
        .route("/admin/reports/{id}", get(show))
        .route("/admin/reports/{id}/feedback.csv", get(feedback_csv))
}

/// The votes and comments as a download, for the editor's own spreadsheet.
async fn feedback_csv(
    State(state): State<AppState>,
    _editor: SessionEditor,
    Path(id): Path<i64>,
) -> Response {
    let result = feedback_csv_download(&state, id).await;
    or_error_page(&state, result)
}

/// The start of a new report, in the authoring format, dated today so that
/// it saves as is.
fn starter_source() -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d");
    format!(
        "---\ntitle: Weekly Report\nslug: weekly-{today}\ndate: {today}\nbyline: Your Name\n\
         editor: Desk Editor\nsummary: One sentence on what this issue covers.\n---\n\n\
         # Section name\n\n## A headline worth reading\n\nThe body of the news item.\n\n\
         Source: Where it comes from\n\nComment: Why it matters.\n"
    )
}

async fn new_form(State(state): State<AppState>, editor: SessionEditor) -> Response {
    form_page(
        &state,
        &editor,
        StatusCode::OK,
        &starter_source(),
        None,
        None,
    )
}

/// The editing form, fresh or with the editor's text and why it was refused.
fn form_page(
    state: &AppState,
    editor: &SessionEditor,
    status: StatusCode,
    source: &str,
    error: Option<&str>,
    sent_report: Option<i64>,
) -> Response {
    render(
        state,
        status,
        "admin/report_form.html",
        json!({
            "csrf": editor.csrf_token(),
            "source": source,
            "error": error,
            "sent_report": sent_report,
        }),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SaveForm {
    csrf: String,
    source: String,
}

/// Saves the text: a new report, or the draft with the same slug. Nothing
/// the editor typed is lost on a refusal: the form comes back with it.
async fn save(
    State(state): State<AppState>,
    editor: SessionEditor,
    Form(form): Form<SaveForm>,
) -> Response {
    if let Err(e) = editor.check_csrf(&form.csrf) {
        return error_page(&state, e);
    }
    // Browsers send a textarea's lines with CRLF; the stored source should
    // not depend on how it was typed in.
    let source = form.source.replace("\r\n", "\n");
    match state.newsletter().save_report_source(&source).await {
        Ok(SaveOutcome::Created(id) | SaveOutcome::Updated(id)) => {
            Redirect::to(&format!("/admin/reports/{id}?done=saved")).into_response()
        }
        Ok(SaveOutcome::Frozen(id)) => form_page(
            &state,
            &editor,
            StatusCode::CONFLICT,
            &source,
            Some(
                "A report with this slug has already been sent or scheduled, so its text can no \
                 longer change. Give this text a new slug to save it as a new report.",
            ),
            Some(id),
        ),
        Err(ServiceError::Invalid(message)) => form_page(
            &state,
            &editor,
            StatusCode::UNPROCESSABLE_ENTITY,
            &source,
            Some(&message),
            None,
        ),
        Err(e) => error_page(&state, e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    done: String,
}

/// The sentence confirming what the last form did. Only known words map to
/// a sentence, so the address bar cannot put text on the page.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "saved" => "Saved.",
        "test" => "Test copies queued. They arrive within a minute or so.",
        "sent" => "The send is on its way.",
        "scheduled" => "The send is scheduled.",
        "paused" => "Paused. Messages already handed to the mail server still arrive.",
        "resumed" => "Resumed.",
        "retrying" => "The failed deliveries are queued once more.",
        "cancelled" => "Cancelled. Nothing more will be sent.",
        _ => return None,
    })
}

async fn show(
    State(state): State<AppState>,
    editor: SessionEditor,
    Path(id): Path<i64>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let page = ReportPage {
        notice: notice(&query.done),
        ..ReportPage::default()
    };
    let result = report_page(&state, &editor, id, StatusCode::OK, page).await;
    or_error_page(&state, result)
}

/// What the report page shows besides the report: a notice after a
/// successful form, or a refused form's input and error, kept so the editor
/// can correct it.
#[derive(Default)]
pub(super) struct ReportPage {
    pub notice: Option<&'static str>,
    pub test_addresses: String,
    pub test_error: Option<String>,
    pub schedule: String,
    pub send_error: Option<String>,
    /// The idempotency key of a refused send form, reused so that the same
    /// form, corrected, is still one send.
    pub send_key: Option<String>,
}

/// Renders the page of report `id` with `status`.
pub(super) async fn report_page(
    state: &AppState,
    editor: &SessionEditor,
    id: i64,
    status: StatusCode,
    page: ReportPage,
) -> Result<Response, AppError> {
    let report = state.newsletter().report(id).await?;
    let send = state.store.send_of_report(id).await?;
    let confirmed = state
        .store
        .count_subscribers(SubscriberStatus::Confirmed)
        .await?;
    let sample = SampleView::of(state, &report.source)?;
    let figures = SendFigures::of(state, id, send.as_ref()).await?;
    let context = json!({
        "csrf": editor.csrf_token(),
        "report": {
            "id": report.id,
            "slug": report.slug,
            "title": report.title,
            "source": report.source,
            "updated_at": utc_time(report.updated_at),
        },
        "state": ReportState::from(send.as_ref().map(|s| s.state)),
        "subject": sample.subject,
        "preview_id": report.id,
        "preview_text": sample.text,
        "render_error": sample.error,
        "confirmed": confirmed,
        "send": send.as_ref().map(SendView::of),
        "progress": figures.progress,
        "feedback": figures.feedback,
        "bounces": figures.bounces,
        "notice": page.notice,
        "test": { "addresses": page.test_addresses, "error": page.test_error },
        "send_form": {
            "schedule": page.schedule,
            "error": page.send_error,
            // A fresh key per rendered form: resubmitting this very form
            // finds the send it made instead of making another.
            "key": page.send_key.unwrap_or_else(random_token),
        },
    });
    Ok(render(state, status, "admin/report.html", context))
}

/// The subject and text of the stored source as a reader would get them,
/// or why it does not render: a source that no longer renders (the format
/// moved on) is reported on the page, not fatal to it.
#[derive(Default)]
struct SampleView {
    subject: Option<String>,
    text: Option<String>,
    error: Option<String>,
}

impl SampleView {
    fn of(state: &AppState, source: &str) -> Result<SampleView, AppError> {
        match render_sample(state, source) {
            Ok(sample) => Ok(SampleView {
                subject: Some(sample.subject),
                text: Some(sample.text),
                error: None,
            }),
            Err(AppError::Invalid(message)) => Ok(SampleView {
                error: Some(message),
                ..SampleView::default()
            }),
            Err(e) => Err(e),
        }
    }
}

/// What the page shows of a send: its progress once there is a send, and
/// readers' feedback and bounces once it has started (before, there are
/// none).
#[derive(Default)]
struct SendFigures {
    progress: Option<ProgressView>,
    feedback: Option<FeedbackView>,
    bounces: Option<serde_json::Value>,
}

impl SendFigures {
    async fn of(state: &AppState, id: i64, send: Option<&Send>) -> Result<Self, AppError> {
        let Some(send) = send else {
            return Ok(SendFigures::default());
        };
        let progress = state.newsletter().report_progress(id).await?;
        if send.started_at.is_none() {
            return Ok(SendFigures {
                progress: Some(ProgressView::of(progress)),
                ..SendFigures::default()
            });
        }
        let feedback = state.newsletter().feedback_summary(id).await?;
        Ok(SendFigures {
            bounces: Some(bounce_view(&progress.bounces)),
            feedback: Some(FeedbackView::of(feedback)),
            progress: Some(ProgressView::of(progress)),
        })
    }
}

/// A send's state, times, and which buttons it offers.
#[derive(Serialize)]
struct SendView {
    state: SendState,
    scheduled_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    pause_reason: Option<String>,
    can_pause: bool,
    can_resume: bool,
    can_retry: bool,
    can_cancel: bool,
    /// Only a send that can still change is worth polling.
    live: bool,
}

impl SendView {
    fn of(send: &Send) -> SendView {
        let state = send.state;
        SendView {
            state,
            scheduled_at: utc_time(send.scheduled_at),
            started_at: send.started_at.map(utc_time),
            finished_at: send.finished_at.map(utc_time),
            pause_reason: send.pause_reason.clone(),
            can_pause: state.can_pause(),
            can_resume: state == SendState::Paused,
            can_retry: state.can_retry(),
            can_cancel: state.is_live(),
            live: state.is_live(),
        }
    }
}

/// The progress with its rate as people read it.
#[derive(Serialize)]
struct ProgressView {
    #[serde(flatten)]
    progress: ReportProgress,
    rate_text: String,
}

impl ProgressView {
    fn of(progress: ReportProgress) -> ProgressView {
        ProgressView {
            rate_text: format!("{:.1}", progress.stats.rate_per_sec),
            progress,
        }
    }
}

/// The feedback with its response rate as a percentage and each comment's
/// time for people.
#[derive(Serialize)]
struct FeedbackView {
    yes: i64,
    no: i64,
    delivered: i64,
    response_rate_text: String,
    summary: Option<String>,
    comments: Vec<CommentView>,
}

#[derive(Serialize)]
struct CommentView {
    helpful: bool,
    comment: String,
    when: String,
}

impl FeedbackView {
    fn of(feedback: FeedbackSummary) -> FeedbackView {
        FeedbackView {
            yes: feedback.yes,
            no: feedback.no,
            delivered: feedback.delivered,
            response_rate_text: format!("{:.1}", feedback.response_rate * 100.0),
            summary: feedback.summary,
            comments: feedback
                .comments
                .into_iter()
                .map(|c| CommentView {
                    when: utc_time(c.updated_at),
                    helpful: c.helpful,
                    comment: c.comment,
                })
                .collect(),
        }
    }
}

/// Above these shares mailbox providers start to distrust the sender, so
/// the editor is warned before the next send.
const BOUNCE_RATE_ALERT: f64 = 0.02;
const COMPLAINT_RATE_ALERT: f64 = 0.001;

/// Why a report's bounces or complaints need attention, if they do.
pub(super) fn bounce_alert(stats: &BounceStats) -> Option<String> {
    let mut reasons = Vec::new();
    if stats.bounce_rate > BOUNCE_RATE_ALERT {
        reasons.push(format!(
            "the bounce rate is {} (above 2%)",
            percent(stats.bounce_rate)
        ));
    }
    if stats.complaint_rate > COMPLAINT_RATE_ALERT {
        reasons.push(format!(
            "the complaint rate is {} (above 0.1%)",
            percent(stats.complaint_rate)
        ));
    }
    (!reasons.is_empty()).then(|| {
        format!(
            "Check the list: {}. Mailbox providers may start filtering these reports as spam.",
            reasons.join(" and ")
        )
    })
}

/// A rate as a percentage fine enough to show 0.1%.
fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// Bounces and complaints as the report page shows them.
pub(super) fn bounce_view(stats: &BounceStats) -> serde_json::Value {
    json!({
        "attempted": stats.attempted,
        "hard": stats.hard_bounces,
        "soft": stats.soft_bounces,
        "complaints": stats.complaints,
        "bounce_rate": percent(stats.bounce_rate),
        "complaint_rate": percent(stats.complaint_rate),
        "alert": bounce_alert(stats),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_source_parses() {
        if let Err(e) = crate::report::Report::parse(&starter_source()) {
            panic!("the starter source does not parse: {e}");
        }
    }

    #[test]
    fn alerts_start_above_the_thresholds() {
        let stats = |bounce_rate, complaint_rate| BounceStats {
            bounce_rate,
            complaint_rate,
            ..BounceStats::default()
        };
        assert_eq!(bounce_alert(&stats(0.02, 0.001)), None);
        let both = bounce_alert(&stats(0.021, 0.0011)).unwrap();
        assert!(both.contains("bounce rate is 2.10%"), "{both}");
        assert!(both.contains("complaint rate is 0.11%"), "{both}");
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert_eq!(notice("saved"), Some("Saved."));
        assert_eq!(notice("<script>"), None);
    }
}
