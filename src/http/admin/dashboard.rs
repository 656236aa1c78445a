//! The editors' home: who reads, and where every report stands, so the
//! first page after login answers "what needs doing?".

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{or_error_page, render, report_state, utc_time};
use crate::domain::SubscriberStatus;
use crate::http::auth::SessionEditor;
use crate::http::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

async fn dashboard(State(state): State<AppState>, editor: SessionEditor) -> Response {
    let result = page(&state, &editor).await;
    or_error_page(&state, result)
}

async fn page(state: &AppState, editor: &SessionEditor) -> Result<Response, AppError> {
    let store = &state.store;
    let readers = json!({
        "pending": store.count_subscribers(SubscriberStatus::Pending).await?,
        "confirmed": store.count_subscribers(SubscriberStatus::Confirmed).await?,
        "unsubscribed": store.count_subscribers(SubscriberStatus::Unsubscribed).await?,
    });
    let reports: Vec<_> = store
        .list_reports()
        .await?
        .into_iter()
        .map(|r| {
            // The most telling time: when it went out, else when it will,
            // else when the draft last changed.
            let when = match (r.started_at, r.scheduled_at) {
                (Some(started), _) => format!("started {}", utc_time(started)),
                (None, Some(at)) if r.send_state.as_deref() == Some("scheduled") => {
                    format!("scheduled for {}", utc_time(at))
                }
                _ => format!("edited {}", utc_time(r.updated_at)),
            };
            json!({
                "id": r.id,
                "slug": r.slug,
                "title": r.title,
                "state": report_state(r.send_state.as_deref()),
                "when": when,
            })
        })
        .collect();
    Ok(render(
        state,
        StatusCode::OK,
        "admin/dashboard.html",
        json!({
            "csrf": editor.csrf_token(),
            "editor": editor.editor.email,
            "readers": readers,
            "reports": reports,
        }),
    ))
}
