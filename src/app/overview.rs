//! The editors' overview: how many read, how that changes, and where each
//! report stands, with its delivery and helpfulness figures.

use super::{Newsletter, ReportState, ServiceError};
use crate::domain::{SendState, SubscriberStatus};
use crate::store::{now_ms, BounceStats, ReportHelpfulness, ReportListing, WeekGrowth};

/// Weeks of reader growth in the overview.
const GROWTH_WEEKS: i64 = 12;
/// Reports with helpfulness figures in the overview's chart.
const CHART_REPORTS: i64 = 12;
/// Reports whose delivery figures are counted (each costs a few queries).
const REPORTS_WITH_FIGURES: usize = 10;

/// Everything the overview shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub readers: ReaderCounts,
    /// Oldest week first; the last is the current one.
    pub growth: Vec<WeekGrowth>,
    /// The most recent reports that have votes.
    pub helpfulness: Vec<ReportHelpfulness>,
    /// Newest first.
    pub reports: Vec<ReportSummary>,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ReaderCounts {
    pub pending: i64,
    pub confirmed: i64,
    pub unsubscribed: i64,
}

/// One report as the overview lists it.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub state: ReportState,
    pub moment: Moment,
    /// For the most recent reports that went out.
    pub figures: Option<SendFigures>,
}

/// The most telling time of a report: when it went out, else when it
/// will, else when the draft last changed. Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Started(i64),
    Scheduled(i64),
    Edited(i64),
}

impl Moment {
    fn of(report: &ReportListing) -> Moment {
        match (report.started_at, report.scheduled_at) {
            (Some(started), _) => Moment::Started(started),
            (None, Some(at)) if report.send_state == Some(SendState::Scheduled) => {
                Moment::Scheduled(at)
            }
            _ => Moment::Edited(report.updated_at),
        }
    }
}

/// What became of a report that went out.
#[derive(Debug, Clone)]
pub struct SendFigures {
    pub sent: i64,
    pub failed: i64,
    pub helpful_yes: i64,
    pub helpful_no: i64,
    pub bounces: BounceStats,
}

impl Newsletter<'_> {
    /// The overview as of now.
    pub async fn overview(&self) -> Result<Overview, ServiceError> {
        let store = self.store;
        let now = now_ms();
        let readers = ReaderCounts {
            pending: store.count_subscribers(SubscriberStatus::Pending).await?,
            confirmed: store.count_subscribers(SubscriberStatus::Confirmed).await?,
            unsubscribed: store
                .count_subscribers(SubscriberStatus::Unsubscribed)
                .await?,
        };
        let growth = store.reader_growth(GROWTH_WEEKS, now).await?;
        let helpfulness = store.helpfulness_of_recent_reports(CHART_REPORTS).await?;
        let mut reports = Vec::new();
        for (i, listing) in store.list_reports().await?.into_iter().enumerate() {
            let figures = if listing.started_at.is_some() && i < REPORTS_WITH_FIGURES {
                Some(self.send_figures(listing.id, &helpfulness, now).await?)
            } else {
                None
            };
            reports.push(ReportSummary {
                moment: Moment::of(&listing),
                state: ReportState::from(listing.send_state),
                id: listing.id,
                slug: listing.slug,
                title: listing.title,
                figures,
            });
        }
        Ok(Overview {
            readers,
            growth,
            helpfulness,
            reports,
        })
    }

    async fn send_figures(
        &self,
        report_id: i64,
        helpfulness: &[ReportHelpfulness],
        now: i64,
    ) -> Result<SendFigures, ServiceError> {
        let stats = self.store.send_stats(report_id, now).await?;
        // The chart's counts serve here too; only a report outside the
        // chart needs its own.
        let (helpful_yes, helpful_no) = match helpfulness.iter().find(|h| h.report_id == report_id)
        {
            Some(h) => (h.yes, h.no),
            None => {
                let votes = self.store.helpfulness(report_id).await?;
                (votes.yes, votes.no)
            }
        };
        Ok(SendFigures {
            sent: stats.sent,
            failed: stats.failed,
            helpful_yes,
            helpful_no,
            bounces: self.store.bounce_stats(report_id, stats.sent).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(
        state: Option<SendState>,
        scheduled: Option<i64>,
        started: Option<i64>,
    ) -> ReportListing {
        ReportListing {
            id: 1,
            slug: "w1".into(),
            title: "Week 1".into(),
            updated_at: 5,
            send_state: state,
            scheduled_at: scheduled,
            started_at: started,
        }
    }

    #[test]
    fn a_report_is_dated_by_its_most_telling_time() {
        assert_eq!(Moment::of(&listing(None, None, None)), Moment::Edited(5));
        assert_eq!(
            Moment::of(&listing(Some(SendState::Scheduled), Some(9), None)),
            Moment::Scheduled(9)
        );
        // Paused before it started: the schedule no longer holds.
        assert_eq!(
            Moment::of(&listing(Some(SendState::Paused), Some(9), None)),
            Moment::Edited(5)
        );
        assert_eq!(
            Moment::of(&listing(Some(SendState::Done), Some(9), Some(7))),
            Moment::Started(7)
        );
    }
}
