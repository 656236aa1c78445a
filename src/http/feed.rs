//! The archive as an Atom feed (`/archive/feed.xml`), for feed readers and
//! for sites that list the latest reports.

use atom_syndication::{
    ContentBuilder, EntryBuilder, FeedBuilder, FixedDateTime, LinkBuilder, PersonBuilder, Text,
};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{AppError, AppState};
use crate::report::Report;

/// Entries in the feed: feed readers poll, they do not page.
const FEED_ENTRIES: usize = 50;

pub fn routes() -> Router<AppState> {
    Router::new().route("/archive/feed.xml", get(feed))
}

fn instant(ms: i64) -> FixedDateTime {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .fixed_offset()
}

async fn feed(State(state): State<AppState>) -> Result<Response, AppError> {
    let base = state.settings.base();
    let stored = state.store.sent_reports().await?;
    let mut entries = Vec::new();
    for report in stored.iter().take(FEED_ENTRIES) {
        let parsed = match Report::parse(&report.source) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(report = report.id, error = %e, "a stored report no longer parses");
                continue;
            }
        };
        let url = format!("{base}/archive/{}", report.slug);
        let context = tera::Context::from_value(json!({ "report": parsed }))?;
        let body = state.tera.render("report/body.html", &context)?;
        let published = parsed
            .meta
            .date
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().fixed_offset());
        let authors = parsed
            .meta
            .byline
            .iter()
            .map(|name| PersonBuilder::default().name(name.clone()).build())
            .collect::<Vec<_>>();
        entries.push(
            EntryBuilder::default()
                .id(url.clone())
                .title(Text::plain(parsed.meta.title.clone()))
                .updated(instant(report.updated_at))
                .published(published)
                .authors(authors)
                .links(vec![LinkBuilder::default()
                    .href(url)
                    .rel("alternate")
                    .mime_type(Some("text/html".to_string()))
                    .build()])
                .summary(parsed.meta.summary.clone().map(Text::plain))
                .content(Some(
                    ContentBuilder::default()
                        .content_type(Some("html".to_string()))
                        .value(Some(body))
                        .build(),
                ))
                .build(),
        );
    }
    let updated = stored
        .iter()
        .map(|r| r.updated_at)
        .max()
        .map(instant)
        .unwrap_or_else(|| instant(0));
    // RFC 4287 §4.1.1: an entry without an author of its own (a report with
    // no byline) takes the feed's, which the feed must then have.
    let publisher = PersonBuilder::default()
        .name(state.settings.site_name.clone())
        .uri(Some(format!("{base}/archive")))
        .build();
    let feed = FeedBuilder::default()
        .id(format!("{base}/archive"))
        .title(Text::plain(state.settings.site_name.clone()))
        .authors(vec![publisher])
        .lang(Some(state.catalogue.language()))
        .updated(updated)
        .links(vec![
            LinkBuilder::default()
                .href(format!("{base}/archive/feed.xml"))
                .rel("self")
                .mime_type(Some("application/atom+xml".to_string()))
                .build(),
            LinkBuilder::default()
                .href(format!("{base}/archive"))
                .rel("alternate")
                .mime_type(Some("text/html".to_string()))
                .build(),
        ])
        .entries(entries)
        .build();
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.to_string(),
    )
        .into_response())
}
