//! Bounces, complaints and the suppression list.
//!
//! A hard bounce or a complaint suppresses the address in the same
//! transaction that records it; so does the soft bounce that reaches the
//! limit. Suppression is by address, so it outlives the reader's row and
//! covers any later sign-up of the address.

use sqlx::Row;

use super::{JobKind, Store, StoreError};
use crate::bounces::{BounceKind, SuppressionReason};
use crate::domain::DeliveryState;

/// The delivery a bounce is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncedDelivery {
    pub outbox_id: i64,
    pub subscriber_id: Option<i64>,
    pub report_id: Option<i64>,
    pub recipient: String,
}

/// A bounce or complaint to record.
#[derive(Debug, Clone)]
pub struct NewBounce<'a> {
    pub kind: BounceKind,
    /// Where it came from: `mta`, `imap`, `smtp`, `ses`, `postmark`, …
    pub source: &'a str,
    pub delivery: &'a BouncedDelivery,
    pub status_code: Option<&'a str>,
    pub diagnostic: &'a str,
    /// The stored raw message it was read from.
    pub message_id: Option<i64>,
    pub at: i64,
}

/// When soft bounces add up to a suppression.
#[derive(Debug, Clone, Copy)]
pub struct SoftBouncePolicy {
    pub limit: i64,
    pub window_ms: i64,
}

/// What recording a bounce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceEffect {
    /// The same bounce of the same delivery was recorded before.
    pub duplicate: bool,
    /// The address is suppressed now (it may have been already).
    pub suppressed: Option<SuppressionReason>,
}

/// A suppressed address and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Suppression {
    pub email: String,
    pub reason: SuppressionReason,
    pub detail: String,
    pub created_at: i64,
    /// The raw message that caused it, while it is kept.
    pub message_id: Option<i64>,
}

/// Bounces and complaints of one report, counted once per reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct BounceStats {
    /// Deliveries handed to a relay (sent, or refused outright).
    pub attempted: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    /// Readers with any bounce, per delivery attempted.
    pub bounce_rate: f64,
    pub complaint_rate: f64,
}

/// A stored raw message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BounceMessage {
    pub id: i64,
    pub source: String,
    pub outcome: String,
    pub raw: String,
    pub truncated: bool,
    pub received_at: i64,
}

const DELIVERY_COLUMNS: &str = "id, subscriber_id, report_id, recipient";

/// Every delivery to address `$1`: a reader's reports, found through the
/// index of one delivery per reader and report, probed once per send; the
/// reader's other mail (confirmations), through the index of a reader's
/// deliveries, which holds every kind but reports; and test copies (`$2`),
/// which name no reader. An outbox of a million rows has no index by
/// address, so a bounce or a provider's event reads a handful of rows, not
/// all.
const MAILED: &str =
    "select id, subscriber_id, report_id, recipient, status, message_id, sent_at, created_at from outbox \
     where kind = 'report' and report_id in (select report_id from sends) \
     and subscriber_id = (select id from subscribers where email = $1) and recipient = $1 \
     union all \
     select id, subscriber_id, report_id, recipient, status, message_id, sent_at, created_at from outbox \
     where kind <> 'report' \
     and subscriber_id = (select id from subscribers where email = $1) and recipient = $1 \
     union all \
     select id, subscriber_id, report_id, recipient, status, message_id, sent_at, created_at from outbox \
     where kind <> 'report' and subscriber_id is null and kind = $2 and recipient = $1";

fn delivery_from_row(row: &sqlx::any::AnyRow) -> Result<BouncedDelivery, StoreError> {
    Ok(BouncedDelivery {
        outbox_id: row.try_get("id")?,
        subscriber_id: row.try_get("subscriber_id")?,
        report_id: row.try_get("report_id")?,
        recipient: row.try_get("recipient")?,
    })
}

impl Store {
    /// The delivery with outbox id `id`.
    pub async fn bounced_delivery(&self, id: i64) -> Result<Option<BouncedDelivery>, StoreError> {
        let sql = format!("select {DELIVERY_COLUMNS} from outbox where id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// The delivery that carried Message-ID `message_id` (with or without
    /// angle brackets) to `recipient`.
    pub async fn delivery_by_message_id(
        &self,
        message_id: &str,
        recipient: &str,
    ) -> Result<Option<BouncedDelivery>, StoreError> {
        let bare = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let sql =
            format!("select {DELIVERY_COLUMNS} from ({MAILED}) as mailed where message_id = $3");
        let row = sqlx::query(&sql)
            .bind(recipient.trim().to_lowercase())
            .bind(JobKind::Test.as_str())
            .bind(format!("<{bare}>"))
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// The latest delivery to `recipient` that went out, for providers that
    /// name only the address; with `sent_by`, the latest sent by then.
    pub async fn latest_delivery_to(
        &self,
        recipient: &str,
        sent_by: Option<i64>,
    ) -> Result<Option<BouncedDelivery>, StoreError> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from ({MAILED}) as mailed \
             where status in ($3, $4) and coalesce(sent_at, created_at) <= $5 \
             order by id desc limit 1"
        );
        let row = sqlx::query(&sql)
            .bind(recipient.trim().to_lowercase())
            .bind(JobKind::Test.as_str())
            .bind(DeliveryState::Sent)
            .bind(DeliveryState::Failed)
            .bind(sent_by.unwrap_or(i64::MAX))
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Keeps a raw message; returns its id.
    pub async fn store_bounce_message(
        &self,
        source: &str,
        outcome: &str,
        raw: &str,
        truncated: bool,
        at: i64,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "insert into bounce_messages (source, outcome, raw, truncated, received_at) \
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(source)
        .bind(outcome)
        .bind(raw)
        .bind(i64::from(truncated))
        .bind(at)
        .fetch_one(&self.write)
        .await?;
        Ok(id)
    }

    pub async fn bounce_message(&self, id: i64) -> Result<Option<BounceMessage>, StoreError> {
        let row = sqlx::query(
            "select id, source, outcome, raw, truncated, received_at from bounce_messages where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            let truncated: i64 = row.try_get("truncated")?;
            Ok(BounceMessage {
                id: row.try_get("id")?,
                source: row.try_get("source")?,
                outcome: row.try_get("outcome")?,
                raw: row.try_get("raw")?,
                truncated: truncated != 0,
                received_at: row.try_get("received_at")?,
            })
        })
        .transpose()
    }

    /// Drops raw messages received before `before`; the bounces they led
    /// to stay.
    pub async fn purge_bounce_messages(&self, before: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("delete from bounce_messages where received_at < $1")
                .bind(before)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }

    /// Records a bounce or complaint and suppresses the address when it
    /// calls for that, in one transaction.
    pub async fn record_bounce(
        &self,
        bounce: &NewBounce<'_>,
        policy: SoftBouncePolicy,
    ) -> Result<BounceEffect, StoreError> {
        let recipient = bounce.delivery.recipient.to_lowercase();
        let ids = self.reader_ids().await?;
        let mut tx = self.begin_write().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "insert into bounces (kind, source, recipient, subscriber_id, report_id, outbox_id, \
             status_code, diagnostic, message_id, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing returning id",
        )
        .bind(bounce.kind.as_str())
        .bind(bounce.source)
        .bind(recipient.as_str())
        .bind(bounce.delivery.subscriber_id)
        .bind(bounce.delivery.report_id)
        .bind(bounce.delivery.outbox_id)
        .bind(bounce.status_code)
        .bind(bounce.diagnostic)
        .bind(bounce.message_id)
        .bind(bounce.at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(bounce_id) = inserted else {
            let suppressed = suppression_reason(&mut tx, &recipient).await?;
            tx.commit().await?;
            return Ok(BounceEffect {
                duplicate: true,
                suppressed,
            });
        };
        let reason = match bounce.kind {
            BounceKind::Hard => Some((
                SuppressionReason::Bounced,
                format!("hard bounce: {}", describe(bounce)),
            )),
            BounceKind::Complaint => Some((
                SuppressionReason::Complained,
                "marked the newsletter as spam".to_string(),
            )),
            BounceKind::Soft => {
                let recent: i64 = sqlx::query_scalar(
                    "select count(*) from bounces where recipient = $1 and kind = 'soft' \
                     and created_at > $2",
                )
                .bind(recipient.as_str())
                .bind(bounce.at - policy.window_ms)
                .fetch_one(&mut *tx)
                .await?;
                (recent >= policy.limit).then(|| {
                    (
                        SuppressionReason::Bounced,
                        format!(
                            "{recent} soft bounces in {} days, the last: {}",
                            policy.window_ms / 86_400_000,
                            describe(bounce)
                        ),
                    )
                })
            }
        };
        if let Some((reason, detail)) = reason {
            let added = sqlx::query(
                "insert into suppressions (email, reason, detail, bounce_id, created_at) \
                 values ($1, $2, $3, $4, $5) on conflict do nothing",
            )
            .bind(recipient.as_str())
            .bind(reason.as_str())
            .bind(&detail)
            .bind(bounce_id)
            .bind(bounce.at)
            .execute(&mut *tx)
            .await?;
            if added.rows_affected() == 1 {
                super::events::record_suppression_event(
                    &mut tx,
                    &self.events,
                    ids,
                    super::events::Suppressed {
                        reason,
                        email: &recipient,
                        source: bounce.source,
                        detail: &detail,
                        report_id: bounce.delivery.report_id,
                        at: bounce.at,
                    },
                )
                .await?;
            }
        }
        let suppressed = suppression_reason(&mut tx, &recipient).await?;
        tx.commit().await?;
        Ok(BounceEffect {
            duplicate: false,
            suppressed,
        })
    }

    /// Whether `email` is suppressed, and why.
    pub async fn suppression(&self, email: &str) -> Result<Option<Suppression>, StoreError> {
        let row = sqlx::query(
            "select s.email, s.reason, s.detail, s.created_at, b.message_id \
             from suppressions s left join bounces b on b.id = s.bounce_id where s.email = $1",
        )
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            let reason: String = row.try_get("reason")?;
            Ok(Suppression {
                email: row.try_get("email")?,
                reason: SuppressionReason::parse(&reason)
                    .ok_or_else(|| StoreError::Corrupt(format!("suppression {reason:?}")))?,
                detail: row.try_get("detail")?,
                created_at: row.try_get("created_at")?,
                message_id: row.try_get("message_id")?,
            })
        })
        .transpose()
    }

    /// Which of `emails` are suppressed.
    pub async fn suppressed_among(
        &self,
        emails: &[&str],
    ) -> Result<std::collections::HashMap<String, SuppressionReason>, StoreError> {
        let mut found = std::collections::HashMap::new();
        for chunk in emails.chunks(500) {
            let sql = format!(
                "select email, reason from suppressions where email in ({})",
                super::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for email in chunk {
                query = query.bind(email.to_lowercase());
            }
            for row in query.fetch_all(&self.read).await? {
                let reason: String = row.try_get("reason")?;
                if let Some(reason) = SuppressionReason::parse(&reason) {
                    found.insert(row.try_get("email")?, reason);
                }
            }
        }
        Ok(found)
    }

    /// An editor's decision to mail the address again.
    pub async fn lift_suppression(&self, email: &str) -> Result<bool, StoreError> {
        let lifted = sqlx::query("delete from suppressions where email = $1")
            .bind(email.trim().to_lowercase())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(lifted == 1)
    }

    /// Every suppressed address with why and since when, for the export.
    pub async fn all_suppressions(
        &self,
    ) -> Result<std::collections::HashMap<String, (SuppressionReason, i64)>, StoreError> {
        let rows = sqlx::query("select email, reason, created_at from suppressions")
            .fetch_all(&self.read)
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let reason: String = row.try_get("reason")?;
            // A reason this version does not know is left out rather than
            // failing the whole export.
            if let Some(reason) = SuppressionReason::parse(&reason) {
                found.insert(row.try_get("email")?, (reason, row.try_get("created_at")?));
            }
        }
        Ok(found)
    }

    /// Bounce and complaint counts and rates of one report.
    /// `delivered` is the report's delivered count, which the caller has
    /// from the counts kept per send.
    pub async fn bounce_stats(
        &self,
        report_id: i64,
        delivered: i64,
    ) -> Result<BounceStats, StoreError> {
        // Delivered mail counts as attempted, and so does mail refused
        // with a bounce. The refused are found from the report's bounces,
        // which are few, rather than from its deliveries, which may be a
        // million.
        let refused: i64 = sqlx::query_scalar(
            "select count(distinct b.outbox_id) from bounces b \
             join outbox o on o.id = b.outbox_id \
             where b.report_id = $1 and o.kind = 'report' and o.status = $2",
        )
        .bind(report_id)
        .bind(DeliveryState::Failed)
        .fetch_one(&self.read)
        .await?;
        let attempted = delivered + refused;
        let rows = sqlx::query(
            "select kind, count(distinct recipient) as n from bounces where report_id = $1 group by kind",
        )
        .bind(report_id)
        .fetch_all(&self.read)
        .await?;
        let mut stats = BounceStats {
            attempted,
            ..BounceStats::default()
        };
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            match BounceKind::parse(&kind) {
                Some(BounceKind::Hard) => stats.hard_bounces = n,
                Some(BounceKind::Soft) => stats.soft_bounces = n,
                Some(BounceKind::Complaint) => stats.complaints = n,
                None => {}
            }
        }
        let bounced: i64 = sqlx::query_scalar(
            "select count(distinct recipient) from bounces where report_id = $1 \
             and kind in ('hard', 'soft')",
        )
        .bind(report_id)
        .fetch_one(&self.read)
        .await?;
        if attempted > 0 {
            stats.bounce_rate = bounced as f64 / attempted as f64;
            stats.complaint_rate = stats.complaints as f64 / attempted as f64;
        }
        Ok(stats)
    }
}

fn describe(bounce: &NewBounce<'_>) -> String {
    let text = match (bounce.status_code, bounce.diagnostic.trim()) {
        (Some(code), "") => code.to_string(),
        (_, diagnostic) => diagnostic.to_string(),
    };
    text.chars().take(300).collect()
}

async fn suppression_reason(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    email: &str,
) -> Result<Option<SuppressionReason>, StoreError> {
    let reason: Option<String> =
        sqlx::query_scalar("select reason from suppressions where email = $1")
            .bind(email)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(reason.as_deref().and_then(SuppressionReason::parse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::readers::READER_DELIVERIES;
    use crate::store::test_stores::{plan, reads_all_of, stores, Arg::*};

    /// 3,000 readers, two sends to each of them, and their confirmations.
    async fn seed(store: &Store) {
        for (report, slug) in [(1, "one"), (2, "two")] {
            sqlx::query(
                "insert into reports (id, public_id, slug, title, source, created_at, updated_at) \
                 values ($1, $2, $3, 't', 's', 0, 0)",
            )
            .bind(report)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(slug)
            .execute(store.pool())
            .await
            .unwrap();
            sqlx::query(
                "insert into sends (report_id, idempotency_key, state, scheduled_at, created_at) \
                 values ($1, $2, 'done', 0, 0)",
            )
            .bind(report)
            .bind(slug)
            .execute(store.pool())
            .await
            .unwrap();
        }
        sqlx::query(
            "with recursive n (i) as (select 1 union all select i + 1 from n where i < 3000) \
             insert into subscribers (id, public_id, email, status, created_at) \
             select i, '00000000-0000-4000-8000-' || (100000000000 + i), 'r' || i || '@x.org', \
             'confirmed', 1000 from n",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "with recursive n (i) as (select 1 union all select i + 1 from n where i < 3000) \
             insert into outbox (kind, subscriber_id, report_id, recipient, next_attempt_at, \
             created_at, status) \
             select k.kind, i, k.report, 'r' || i || '@x.org', 1000, 1000, 'sent' from n \
             cross join (select 'report' as kind, 1 as report union all \
               select 'report', 2 union all select 'confirmation', null) as k",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query("analyze").execute(store.pool()).await.unwrap();
    }

    /// A bounce, a provider's complaint and the erasure of a reader each
    /// find the reader's deliveries through indexes, not by reading an
    /// outbox that holds every send's deliveries.
    #[tokio::test]
    async fn a_readers_deliveries_are_found_without_reading_the_outbox() {
        for store in stores("mailed").await {
            seed(&store).await;
            let by_address = plan(&store, MAILED, &[Text("r7@x.org"), Text("test")]).await;
            assert!(!reads_all_of(&by_address, "outbox"), "{by_address}");
            for deliveries in READER_DELIVERIES {
                let sql = format!("select id from outbox where {deliveries}");
                let by_reader = plan(&store, &sql, &[Int(7)]).await;
                assert!(!reads_all_of(&by_reader, "outbox"), "{by_reader}");
            }
        }
    }
}
