//! "Was this helpful?": one vote per reader and report, the latest counting.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Yes and no counts of one report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Helpfulness {
    pub yes: i64,
    pub no: i64,
}

impl Helpfulness {
    /// Readers who answered.
    pub fn voters(&self) -> i64 {
        self.yes + self.no
    }
}

/// A reader's comment on a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedbackComment {
    pub helpful: bool,
    pub comment: String,
    pub updated_at: i64,
}

/// One vote with its reader, for the CSV export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VoteRecord {
    pub reader_email: Option<String>,
    pub helpful: bool,
    pub comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Helpfulness of one report, for the chart across reports.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ReportHelpfulness {
    pub report_id: i64,
    pub slug: String,
    pub title: String,
    pub yes: i64,
    pub no: i64,
}

impl Store {
    /// Records or changes a reader's answer; a comment, when given, replaces
    /// the previous one.
    pub async fn record_vote(
        &self,
        report_id: i64,
        subscriber_id: i64,
        helpful: bool,
        comment: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "insert into votes (report_id, subscriber_id, helpful, comment, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $5) \
             on conflict (report_id, subscriber_id) do update set helpful = excluded.helpful, \
             comment = coalesce(excluded.comment, votes.comment), updated_at = excluded.updated_at",
        )
        .bind(report_id)
        .bind(subscriber_id)
        .bind(i64::from(helpful))
        .bind(comment)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn helpfulness(&self, report_id: i64) -> Result<Helpfulness, StoreError> {
        let (yes, total): (i64, i64) = sqlx::query_as(
            "select coalesce(sum(case when helpful = 1 then 1 else 0 end), 0) as yes, count(*) as total \
             from votes where report_id = $1",
        )
        .bind(report_id)
        .fetch_one(&self.read)
        .await?;
        Ok(Helpfulness {
            yes,
            no: total - yes,
        })
    }

    /// Readers a report was delivered to, for the response rate.
    pub async fn delivered_count(&self, report_id: i64) -> Result<i64, StoreError> {
        Ok(self.send_stats(report_id, now_ms()).await?.sent)
    }

    /// Comments, newest first.
    pub async fn feedback_comments(
        &self,
        report_id: i64,
        limit: i64,
    ) -> Result<Vec<FeedbackComment>, StoreError> {
        let rows = sqlx::query(
            "select helpful, comment, updated_at from votes where report_id = $1 and comment is not null \
             order by updated_at desc limit $2",
        )
        .bind(report_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FeedbackComment {
                    helpful: row.try_get::<i64, _>("helpful")? == 1,
                    comment: row.try_get("comment")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Every vote of a report with the reader's address (absent once the
    /// reader was deleted).
    pub async fn votes_of_report(&self, report_id: i64) -> Result<Vec<VoteRecord>, StoreError> {
        let rows = sqlx::query(
            "select s.email, v.helpful, v.comment, v.created_at, v.updated_at from votes v \
             left join subscribers s on s.id = v.subscriber_id where v.report_id = $1 order by v.created_at",
        )
        .bind(report_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VoteRecord {
                    reader_email: row.try_get("email")?,
                    helpful: row.try_get::<i64, _>("helpful")? == 1,
                    comment: row.try_get("comment")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Yes/no counts of the most recently sent reports, oldest first.
    pub async fn helpfulness_of_recent_reports(
        &self,
        limit: i64,
    ) -> Result<Vec<ReportHelpfulness>, StoreError> {
        let mut list: Vec<ReportHelpfulness> = sqlx::query_as(
            "select r.id as report_id, r.slug, r.title, \
             coalesce(sum(case when v.helpful = 1 then 1 else 0 end), 0) as yes, \
             coalesce(sum(case when v.helpful = 0 then 1 else 0 end), 0) as no \
             from reports r join sends s on s.report_id = r.id left join votes v on v.report_id = r.id \
             where s.started_at is not null group by r.id, r.slug, r.title, s.started_at \
             order by s.started_at desc limit $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        list.reverse();
        Ok(list)
    }
}
