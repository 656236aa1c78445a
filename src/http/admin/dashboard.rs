//! The editors' home: who reads and how that changes, where every report
//! stands, and how helpful readers found the recent ones, so the first page
//! after login answers "what needs doing?".

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::json;

use super::chart::{bar_chart, Chart, Column, Series};
use super::{or_error_page, render, utc_time};
use crate::app::{helpful_sentence, Moment, ReportSummary};
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};
use crate::store::{ReportHelpfulness, WeekGrowth};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

async fn dashboard(State(state): State<AppState>, editor: SessionEditor) -> Response {
    let result = page(&state, &editor).await;
    or_error_page(&state, result)
}

async fn page(state: &AppState, editor: &SessionEditor) -> Result<Response, AppError> {
    let overview = state.newsletter().overview().await?;
    let this_week = overview.growth.last().copied().unwrap_or_default();
    let helpfulness = &overview.helpfulness;
    let reports: Vec<ReportRow> = overview.reports.iter().map(ReportRow::of).collect();
    Ok(render(
        state,
        StatusCode::OK,
        "admin/dashboard.html",
        json!({
            "csrf": editor.csrf_token(),
            "editor": editor.editor.email,
            "readers": overview.readers,
            "this_week": this_week,
            "growth_chart": growth_chart(&overview.growth),
            "helpfulness_chart": (!helpfulness.is_empty()).then(|| helpfulness_chart(helpfulness)),
            "reports": reports,
        }),
    ))
}

/// A report's line in the table.
#[derive(Serialize)]
struct ReportRow {
    id: i64,
    slug: String,
    title: String,
    state: crate::app::ReportState,
    when: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    helpful: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce_alert: Option<Option<String>>,
}

impl ReportRow {
    fn of(report: &ReportSummary) -> ReportRow {
        let when = match report.moment {
            Moment::Started(at) => format!("started {}", utc_time(at)),
            Moment::Scheduled(at) => format!("scheduled for {}", utc_time(at)),
            Moment::Edited(at) => format!("edited {}", utc_time(at)),
        };
        let figures = report.figures.as_ref();
        ReportRow {
            id: report.id,
            slug: report.slug.clone(),
            title: report.title.clone(),
            state: report.state,
            when,
            sent: figures.map(|f| f.sent),
            failed: figures.map(|f| f.failed),
            helpful: figures.map(|f| helpful_sentence(f.helpful_yes, f.helpful_yes + f.helpful_no)),
            bounce_alert: figures.map(|f| super::reports::bounce_alert(&f.bounces)),
        }
    }
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
