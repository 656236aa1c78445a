//! Where a report's send stands: its state, its counts and its failures.

use serde::Serialize;

use super::{Newsletter, ServiceError};
use crate::domain::SendState;
use crate::store::{now_ms, BounceStats, Failure, Send, SendStats};

/// The most recent failures listed with the progress.
const FAILURES_SHOWN: i64 = 100;

/// A send's progress as the API's `stats` and the report page's script
/// read it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportProgress {
    /// The send's state, or "draft" before any send.
    pub state: ReportState,
    /// Why the service paused the send on its own, if it did.
    pub pause_reason: Option<String>,
    pub send: Option<Send>,
    #[serde(flatten)]
    pub stats: SendStats,
    /// Deliveries settled one way or another, as a whole percentage.
    pub percent: i64,
    pub failures: Vec<Failure>,
    pub bounces: BounceStats,
}

/// Where a report stands: a draft until it has a send, then its send's
/// state. Shown, and serialised, as "draft" or the send state's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    Draft,
    Send(SendState),
}

impl ReportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Draft => "draft",
            ReportState::Send(state) => state.as_str(),
        }
    }
}

impl From<Option<SendState>> for ReportState {
    fn from(send_state: Option<SendState>) -> Self {
        send_state.map_or(ReportState::Draft, ReportState::Send)
    }
}

impl Serialize for ReportState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl ReportProgress {
    pub fn new(
        send: Option<Send>,
        stats: SendStats,
        failures: Vec<Failure>,
        bounces: BounceStats,
    ) -> Self {
        ReportProgress {
            state: send.as_ref().map(|s| s.state).into(),
            pause_reason: send.as_ref().and_then(|s| s.pause_reason.clone()),
            percent: settled_percent(&stats),
            send,
            stats,
            failures,
            bounces,
        }
    }
}

/// Sent, failed, skipped and cancelled deliveries out of all, rounded down,
/// so 100 means nothing is left to do; 0 for a send without readers.
fn settled_percent(stats: &SendStats) -> i64 {
    let settled = stats.sent + stats.failed + stats.skipped + stats.cancelled;
    if stats.total > 0 {
        settled * 100 / stats.total
    } else {
        0
    }
}

impl Newsletter<'_> {
    /// The send's state and counts, with the latest failures.
    pub async fn report_progress(&self, report_id: i64) -> Result<ReportProgress, ServiceError> {
        self.report(report_id).await?;
        let send = self.store.send_of_report(report_id).await?;
        let stats = match &send {
            Some(send) => self.store.stats_of_send(send, now_ms()).await?,
            None => SendStats::default(),
        };
        let failures = self.store.send_failures(report_id, FAILURES_SHOWN).await?;
        let bounces = self.store.bounce_stats(report_id, stats.sent).await?;
        Ok(ReportProgress::new(send, stats, failures, bounces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(total: i64, sent: i64, failed: i64, skipped: i64, cancelled: i64) -> SendStats {
        SendStats {
            total,
            sent,
            failed,
            skipped,
            cancelled,
            queued: total - sent - failed - skipped - cancelled,
            ..SendStats::default()
        }
    }

    #[test]
    fn every_settled_delivery_counts_towards_the_percentage() {
        assert_eq!(settled_percent(&stats(200, 50, 10, 20, 20)), 50);
        assert_eq!(settled_percent(&stats(3, 2, 0, 0, 0)), 66, "rounded down");
        assert_eq!(settled_percent(&stats(7, 3, 1, 2, 1)), 100);
        assert_eq!(settled_percent(&stats(0, 0, 0, 0, 0)), 0);
    }

    #[test]
    fn a_report_without_a_send_is_a_draft() {
        let progress = ReportProgress::new(
            None,
            SendStats::default(),
            Vec::new(),
            BounceStats::default(),
        );
        assert_eq!(progress.state, ReportState::Draft);
        assert_eq!(progress.pause_reason, None);
        let paused = ReportState::from(Some(SendState::Paused));
        assert_eq!(paused.as_str(), "paused");
        assert_eq!(serde_json::to_value(paused).unwrap(), "paused");
        assert_eq!(serde_json::to_value(ReportState::Draft).unwrap(), "draft");
    }

    #[test]
    fn the_counts_sit_beside_the_state_in_json() {
        let send = Send {
            id: 1,
            report_id: 2,
            state: SendState::Paused,
            scheduled_at: 0,
            started_at: Some(0),
            finished_at: None,
            total: 4,
            pause_reason: Some("the relay refuses".into()),
        };
        let progress = ReportProgress::new(
            Some(send),
            stats(4, 1, 1, 0, 0),
            Vec::new(),
            BounceStats::default(),
        );
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(json["state"], "paused");
        assert_eq!(json["pause_reason"], "the relay refuses");
        assert_eq!(json["total"], 4);
        assert_eq!(json["queued"], 2);
        assert_eq!(json["percent"], 50);
        assert_eq!(json["send"]["report_id"], 2);
        assert!(json.get("stats").is_none(), "{json}");
    }
}
