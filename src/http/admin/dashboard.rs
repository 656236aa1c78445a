//! The editors' home: who reads and how that changes, where every report
//! stands, and how helpful readers found the recent ones, so the first page
//! after login answers "what needs doing?".

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::chart::{bar_chart, Chart, Column, Series};
use super::{or_error_page, render, utc_time};
use crate::app::{helpful_sentence, ReportState};
use crate::domain::{SendState, SubscriberStatus};
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};
use crate::store::{now_ms, ReportHelpfulness, WeekGrowth};

/// Weeks of reader growth on the dashboard.
const GROWTH_WEEKS: i64 = 12;
/// Reports in the helpfulness chart.
const CHART_REPORTS: i64 = 12;
/// Reports whose delivery counts are shown (each costs a count over the
/// report's deliveries).
const REPORTS_WITH_COUNTS: usize = 10;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

async fn dashboard(State(state): State<AppState>, editor: SessionEditor) -> Response {
    let result = page(&state, &editor).await;
    or_error_page(&state, result)
}

async fn page(state: &AppState, editor: &SessionEditor) -> Result<Response, AppError> {
    let store = &state.store;
    let now = now_ms();
    let readers = json!({
        "pending": store.count_subscribers(SubscriberStatus::Pending).await?,
        "confirmed": store.count_subscribers(SubscriberStatus::Confirmed).await?,
        "unsubscribed": store.count_subscribers(SubscriberStatus::Unsubscribed).await?,
    });
    let growth = store.reader_growth(GROWTH_WEEKS, now).await?;
    let recent_growth = growth.last().copied().unwrap_or_default();
    // The chart's counts serve the table too; only a report outside the
    // chart needs its own.
    let helpfulness = store.helpfulness_of_recent_reports(CHART_REPORTS).await?;
    let mut reports = Vec::new();
    for (i, r) in store.list_reports().await?.into_iter().enumerate() {
        // The most telling time: when it went out, else when it will,
        // else when the draft last changed.
        let when = match (r.started_at, r.scheduled_at) {
            (Some(started), _) => format!("started {}", utc_time(started)),
            (None, Some(at)) if r.send_state == Some(SendState::Scheduled) => {
                format!("scheduled for {}", utc_time(at))
            }
            _ => format!("edited {}", utc_time(r.updated_at)),
        };
        let mut row = json!({
            "id": r.id,
            "slug": r.slug,
            "title": r.title,
            "state": ReportState::from(r.send_state),
            "when": when,
        });
        if r.started_at.is_some() && i < REPORTS_WITH_COUNTS {
            let stats = store.send_stats(r.id, now).await?;
            let (yes, no) = match helpfulness.iter().find(|h| h.report_id == r.id) {
                Some(h) => (h.yes, h.no),
                None => {
                    let votes = store.helpfulness(r.id).await?;
                    (votes.yes, votes.no)
                }
            };
            row["sent"] = json!(stats.sent);
            row["failed"] = json!(stats.failed);
            row["helpful"] = json!(helpful_sentence(yes, yes + no));
            let bounces = store.bounce_stats(r.id).await?;
            row["bounce_alert"] = json!(super::reports::bounce_alert(&bounces));
        }
        reports.push(row);
    }
    Ok(render(
        state,
        StatusCode::OK,
        "admin/dashboard.html",
        json!({
            "csrf": editor.csrf_token(),
            "editor": editor.editor.email,
            "readers": readers,
            "this_week": recent_growth,
            "growth_chart": growth_chart(&growth),
            "helpfulness_chart": (!helpfulness.is_empty()).then(|| helpfulness_chart(&helpfulness)),
            "reports": reports,
        }),
    ))
}

/// New confirmations against departures, week by week.
fn growth_chart(weeks: &[WeekGrowth]) -> Chart {
    const SERIES: [Series; 2] = [
        Series {
            name: "confirmed",
            class: "bar-confirmed",
        },
        Series {
            name: "unsubscribed",
            class: "bar-unsubscribed",
        },
    ];
    let columns: Vec<Column> = weeks
        .iter()
        .map(|w| {
            let label = chrono::DateTime::from_timestamp_millis(w.start)
                .map(|t| t.format("%d %b").to_string())
                .unwrap_or_default();
            Column {
                description: format!(
                    "week of {label}: {} signed up, {} confirmed, {} unsubscribed",
                    w.signed_up, w.confirmed, w.unsubscribed
                ),
                label,
                values: vec![w.confirmed as f64, w.unsubscribed as f64],
            }
        })
        .collect();
    bar_chart(
        "Readers confirmed and unsubscribed per week",
        &SERIES,
        &columns,
        None,
    )
}

/// The share of voters who found each recent report helpful.
fn helpfulness_chart(reports: &[ReportHelpfulness]) -> Chart {
    const SERIES: [Series; 1] = [Series {
        name: "found it helpful",
        class: "bar-yes",
    }];
    let columns: Vec<Column> = reports
        .iter()
        .map(|r| {
            let voters = r.yes + r.no;
            let percent = if voters > 0 {
                100.0 * r.yes as f64 / voters as f64
            } else {
                0.0
            };
            let description = match helpful_sentence(r.yes, voters) {
                Some(sentence) => format!("{}: {sentence} ({percent:.0}%)", r.title),
                None => format!("{}: no answers yet", r.title),
            };
            Column {
                label: short_label(&r.slug),
                description,
                values: vec![percent],
            }
        })
        .collect();
    bar_chart(
        "Share of readers who found each report helpful, in percent",
        &SERIES,
        &columns,
        Some(100.0),
    )
}

/// Slugs under the bars are cut so neighbours do not overlap.
fn short_label(slug: &str) -> String {
    const MAX: usize = 12;
    if slug.chars().count() <= MAX {
        slug.to_string()
    } else {
        let cut: String = slug.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_slugs_are_cut_on_a_character_boundary() {
        assert_eq!(short_label("weekly-12"), "weekly-12");
        assert_eq!(
            short_label("週報週報週報週報週報週報週報"),
            "週報週報週報週報週報週…"
        );
    }

    #[test]
    fn the_helpfulness_chart_shows_the_share_of_yes() {
        let reports = [ReportHelpfulness {
            report_id: 1,
            slug: "a".into(),
            title: "A".into(),
            yes: 3,
            no: 1,
        }];
        let chart = helpfulness_chart(&reports);
        assert!(chart.bars[0]
            .title
            .contains("3 out of 4 found this helpful (75%)"));
    }
}
