//! Readers added by another system as already confirmed, with the consent
//! that system recorded.

use sqlx::Row;

use super::subscribers::{subscriber_from_row, SUBSCRIBER_COLUMNS};
use super::{now_ms, Store, StoreError, Subscriber};
use crate::domain::{SubscriberEmail, SubscriberName};

/// When and where a reader said yes, as another system recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Consent {
    /// Unix milliseconds.
    pub consent_at: i64,
    pub source: String,
}

/// What adding a pre-confirmed reader did.
#[derive(Debug, Clone)]
pub enum PreconfirmedOutcome {
    Added(Subscriber),
    /// The address was already on the list; it is left as it is (someone
    /// who unsubscribed is not put back by another system's say-so).
    Exists(Subscriber),
}

impl Store {
    /// Adds `email` as confirmed with its consent record, in one
    /// transaction.
    pub async fn add_preconfirmed(
        &self,
        email: &SubscriberEmail,
        name: Option<&SubscriberName>,
        consent: &Consent,
    ) -> Result<PreconfirmedOutcome, StoreError> {
        let now = now_ms();
        // Read before the transaction: on SQLite the key's first read needs
        // the one write connection the transaction would hold.
        let ids = self.reader_ids().await?;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "insert into subscribers (email, name, status, created_at, confirmed_at) \
             values ($1, $2, 'confirmed', $3, $4) on conflict (email) do nothing",
        )
        .bind(email.as_str())
        .bind(name.map(SubscriberName::as_str))
        .bind(now)
        .bind(consent.consent_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sql = format!("select {SUBSCRIBER_COLUMNS} from subscribers where email = $1");
        let subscriber = subscriber_from_row(
            ids,
            &sqlx::query(&sql)
                .bind(email.as_str())
                .fetch_one(&mut *tx)
                .await?,
        )?;
        if inserted == 0 {
            tx.commit().await?;
            return Ok(PreconfirmedOutcome::Exists(subscriber));
        }
        sqlx::query(
            "insert into subscriber_consents (subscriber_id, consent_at, source, recorded_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(subscriber.id)
        .bind(consent.consent_at)
        .bind(&consent.source)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::events::record_added_reader(&mut tx, &self.events, ids, subscriber.id, now).await?;
        tx.commit().await?;
        Ok(PreconfirmedOutcome::Added(subscriber))
    }

    /// The consent recorded for a pre-confirmed reader, if any.
    pub async fn consent_of(&self, subscriber_id: i64) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query(
            "select consent_at, source from subscriber_consents where subscriber_id = $1",
        )
        .bind(subscriber_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(Consent {
                consent_at: row.try_get("consent_at")?,
                source: row.try_get("source")?,
            })
        })
        .transpose()
    }
}
