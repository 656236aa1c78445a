//! Outgoing webhooks: other software (a CRM, a shop, a chat channel) learns
//! what happens here, as signed JSON POSTs.
//!
//! An event is written to the `webhook_events` table in the transaction of
//! the change it describes, so a sign-up that is stored always has its event
//! and one that is rolled back never does. The workers then give every
//! configured endpoint that wants it a delivery of its own, post it with a
//! signature, and retry with back-off, as the mail outbox does.
//!
//! Not to be confused with [`crate::bounces::webhooks`], which receives the
//! bounce reports of sending providers.

mod sender;
pub mod signature;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use sender::WebhookSender;

/// What happened. The wire names (`subscriber.created`, …) are the ones
/// receivers see and settings name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// Someone signed up; they are pending until they confirm (or added
    /// as confirmed through the API with their consent).
    #[serde(rename = "subscriber.created")]
    SubscriberCreated,
    #[serde(rename = "subscriber.confirmed")]
    SubscriberConfirmed,
    #[serde(rename = "subscriber.unsubscribed")]
    SubscriberUnsubscribed,
    /// The address bounced and is no longer mailed.
    #[serde(rename = "subscriber.bounced")]
    SubscriberBounced,
    /// The reader marked the newsletter as spam and is no longer mailed.
    #[serde(rename = "subscriber.complained")]
    SubscriberComplained,
    /// A send has no delivery left to try.
    #[serde(rename = "send.finished")]
    SendFinished,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::SubscriberCreated,
        EventKind::SubscriberConfirmed,
        EventKind::SubscriberUnsubscribed,
        EventKind::SubscriberBounced,
        EventKind::SubscriberComplained,
        EventKind::SendFinished,
    ];

    /// The wire name, also stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SubscriberCreated => "subscriber.created",
            EventKind::SubscriberConfirmed => "subscriber.confirmed",
            EventKind::SubscriberUnsubscribed => "subscriber.unsubscribed",
            EventKind::SubscriberBounced => "subscriber.bounced",
            EventKind::SubscriberComplained => "subscriber.complained",
            EventKind::SendFinished => "send.finished",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event, ready to be stored and sent.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique per event, the same in every retry: receivers de-duplicate on it.
    pub id: uuid::Uuid,
    pub kind: EventKind,
    /// Unix milliseconds.
    pub at: i64,
    pub data: Value,
}

/// A reader as events describe them: what a receiver needs to find the
/// person in its own records, and nothing secret (no tokens).
#[derive(Debug, Clone, Serialize)]
pub struct ReaderFacts<'a> {
    pub id: i64,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub status: &'a str,
}

/// A finished send and what became of its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct SendFacts {
    pub report_id: i64,
    pub slug: String,
    pub title: String,
    pub started_at: Option<i64>,
    pub finished_at: i64,
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

impl Event {
    fn new(kind: EventKind, at: i64, data: Value) -> Event {
        Event {
            id: uuid::Uuid::new_v4(),
            kind,
            at,
            data,
        }
    }

    /// A sign-up, confirmation or departure.
    pub fn subscriber(kind: EventKind, at: i64, reader: &ReaderFacts<'_>) -> Event {
        Event::new(kind, at, json!({ "subscriber": reader }))
    }

    /// An address suppressed after a bounce or complaint. `reader` is absent
    /// when the address belongs to nobody on the list any more.
    pub fn suppressed(
        kind: EventKind,
        at: i64,
        email: &str,
        reader: Option<&ReaderFacts<'_>>,
        source: &str,
        detail: &str,
        report_id: Option<i64>,
    ) -> Event {
        Event::new(
            kind,
            at,
            json!({
                "email": email,
                "subscriber": reader,
                "source": source,
                "detail": detail,
                "report_id": report_id,
            }),
        )
    }

    /// A send that has nothing left to try.
    pub fn send_finished(send: &SendFacts) -> Event {
        Event::new(
            EventKind::SendFinished,
            send.finished_at,
            json!({
                "report": { "id": send.report_id, "slug": send.slug, "title": send.title },
                "send": {
                    "started_at": send.started_at.map(rfc3339),
                    "finished_at": rfc3339(send.finished_at),
                    "total": send.total,
                    "delivered": send.delivered,
                    "failed": send.failed,
                    "skipped": send.skipped,
                    "cancelled": send.cancelled,
                },
            }),
        )
    }

    /// The JSON body as it is stored, signed and sent.
    pub fn body(&self) -> String {
        json!({
            "id": self.id.to_string(),
            "type": self.kind.as_str(),
            "created_at": rfc3339(self.at),
            "data": self.data,
        })
        .to_string()
    }
}

/// Unix milliseconds as RFC 3339 in UTC, to the millisecond.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let named: EventKind =
                serde_json::from_value(Value::String(kind.as_str().into())).unwrap();
            assert_eq!(named, kind);
        }
        assert_eq!(EventKind::parse("subscriber.deleted"), None);
    }

    #[test]
    fn a_body_names_its_event_and_time() {
        let reader = ReaderFacts {
            id: 7,
            email: "ann@example.com",
            name: None,
            status: "pending",
        };
        let event = Event::subscriber(EventKind::SubscriberCreated, 1_700_000_000_123, &reader);
        let body: Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["id"], event.id.to_string());
        assert_eq!(body["type"], "subscriber.created");
        assert_eq!(body["created_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["data"]["subscriber"]["email"], "ann@example.com");
    }
}
