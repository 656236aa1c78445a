//! The outgoing webhooks' outbox.
//!
//! Events are written by the statements that make the change they describe,
//! inside the same transaction. Routing gives each event one delivery per
//! endpoint that wants it (or drops it when none does); deliveries are then
//! claimed under a lease, posted and recorded, like the mail outbox.

use std::sync::atomic::{AtomicU8, Ordering};

use sqlx::{AnyConnection, Row};

use super::reader_ids::ReaderIds;
use super::{placeholders, value_rows, Backend, Store, StoreError};
use crate::bounces::SuppressionReason;
use crate::config::WebhookEndpoint;
use crate::domain::WebhookState;
use crate::events::{Event, EventKind, ReaderFacts, SendFacts};

/// A delivery leased to a worker, with what it posts.
#[derive(Debug, Clone)]
pub struct ClaimedWebhook {
    pub id: i64,
    pub endpoint: String,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i64,
}

/// What became of one post.
#[derive(Debug, Clone)]
pub enum WebhookOutcome {
    Delivered {
        id: i64,
        status: u16,
        at: i64,
    },
    Retry {
        id: i64,
        at: i64,
        status: Option<u16>,
        error: String,
    },
    Failed {
        id: i64,
        status: Option<u16>,
        error: String,
    },
}

/// One delivery, as `webhooks list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub endpoint: String,
    pub status: WebhookState,
    pub attempts: i64,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
}

/// Events routed per transaction.
const ROUTE_BATCH: i64 = 500;

const CLAIM_SQLITE: &str = claim_due!(
    table: "webhook_deliveries",
    queued: ["$5"],
    lock: "",
    returning: "id, event_id, endpoint, attempts"
);

const CLAIM_POSTGRES: &str = claim_due!(
    table: "webhook_deliveries",
    queued: ["$5"],
    lock: " for update skip locked",
    returning: "id, event_id, endpoint, attempts"
);

/// The kinds of event this process's endpoints want. Routing drops an
/// event that no endpoint wants, so one is not written at all: with no
/// webhooks configured, a sign-up writes no event row only to delete it
/// again. Every kind is wanted until the endpoints are known, so a process
/// that never learns them records what the routing process will sort.
#[derive(Debug)]
pub struct EventInterest(AtomicU8);

impl Default for EventInterest {
    fn default() -> Self {
        EventInterest(AtomicU8::new(u8::MAX))
    }
}

impl EventInterest {
    /// Wants exactly the kinds some of `endpoints` want.
    pub fn set(&self, endpoints: &[WebhookEndpoint]) {
        let bits = EventKind::ALL
            .into_iter()
            .filter(|kind| endpoints.iter().any(|e| e.wants(*kind)))
            .fold(0u8, |bits, kind| bits | bit(kind));
        self.0.store(bits, Ordering::Relaxed);
    }

    /// Whether events of `kind` are to be written.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.0.load(Ordering::Relaxed) & bit(kind) != 0
    }
}

// One bit per kind in the u8 above.
const _: () = assert!(EventKind::ALL.len() <= 8);

fn bit(kind: EventKind) -> u8 {
    1 << kind as u8
}

/// Stores the wanted ones of `events` in the caller's transaction.
pub(super) async fn record_events(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    events: &[Event],
) -> Result<(), StoreError> {
    let events: Vec<&Event> = events.iter().filter(|e| interest.wants(e.kind)).collect();
    // Four parameters a row: far under either backend's limit.
    for chunk in events.chunks(1_000) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "insert into webhook_events (event_id, kind, body, created_at) values {}",
            value_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for event in chunk {
            query = query
                .bind(event.id.to_string())
                .bind(event.kind.as_str())
                .bind(event.body())
                .bind(event.at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores an event about reader `id` as the transaction sees them now.
pub(super) async fn record_reader_event(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    ids: &ReaderIds,
    kind: EventKind,
    id: i64,
    at: i64,
) -> Result<(), StoreError> {
    if !interest.wants(kind) {
        return Ok(());
    }
    let row = sqlx::query("select public_id, email, name, status from subscribers where id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let stored: Option<String> = row.try_get("public_id")?;
    let (public_id, email, name, status): (String, String, Option<String>, String) = (
        ids.of_row(id, stored.as_deref())?.to_string(),
        row.try_get("email")?,
        row.try_get("name")?,
        row.try_get("status")?,
    );
    let reader = ReaderFacts {
        id: &public_id,
        email: &email,
        name: name.as_deref(),
        status: &status,
    };
    record_events(conn, interest, &[Event::subscriber(kind, at, &reader)]).await
}

/// An address suppressed after a bounce or complaint, as its event tells it.
pub(super) struct Suppressed<'a> {
    pub reason: SuppressionReason,
    pub email: &'a str,
    /// Where the bounce or complaint came from (`smtp`, `mta`, a provider).
    pub source: &'a str,
    pub detail: &'a str,
    /// The report whose delivery bounced.
    pub report_id: Option<i64>,
    pub at: i64,
}

/// Stores the event of an address suppressed after a bounce or complaint.
pub(super) async fn record_suppression_event(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    ids: &ReaderIds,
    suppressed: Suppressed<'_>,
) -> Result<(), StoreError> {
    let Suppressed {
        reason,
        email,
        source,
        detail,
        report_id,
        at,
    } = suppressed;
    let kind = match reason {
        SuppressionReason::Bounced => EventKind::SubscriberBounced,
        SuppressionReason::Complained => EventKind::SubscriberComplained,
    };
    if !interest.wants(kind) {
        return Ok(());
    }
    let row = sqlx::query("select id, public_id, name, status from subscribers where email = $1")
        .bind(email)
        .fetch_optional(&mut *conn)
        .await?;
    let reader = match &row {
        Some(row) => Some((
            ids.of_row(
                row.try_get("id")?,
                row.try_get::<Option<String>, _>("public_id")?.as_deref(),
            )?
            .to_string(),
            row.try_get::<Option<String>, _>("name")?,
            row.try_get::<String, _>("status")?,
        )),
        None => None,
    };
    let facts = reader.as_ref().map(|(id, name, status)| ReaderFacts {
        id,
        email,
        name: name.as_deref(),
        status,
    });
    let report = match report_id {
        Some(id) => {
            sqlx::query_scalar::<_, String>("select public_id from reports where id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let event = Event::suppressed(
        kind,
        at,
        email,
        facts.as_ref(),
        source,
        detail,
        report.as_deref(),
    );
    record_events(conn, interest, &[event]).await
}

impl Store {
    /// Writes from now on only the events some of `endpoints` want (the
    /// configured webhooks of the process that routes them).
    pub fn record_events_for(&self, endpoints: &[WebhookEndpoint]) {
        self.events.set(endpoints);
    }

    /// Gives each new event one delivery per endpoint that wants it, and
    /// drops those no endpoint wants. Returns how many events it handled.
    pub async fn route_webhook_events(
        &self,
        endpoints: &[WebhookEndpoint],
        now: i64,
    ) -> Result<usize, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " for update skip locked",
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "select id, kind from webhook_events where routed_at is null order by id limit $1{lock}"
        ))
        .bind(ROUTE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut wanted = Vec::new();
        let mut unwanted = Vec::new();
        let mut routed = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            let names: Vec<&str> = match EventKind::parse(&kind) {
                Some(kind) => endpoints
                    .iter()
                    .filter(|e| e.wants(kind))
                    .map(|e| e.name.as_str())
                    .collect(),
                None => Vec::new(),
            };
            if names.is_empty() {
                unwanted.push(id);
            } else {
                routed.push(id);
                wanted.extend(names.into_iter().map(|name| (id, name)));
            }
        }
        for chunk in wanted.chunks(1_000) {
            let sql = format!(
                "insert into webhook_deliveries (event_id, endpoint, next_attempt_at, created_at) \
                 values {} on conflict do nothing",
                value_rows(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (id, name) in chunk {
                query = query.bind(*id).bind(*name).bind(now).bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        if !routed.is_empty() {
            let sql = format!(
                "update webhook_events set routed_at = $1 where id in ({})",
                placeholders(2, routed.len())
            );
            let mut query = sqlx::query(&sql).bind(now);
            for id in &routed {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        if !unwanted.is_empty() {
            let sql = format!(
                "delete from webhook_events where id in ({})",
                placeholders(1, unwanted.len())
            );
            let mut query = sqlx::query(&sql);
            for id in &unwanted {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Leases up to `limit` due deliveries to `worker` until `lease_until`.
    pub async fn claim_due_webhooks(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
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
            .bind(WebhookState::Queued)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let event: i64 = row.try_get("event_id")?;
            let endpoint: String = row.try_get("endpoint")?;
            let attempts: i64 = row.try_get("attempts")?;
            claimed.push((id, event, endpoint, attempts));
        }
        let sql = format!(
            "select id, event_id, kind, body from webhook_events where id in ({})",
            placeholders(1, claimed.len())
        );
        let mut query = sqlx::query(&sql);
        for (_, event, _, _) in &claimed {
            query = query.bind(*event);
        }
        let mut events = std::collections::HashMap::new();
        for row in query.fetch_all(&self.read).await? {
            let id: i64 = row.try_get("id")?;
            let uuid: String = row.try_get("event_id")?;
            let kind: String = row.try_get("kind")?;
            let body: String = row.try_get("body")?;
            events.insert(id, (uuid, kind, body));
        }
        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, event, endpoint, attempts) in claimed {
            // Deleted meanwhile (retention): the delivery went with it.
            let Some((event_id, kind, body)) = events.get(&event).cloned() else {
                continue;
            };
            jobs.push(ClaimedWebhook {
                id,
                endpoint,
                event_id,
                kind,
                body,
                attempts,
            });
        }
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Records what became of a post, if `worker` still holds the delivery.
    pub async fn record_webhook_outcome(
        &self,
        worker: &str,
        outcome: &WebhookOutcome,
    ) -> Result<(), StoreError> {
        let query = match outcome {
            WebhookOutcome::Delivered { id, status, at } => sqlx::query(
                "update webhook_deliveries set status = $5, delivered_at = $3, \
                 response_status = $4, last_error = null, lease_until = null, leased_by = null \
                 where id = $1 and leased_by = $2",
            )
            .bind(*id)
            .bind(worker)
            .bind(*at)
            .bind(i64::from(*status))
            .bind(WebhookState::Delivered),
            WebhookOutcome::Retry {
                id,
                at,
                status,
                error,
            } => sqlx::query(
                "update webhook_deliveries set next_attempt_at = $3, response_status = $4, \
                 last_error = $5, lease_until = null, leased_by = null \
                 where id = $1 and leased_by = $2",
            )
            .bind(*id)
            .bind(worker)
            .bind(*at)
            .bind(status.map(i64::from))
            .bind(error.as_str()),
            WebhookOutcome::Failed { id, status, error } => sqlx::query(
                "update webhook_deliveries set status = $5, response_status = $3, \
                 last_error = $4, lease_until = null, leased_by = null \
                 where id = $1 and leased_by = $2",
            )
            .bind(*id)
            .bind(worker)
            .bind(status.map(i64::from))
            .bind(error.as_str())
            .bind(WebhookState::Failed),
        };
        query.execute(&self.write).await?;
        Ok(())
    }

    /// Extends the leases `worker` holds while its posts are under way.
    pub async fn renew_webhook_leases(
        &self,
        worker: &str,
        lease_until: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("update webhook_deliveries set lease_until = $2 where leased_by = $1")
            .bind(worker)
            .bind(lease_until)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Hands back deliveries `worker` claimed and did not post; the attempt
    /// is not counted.
    pub async fn release_webhooks(&self, worker: &str, ids: &[i64]) -> Result<(), StoreError> {
        for chunk in ids.chunks(1_000) {
            let sql = format!(
                "update webhook_deliveries set lease_until = null, leased_by = null, \
                 attempts = attempts - 1 where leased_by = $1 and id in ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(worker);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.write).await?;
        }
        Ok(())
    }

    /// Hands back what `worker` claimed but did not post (at shutdown); the
    /// attempt is not counted.
    pub async fn release_webhook_leases(&self, worker: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update webhook_deliveries set lease_until = null, leased_by = null, \
             attempts = attempts - 1 where leased_by = $1 and status = $2",
        )
        .bind(worker)
        .bind(WebhookState::Queued)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Failed deliveries get their attempts back and every waiting one is
    /// due now: for when an endpoint that was down or refusing works again.
    /// Returns how many deliveries were put back or brought forward.
    pub async fn retry_webhooks_now(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update webhook_deliveries set status = $2, attempts = 0, next_attempt_at = $1 \
             where status = $3 or (status = $2 and next_attempt_at > $1)",
        )
        .bind(now)
        .bind(WebhookState::Queued)
        .bind(WebhookState::Failed)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// The latest deliveries, newest first, optionally of one status.
    pub async fn webhook_deliveries(
        &self,
        status: Option<WebhookState>,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let rows = sqlx::query(
            "select d.id, e.event_id, e.kind, d.endpoint, d.status, d.attempts, \
             d.response_status, d.last_error, e.created_at, d.next_attempt_at, d.delivered_at \
             from webhook_deliveries d join webhook_events e on e.id = d.event_id \
             where $1 is null or d.status = $1 order by d.id desc limit $2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WebhookDelivery {
                    id: row.try_get("id")?,
                    event_id: row.try_get("event_id")?,
                    kind: row.try_get("kind")?,
                    endpoint: row.try_get("endpoint")?,
                    status: row.try_get("status")?,
                    attempts: row.try_get("attempts")?,
                    response_status: row.try_get("response_status")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    delivered_at: row.try_get("delivered_at")?,
                })
            })
            .collect()
    }

    /// Deletes events older than `before` that have nothing left to try,
    /// with their deliveries.
    pub async fn purge_webhook_events(&self, before: i64) -> Result<u64, StoreError> {
        sqlx::query(
            "delete from webhook_deliveries where status <> $2 and event_id in \
             (select id from webhook_events where created_at < $1)",
        )
        .bind(before)
        .bind(WebhookState::Queued)
        .execute(&self.write)
        .await?;
        let done = sqlx::query(
            "delete from webhook_events where created_at < $1 and routed_at is not null \
             and not exists (select 1 from webhook_deliveries d where d.event_id = webhook_events.id)",
        )
        .bind(before)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Stores a `subscriber.created` event for each new reader of a batch of
/// sign-ups: (public id, email, name, status).
pub(super) async fn record_signups<'a>(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    readers: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>, &'a str)>,
    at: i64,
) -> Result<(), StoreError> {
    if !interest.wants(EventKind::SubscriberCreated) {
        return Ok(());
    }
    let events: Vec<Event> = readers
        .map(|(id, email, name, status)| {
            let reader = ReaderFacts {
                id,
                email,
                name,
                status,
            };
            Event::subscriber(EventKind::SubscriberCreated, at, &reader)
        })
        .collect();
    record_events(conn, interest, &events).await
}

/// A reader added as confirmed (with their consent) is both created and
/// confirmed: receivers that only follow confirmations hear of them too.
pub(super) async fn record_added_reader(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    ids: &ReaderIds,
    id: i64,
    at: i64,
) -> Result<(), StoreError> {
    record_reader_event(conn, interest, ids, EventKind::SubscriberCreated, id, at).await?;
    record_reader_event(conn, interest, ids, EventKind::SubscriberConfirmed, id, at).await
}

/// Stores the `send.finished` event of the report's send, with what became
/// of its deliveries.
pub(super) async fn record_send_finished(
    conn: &mut AnyConnection,
    interest: &EventInterest,
    report_id: i64,
) -> Result<(), StoreError> {
    if !interest.wants(EventKind::SendFinished) {
        return Ok(());
    }
    let row = sqlx::query(
        "select r.public_id, r.slug, r.title, s.started_at, s.finished_at, s.total \
         from sends s join reports r on r.id = s.report_id where s.report_id = $1",
    )
    .bind(report_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let total: i64 = row.try_get("total")?;
    let counts = super::sends::counted_stats(conn, report_id, total).await?;
    let send = SendFacts {
        report_id: row.try_get("public_id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        started_at: row.try_get("started_at")?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .unwrap_or_default(),
        total,
        delivered: counts.sent,
        failed: counts.failed,
        skipped: counts.skipped,
        cancelled: counts.cancelled,
    };
    record_events(conn, interest, &[Event::send_finished(&send)]).await
}
