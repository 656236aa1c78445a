//! The public web archive of sent reports.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{AppError, AppState};
use crate::report::{render_archive_index, render_archive_page, ArchiveEntry, Report};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/archive", get(index))
        .route("/archive/{slug}", get(show))
}

/// Sent reports, newest first. Drafts and scheduled reports stay private.
async fn index(State(state): State<AppState>) -> Result<Response, AppError> {
    let versions = state.store.sent_report_versions().await?;
    let mut entries = Vec::with_capacity(versions.len());
    for (id, updated_at) in versions {
        if let Some(entry) = state.archive_entries.get(id, updated_at) {
            entries.push(entry);
            continue;
        }
        let Some(stored) = state.store.report(id).await? else {
            continue;
        };
        match Report::parse(&stored.source) {
            Ok(report) => {
                let entry = ArchiveEntry::of(&report);
                state
                    .archive_entries
                    .put(id, stored.updated_at, entry.clone());
                entries.push(entry);
            }
            Err(e) => {
                tracing::error!(report = stored.id, error = %e, "a stored report no longer parses");
            }
        }
    }
    let html = render_archive_index(&state.tera, &state.settings.site_name, &entries)
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}

/// Archive lines by report, each with the report's last change: a report
/// is parsed once per version, not once per visit to the archive.
#[derive(Default)]
pub struct ArchiveEntries {
    known: std::sync::Mutex<std::collections::HashMap<i64, (i64, ArchiveEntry)>>,
}

impl ArchiveEntries {
    fn get(&self, id: i64, updated_at: i64) -> Option<ArchiveEntry> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&id)
            .filter(|(version, _)| *version == updated_at)
            .map(|(_, entry)| entry.clone())
    }

    fn put(&self, id: i64, updated_at: i64, entry: ArchiveEntry) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(id, (updated_at, entry));
    }
}

async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let not_found = || {
        state.message_page(
            axum::http::StatusCode::NOT_FOUND,
            "report-not-found-heading",
            "report-not-found-message",
            false,
        )
    };
    let Some(stored) = state.store.report_by_slug(&slug).await? else {
        return Ok(not_found());
    };
    let published = state
        .store
        .send_of_report(stored.id)
        .await?
        .is_some_and(|s| s.started_at.is_some());
    if !published {
        return Ok(not_found());
    }
    let report = Report::parse(&stored.source).map_err(|e| AppError::Internal(e.into()))?;
    let votes = state.store.helpfulness(stored.id).await?;
    let helpful = state.catalogue.helpful(votes.yes, votes.voters());
    let html = render_archive_page(
        &state.tera,
        &report,
        &state.settings.site_name,
        helpful.as_deref(),
    )
    .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}
