//! Subscribers and the double opt-in flow.

use sqlx::Row;

use super::reader_ids::ReaderIds;
use super::{now_ms, Store, StoreError};
use crate::domain::{DeliveryState, LinkedId, SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::events::EventKind;

/// What a sign-up needs from the caller: the parsed input and the
/// confirmation material (the seed goes to the outbox, the hash to the tokens
/// table; the token itself is never stored).
#[derive(Debug)]
pub struct NewSignup<'a> {
    pub email: &'a SubscriberEmail,
    pub name: Option<&'a SubscriberName>,
    pub seed: &'a str,
    pub token_hash: &'a str,
    pub expires_at: i64,
    /// Confirmation mails allowed per address in 24 hours.
    pub confirmations_per_day: i64,
}

/// What happened to a sign-up. The HTTP layer answers all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A confirmation mail was queued.
    ConfirmationQueued,
    /// The address is already confirmed; nothing was sent.
    AlreadyConfirmed,
    /// Too many confirmation mails for this address lately; nothing was sent.
    RateLimited,
}

/// The result of following a confirmation link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed(i64),
    /// Unknown or already used.
    Invalid,
    Expired,
}

/// A subscriber as stored. Serialized (for the API) with the public id as
/// its `id`: the row id is sequential and stays inside the service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subscriber {
    #[serde(skip)]
    pub id: i64,
    /// The id that links and the API show.
    #[serde(rename = "id")]
    pub public_id: uuid::Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub unsubscribed_at: Option<i64>,
}

pub(super) fn subscriber_from_row(
    ids: &ReaderIds,
    row: &sqlx::any::AnyRow,
) -> Result<Subscriber, StoreError> {
    let status: String = row.try_get("status")?;
    let id: i64 = row.try_get("id")?;
    let stored: Option<String> = row.try_get("public_id")?;
    Ok(Subscriber {
        id,
        public_id: ids.of_row(id, stored.as_deref())?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        status: SubscriberStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("subscriber status {status:?}")))?,
        created_at: row.try_get("created_at")?,
        confirmed_at: row.try_get("confirmed_at")?,
        unsubscribed_at: row.try_get("unsubscribed_at")?,
    })
}

pub(super) const SUBSCRIBER_COLUMNS: &str =
    "id, public_id, email, name, status, created_at, confirmed_at, unsubscribed_at";

impl Store {
    /// Records a sign-up and, when due, queues its confirmation mail, all in
    /// one transaction: either both are stored or neither.
    pub async fn sign_up(&self, signup: &NewSignup<'_>) -> Result<SignupOutcome, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = super::signups::SignupJob {
            email: signup.email.as_str().to_string(),
            name: signup.name.map(|n| n.as_str().to_string()),
            seed: signup.seed.to_string(),
            token_hash: signup.token_hash.to_string(),
            expires_at: signup.expires_at,
            confirmations_per_day: signup.confirmations_per_day,
            reply,
        };
        let gone = || StoreError::Config("the sign-up writer has stopped".into());
        self.signups.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(StoreError::Batch)
    }

    /// Whether a confirmation token could be used now, without using it.
    pub async fn check_confirmation(&self, token_hash: &str) -> Result<ConfirmOutcome, StoreError> {
        let row = sqlx::query(
            "select subscriber_id, expires_at, used_at from confirmation_tokens where token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        token_state(row.as_ref(), now_ms())
    }

    /// Uses a confirmation token: single use, only before it expires.
    pub async fn confirm(&self, token_hash: &str) -> Result<ConfirmOutcome, StoreError> {
        let now = now_ms();
        let ids = self.reader_ids().await?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "select subscriber_id, expires_at, used_at from confirmation_tokens where token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = token_state(row.as_ref(), now)?;
        let ConfirmOutcome::Confirmed(id) = outcome else {
            return Ok(outcome);
        };
        // Guarded by `used_at is null` so that two concurrent uses of one
        // token cannot both succeed.
        let used = sqlx::query(
            "update confirmation_tokens set used_at = $2 where token_hash = $1 and used_at is null",
        )
        .bind(token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Ok(ConfirmOutcome::Invalid);
        }
        // Older links for the same address stop working too.
        sqlx::query(
            "update confirmation_tokens set used_at = $2 where subscriber_id = $1 and used_at is null",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The name is the one sent with the sign-up whose link was followed,
        // so nobody else's sign-up names this reader.
        let confirmed = sqlx::query(
            "update subscribers set status = 'confirmed', confirmed_at = $2, unsubscribed_at = null, \
             name = (select name from confirmation_tokens where token_hash = $3) \
             where id = $1 and status in ('pending', 'unsubscribed')",
        )
        .bind(id)
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if confirmed.rows_affected() == 1 {
            super::events::record_reader_event(
                &mut tx,
                &self.events,
                ids,
                EventKind::SubscriberConfirmed,
                id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ConfirmOutcome::Confirmed(id))
    }

    /// Unsubscribes at once, and withdraws any confirmation mail still
    /// queued for the reader. Returns false for an unknown id.
    pub async fn unsubscribe(&self, id: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let ids = self.reader_ids().await?;
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query_scalar("select status from subscribers where id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let done = sqlx::query(
            "update subscribers set status = 'unsubscribed', \
             unsubscribed_at = coalesce(unsubscribed_at, $2) where id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Naming kind <> 'report' lets the planner use the index of a
        // reader's deliveries, which holds no reports (migration 0024).
        sqlx::query(
            "update outbox set status = $2 \
             where subscriber_id = $1 and kind <> 'report' and kind = 'confirmation' \
             and status in ($3, $4)",
        )
        .bind(id)
        .bind(DeliveryState::Cancelled)
        .bind(DeliveryState::Queued)
        .bind(DeliveryState::Paused)
        .execute(&mut *tx)
        .await?;
        if before.is_some_and(|s| s != SubscriberStatus::Unsubscribed.as_str()) {
            super::events::record_reader_event(
                &mut tx,
                &self.events,
                ids,
                EventKind::SubscriberUnsubscribed,
                id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn subscriber_by_email(
        &self,
        email: &SubscriberEmail,
    ) -> Result<Option<Subscriber>, StoreError> {
        let sql = format!("select {SUBSCRIBER_COLUMNS} from subscribers where email = $1");
        let row = sqlx::query(&sql)
            .bind(email.as_str())
            .fetch_optional(&self.read)
            .await?;
        let ids = self.reader_ids().await?;
        row.as_ref()
            .map(|row| subscriber_from_row(ids, row))
            .transpose()
    }

    pub async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        let sql = format!("select {SUBSCRIBER_COLUMNS} from subscribers where id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        let ids = self.reader_ids().await?;
        row.as_ref()
            .map(|row| subscriber_from_row(ids, row))
            .transpose()
    }

    /// The row id of the reader a link or an API call names, if there is
    /// one. A row id from a link made before public ids is taken as it is.
    pub async fn subscriber_id_of(&self, id: &LinkedId) -> Result<Option<i64>, StoreError> {
        self.row_id_of("subscribers", id).await
    }

    /// Number of subscribers in each status.
    pub async fn count_subscribers(&self, status: SubscriberStatus) -> Result<i64, StoreError> {
        // Kept by the database as readers come, change and go.
        let n: Option<i64> =
            sqlx::query_scalar("select n from subscriber_counts where status = $1")
                .bind(status.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(n.unwrap_or(0))
    }

    /// Readers with `status`, or all of them.
    pub async fn count_readers(&self, status: Option<SubscriberStatus>) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "select cast(sum(n) as bigint) from subscriber_counts where $1 is null or status = $1",
        )
        .bind(status.map(SubscriberStatus::as_str))
        .fetch_one(&self.read)
        .await?;
        Ok(n.unwrap_or(0))
    }
}

fn token_state(row: Option<&sqlx::any::AnyRow>, now: i64) -> Result<ConfirmOutcome, StoreError> {
    let Some(row) = row else {
        return Ok(ConfirmOutcome::Invalid);
    };
    let used_at: Option<i64> = row.try_get("used_at")?;
    if used_at.is_some() {
        return Ok(ConfirmOutcome::Invalid);
    }
    let expires_at: i64 = row.try_get("expires_at")?;
    if expires_at <= now {
        return Ok(ConfirmOutcome::Expired);
    }
    Ok(ConfirmOutcome::Confirmed(row.try_get("subscriber_id")?))
}

/// A reader to import, already checked.
#[derive(Debug, Clone)]
pub struct ImportedSubscriber {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    pub status: SubscriberStatus,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub unsubscribed_at: Option<i64>,
}

impl Store {
    /// Starts an import that takes readers batch by batch and stores all of
    /// them or, when dropped before `commit`, none.
    pub async fn begin_import(&self) -> Result<SubscriberImport, StoreError> {
        Ok(SubscriberImport {
            tx: self.begin_write().await?,
            added: 0,
        })
    }
    /// Every subscriber, oldest first.
    pub async fn all_subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let sql = format!("select {SUBSCRIBER_COLUMNS} from subscribers order by id");
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        let ids = self.reader_ids().await?;
        rows.iter()
            .map(|row| subscriber_from_row(ids, row))
            .collect()
    }
}

/// Rows per INSERT: six values each keeps a statement under SQLite's limit
/// of 32,766 bound values with room to spare.
const IMPORT_ROWS_PER_STATEMENT: usize = 1_000;

/// An import under way: one transaction, many batches.
pub struct SubscriberImport {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    added: u64,
}

impl SubscriberImport {
    /// Adds a batch; addresses already on the list are left as they are.
    pub async fn add(&mut self, readers: &[ImportedSubscriber]) -> Result<(), StoreError> {
        for chunk in readers.chunks(IMPORT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "insert into subscribers (email, name, status, created_at, confirmed_at, unsubscribed_at) \
                 values {} on conflict (email) do nothing",
                super::value_rows(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.email.as_str())
                    .bind(r.name.as_ref().map(SubscriberName::as_str))
                    .bind(r.status.as_str())
                    .bind(r.created_at)
                    .bind(r.confirmed_at)
                    .bind(r.unsubscribed_at);
            }
            self.added += query.execute(&mut *self.tx).await?.rows_affected();
        }
        Ok(())
    }

    /// Stores everything added; returns how many readers were new.
    pub async fn commit(self) -> Result<u64, StoreError> {
        self.tx.commit().await?;
        Ok(self.added)
    }
}
