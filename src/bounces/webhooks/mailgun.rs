//! Mailgun: `failed` and `complained` events, signed with HMAC-SHA256 of
//! the timestamp and token under the webhook signing key.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{check_age, malformed, WebhookError};
use crate::bounces::{classify, BounceKind, ProviderEvent};

#[derive(Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event: Event,
}

#[derive(Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    severity: Option<String>,
    recipient: String,
    #[serde(default)]
    message: Option<MessageInfo>,
    #[serde(default, rename = "delivery-status")]
    delivery_status: Option<DeliveryStatus>,
}

#[derive(Deserialize)]
struct MessageInfo {
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize)]
struct Headers {
    #[serde(default, rename = "message-id")]
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct DeliveryStatus {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A call taken: the digest of its body and its signed time.
type Taken = ([u8; 32], i64);

/// Tokens of the calls taken within the age limit. Kept by each process.
static TAKEN: LazyLock<Mutex<HashMap<String, Taken>>> = LazyLock::new(Mutex::default);
/// Calls remembered at most; past it, calls wait for old ones to age out.
const MAX_TAKEN: usize = 100_000;

/// Mailgun signs the timestamp and the token, not the events: a signature
/// seen once is taken again only on the same body (Mailgun retrying a call
/// it thinks failed), never carrying other events, as Mailgun asks
/// receivers to make sure by keeping the tokens.
fn take_token(
    token: &str,
    body: &[u8],
    timestamp: i64,
    max_age_secs: i64,
) -> Result<(), WebhookError> {
    let digest: [u8; 32] = Sha256::digest(body).into();
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, _)) = taken.get(token) {
        return match *seen == digest {
            true => Ok(()),
            false => Err(WebhookError::Unauthorized(
                "this signature came before with other events",
            )),
        };
    }
    if taken.len() >= MAX_TAKEN {
        let now = chrono::Utc::now().timestamp();
        taken.retain(|_, (_, at)| (now - *at).abs() <= max_age_secs);
        if taken.len() >= MAX_TAKEN {
            return Err(WebhookError::Upstream(
                "too many Mailgun calls within the age limit".into(),
            ));
        }
    }
    taken.insert(token.to_string(), (digest, timestamp));
    Ok(())
}

/// The events of one Mailgun webhook call, after checking its signature.
pub fn mailgun_events(
    body: &[u8],
    key: Option<&SecretString>,
    max_age_secs: i64,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let key = key.ok_or(WebhookError::NotConfigured)?;
    let raw = body;
    let body: Body = serde_json::from_slice(raw).map_err(malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body.signature.timestamp.as_bytes());
    mac.update(body.signature.token.as_bytes());
    let given = hex_decode(&body.signature.signature)
        .ok_or(WebhookError::Unauthorized("the signature is not valid"))?;
    mac.verify_slice(&given)
        .map_err(|_| WebhookError::Unauthorized("the signature is not valid"))?;
    let timestamp: i64 = body
        .signature
        .timestamp
        .parse()
        .map_err(|_| WebhookError::Unauthorized("the signed timestamp is not a number"))?;
    check_age(timestamp, max_age_secs)?;
    take_token(&body.signature.token, raw, timestamp, max_age_secs)?;

    let event = body.event;
    let (status, diagnostic) = match &event.delivery_status {
        Some(d) => (
            d.code
                .as_ref()
                .map(|c| c.to_string().trim_matches('"').to_string()),
            d.message
                .clone()
                .filter(|m| !m.is_empty())
                .or_else(|| d.description.clone())
                .unwrap_or_default(),
        ),
        None => (None, String::new()),
    };
    let kind = match (event.event.as_str(), event.severity.as_deref()) {
        ("complained", _) => BounceKind::Complaint,
        // A temporary failure is retried by Mailgun itself; only its
        // final verdict counts.
        ("failed", Some("permanent")) => classify(status.as_deref(), &diagnostic),
        _ => return Ok(Vec::new()),
    };
    let message_id = event
        .message
        .and_then(|m| m.headers)
        .and_then(|h| h.message_id);
    Ok(vec![ProviderEvent {
        kind,
        recipient: event.recipient,
        message_id,
        status,
        diagnostic,
        // Signed recently (the age limit) and kept by token.
        sent_by: None,
    }])
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
