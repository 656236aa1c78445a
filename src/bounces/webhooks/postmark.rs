//! Postmark: bounce and spam-complaint webhooks, authenticated with the
//! basic-auth user and password put in the webhook URL.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{malformed, WebhookError};
use crate::bounces::{BounceKind, ProviderEvent};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Body {
    record_type: String,
    #[serde(default, rename = "Type")]
    bounce_type: Option<String>,
    email: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

/// The event of one Postmark webhook call. `authorization` is the request's
/// `Authorization` header.
pub fn postmark_events(
    body: &[u8],
    authorization: Option<&str>,
    username: Option<&SecretString>,
    password: Option<&SecretString>,
) -> Result<Vec<ProviderEvent>, WebhookError> {
    let (Some(username), Some(password)) = (username, password) else {
        return Err(WebhookError::NotConfigured);
    };
    let expected = format!("{}:{}", username.expose_secret(), password.expose_secret());
    let given = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .unwrap_or_default();
    if !bool::from(given.ct_eq(expected.as_bytes())) {
        return Err(WebhookError::Unauthorized(
            "send the webhook's basic-auth user and password",
        ));
    }
    let body: Body = serde_json::from_slice(body).map_err(malformed)?;
    let kind = match (body.record_type.as_str(), body.bounce_type.as_deref()) {
        ("SpamComplaint", _) => BounceKind::Complaint,
        ("Bounce", Some("HardBounce" | "BadEmailAddress" | "ManuallyDeactivated")) => {
            BounceKind::Hard
        }
        ("Bounce", Some("SoftBounce" | "Transient" | "DnsError" | "SpamNotification")) => {
            BounceKind::Soft
        }
        // Auto-responders, challenge-verification requests and the like
        // are Postmark's "bounces" too, but not ours.
        _ => return Ok(Vec::new()),
    };
    Ok(vec![ProviderEvent {
        kind,
        recipient: body.email,
        message_id: None,
        status: None,
        diagnostic: body
            .details
            .filter(|d| !d.is_empty())
            .or(body.description)
            .unwrap_or_default(),
        sent_by: None,
    }])
}
