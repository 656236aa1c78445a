//! Sends: a report's delivery to every confirmed reader, its state and its
//! progress.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{DeliveryState, SendState};

/// A send as stored.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Send {
    pub id: i64,
    pub report_id: i64,
    pub state: SendState,
    pub scheduled_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Readers enqueued when the send started.
    pub total: i64,
    /// Why the service paused it on its own, for the editor to read.
    pub pause_reason: Option<String>,
}

/// What a send trigger did.
#[derive(Debug, Clone)]
pub enum TriggerOutcome {
    /// A new send (already started when it was due).
    Created(Send),
    /// The same key was used before: nothing new, here is that send.
    Repeated(Send),
    /// The report already has a send, triggered with another key.
    AlreadySent(Send),
}

/// Progress of a send, counted from its deliveries.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SendStats {
    pub total: i64,
    pub queued: i64,
    /// Claimed by a worker right now.
    pub in_flight: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub paused: i64,
    pub cancelled: i64,
    /// Messages sent in the last minute, per second.
    pub rate_per_sec: f64,
}

impl SendStats {
    /// The counter of deliveries in `state`.
    fn count_mut(&mut self, state: DeliveryState) -> &mut i64 {
        match state {
            DeliveryState::Queued => &mut self.queued,
            DeliveryState::Paused => &mut self.paused,
            DeliveryState::Sent => &mut self.sent,
            DeliveryState::Failed => &mut self.failed,
            DeliveryState::Skipped => &mut self.skipped,
            DeliveryState::Cancelled => &mut self.cancelled,
        }
    }
}

/// A failed delivery and the relay's reply.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Failure {
    pub recipient: String,
    pub reason: String,
    pub attempts: i64,
}

const SEND_COLUMNS: &str =
    "id, report_id, state, scheduled_at, started_at, finished_at, total, pause_reason";

impl Store {
    /// Records the send of a report, once. A repeated or concurrent trigger
    /// finds the existing row through the unique report id.
    pub async fn trigger_send(
        &self,
        report_id: i64,
        idempotency_key: &str,
        scheduled_at: i64,
        now: i64,
    ) -> Result<TriggerOutcome, StoreError> {
        let inserted = sqlx::query(
            "insert into sends (report_id, idempotency_key, state, scheduled_at, created_at) \
             values ($1, $2, $5, $3, $4) on conflict do nothing",
        )
        .bind(report_id)
        .bind(idempotency_key)
        .bind(scheduled_at)
        .bind(now)
        .bind(SendState::Scheduled)
        .execute(&self.write)
        .await?
        .rows_affected()
            == 1;
        let sql = format!("select {SEND_COLUMNS}, idempotency_key from sends where report_id = $1");
        let row = sqlx::query(&sql)
            .bind(report_id)
            .fetch_optional(&self.write)
            .await?;
        let Some(row) = row else {
            // The key is taken by another report's send.
            let sql = format!("select {SEND_COLUMNS} from sends where idempotency_key = $1");
            let other = sqlx::query_as(&sql)
                .bind(idempotency_key)
                .fetch_one(&self.write)
                .await?;
            return Ok(TriggerOutcome::AlreadySent(other));
        };
        let key: String = row.try_get("idempotency_key")?;
        let send = <Send as sqlx::FromRow<_>>::from_row(&row)?;
        if !inserted {
            return Ok(if key == idempotency_key {
                TriggerOutcome::Repeated(send)
            } else {
                TriggerOutcome::AlreadySent(send)
            });
        }
        if scheduled_at <= now {
            self.start_send(send.id, now).await?;
            let send = self
                .send(send.id)
                .await?
                .ok_or(StoreError::Corrupt("send vanished".into()))?;
            return Ok(TriggerOutcome::Created(send));
        }
        Ok(TriggerOutcome::Created(send))
    }

    /// Moves a scheduled send to `sending` and enqueues one delivery per
    /// confirmed reader, as one snapshot in one transaction. Only the caller
    /// that wins the state change enqueues.
    pub async fn start_send(&self, send_id: i64, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let won = sqlx::query(
            "update sends set state = $3, started_at = $2 where id = $1 and state = $4",
        )
        .bind(send_id)
        .bind(now)
        .bind(SendState::Sending)
        .bind(SendState::Scheduled)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            return Ok(false);
        }
        let report_id: i64 = sqlx::query_scalar("select report_id from sends where id = $1")
            .bind(send_id)
            .fetch_one(&mut *tx)
            .await?;
        let revision = super::reports::snapshot_revision(&mut tx, report_id, now).await?;
        // No conflict clause: only the winner of the state change gets
        // here, and the unique index outbox_one_report_per_reader would
        // refuse (and roll back) a second delivery of the report to a
        // reader. Checking each row for a conflict cost a fifth of the
        // enqueue on PostgreSQL.
        let enqueued = sqlx::query(
            "insert into outbox (kind, subscriber_id, report_id, report_revision, recipient, next_attempt_at, created_at) \
             select 'report', id, $1, $3, email, $2, $2 from subscribers where status = 'confirmed' \
             and not exists (select 1 from suppressions x where x.email = subscribers.email)",
        )
        .bind(report_id)
        .bind(now)
        .bind(revision)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("update sends set total = $2, report_revision = $3 where id = $1")
            .bind(send_id)
            .bind(enqueued as i64)
            .bind(revision)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.mail_queued();
        if self.backend == super::Backend::Postgres {
            // The send has started either way, so a failure here is only
            // worth a warning.
            if let Err(e) = self.refresh_send_statistics().await {
                tracing::warn!(error = %e, "cannot refresh the statistics the send is planned with");
            }
        }
        Ok(true)
    }

    /// Brings PostgreSQL's statistics of the tables a send reads up to date
    /// before its first claims are planned, rather than when autovacuum
    /// comes round. The outbox has just gained a delivery per reader. The
    /// readers, read by id for every claimed batch, may have been imported
    /// moments ago: with no statistics at all the planner reads all of them
    /// for each batch (15 ms a batch of 500 at 100,000 readers, against
    /// 0.7 ms through the primary key). They are sampled when they never
    /// were (whatever the change counters say: those are published late,
    /// and lost in a crash), and again only when autovacuum itself would,
    /// a tenth of them changed, as a sample of a million takes a third of a
    /// second.
    async fn refresh_send_statistics(&self) -> Result<(), StoreError> {
        sqlx::query("analyze outbox").execute(&self.write).await?;
        let stale: bool = sqlx::query_scalar(
            "select coalesce((select c.reltuples < 0 or s.n_mod_since_analyze > c.reltuples / 10 \
             from pg_class c join pg_stat_user_tables s on s.relid = c.oid \
             where c.oid = 'subscribers'::regclass), true)",
        )
        .fetch_one(&self.write)
        .await?;
        if stale {
            sqlx::query("analyze subscribers")
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Starts every scheduled send whose time has come; returns how many.
    /// One whose time passed more than `overdue_after` ago (the service was
    /// down) is paused instead, with the reason, for an editor to decide.
    pub async fn start_due_sends(&self, now: i64, overdue_after: i64) -> Result<usize, StoreError> {
        let due: Vec<(i64, i64)> = sqlx::query_as(
            "select id, scheduled_at from sends where state = $2 and scheduled_at <= $1",
        )
        .bind(now)
        .bind(SendState::Scheduled)
        .fetch_all(&self.read)
        .await?;
        let mut started = 0;
        for (id, scheduled_at) in due {
            if now - scheduled_at > overdue_after {
                let reason = format!(
                    "not started on its own: it was due at {} and the service only got to it {} minutes later; resume to send it now, or cancel",
                    chrono::DateTime::from_timestamp_millis(scheduled_at)
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default(),
                    (now - scheduled_at) / 60_000
                );
                let held = sqlx::query(
                    "update sends set state = $3, pause_reason = $2 where id = $1 and state = $4",
                )
                .bind(id)
                .bind(&reason)
                .bind(SendState::Paused)
                .bind(SendState::Scheduled)
                .execute(&self.write)
                .await?
                .rows_affected();
                if held == 1 {
                    tracing::warn!(send = id, %reason, "overdue scheduled send waits for an editor");
                }
                continue;
            }
            if self.start_send(id, now).await? {
                started += 1;
            }
        }
        Ok(started)
    }

    /// Marks sends with nothing left to deliver as done.
    ///
    /// Workers ask this every second. Reading a send's deliveries for one
    /// still queued reads every delivered one first, a million at the end
    /// of a large send, and on SQLite under the write lock. So a `Counted`
    /// check reads only the sends whose kept counts (`delivery_counts`) say
    /// nothing is queued, and then makes sure. An `Exact` check, run now and
    /// then, reads every sending send's deliveries, so that counts that
    /// drifted cannot keep a send "sending" for ever; where they had, they
    /// are counted again.
    pub async fn finish_completed_sends(
        &self,
        now: i64,
        check: FinishCheck,
    ) -> Result<u64, StoreError> {
        let counted_queued: Vec<(i64, i64, i64)> = sqlx::query_as(
            "select id, report_id, total + coalesce((select n from delivery_counts c \
             where c.report_id = sends.report_id and c.status = $2), 0) from sends where state = $1",
        )
        .bind(SendState::Sending)
        .bind(DeliveryState::Queued)
        .fetch_all(&self.read)
        .await?;
        let candidates: Vec<i64> = counted_queued
            .iter()
            .filter(|(_, _, queued)| check == FinishCheck::Exact || *queued <= 0)
            .map(|(id, _, _)| *id)
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let sql = format!(
            concat!(
                "update sends set state = $2, finished_at = $1 where state = $3 and id in ({}) \
                 and not exists (select 1 from outbox o where o.report_id = sends.report_id \
                 and o.kind = 'report' and o.status = ",
                queued_literal!(),
                ") returning id, report_id"
            ),
            super::placeholders(4, candidates.len())
        );
        let finished = sqlx::query_as(&sql)
            .bind(now)
            .bind(SendState::Done)
            .bind(SendState::Sending);
        let finished: Vec<(i64, i64)> = candidates
            .iter()
            .fold(finished, |query, id| query.bind(*id))
            .fetch_all(&mut *tx)
            .await?;
        // A send the update left alone although its counts said nothing
        // was queued may have been paused or cancelled since they were read:
        // only one still sending has counts to doubt.
        let unfinished: Vec<i64> = counted_queued
            .iter()
            .filter(|(id, _, queued)| *queued <= 0 && !finished.iter().any(|(f, _)| f == id))
            .map(|(id, _, _)| *id)
            .collect();
        let sending: Vec<i64> = if unfinished.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "select id from sends where state = $1 and id in ({})",
                super::placeholders(2, unfinished.len())
            );
            unfinished
                .iter()
                .fold(
                    sqlx::query_scalar(&sql).bind(SendState::Sending),
                    |query, id| query.bind(*id),
                )
                .fetch_all(&mut *tx)
                .await?
        };
        for drift in drifted(&counted_queued, &finished, &sending) {
            tracing::warn!(
                send = drift.send_id,
                done = drift.done,
                queued = drift.queued,
                "the kept delivery counts of a send disagreed with its deliveries; counted again"
            );
            recount_deliveries(&mut tx, drift.report_id).await?;
        }
        for (_, report_id) in &finished {
            super::events::record_send_finished(&mut tx, &self.events, *report_id).await?;
        }
        tx.commit().await?;
        Ok(finished.len() as u64)
    }

    pub async fn send(&self, id: i64) -> Result<Option<Send>, StoreError> {
        let sql = format!("select {SEND_COLUMNS} from sends where id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    pub async fn send_of_report(&self, report_id: i64) -> Result<Option<Send>, StoreError> {
        let sql = format!("select {SEND_COLUMNS} from sends where report_id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(report_id)
            .fetch_optional(&self.read)
            .await?)
    }

    /// Pause: queued deliveries are set aside; messages in flight finish.
    pub async fn pause_send(&self, report_id: i64) -> Result<bool, StoreError> {
        self.change_send_state(
            report_id,
            &[SendState::Sending, SendState::Scheduled],
            SendState::Paused,
            DeliveryState::Queued,
            DeliveryState::Paused,
        )
        .await
    }

    pub async fn resume_send(&self, report_id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // A send paused before it started goes back to waiting for its time.
        let state: Option<(SendState, Option<i64>)> =
            sqlx::query_as("select state, started_at from sends where report_id = $1")
                .bind(report_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((state, started_at)) = state else {
            return Ok(false);
        };
        if state != SendState::Paused {
            return Ok(false);
        }
        let next = if started_at.is_some() {
            SendState::Sending
        } else {
            SendState::Scheduled
        };
        // An editor resuming a send that was due in the past means now.
        sqlx::query(
            "update sends set state = $2, pause_reason = null, \
             scheduled_at = case when scheduled_at < $3 then $3 else scheduled_at end \
             where report_id = $1",
        )
        .bind(report_id)
        .bind(next)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update outbox set status = $2 where report_id = $1 and kind = 'report' and status = $3",
        )
        .bind(report_id)
        .bind(DeliveryState::Queued)
        .bind(DeliveryState::Paused)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.mail_queued();
        Ok(true)
    }

    /// Cancel: nothing more is sent; what was sent stays sent.
    pub async fn cancel_send(&self, report_id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "update sends set state = $3, finished_at = $2 where report_id = $1 \
             and state in ($4, $5, $6)",
        )
        .bind(report_id)
        .bind(super::now_ms())
        .bind(SendState::Cancelled)
        .bind(SendState::Scheduled)
        .bind(SendState::Sending)
        .bind(SendState::Paused)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            sqlx::query(
                "update outbox set status = $2 where report_id = $1 and kind = 'report' \
                 and status in ($3, $4)",
            )
            .bind(report_id)
            .bind(DeliveryState::Cancelled)
            .bind(DeliveryState::Queued)
            .bind(DeliveryState::Paused)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Pauses every send in progress, with the reason (the mail relay cannot
    /// be used). Returns the reports paused.
    pub async fn pause_sends_in_progress(&self, reason: &str) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let reports: Vec<i64> = sqlx::query_scalar(
            "update sends set state = $2, pause_reason = $1 where state = $3 returning report_id",
        )
        .bind(reason)
        .bind(SendState::Paused)
        .bind(SendState::Sending)
        .fetch_all(&mut *tx)
        .await?;
        for report_id in &reports {
            sqlx::query(
                "update outbox set status = $2 where report_id = $1 and kind = 'report' \
                 and status = $3",
            )
            .bind(*report_id)
            .bind(DeliveryState::Paused)
            .bind(DeliveryState::Queued)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(reports)
    }

    /// Queues the failed deliveries of a report once more: each gets one
    /// more attempt (`last_attempt` is the number that attempt will have).
    /// Only failed rows move, and a report has one row per reader, so a
    /// reader who got the report never gets it again. Returns how many, or
    /// `None` when the send is not one whose failures can be retried.
    pub async fn retry_failed(
        &self,
        report_id: i64,
        last_attempt: i64,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let state: Option<SendState> =
            sqlx::query_scalar("select state from sends where report_id = $1")
                .bind(report_id)
                .fetch_optional(&mut *tx)
                .await?;
        let to = match state {
            Some(SendState::Sending | SendState::Done) => DeliveryState::Queued,
            Some(SendState::Paused) => DeliveryState::Paused,
            _ => return Ok(None),
        };
        let moved = sqlx::query(
            "update outbox set status = $2, attempts = $3, next_attempt_at = $4, \
             lease_until = null, leased_by = null \
             where report_id = $1 and kind = 'report' and status = $5",
        )
        .bind(report_id)
        .bind(to)
        .bind((last_attempt - 1).max(0))
        .bind(now)
        .bind(DeliveryState::Failed)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved > 0 {
            sqlx::query(
                "update sends set state = $2, finished_at = null where report_id = $1 and state = $3",
            )
            .bind(report_id)
            .bind(SendState::Sending)
            .bind(SendState::Done)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if moved > 0 {
            self.mail_queued();
        }
        Ok(Some(moved))
    }

    async fn change_send_state(
        &self,
        report_id: i64,
        from: &[SendState],
        to: SendState,
        rows_from: DeliveryState,
        rows_to: DeliveryState,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "update sends set state = $2 where report_id = $1 and state in ({})",
            super::placeholders(3, from.len())
        );
        let mut query = sqlx::query(&sql).bind(report_id).bind(to);
        for state in from {
            query = query.bind(*state);
        }
        let changed = query.execute(&mut *tx).await?.rows_affected() == 1;
        if changed {
            sqlx::query("update outbox set status = $3 where report_id = $1 and kind = 'report' and status = $2")
                .bind(report_id)
                .bind(rows_from)
                .bind(rows_to)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Counts of a report's deliveries by outcome.
    pub async fn send_stats(&self, report_id: i64, now: i64) -> Result<SendStats, StoreError> {
        match self.send_of_report(report_id).await? {
            Some(send) => self.stats_of_send(&send, now).await,
            None => Ok(SendStats::default()),
        }
    }

    /// The progress of `send`, read already.
    pub async fn stats_of_send(&self, send: &Send, now: i64) -> Result<SendStats, StoreError> {
        let report_id = send.report_id;
        let mut stats =
            counted_stats(&mut *self.read.acquire().await?, report_id, send.total).await?;
        // Only a send under way has deliveries in flight or a current pace.
        if send.state == SendState::Sending {
            let (held, recent): (i64, i64) = sqlx::query_as(
                // The workers publish what they hold (delivery_holds): an
                // index from leases to rows would make every claim write
                // to it. The pace reads the small partial index
                // outbox_report_sent.
                "select \
                 (select cast(coalesce(sum(held), 0) as bigint) from delivery_holds \
                  where report_id = $1 and until > $2) as held, \
                 (select count(*) from outbox where report_id = $1 and kind = 'report' \
                  and sent_at > $3) as recent",
            )
            .bind(report_id)
            .bind(now)
            .bind(now - 60_000)
            .fetch_one(&self.read)
            .await?;
            // What a worker published a moment ago may include deliveries
            // recorded since.
            let in_flight = held.clamp(0, stats.queued.max(0));
            stats.in_flight = in_flight;
            stats.queued -= in_flight;
            stats.rate_per_sec = recent as f64 / 60.0;
        }
        Ok(stats)
    }

    /// Failed deliveries with the reason, most recent first.
    pub async fn send_failures(
        &self,
        report_id: i64,
        limit: i64,
    ) -> Result<Vec<Failure>, StoreError> {
        // The state is written into the statement, not bound, so that
        // the partial index of failures (outbox_report_failed) serves it.
        let sql = format!(
            "select recipient, coalesce(last_error, '') as reason, attempts from outbox \
             where report_id = $1 and kind = 'report' and status = '{failed}' order by id desc limit $2",
            failed = DeliveryState::Failed.as_str()
        );
        Ok(sqlx::query_as(&sql)
            .bind(report_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?)
    }

    /// Queues a test copy of the report as it stands now for each address
    /// (no reader behind it).
    pub async fn queue_test_sends(
        &self,
        report_id: i64,
        addresses: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let revision = super::reports::snapshot_revision(&mut tx, report_id, now).await?;
        for address in addresses {
            sqlx::query(
                "insert into outbox (kind, report_id, report_revision, recipient, next_attempt_at, created_at) \
                 values ('test', $1, $4, $2, $3, $3)",
            )
            .bind(report_id)
            .bind(address.as_str())
            .bind(now)
            .bind(revision)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.mail_queued();
        Ok(())
    }
}

/// How `Store::finish_completed_sends` tells which sends are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishCheck {
    /// Trust the kept counts to say which sends may be done.
    Counted,
    /// Read every sending send's deliveries.
    Exact,
}

/// A send whose kept counts disagreed with its deliveries.
#[derive(Debug, PartialEq, Eq)]
struct Drift {
    send_id: i64,
    report_id: i64,
    /// Whether the finish update found nothing queued.
    done: bool,
    /// What the counts said was queued.
    queued: i64,
}

/// The sends, of those read with their counted queue (`counted`: send,
/// report, queued), whose counts drifted: finished by the update although
/// the counts said some were queued, or left alone although they said none
/// were and the send is still `sending` (`sending` names exactly those). Counts that said some were queued
/// would have kept a send "sending" until an exact check; counts that said
/// none were would bring it back every second, each time to read its queue
/// under the write lock.
fn drifted(counted: &[(i64, i64, i64)], finished: &[(i64, i64)], sending: &[i64]) -> Vec<Drift> {
    counted
        .iter()
        .filter_map(|&(send_id, report_id, queued)| {
            let done = finished.iter().any(|(id, _)| *id == send_id);
            let disagree = if done {
                queued > 0
            } else {
                sending.contains(&send_id)
            };
            disagree.then_some(Drift {
                send_id,
                report_id,
                done,
                queued,
            })
        })
        .collect()
}

/// Counts a send's deliveries again from the outbox, in the kept form:
/// changes since the enqueue, when all `total` were queued.
async fn recount_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    report_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("delete from delivery_counts where report_id = $1")
        .bind(report_id)
        .execute(&mut **tx)
        .await?;
    // Two workers may recount one send at once; on PostgreSQL the second's
    // delete does not see the rows the first inserted meanwhile, and its
    // own count, read later, is the one to keep. (`where true` keeps SQLite
    // from reading the upsert's `on` as a join's.)
    sqlx::query(
        "insert into delivery_counts (report_id, status, n) \
         select $1, status, sum(n) from ( \
           select status, count(*) as n from outbox \
             where report_id = $1 and kind = 'report' group by status \
           union all select $2, -total from sends where report_id = $1 \
         ) as changes where true group by status \
         on conflict (report_id, status) do update set n = excluded.n",
    )
    .bind(report_id)
    .bind(DeliveryState::Queued)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A send's deliveries by state, from the counts the database keeps as
/// deliveries change state: changes since the enqueue, when all `total`
/// deliveries were queued.
pub(super) async fn counted_stats(
    conn: &mut sqlx::AnyConnection,
    report_id: i64,
    total: i64,
) -> Result<SendStats, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select status, n from delivery_counts where report_id = $1")
            .bind(report_id)
            .fetch_all(conn)
            .await?;
    let mut stats = SendStats {
        total,
        queued: total,
        ..SendStats::default()
    };
    for (status, n) in rows {
        // A state this version does not know counts nowhere.
        let Ok(status) = status.parse::<DeliveryState>() else {
            continue;
        };
        *stats.count_mut(status) += n;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::claimed_readers_sql;
    use crate::store::test_stores::{plan, reads_all_of, stores, Arg};

    /// Report 1, which the sends of these tests carry.
    const REPORT_ONE: &str = "insert into reports (id, public_id, slug, title, source, \
        created_at, updated_at) values (1, '00000000-0000-4000-8000-000000000001', 'one', 't', \
        's', 0, 0)";

    /// A list imported moments before its send has no statistics yet on
    /// PostgreSQL. Planned without them, each claimed batch's readers were
    /// read by going through all of them; once the send has started they
    /// are read through the primary key. (SQLite reads rows by id whatever
    /// it knows of the table.)
    #[tokio::test]
    async fn readers_imported_just_before_a_send_are_read_by_id_during_it() {
        for store in stores("send_statistics").await {
            sqlx::query(
                "with recursive n (i) as (select 1 union all select i + 1 from n where i < 50000) \
                 insert into subscribers (email, status, created_at, confirmed_at) \
                 select 'r' || i || '@x.org', 'confirmed', 0, 0 from n",
            )
            .execute(store.pool())
            .await
            .unwrap();
            for sql in [
                REPORT_ONE,
                "insert into sends (id, report_id, idempotency_key, state, scheduled_at, created_at) \
                 values (1, 1, 'k', 'scheduled', 0, 0)",
            ] {
                sqlx::query(sql).execute(store.pool()).await.unwrap();
            }
            assert!(store.start_send(1, 0).await.unwrap());

            let batch: Vec<Arg> = (1_001..1_501).map(Arg::Int).collect();
            let sql = claimed_readers_sql(batch.len());
            let plan = plan(&store, &sql, &batch).await;
            assert!(!reads_all_of(&plan, "subscribers"), "{plan}");
        }
    }

    /// Send 1's deliveries (queued, sent) by the kept counts.
    async fn kept_counts(store: &Store) -> (i64, i64) {
        let mut conn = store.pool().acquire().await.unwrap();
        let stats = counted_stats(&mut conn, 1, 3).await.unwrap();
        (stats.queued, stats.sent)
    }

    /// A send of three deliveries, all sent, whose kept counts say one is
    /// still queued.
    async fn drifted_send(store: &Store) {
        for sql in [
            REPORT_ONE,
            "insert into sends (id, report_id, idempotency_key, state, scheduled_at, started_at, \
             total, created_at) values (1, 1, 'k', 'sending', 0, 0, 3, 0)",
            "insert into outbox (kind, subscriber_id, report_id, recipient, next_attempt_at, \
             created_at, status) values ('report', null, 1, 'a@x.org', 0, 0, 'sent'), \
             ('report', null, 1, 'b@x.org', 0, 0, 'sent'), ('report', null, 1, 'c@x.org', 0, 0, 'sent')",
            "delete from delivery_counts",
            "insert into delivery_counts (report_id, status, n) values (1, 'queued', -2), (1, 'sent', 2)",
        ] {
            sqlx::query(sql).execute(store.pool()).await.unwrap();
        }
    }

    /// Counts that drifted keep a send "sending" only until the next exact
    /// check, which finishes it and counts its deliveries again.
    #[tokio::test]
    async fn an_exact_check_finishes_a_send_whose_counts_drifted() {
        for store in stores("finish").await {
            drifted_send(&store).await;
            assert_eq!(
                store
                    .finish_completed_sends(10, FinishCheck::Counted)
                    .await
                    .unwrap(),
                0,
                "the counted check trusts the counts"
            );
            assert_eq!(
                store.send(1).await.unwrap().unwrap().state,
                SendState::Sending
            );
            assert_eq!(
                store
                    .finish_completed_sends(20, FinishCheck::Exact)
                    .await
                    .unwrap(),
                1
            );
            let send = store.send(1).await.unwrap().unwrap();
            assert_eq!((send.state, send.finished_at), (SendState::Done, Some(20)));
            assert_eq!(kept_counts(&store).await, (0, 3));
        }
    }

    /// Two recounts of one send at once both succeed and leave the right
    /// counts. On PostgreSQL the second waits on the first's rows, and its
    /// delete then misses the rows the first inserted.
    #[tokio::test]
    async fn two_recounts_of_one_send_at_once_both_hold() {
        for store in stores("recount_race").await {
            drifted_send(&store).await;
            let mut first = store.begin_write().await.unwrap();
            recount_deliveries(&mut first, 1).await.unwrap();
            let second = {
                let store = (*store).clone();
                tokio::spawn(async move {
                    let mut second = store.begin_write().await?;
                    recount_deliveries(&mut second, 1).await?;
                    second.commit().await?;
                    Ok::<_, StoreError>(())
                })
            };
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            first.commit().await.unwrap();
            second.await.unwrap().unwrap();
            assert_eq!(kept_counts(&store).await, (0, 3));
        }
    }

    /// Counts drifted where they disagree with what the finish update
    /// found, except for a send that stopped sending in between: a pause or
    /// a cancel, not drift, kept the update from finishing it.
    #[test]
    fn drift_is_a_disagreement_with_a_send_still_sending() {
        // (send, report, counted queued)
        let counted = [(1, 10, 0), (2, 20, 0), (3, 30, 2), (4, 40, 2), (5, 50, -1)];
        let finished = [(1, 10), (3, 30)];
        // Send 5 was paused after its counts were read.
        let sending = [2];
        let drift = |send_id, report_id, done, queued| Drift {
            send_id,
            report_id,
            done,
            queued,
        };
        assert_eq!(
            drifted(&counted, &finished, &sending),
            [drift(2, 20, false, 0), drift(3, 30, true, 2)]
        );
    }

    /// Counts that drifted the other way, saying nothing is queued while a
    /// delivery still is, leave the send sending and are counted again, so
    /// the next counted check no longer picks it.
    #[tokio::test]
    async fn a_counted_check_recounts_a_send_whose_counts_say_too_few_are_queued() {
        for store in stores("finish_low").await {
            drifted_send(&store).await;
            for sql in [
                "update outbox set status = 'queued' where recipient = 'c@x.org'",
                "update delivery_counts set n = -3 where status = 'queued'",
            ] {
                sqlx::query(sql).execute(store.pool()).await.unwrap();
            }
            assert_eq!(
                store
                    .finish_completed_sends(10, FinishCheck::Counted)
                    .await
                    .unwrap(),
                0,
                "a delivery is still queued"
            );
            assert_eq!(
                store.send(1).await.unwrap().unwrap().state,
                SendState::Sending
            );
            assert_eq!(kept_counts(&store).await, (1, 2));
        }
    }
}
