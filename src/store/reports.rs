//! Reports as editors wrote them (the Markdown source is the truth; the
//! parsed form is derived from it whenever needed).

use sqlx::Row;

use super::{now_ms, Store, StoreError};
use crate::domain::{LinkedId, SendState};

/// A stored report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredReport {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A line of the report list, with where its send stands.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ReportListing {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub updated_at: i64,
    /// `None` while a draft.
    pub send_state: Option<SendState>,
    pub scheduled_at: Option<i64>,
    pub started_at: Option<i64>,
}

/// What saving a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Created(i64),
    Updated(i64),
    /// The report has been sent (or scheduled); its text is frozen.
    Frozen(i64),
}

fn report_from_row(row: &sqlx::any::AnyRow) -> Result<StoredReport, StoreError> {
    Ok(StoredReport {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        source: row.try_get("source")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One revision of a report's text, as a delivery carries it.
#[derive(Debug, Clone)]
pub struct ReportVersion {
    pub report_id: i64,
    /// The id the report's links carry.
    pub public_id: uuid::Uuid,
    pub revision: i64,
    pub slug: String,
    pub source: String,
}

/// Records the report's current text as a version (once per revision) and
/// returns its revision, inside the transaction that queues deliveries of
/// it, so that what is queued and what is recorded are the same text.
pub(super) async fn snapshot_revision(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    report_id: i64,
    now: i64,
) -> Result<i64, StoreError> {
    let (revision, source): (i64, String) =
        sqlx::query_as("select revision, source from reports where id = $1")
            .bind(report_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::Corrupt(format!("report {report_id} vanished")))?;
    sqlx::query(
        "insert into report_versions (report_id, revision, source, created_at) \
         values ($1, $2, $3, $4) on conflict do nothing",
    )
    .bind(report_id)
    .bind(revision)
    .bind(source)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(revision)
}

impl Store {
    /// The text of one revision of a report, as queued deliveries carry it.
    pub async fn report_version(
        &self,
        report_id: i64,
        revision: i64,
    ) -> Result<Option<ReportVersion>, StoreError> {
        let row = sqlx::query(
            "select v.source, r.slug, r.public_id from report_versions v join reports r on r.id = v.report_id \
             where v.report_id = $1 and v.revision = $2",
        )
        .bind(report_id)
        .bind(revision)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(ReportVersion {
                report_id,
                public_id: super::public_id_in(&row, "public_id")?,
                revision,
                slug: row.try_get("slug")?,
                source: row.try_get("source")?,
            })
        })
        .transpose()
    }

    /// Creates the report, or updates the draft with the same slug.
    pub async fn save_report(
        &self,
        slug: &str,
        title: &str,
        source: &str,
    ) -> Result<SaveOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(
            "select r.id, s.id as send_id from reports r left join sends s on s.report_id = r.id where r.slug = $1",
        )
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match existing {
            Some(row) => {
                let id: i64 = row.try_get("id")?;
                let send: Option<i64> = row.try_get("send_id")?;
                if send.is_some() {
                    return Ok(SaveOutcome::Frozen(id));
                }
                // A changed text is a new revision; what was queued before
                // keeps the revision it was queued with.
                sqlx::query(
                    "update reports set title = $2, source = $3, updated_at = $4, \
                     revision = case when source = $3 then revision else revision + 1 end \
                     where id = $1",
                )
                .bind(id)
                .bind(title)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                SaveOutcome::Updated(id)
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "insert into reports (public_id, slug, title, source, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $5) returning id",
                )
                .bind(super::new_public_id())
                .bind(slug)
                .bind(title)
                .bind(source)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                SaveOutcome::Created(id)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn report(&self, id: i64) -> Result<Option<StoredReport>, StoreError> {
        let row = sqlx::query(
            "select id, slug, title, source, created_at, updated_at from reports where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(report_from_row).transpose()
    }

    /// The row id of the report a link names, if there is one. A row id
    /// from a link made before public ids is taken as it is.
    pub async fn report_id_of(&self, id: &LinkedId) -> Result<Option<i64>, StoreError> {
        self.row_id_of("reports", id).await
    }

    pub async fn report_by_slug(&self, slug: &str) -> Result<Option<StoredReport>, StoreError> {
        let row = sqlx::query(
            "select id, slug, title, source, created_at, updated_at from reports where slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(report_from_row).transpose()
    }

    /// Every report, newest first.
    pub async fn list_reports(&self) -> Result<Vec<ReportListing>, StoreError> {
        Ok(sqlx::query_as(
            "select r.id, r.slug, r.title, r.updated_at, s.state as send_state, s.scheduled_at, \
             s.started_at from reports r left join sends s on s.report_id = r.id order by r.id desc",
        )
        .fetch_all(&self.read)
        .await?)
    }

    /// Reports whose send has started, newest first: the public archive.
    pub async fn sent_reports(&self) -> Result<Vec<StoredReport>, StoreError> {
        let rows = sqlx::query(
            "select r.id, r.slug, r.title, r.source, r.created_at, r.updated_at from reports r \
             join sends s on s.report_id = r.id where s.started_at is not null order by s.started_at desc",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(report_from_row).collect()
    }

    /// Id and last change of every report whose send has started, newest
    /// first: enough to tell which archive lines are already known.
    pub async fn sent_report_versions(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "select r.id, r.updated_at from reports r \
             join sends s on s.report_id = r.id where s.started_at is not null order by s.started_at desc",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("updated_at")?)))
            .collect()
    }
}
