//! Test copies and the real send: triggering, pausing, resuming,
//! cancelling, and retrying what failed.

use super::{Newsletter, ServiceError};
use crate::domain::SubscriberEmail;
use crate::report::Report;
use crate::store::{now_ms, SaveOutcome, Send, TriggerOutcome};

/// At most this many test addresses per request: a test is not a send.
pub const MAX_TEST_ADDRESSES: usize = 20;

/// What an editor can do to a running send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAction {
    Pause,
    Resume,
    Cancel,
}

impl SendAction {
    /// The verb, as in "cannot pause a send that is done".
    pub fn verb(self) -> &'static str {
        match self {
            SendAction::Pause => "pause",
            SendAction::Resume => "resume",
            SendAction::Cancel => "cancel",
        }
    }
}

/// Parses an RFC 3339 time into Unix milliseconds; `None`, empty or a past
/// time means now.
pub fn parse_schedule(value: Option<&str>) -> Result<i64, ServiceError> {
    let now = now_ms();
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(now),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis().max(now))
            .map_err(|e| {
                ServiceError::Invalid(format!(
                    "scheduled_at must be an RFC 3339 time such as 2026-12-01T08:00:00Z: {e}"
                ))
            }),
    }
}

impl Newsletter<'_> {
    /// Parses the Markdown source and stores it as a draft (new or updated).
    pub async fn save_report_source(&self, source: &str) -> Result<SaveOutcome, ServiceError> {
        let report = Report::parse(source).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(self
            .store
            .save_report(report.slug(), report.title(), source)
            .await?)
    }

    /// Queues test copies of a report to the given addresses.
    pub async fn queue_test(
        &self,
        report_id: i64,
        addresses: &[String],
    ) -> Result<(), ServiceError> {
        if addresses.is_empty() || addresses.len() > MAX_TEST_ADDRESSES {
            return Err(ServiceError::Invalid(format!(
                "give between 1 and {MAX_TEST_ADDRESSES} addresses for a test send"
            )));
        }
        let parsed = addresses
            .iter()
            .map(|a| {
                SubscriberEmail::parse(a)
                    .map(|email| email.as_str().to_string())
                    .map_err(|e| ServiceError::Invalid(format!("{a:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.report(report_id).await?;
        self.store
            .queue_test_sends(report_id, &parsed, now_ms())
            .await?;
        Ok(())
    }

    /// Records the send of a report (idempotent by key and by report).
    pub async fn trigger_send(
        &self,
        report_id: i64,
        key: &str,
        scheduled_at: i64,
    ) -> Result<TriggerOutcome, ServiceError> {
        self.report(report_id).await?;
        let outcome = self
            .store
            .trigger_send(report_id, key, scheduled_at, now_ms())
            .await?;
        if let TriggerOutcome::Created(send) = &outcome {
            tracing::info!(report = report_id, readers = send.total, state = %send.state, "send triggered");
        }
        Ok(outcome)
    }

    /// The send of a report, or `NotFound` before there is one.
    async fn send_of(&self, report_id: i64) -> Result<Send, ServiceError> {
        self.store
            .send_of_report(report_id)
            .await?
            .ok_or(ServiceError::NotFound("this report has no send"))
    }

    /// Pauses, resumes or cancels the send of a report.
    pub async fn change_send(
        &self,
        report_id: i64,
        action: SendAction,
    ) -> Result<Send, ServiceError> {
        let changed = match action {
            SendAction::Pause => self.store.pause_send(report_id).await?,
            SendAction::Resume => self.store.resume_send(report_id).await?,
            SendAction::Cancel => self.store.cancel_send(report_id).await?,
        };
        let send = self.send_of(report_id).await?;
        if !changed {
            return Err(ServiceError::Conflict(format!(
                "cannot {} a send that is {}",
                action.verb(),
                send.state
            )));
        }
        tracing::info!(report = report_id, state = %send.state, "send changed");
        Ok(send)
    }

    /// Gives every failed delivery of a report's send one more attempt;
    /// returns how many were queued again.
    pub async fn retry_failed(&self, report_id: i64) -> Result<u64, ServiceError> {
        let last_attempt = self.settings.delivery.max_attempts;
        let moved = self
            .store
            .retry_failed(report_id, last_attempt, now_ms())
            .await?;
        let Some(n) = moved else {
            let state = self.send_of(report_id).await?.state;
            return Err(ServiceError::Conflict(format!(
                "cannot retry the failures of a send that is {state}"
            )));
        };
        tracing::info!(
            report = report_id,
            requeued = n,
            "failed deliveries queued again"
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_in_the_past_or_absent_means_now() {
        let before = now_ms();
        assert!(parse_schedule(None).unwrap() >= before);
        assert!(parse_schedule(Some("  ")).unwrap() >= before);
        assert!(parse_schedule(Some("2001-01-01T00:00:00Z")).unwrap() >= before);
        assert_eq!(
            parse_schedule(Some("2999-01-01T00:00:00Z")).unwrap(),
            32_472_144_000_000
        );
        assert!(matches!(
            parse_schedule(Some("tomorrow")),
            Err(ServiceError::Invalid(m)) if m.contains("RFC 3339")
        ));
    }

    #[test]
    fn actions_name_their_verb() {
        assert_eq!(SendAction::Pause.verb(), "pause");
        assert_eq!(SendAction::Resume.verb(), "resume");
        assert_eq!(SendAction::Cancel.verb(), "cancel");
    }
}
