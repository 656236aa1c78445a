//! SendGrid: the signed event webhook. Each call carries an ECDSA P-256
//! signature of the timestamp and the body, checked with the verification
//! key SendGrid shows.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde::Deserialize;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{check_age, malformed, WebhookError};
use crate::bounces::{classify, BounceKind, ProviderEvent};

/// The verification key: base64 of a DER SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct SendgridKey(Vec<u8>);

#[derive(Debug, thiserror::Error)]
#[error("not a base64 EC public key: {0}")]
pub struct SendgridKeyError(String);

impl SendgridKey {
    pub fn parse(base64: &str) -> Result<Self, SendgridKeyError> {
        let der = STANDARD
            .decode(base64.trim())
            .map_err(|e| SendgridKeyError(e.to_string()))?;
        let spki = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| SendgridKeyError(e.to_string()))?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| SendgridKeyError("the key has unused bits".into()))?;
        Ok(SendgridKey(point.to_vec()))
    }
}

#[derive(Deserialize)]
struct Event {
    email: String,
    event: String,
    #[serde(default, rename = "type")]
    bounce_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default, rename = "smtp-id")]
    smtp_id: Option<String>,
}

/// The events of one SendGrid call, after checking its signature.
pub fn sendgrid_events(
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    key: Option<&str>,
    max_age_secs: i64,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let key = key.ok_or(WebhookError::NotConfigured)?;
    let key = SendgridKey::parse(key).map_err(|_| WebhookError::NotConfigured)?;
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(WebhookError::Unauthorized(
            "the request is not signed (turn on the signed event webhook)",
        ));
    };
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| WebhookError::Unauthorized("the signature is not valid"))?;
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.0)
        .verify(&signed, &signature)
        .map_err(|_| WebhookError::Unauthorized("the signature is not valid"))?;
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::Unauthorized("the signed timestamp is not a number"))?;
    check_age(timestamp, max_age_secs)?;

    let events: Vec<Event> = serde_json::from_slice(body).map_err(malformed)?;
    Ok(events
        .into_iter()
        .filter_map(|e| {
            let diagnostic = e.reason.unwrap_or_default();
            let kind = match (e.event.as_str(), e.bounce_type.as_deref()) {
                ("spamreport", _) => BounceKind::Complaint,
                ("bounce", Some("blocked")) => BounceKind::Soft,
                ("bounce", _) => classify(e.status.as_deref(), &diagnostic),
                // Deferrals are still being tried; drops are SendGrid's
                // own suppression list at work.
                _ => return None,
            };
            Some(ProviderEvent {
                kind,
                recipient: e.email,
                message_id: e.smtp_id,
                status: e.status,
                diagnostic,
                // Signed recently: the age limit.
                sent_by: None,
            })
        })
        .collect())
}
