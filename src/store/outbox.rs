//! The durable mail queue: claim under a lease, then record what happened.
//!
//! A claim is a short transaction of its own; the network I/O of sending
//! happens after it commits, and outcomes are written in one batch after
//! that. A worker that dies between the two leaves rows whose lease runs out,
//! and another worker takes them.

use sqlx::Row;

use super::{placeholders, value_rows, Backend, DirectReader, HeldConnection, Store, StoreError};
use crate::bounces::SuppressionReason;
use crate::domain::{DeliveryState, SubscriberStatus};

/// What a queued message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Confirmation,
    Report,
    Test,
}

impl JobKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            JobKind::Confirmation => "confirmation",
            JobKind::Report => "report",
            JobKind::Test => "test",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "confirmation" => Ok(JobKind::Confirmation),
            "report" => Ok(JobKind::Report),
            "test" => Ok(JobKind::Test),
            other => Err(StoreError::Corrupt(format!("outbox kind {other:?}"))),
        }
    }
}

/// A claimed message, with what is needed to build it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: JobKind,
    pub subscriber_id: Option<i64>,
    pub report_id: Option<i64>,
    /// The revision of the report's text this delivery carries.
    pub report_revision: Option<i64>,
    pub recipient: String,
    pub seed: Option<String>,
    /// Attempts including this one.
    pub attempts: i64,
    pub subscriber_name: Option<String>,
    /// The reader's public id, which their links carry.
    pub subscriber_public_id: Option<uuid::Uuid>,
    pub subscriber_status: Option<SubscriberStatus>,
    /// The address bounced or complained: it is not mailed.
    pub suppressed: Option<SuppressionReason>,
}

/// What became of one claimed message.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Sent {
        id: i64,
        message_id: String,
        at: i64,
    },
    Retry {
        id: i64,
        at: i64,
        reason: String,
    },
    Failed {
        id: i64,
        reason: String,
    },
    /// The relay refused the recipient outright (5xx): failed, and counted
    /// as a hard bounce of the address.
    Refused {
        id: i64,
        reason: String,
    },
    /// Not sent on purpose (the reader unsubscribed meanwhile).
    Skipped {
        id: i64,
        reason: String,
    },
    /// Not attempted because the relay itself is unusable (refused
    /// connection, failed TLS, refused credentials): tried again at `at`
    /// without using up an attempt.
    Deferred {
        id: i64,
        at: i64,
        reason: String,
    },
}

impl JobOutcome {
    /// The row this outcome is of.
    pub fn id(&self) -> i64 {
        match self {
            JobOutcome::Sent { id, .. }
            | JobOutcome::Retry { id, .. }
            | JobOutcome::Failed { id, .. }
            | JobOutcome::Refused { id, .. }
            | JobOutcome::Skipped { id, .. }
            | JobOutcome::Deferred { id, .. } => *id,
        }
    }
}

/// Where a claimed message stands just before it is handed to SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimCheck {
    /// Still queued, still ours, with time left on the lease: send it.
    Held,
    /// Its send was paused or cancelled meanwhile: hand it back unsent.
    Withdrawn,
    /// Another worker holds it now, or it is already done: forget it.
    Lost,
    /// Still ours, but the lease is about to run out (renewals are failing).
    Expiring,
}

/// Where a claimed row stands for `worker`, from its state, its holder and
/// its lease, which must last beyond `valid_until` for the message to go.
pub(super) fn claim_check(
    status: DeliveryState,
    leased_by: Option<&str>,
    lease_until: Option<i64>,
    worker: &str,
    valid_until: i64,
) -> ClaimCheck {
    if leased_by != Some(worker) {
        return ClaimCheck::Lost;
    }
    match status {
        DeliveryState::Queued if lease_until.is_some_and(|t| t > valid_until) => ClaimCheck::Held,
        DeliveryState::Queued => ClaimCheck::Expiring,
        DeliveryState::Paused | DeliveryState::Cancelled => ClaimCheck::Withdrawn,
        DeliveryState::Sent | DeliveryState::Failed | DeliveryState::Skipped => ClaimCheck::Lost,
    }
}

/// The statement that reads where `n` claimed rows stand, for
/// [`claim_check`]: the pooled read's and the direct one's.
pub(super) fn claim_checks_sql(n: usize) -> String {
    format!(
        "select id, status, leased_by, lease_until from outbox where id in ({})",
        placeholders(1, n)
    )
}

const CLAIM_SQLITE: &str = claim_due!(
    table: "outbox",
    queued: [queued_literal!()],
    lock: "",
    returning: "id, kind, subscriber_id, report_id, report_revision, recipient, seed, attempts"
);

const CLAIM_POSTGRES: &str = claim_due!(
    table: "outbox",
    queued: [queued_literal!()],
    lock: " for update skip locked",
    returning: "id, kind, subscriber_id, report_id, report_revision, recipient, seed, attempts"
);

/// The update that records `n` sent messages, numbered from `$1`: each
/// message's id, message id and time, then the sent state.
fn record_sent_sql(n: usize) -> String {
    // VALUES names its columns column1… on both backends.
    format!(
        "update outbox set status = ${}, message_id = v.column2, sent_at = v.column3, \
         lease_until = null, leased_by = null, seed = null, last_error = null \
         from (values {}) as v where outbox.id = v.column1",
        n * 3 + 1,
        value_rows(n, 3)
    )
}

/// The readers of `n` claimed deliveries, by their ids.
pub(super) fn claimed_readers_sql(n: usize) -> String {
    format!(
        "select id, public_id, name, status from subscribers where id in ({})",
        placeholders(1, n)
    )
}

/// The first queued row, if any, in the order of its index.
const FIRST_QUEUED: &str = concat!(
    "select id from outbox where status = ",
    queued_literal!(),
    " order by next_attempt_at, id limit 1"
);

/// Binds the parameters of [`record_sent_sql`].
fn bind_sent<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    sent: &[(i64, &'q str, i64)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sent.iter()
        .fold(query, |query, (id, message_id, at)| {
            query.bind(*id).bind(*message_id).bind(*at)
        })
        .bind(DeliveryState::Sent)
}

/// Successful deliveries recorded per statement (three parameters each,
/// well under either backend's limit).
const SENT_PER_STATEMENT: usize = 200;

/// Row ids named per statement when renewing or handing back leases.
const IDS_PER_STATEMENT: usize = 500;

impl Store {
    /// Leases up to `limit` due messages to `worker` until `lease_until`.
    pub async fn claim_due_jobs(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sql)
            .bind(lease_until)
            .bind(worker)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let read = self.read_claimed(&rows).await;
        if read.is_err() {
            // The rows are leased, and the worker, which never learns
            // their ids, would neither renew nor hand them back: they go
            // back now rather than when their lease runs out.
            let ids: Vec<i64> = rows.iter().filter_map(|r| r.try_get("id").ok()).collect();
            if let Err(e) = self.release_leases(worker, &ids).await {
                tracing::warn!(error = %e, "cannot hand back a claim that could not be read; its lease runs out instead");
            }
        }
        read
    }

    /// The claimed rows as jobs, with their readers, in id order.
    async fn read_claimed(
        &self,
        rows: &[sqlx::any::AnyRow],
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut jobs = rows
            .iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(ClaimedJob {
                    id: row.try_get("id")?,
                    kind: JobKind::parse(&kind)?,
                    subscriber_id: row.try_get("subscriber_id")?,
                    report_id: row.try_get("report_id")?,
                    report_revision: row.try_get("report_revision")?,
                    recipient: row.try_get("recipient")?,
                    seed: row.try_get("seed")?,
                    attempts: row.try_get("attempts")?,
                    subscriber_name: None,
                    subscriber_public_id: None,
                    subscriber_status: None,
                    suppressed: None,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.attach_subscribers(&mut jobs).await?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Reads the current name and status of each job's reader, so a reader
    /// who unsubscribed after the send began is skipped, and whether the
    /// address is suppressed.
    async fn attach_subscribers(&self, jobs: &mut [ClaimedJob]) -> Result<(), StoreError> {
        let recipients: Vec<&str> = jobs.iter().map(|j| j.recipient.as_str()).collect();
        let suppressed = self.suppressed_among(&recipients).await?;
        for job in jobs.iter_mut() {
            job.suppressed = suppressed.get(&job.recipient.to_lowercase()).copied();
        }
        let ids: Vec<i64> = jobs.iter().filter_map(|j| j.subscriber_id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let sql = claimed_readers_sql(ids.len());
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.read).await?;
        let reader_ids = self.reader_ids().await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let name: Option<String> = row.try_get("name")?;
            let status: String = row.try_get("status")?;
            let stored: Option<String> = row.try_get("public_id")?;
            let public_id = reader_ids.of_row(id, stored.as_deref())?;
            found.insert(id, (name, public_id, SubscriberStatus::parse(&status)));
        }
        for job in jobs.iter_mut() {
            if let Some((name, public_id, status)) = job.subscriber_id.and_then(|id| found.get(&id))
            {
                job.subscriber_name = name.clone();
                job.subscriber_public_id = Some(*public_id);
                job.subscriber_status = *status;
            }
        }
        Ok(())
    }

    /// Writes the outcomes of one batch in a single transaction.
    pub async fn record_outcomes(
        &self,
        held: Option<&mut HeldConnection>,
        outcomes: &[JobOutcome],
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let sent: Vec<(i64, &str, i64)> = outcomes
            .iter()
            .filter_map(|o| match o {
                JobOutcome::Sent { id, message_id, at } => Some((*id, message_id.as_str(), *at)),
                _ => None,
            })
            .collect();
        if sent.len() == outcomes.len() && sent.len() <= SENT_PER_STATEMENT {
            // Nearly every write is this: messages that all went out, in one
            // statement, which is a transaction of its own. BEGIN and COMMIT
            // around it would cost two more round trips to PostgreSQL, and
            // on SQLite two commands to the connection's thread that each
            // wait for an acknowledgement.
            let sql = record_sent_sql(sent.len());
            let query = bind_sent(sqlx::query(&sql), &sent);
            match held {
                Some(held) => query.execute(&mut *held.0).await?,
                None => query.execute(&self.write).await?,
            };
            super::error::writes_work();
            return Ok(());
        }
        // Read before the transaction: on SQLite the key's first read needs
        // the one write connection the transaction would hold.
        let reader_ids = self.reader_ids().await?;
        let mut tx = match held {
            Some(held) => self.begin_kept(held).await?,
            None => self.begin_write().await?,
        };
        // Deliveries are nearly all successes: they go in a few statements
        // rather than one round trip each, which is what bounds a worker on
        // PostgreSQL.
        for chunk in sent.chunks(SENT_PER_STATEMENT) {
            bind_sent(sqlx::query(&record_sent_sql(chunk.len())), chunk)
                .execute(&mut *tx)
                .await?;
        }
        for outcome in outcomes {
            let query = match outcome {
                JobOutcome::Sent { .. } => continue,
                JobOutcome::Retry { id, at, reason } => sqlx::query(
                    "update outbox set next_attempt_at = $2, last_error = $3, \
                     lease_until = null, leased_by = null where id = $1",
                )
                .bind(*id)
                .bind(*at)
                .bind(reason.as_str()),
                JobOutcome::Refused { id, reason } => {
                    record_refusal(&mut tx, &self.events, reader_ids, *id, reason).await?;
                    continue;
                }
                JobOutcome::Failed { id, reason } => {
                    settle(&mut tx, *id, DeliveryState::Failed, reason).await?;
                    continue;
                }
                JobOutcome::Skipped { id, reason } => {
                    settle(&mut tx, *id, DeliveryState::Skipped, reason).await?;
                    continue;
                }
                JobOutcome::Deferred { id, at, reason } => sqlx::query(
                    "update outbox set next_attempt_at = $2, last_error = $3, \
                     attempts = attempts - 1, lease_until = null, leased_by = null where id = $1",
                )
                .bind(*id)
                .bind(*at)
                .bind(reason.as_str()),
            };
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        super::error::writes_work();
        Ok(())
    }

    /// Where each of the claimed messages `ids` stands: read just before
    /// they go on the wire, so that a pause, a cancel or a lost lease stops
    /// them there. The answer is sorted by id; a row that is gone is not in
    /// it, and is `Lost`.
    pub async fn check_claims(
        &self,
        reader: Option<&mut HeldConnection>,
        ids: &[i64],
        worker: &str,
        valid_until: i64,
    ) -> Result<Vec<(i64, ClaimCheck)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = claim_checks_sql(ids.len());
        let query = ids
            .iter()
            .fold(sqlx::query_as(&sql), |query, id| query.bind(*id));
        let rows: Vec<(i64, DeliveryState, Option<String>, Option<i64>)> = match reader {
            Some(reader) => query.fetch_all(&mut *reader.0).await?,
            None => query.fetch_all(&self.read).await?,
        };
        let mut checks: Vec<(i64, ClaimCheck)> = rows
            .into_iter()
            .map(|(id, status, leased_by, lease_until)| {
                let check = claim_check(
                    status,
                    leased_by.as_deref(),
                    lease_until,
                    worker,
                    valid_until,
                );
                (id, check)
            })
            .collect();
        checks.sort_unstable_by_key(|(id, _)| *id);
        Ok(checks)
    }

    /// The claim checks of this store's worker, read on the asking task's
    /// own thread where that is cheaper than the pool (SQLite; see
    /// `direct_reads`), or `None` to ask [`Store::check_claims`].
    pub fn direct_reader(&self) -> Option<DirectReader> {
        self.sqlite_path.as_deref().map(DirectReader::new)
    }

    /// Extends the leases on `held`, the rows `worker` holds, so those
    /// waiting in its memory or on the wire stay its own however slow the
    /// relay is. The worker names them because no index leads from a worker
    /// to its rows: one would make every claim write to it (see migration
    /// 0025). A row in `held` that is no longer the worker's is left alone.
    pub async fn renew_leases(
        &self,
        worker: &str,
        held: &[i64],
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        self.update_held(worker, held, "lease_until = $2", "", Some(lease_until))
            .await
    }

    /// Hands back one claimed row unsent (its send was paused or
    /// cancelled); the attempt is not counted.
    pub async fn release_job(&self, id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "update outbox set lease_until = null, leased_by = null, attempts = attempts - 1 \
             where id = $1 and leased_by = $2",
        )
        .bind(id)
        .bind(worker)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Hands back the rows of `held` still leased to `worker` and queued
    /// (at shutdown, or after a run the database broke) so others need not
    /// wait for them to expire. The attempt is not counted.
    pub async fn release_leases(&self, worker: &str, held: &[i64]) -> Result<u64, StoreError> {
        self.update_held(
            worker,
            held,
            "lease_until = null, leased_by = null, attempts = attempts - 1",
            concat!("status = ", queued_literal!(), " and "),
            None,
        )
        .await
    }

    /// `update outbox set {set} where leased_by = $1 and {only}id in (…)`
    /// for the rows of `held`, a chunk a statement, with `value` as `$2`
    /// when given. Returns how many rows changed.
    async fn update_held(
        &self,
        worker: &str,
        held: &[i64],
        set: &str,
        only: &str,
        value: Option<i64>,
    ) -> Result<u64, StoreError> {
        let first_id = if value.is_some() { 3 } else { 2 };
        let mut changed = 0;
        for chunk in held.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "update outbox set {set} where leased_by = $1 and {only}id in ({})",
                placeholders(first_id, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(worker);
            if let Some(value) = value {
                query = query.bind(value);
            }
            let done = chunk
                .iter()
                .fold(query, |query, id| query.bind(*id))
                .execute(&self.write)
                .await?;
            changed += done.rows_affected();
        }
        Ok(changed)
    }

    /// Publishes how many deliveries of each report `worker` holds now, for
    /// the progress of sends (`Store::stats_of_send`); they count until
    /// `until`, so a worker that was killed stops counting by itself. Rows
    /// of workers gone for a day are cleared on the way.
    pub async fn publish_holds(
        &self,
        worker: &str,
        held_by_report: &[(i64, i64)],
        now: i64,
        until: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("delete from delivery_holds where worker = $1 or until < $2")
            .bind(worker)
            .bind(now - 86_400_000)
            .execute(&mut *tx)
            .await?;
        for chunk in held_by_report.chunks(IDS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${}, $2)", 3 + 2 * i, 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "insert into delivery_holds (worker, report_id, held, until) values {rows}"
            );
            let query = sqlx::query(&sql).bind(worker).bind(until);
            chunk
                .iter()
                .fold(query, |query, (report, held)| {
                    query.bind(*report).bind(*held)
                })
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Messages still waiting (due now or later), for health and tests.
    pub async fn queued_jobs(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(concat!(
            "select count(*) from outbox where status = ",
            queued_literal!()
        ))
        .fetch_one(&self.read)
        .await?)
    }

    /// Whether any message waits to be sent: the first row of the index
    /// answers, where counting them would read every one. The order is the
    /// index's own (outbox_queued): without it, while most rows are still
    /// queued, PostgreSQL reads the table from its start instead, through
    /// every row sent so far.
    pub async fn has_queued_jobs(&self) -> Result<bool, StoreError> {
        let first: Option<i64> = sqlx::query_scalar(FIRST_QUEUED)
            .fetch_optional(&self.read)
            .await?;
        Ok(first.is_some())
    }
}

/// Ends a delivery in `state` (failed or skipped) with the reason, letting
/// go of its lease and of the seed its link tokens came from.
async fn settle(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    state: DeliveryState,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "update outbox set status = $3, last_error = $2, \
         lease_until = null, leased_by = null, seed = null where id = $1",
    )
    .bind(id)
    .bind(reason)
    .bind(state)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A recipient the relay refused: the delivery fails, and a reader's
/// address counts a hard bounce and is suppressed, as if the bounce had come
/// back by mail.
async fn record_refusal(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    interest: &super::events::EventInterest,
    ids: &super::reader_ids::ReaderIds,
    id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    settle(tx, id, DeliveryState::Failed, reason).await?;
    let now = super::now_ms();
    let bounce: Option<i64> = sqlx::query_scalar(
        "insert into bounces (kind, source, recipient, subscriber_id, report_id, outbox_id, \
         status_code, diagnostic, created_at) \
         select 'hard', 'smtp', lower(recipient), subscriber_id, report_id, id, null, $2, $3 \
         from outbox where id = $1 and subscriber_id is not null \
         on conflict do nothing returning id",
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(bounce) = bounce {
        let detail = format!(
            "refused by the relay: {}",
            reason.chars().take(300).collect::<String>()
        );
        let added: Option<String> = sqlx::query_scalar(
            "insert into suppressions (email, reason, detail, bounce_id, created_at) \
             select lower(recipient), 'bounced', $2, $3, $4 from outbox where id = $1 \
             on conflict do nothing returning email",
        )
        .bind(id)
        .bind(&detail)
        .bind(bounce)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(email) = added {
            let report_id: Option<i64> =
                sqlx::query_scalar("select report_id from outbox where id = $1")
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?;
            super::events::record_suppression_event(
                tx,
                interest,
                ids,
                super::events::Suppressed {
                    reason: SuppressionReason::Bounced,
                    email: &email,
                    source: "smtp",
                    detail: &detail,
                    report_id,
                    at: now,
                },
            )
            .await?;
        }
        metrics::counter!(crate::metrics::BOUNCES, "kind" => "hard", "source" => "smtp")
            .increment(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{claimed_confirmations, plan, stores, Arg::*};

    /// Whether mail waits is answered from the index of queued rows: read
    /// from the table's start, the answer would come after every row sent
    /// so far, which is what PostgreSQL did while most rows were queued.
    #[tokio::test]
    async fn whether_mail_waits_is_read_from_the_index_of_queued_rows() {
        for store in stores("first_queued").await {
            queue_with_a_tenth_sent(&store).await;
            let plan = plan(&store, FIRST_QUEUED, &[]).await;
            assert!(plan.contains("outbox_queued"), "{plan}");
            assert!(store.has_queued_jobs().await.unwrap());
        }
    }

    /// 5,000 rows due at the same moment, a tenth of them delivered, with
    /// the planner's statistics taken.
    async fn queue_with_a_tenth_sent(store: &Store) {
        sqlx::query(
            "with recursive n (i) as (select 1 union all select i + 1 from n where i < 5000) \
             insert into outbox (kind, recipient, next_attempt_at, created_at, status) \
             select 'confirmation', 'r' || i || '@x.org', 1000, 1000, \
             case when i % 10 = 0 then 'sent' else 'queued' end from n",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query("analyze").execute(store.pool()).await.unwrap();
    }

    /// The plan of a claim of 10 from [`queue_with_a_tenth_sent`], as the
    /// database explains it.
    async fn claim_plan(store: &Store) -> String {
        queue_with_a_tenth_sent(store).await;
        let claim = match store.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let args = [Int(9_000), Text("w"), Int(2_000), Int(10)];
        plan(store, claim, &args).await
    }

    /// Messages that all went out are recorded by one statement with no
    /// transaction of the store's around it. When another writer holds the
    /// database (another process on SQLite, a transaction on the rows on
    /// PostgreSQL), that statement waits its turn instead of failing, and
    /// lands whole.
    #[tokio::test]
    async fn sent_outcomes_wait_for_another_writer_and_land_whole() {
        for store in stores("sent_waits").await {
            let jobs = claimed_confirmations(&store, 3).await;
            // Not the store's writer: a connection of its own.
            let mut other = store.read.acquire().await.unwrap();
            let lock = match store.backend {
                Backend::Sqlite => "begin immediate",
                Backend::Postgres => "begin; select id from outbox for update",
            };
            sqlx::raw_sql(lock).execute(&mut *other).await.unwrap();
            let outcomes: Vec<JobOutcome> = jobs
                .iter()
                .map(|job| JobOutcome::Sent {
                    id: job.id,
                    message_id: format!("<{}@x.org>", job.id),
                    at: 50,
                })
                .collect();
            let writing = {
                let store = (*store).clone();
                tokio::spawn(async move { store.record_outcomes(None, &outcomes).await })
            };
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(
                !writing.is_finished(),
                "the write waits for the other writer"
            );
            sqlx::query("commit").execute(&mut *other).await.unwrap();
            writing.await.unwrap().unwrap();
            let recorded: i64 = sqlx::query_scalar(
                "select count(*) from outbox where status = 'sent' and sent_at = 50 \
                 and message_id = '<' || id || '@x.org>' and leased_by is null",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            assert_eq!(recorded, 3);
        }
    }

    /// A claim takes the first rows of the index of queued rows, which is
    /// in the claim's own order: it neither reads nor sorts the rest of the
    /// queue, so its cost does not grow with a send's size.
    #[tokio::test]
    async fn a_claim_reads_the_first_queued_rows_without_sorting_the_queue() {
        for store in stores("claims").await {
            let plan = claim_plan(&store).await;
            assert!(plan.contains("outbox_queued"), "{plan}");
            assert!(!plan.to_lowercase().contains("sort"), "{plan}");
        }
    }
}
