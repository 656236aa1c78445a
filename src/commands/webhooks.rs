//! `newsletter webhooks …`: what became of the events posted to other
//! software.

use std::fmt::Write;

use crate::domain::WebhookState;
use crate::store::Store;

/// One line per delivery, newest first, with a header line.
pub async fn list(
    store: &Store,
    status: Option<WebhookState>,
    limit: i64,
) -> anyhow::Result<String> {
    let deliveries = store.webhook_deliveries(status, limit.max(1)).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:<23}  {:<16}  {:<9}  {:>8}  {:>6}  last error",
        "happened", "event", "endpoint", "status", "attempts", "answer"
    );
    for d in deliveries {
        let _ = writeln!(
            out,
            "{:<24}  {:<23}  {:<16}  {:<9}  {:>8}  {:>6}  {}  {}",
            time(d.created_at),
            d.kind,
            d.endpoint,
            d.status.as_str(),
            d.attempts,
            d.response_status
                .map_or_else(|| "-".to_string(), |s| s.to_string()),
            d.last_error.as_deref().unwrap_or("-"),
            d.event_id,
        );
    }
    Ok(out)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}
