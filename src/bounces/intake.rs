//! One way in for every bounce: find the delivery it is about, record it,
//! and let the store suppress the address when it calls for that.

use super::parse::{read_notice, Failure, NoticeKind};
use super::{BounceAddress, BounceKind};
use crate::config::BounceSettings;
use crate::domain::Signer;
use crate::store::{now_ms, BouncedDelivery, NewBounce, SoftBouncePolicy, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// Why a bounce could not be taken now; the sender should try again.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeResult {
    /// Bounces or complaints recorded against these deliveries.
    Recorded(Vec<Recorded>),
    /// Not a bounce (an auto-reply, a delay notice, …): nobody is affected.
    NotABounce(&'static str),
    /// It names one of our VERP addresses with a token we did not sign:
    /// forged or altered, and refused.
    Forged,
    /// A bounce, but of no delivery we can identify.
    Unmatched,
}

/// One recorded bounce or complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub recipient: String,
    pub kind: BounceKind,
    /// Recorded before (a repeated webhook or message).
    pub duplicate: bool,
    pub suppressed: bool,
}

/// A provider's report of one recipient, already authenticated.
#[derive(Debug, Clone)]
pub struct ProviderEvent {
    pub kind: BounceKind,
    pub recipient: String,
    /// The Message-ID we gave the message, when the provider passes it on.
    pub message_id: Option<String>,
    pub status: Option<String>,
    pub diagnostic: String,
    /// When the provider had the message (ms since the epoch), when it
    /// says: a report cannot be about a message we sent after that.
    pub sent_by: Option<i64>,
}

/// Clocks disagree: a delivery recorded this long after the provider says
/// it had the message may still be the one.
const CLOCK_SLACK_MS: i64 = 10 * 60 * 1000;

/// The bounce intake, shared by the command, the mailbox poller and the
/// webhooks.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    signer: Signer,
    bounce_address: Option<BounceAddress>,
    settings: BounceSettings,
}

impl Intake {
    pub fn new(
        store: Store,
        signer: Signer,
        bounce_address: Option<BounceAddress>,
        settings: BounceSettings,
    ) -> Self {
        Intake {
            store,
            signer,
            bounce_address,
            settings,
        }
    }

    fn policy(&self) -> SoftBouncePolicy {
        SoftBouncePolicy {
            limit: self.settings.soft_bounce_limit,
            window_ms: self.settings.soft_bounce_days * DAY_MS,
        }
    }

    /// Takes one raw bounce message. `envelope_recipient` is the address
    /// the MTA delivered it to, when known (the VERP address).
    pub async fn ingest_message(
        &self,
        raw: &[u8],
        source: &str,
        envelope_recipient: Option<&str>,
    ) -> Result<IntakeResult, IntakeError> {
        let notice = read_notice(raw);
        let candidates: Vec<&str> = envelope_recipient
            .into_iter()
            .chain(notice.verp_candidates.iter().map(String::as_str))
            .collect();
        let verp = self.verp_delivery(&candidates);
        let outcome = match (&notice.kind, &verp) {
            (NoticeKind::NotABounce(why), _) => *why,
            (_, Verp::Forged) => "refused: forged bounce address",
            (NoticeKind::Bounce(_), _) => "bounce",
            (NoticeKind::Complaint(_), _) => "complaint",
        };
        let message_id = self.keep_raw(source, outcome, raw).await?;
        let kept = Kept { source, message_id };
        let result = match (notice.kind, verp) {
            (NoticeKind::NotABounce(why), _) => IntakeResult::NotABounce(why),
            (_, Verp::Forged) => IntakeResult::Forged,
            (kind, Verp::Delivery(id)) => match self.store.bounced_delivery(id).await? {
                Some(delivery) => self.record_by_token(kind, &delivery, kept).await?,
                None => IntakeResult::Unmatched,
            },
            // Without a token, only the returned message's Message-ID
            // together with the recipient ties a bounce to a delivery:
            // an address alone would let anyone suppress anyone.
            (kind, Verp::None) => {
                let Some(original) = notice.original_message_id else {
                    return Ok(logged(source, IntakeResult::Unmatched));
                };
                self.record_by_message_id(kind, &original, kept).await?
            }
        };
        Ok(logged(source, result))
    }

    /// A bounce or complaint whose VERP token named `delivery`.
    async fn record_by_token(
        &self,
        kind: NoticeKind,
        delivery: &BouncedDelivery,
        kept: Kept<'_>,
    ) -> Result<IntakeResult, IntakeError> {
        let what = match &kind {
            NoticeKind::Bounce(failures) => match failure_for(failures, &delivery.recipient) {
                Some(failure) => What::from(failure),
                None => return Ok(IntakeResult::Unmatched),
            },
            NoticeKind::Complaint(_) => What::COMPLAINT,
            NoticeKind::NotABounce(why) => return Ok(IntakeResult::NotABounce(why)),
        };
        let recorded = self.record(what, delivery, kept).await?;
        Ok(IntakeResult::Recorded(vec![recorded]))
    }

    /// A bounce or complaint without a token: each recipient it names is
    /// looked up with the Message-ID of the message that came back.
    async fn record_by_message_id(
        &self,
        kind: NoticeKind,
        original: &str,
        kept: Kept<'_>,
    ) -> Result<IntakeResult, IntakeError> {
        let named: Vec<(&str, What)> = match &kind {
            NoticeKind::Bounce(failures) => failures
                .iter()
                .filter_map(|f| Some((f.recipient.as_deref()?, What::from(f))))
                .collect(),
            NoticeKind::Complaint(complaint) => complaint
                .recipient
                .as_deref()
                .map(|r| (r, What::COMPLAINT))
                .into_iter()
                .collect(),
            NoticeKind::NotABounce(why) => return Ok(IntakeResult::NotABounce(why)),
        };
        let mut recorded = Vec::new();
        for (recipient, what) in named {
            if let Some(delivery) = self
                .store
                .delivery_by_message_id(original, recipient)
                .await?
            {
                recorded.push(self.record(what, &delivery, kept).await?);
            }
        }
        Ok(if recorded.is_empty() {
            IntakeResult::Unmatched
        } else {
            IntakeResult::Recorded(recorded)
        })
    }

    /// Takes authenticated provider events; `raw` is the request body, kept
    /// like a bounce message.
    pub async fn ingest_events(
        &self,
        events: &[ProviderEvent],
        source: &str,
        raw: &[u8],
    ) -> Result<Vec<Recorded>, IntakeError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let message_id = self.keep_raw(source, "webhook", raw).await?;
        let kept = Kept { source, message_id };
        let mut recorded = Vec::new();
        for event in events {
            let delivery = match &event.message_id {
                Some(id) => {
                    self.store
                        .delivery_by_message_id(id, &event.recipient)
                        .await?
                }
                None => None,
            };
            let delivery = match delivery {
                Some(d) => Some(d),
                // Without a Message-ID, the latest delivery to the address
                // sent before the provider had the message: an old report
                // replayed cannot land on a newer delivery.
                None => {
                    let sent_by = event.sent_by.map(|t| t.saturating_add(CLOCK_SLACK_MS));
                    self.store
                        .latest_delivery_to(&event.recipient, sent_by)
                        .await?
                }
            };
            let Some(delivery) = delivery else {
                tracing::info!(source, "a provider reported an address we never mailed");
                continue;
            };
            let what = What {
                kind: event.kind,
                status: event.status.as_deref(),
                diagnostic: &event.diagnostic,
            };
            recorded.push(self.record(what, &delivery, kept).await?);
        }
        log_result(source, &IntakeResult::Recorded(recorded.clone()));
        Ok(recorded)
    }

    /// Records one bounce against its delivery and counts it.
    async fn record(
        &self,
        what: What<'_>,
        delivery: &BouncedDelivery,
        kept: Kept<'_>,
    ) -> Result<Recorded, IntakeError> {
        let effect = self
            .store
            .record_bounce(
                &NewBounce {
                    kind: what.kind,
                    source: kept.source,
                    delivery,
                    status_code: what.status,
                    diagnostic: what.diagnostic,
                    message_id: Some(kept.message_id),
                    at: now_ms(),
                },
                self.policy(),
            )
            .await?;
        if !effect.duplicate {
            metrics::counter!(crate::metrics::BOUNCES, "kind" => what.kind.as_str(), "source" => kept.source.to_string())
                .increment(1);
        }
        Ok(Recorded {
            recipient: delivery.recipient.clone(),
            kind: what.kind,
            duplicate: effect.duplicate,
            suppressed: effect.suppressed.is_some(),
        })
    }

    /// Stores the raw message, cut to the configured size, and drops those
    /// past the retention period.
    async fn keep_raw(&self, source: &str, outcome: &str, raw: &[u8]) -> Result<i64, IntakeError> {
        let max = self.settings.raw_max_bytes;
        let truncated = raw.len() > max;
        let kept = String::from_utf8_lossy(&raw[..raw.len().min(max)]);
        let now = now_ms();
        let id = self
            .store
            .store_bounce_message(source, outcome, &kept, truncated, now)
            .await?;
        self.store
            .purge_bounce_messages(now - self.settings.raw_retention_days * DAY_MS)
            .await?;
        Ok(id)
    }

    fn verp_delivery(&self, candidates: &[&str]) -> Verp {
        let Some(bounce) = &self.bounce_address else {
            return Verp::None;
        };
        let mut forged = false;
        for candidate in candidates {
            match bounce.delivery_in(&self.signer, candidate) {
                Ok(Some(id)) => return Verp::Delivery(id),
                Ok(None) => {}
                Err(_) => forged = true,
            }
        }
        if forged {
            Verp::Forged
        } else {
            Verp::None
        }
    }
}

enum Verp {
    Delivery(i64),
    Forged,
    None,
}

/// What a notice says of one delivery.
#[derive(Clone, Copy)]
struct What<'a> {
    kind: BounceKind,
    status: Option<&'a str>,
    diagnostic: &'a str,
}

impl What<'_> {
    const COMPLAINT: What<'static> = What {
        kind: BounceKind::Complaint,
        status: None,
        diagnostic: "",
    };
}

impl<'a> From<&'a Failure> for What<'a> {
    fn from(failure: &'a Failure) -> Self {
        What {
            kind: failure.kind,
            status: failure.status.as_deref(),
            diagnostic: &failure.diagnostic,
        }
    }
}

/// Where a notice came from and the id of its kept copy.
#[derive(Clone, Copy)]
struct Kept<'a> {
    source: &'a str,
    message_id: i64,
}

/// The failure about `recipient`, or the first one: a forwarded address
/// comes back under its new name.
fn failure_for<'a>(failures: &'a [Failure], recipient: &str) -> Option<&'a Failure> {
    failures
        .iter()
        .find(|f| {
            f.recipient
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(recipient))
        })
        .or(failures.first())
}

/// `result`, once logged.
fn logged(source: &str, result: IntakeResult) -> IntakeResult {
    log_result(source, &result);
    result
}

fn log_result(source: &str, result: &IntakeResult) {
    match result {
        IntakeResult::Recorded(recorded) => {
            for r in recorded {
                tracing::info!(
                    source,
                    kind = r.kind.as_str(),
                    suppressed = r.suppressed,
                    duplicate = r.duplicate,
                    "bounce recorded"
                );
            }
        }
        IntakeResult::NotABounce(why) => tracing::info!(source, why, "not a bounce; ignored"),
        IntakeResult::Forged => {
            tracing::warn!(source, "a bounce with a forged delivery token was refused")
        }
        IntakeResult::Unmatched => tracing::info!(source, "a bounce of no known delivery"),
    }
}
