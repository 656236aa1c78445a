//! What readers said of a report: the yes/no counts, the response rate,
//! the comments, and all of it as a spreadsheet.

use serde::Serialize;

use super::{Newsletter, ServiceError};
use crate::domain::spreadsheet_text;
use crate::store::{FeedbackComment, Helpfulness, VoteRecord};

/// The most recent comments shown with the summary.
const COMMENTS_SHOWN: i64 = 200;

/// Answers to "Was this helpful?" for one report.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackSummary {
    pub yes: i64,
    pub no: i64,
    pub voters: i64,
    /// Readers the report reached.
    pub delivered: i64,
    /// Voters per reader reached, from 0 to 1.
    pub response_rate: f64,
    /// "N out of M found this helpful", once anyone answered.
    pub summary: Option<String>,
    pub comments: Vec<FeedbackComment>,
}

impl FeedbackSummary {
    pub fn new(votes: Helpfulness, delivered: i64, comments: Vec<FeedbackComment>) -> Self {
        let voters = votes.voters();
        let response_rate = if delivered > 0 {
            voters as f64 / delivered as f64
        } else {
            0.0
        };
        FeedbackSummary {
            yes: votes.yes,
            no: votes.no,
            voters,
            delivered,
            response_rate,
            summary: helpful_sentence(votes.yes, voters),
            comments,
        }
    }
}

/// "N out of M found this helpful", as the archive shows it; `None` before
/// anyone answered.
pub fn helpful_sentence(yes: i64, voters: i64) -> Option<String> {
    (voters > 0).then(|| format!("{yes} out of {voters} found this helpful"))
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Every vote and comment of a report, as a CSV file.
pub struct FeedbackCsv {
    /// A name for the download, after the report's slug.
    pub filename: String,
    pub body: Vec<u8>,
}

const CSV_HEADER: [&str; 6] = [
    "report",
    "reader_email",
    "helpful",
    "comment",
    "voted_at",
    "changed_at",
];

/// One vote as a CSV row; text a spreadsheet would run as a formula is
/// made inert.
fn csv_row(slug: &str, vote: VoteRecord) -> [String; 6] {
    [
        spreadsheet_text(slug).into_owned(),
        spreadsheet_text(&vote.reader_email.unwrap_or_default()).into_owned(),
        if vote.helpful { "yes" } else { "no" }.into(),
        spreadsheet_text(&vote.comment.unwrap_or_default()).into_owned(),
        rfc3339(vote.created_at),
        rfc3339(vote.updated_at),
    ]
}

fn write_csv(slug: &str, votes: Vec<VoteRecord>) -> Result<Vec<u8>, ServiceError> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| ServiceError::Internal(e.into());
    csv.write_record(CSV_HEADER).map_err(failed)?;
    for vote in votes {
        csv.write_record(csv_row(slug, vote)).map_err(failed)?;
    }
    csv.into_inner()
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("{e}")))
}

impl Newsletter<'_> {
    /// Yes/no counts, response rate and comments of a report.
    pub async fn feedback_summary(&self, report_id: i64) -> Result<FeedbackSummary, ServiceError> {
        self.report(report_id).await?;
        let votes = self.store.helpfulness(report_id).await?;
        let delivered = self.store.delivered_count(report_id).await?;
        let comments = self
            .store
            .feedback_comments(report_id, COMMENTS_SHOWN)
            .await?;
        Ok(FeedbackSummary::new(votes, delivered, comments))
    }

    /// Every vote and comment of a report, for a spreadsheet.
    pub async fn feedback_csv(&self, report_id: i64) -> Result<FeedbackCsv, ServiceError> {
        let report = self.report(report_id).await?;
        let votes = self.store.votes_of_report(report_id).await?;
        Ok(FeedbackCsv {
            body: write_csv(&report.slug, votes)?,
            filename: format!("feedback-{}.csv", report.slug),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_rate_is_voters_per_reader_reached() {
        let summary = FeedbackSummary::new(Helpfulness { yes: 3, no: 1 }, 8, Vec::new());
        assert_eq!(summary.voters, 4);
        assert_eq!(summary.response_rate, 0.5);
        assert_eq!(
            summary.summary.as_deref(),
            Some("3 out of 4 found this helpful")
        );
    }

    #[test]
    fn nobody_reached_and_nobody_answered_say_nothing() {
        let summary = FeedbackSummary::new(Helpfulness { yes: 0, no: 0 }, 0, Vec::new());
        assert_eq!(summary.response_rate, 0.0);
        assert_eq!(summary.summary, None);
    }

    #[test]
    fn csv_rows_are_inert_in_a_spreadsheet() {
        let vote = VoteRecord {
            reader_email: None,
            helpful: false,
            comment: Some("=HYPERLINK(\"x\")".into()),
            created_at: 1_764_576_000_000,
            updated_at: 1_764_576_000_000,
        };
        let body = String::from_utf8(write_csv("weekly", vec![vote]).unwrap()).unwrap();
        let mut lines = body.lines();
        assert_eq!(
            lines.next(),
            Some("report,reader_email,helpful,comment,voted_at,changed_at")
        );
        let row = lines.next().unwrap();
        assert!(row.starts_with("weekly,,no,"), "{row}");
        assert!(!row.contains(",=HYPERLINK"), "{row}");
        assert!(
            row.ends_with("2025-12-01T08:00:00Z,2025-12-01T08:00:00Z"),
            "{row}"
        );
    }
}
