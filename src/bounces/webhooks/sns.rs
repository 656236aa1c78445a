//! Amazon SES notifications delivered by SNS. Every SNS message is signed
//! with a certificate SNS publishes; the certificate is fetched only from
//! the configured hosts (Amazon's, in production) and only notifications of
//! the configured topics are taken. Subscription confirmations are
//! answered by visiting the confirmation link, under the same host rule.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{
    UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
};
use serde::Deserialize;
use url::Url;
use x509_cert::der::DecodePem;
use x509_cert::Certificate;

use super::{malformed, WebhookError};
use crate::bounces::{BounceKind, ProviderEvent};
use crate::config::WebhookSettings;

/// What an SNS call was.
#[derive(Debug)]
pub enum SnsOutcome {
    /// The subscription was confirmed.
    Subscribed,
    /// A notification, with the bounces and complaints it reports.
    Events(Vec<ProviderEvent>),
    /// Nothing for us (an unsubscribe confirmation, a delivery notice).
    Ignored,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    #[serde(default)]
    subject: Option<String>,
    message: String,
    timestamp: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

/// Verifies one SNS call and reads it.
pub async fn ses_events(
    body: &[u8],
    settings: &WebhookSettings,
) -> Result<SnsOutcome, WebhookError> {
    if settings.ses_topic_arns.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    let message: SnsMessage = serde_json::from_slice(body).map_err(malformed)?;
    if !settings.ses_topic_arns.contains(&message.topic_arn) {
        return Err(WebhookError::Unauthorized(
            "notifications of this topic are not taken",
        ));
    }
    let cert_url = allowed_url(&message.signing_cert_url, &settings.sns_certificate_hosts).ok_or(
        WebhookError::Unauthorized("the signing certificate is not on an SNS host"),
    )?;
    let key = public_key(&cert_url).await?;
    let signature = STANDARD
        .decode(&message.signature)
        .map_err(|_| WebhookError::Unauthorized("the signature is not valid"))?;
    let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
        match message.signature_version.as_str() {
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(WebhookError::Unauthorized("unknown signature version")),
        };
    UnparsedPublicKey::new(algorithm, &key)
        .verify(string_to_sign(&message)?.as_bytes(), &signature)
        .map_err(|_| WebhookError::Unauthorized("the signature is not valid"))?;

    match message.kind.as_str() {
        "SubscriptionConfirmation" => {
            let url = message
                .subscribe_url
                .as_deref()
                .and_then(|u| allowed_url(u, &settings.sns_certificate_hosts))
                .ok_or(WebhookError::Unauthorized(
                    "the subscription link is not on an SNS host",
                ))?;
            let response =
                CLIENT.get(url).send().await.map_err(|e| {
                    WebhookError::Upstream(format!("confirming the subscription: {e}"))
                })?;
            if !response.status().is_success() {
                return Err(WebhookError::Upstream(format!(
                    "confirming the subscription: SNS answered {}",
                    response.status()
                )));
            }
            tracing::info!(topic = %message.topic_arn, "SNS subscription confirmed");
            Ok(SnsOutcome::Subscribed)
        }
        "Notification" => Ok(SnsOutcome::Events(ses_notification(&message.message)?)),
        _ => Ok(SnsOutcome::Ignored),
    }
}

/// The canonical text SNS signs: named fields in a fixed order, each name
/// and value on a line of its own.
fn string_to_sign(m: &SnsMessage) -> Result<String, WebhookError> {
    let mut fields: Vec<(&str, &str)> = vec![("Message", &m.message), ("MessageId", &m.message_id)];
    match m.kind.as_str() {
        "Notification" => {
            if let Some(subject) = &m.subject {
                fields.push(("Subject", subject));
            }
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let url = m
                .subscribe_url
                .as_deref()
                .ok_or_else(|| malformed("no SubscribeURL"))?;
            fields.push(("SubscribeURL", url));
        }
        other => return Err(malformed(format!("unknown message type {other:?}"))),
    }
    fields.push(("Timestamp", &m.timestamp));
    if m.kind != "Notification" {
        let token = m.token.as_deref().ok_or_else(|| malformed("no Token"))?;
        fields.push(("Token", token));
    }
    fields.push(("TopicArn", &m.topic_arn));
    fields.push(("Type", &m.kind));
    Ok(fields
        .into_iter()
        .map(|(name, value)| format!("{name}\n{value}\n"))
        .collect())
}

/// `url` when its host is allowed: HTTPS only, except on a loopback
/// address (for tests).
fn allowed_url(url: &str, hosts: &[String]) -> Option<Url> {
    let url = Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let loopback = host
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return None;
    }
    hosts
        .iter()
        .any(|allowed| host_matches(&host, &allowed.to_ascii_lowercase()))
        .then_some(url)
}

/// Whether `host` is what `allowed` names: `.suffix` any host under it,
/// `*` one label shaped like an AWS region (`sns.*.amazonaws.com`: SNS in
/// any region, but not a bucket named "sns" at `sns.s3.amazonaws.com` or
/// `sns.s3-external-1.amazonaws.com`), anything else that host only.
fn host_matches(host: &str, allowed: &str) -> bool {
    if let Some(suffix) = allowed.strip_prefix('.') {
        return host.ends_with(&format!(".{suffix}"));
    }
    let (mut labels, mut pattern) = (host.split('.'), allowed.split('.'));
    loop {
        match (labels.next(), pattern.next()) {
            (None, None) => return true,
            (Some(label), Some("*")) if is_region(label) => {}
            (Some(label), Some(expected)) if label == expected => {}
            _ => return false,
        }
    }
}

/// `us-east-1`, `eu-west-2`, `us-gov-west-1`, `cn-north-1`: a two-letter
/// area, words, a number.
fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Hosts SNS signs from, in every region (its certificates and its
/// subscription links are on `sns.<region>.amazonaws.com`).
pub const SNS_HOSTS: [&str; 2] = ["sns.*.amazonaws.com", "sns.*.amazonaws.com.cn"];

/// A certificate is a few kilobytes; an answer longer than this is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with static settings")
});

/// Signing keys by certificate URL: SNS uses few certificates, each for
/// a long time.
static KEYS: LazyLock<Mutex<HashMap<String, Vec<u8>>>> = LazyLock::new(Mutex::default);

async fn public_key(url: &Url) -> Result<Vec<u8>, WebhookError> {
    if let Some(key) = KEYS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(url.as_str())
    {
        return Ok(key.clone());
    }
    let fetch_failed =
        |e: String| WebhookError::Upstream(format!("fetching the SNS certificate: {e}"));
    let response = CLIENT
        .get(url.clone())
        .send()
        .await
        .map_err(|e| fetch_failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fetch_failed(format!("answered {}", response.status())));
    }
    let mut response = response;
    let mut pem = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fetch_failed(e.to_string()))?
    {
        if pem.len() + chunk.len() > MAX_CERTIFICATE_BYTES {
            return Err(fetch_failed(format!(
                "longer than {MAX_CERTIFICATE_BYTES} bytes, not a certificate"
            )));
        }
        pem.extend_from_slice(&chunk);
    }
    let cert = Certificate::from_pem(&pem).map_err(|e| fetch_failed(e.to_string()))?;
    let key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if keys.len() > 64 {
        keys.clear();
    }
    keys.insert(url.to_string(), key.clone());
    Ok(key)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesNotification {
    #[serde(default)]
    notification_type: Option<String>,
    /// Configuration-set event publishing names it so.
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    bounce: Option<SesBounce>,
    #[serde(default)]
    complaint: Option<SesComplaint>,
    #[serde(default)]
    mail: Option<SesMail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<SesRecipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    complained_recipients: Vec<SesRecipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    #[serde(default)]
    common_headers: Option<SesCommonHeaders>,
    /// When SES took the message from us (RFC 3339).
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesCommonHeaders {
    #[serde(default)]
    message_id: Option<String>,
}

/// The bounces and complaints in an SES notification.
fn ses_notification(text: &str) -> Result<Vec<ProviderEvent>, WebhookError> {
    let n: SesNotification = serde_json::from_str(text).map_err(malformed)?;
    let sent_by = n
        .mail
        .as_ref()
        .and_then(|m| m.timestamp.as_deref())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    let message_id = n
        .mail
        .and_then(|m| m.common_headers)
        .and_then(|h| h.message_id);
    let kind = n.notification_type.or(n.event_type).unwrap_or_default();
    let events = match (kind.as_str(), n.bounce, n.complaint) {
        ("Bounce", Some(bounce), _) => {
            // A permanent refusal of the message (its size, its content)
            // is not the address's end.
            let kind = match (
                bounce.bounce_type.as_str(),
                bounce.bounce_sub_type.as_deref(),
            ) {
                (
                    "Permanent",
                    Some(
                        "MessageTooLarge"
                        | "ContentRejected"
                        | "AttachmentRejected"
                        | "UnsupportedAttachment",
                    ),
                ) => BounceKind::Soft,
                ("Permanent", _) => BounceKind::Hard,
                _ => BounceKind::Soft,
            };
            bounce
                .bounced_recipients
                .into_iter()
                .map(|r| ProviderEvent {
                    kind,
                    recipient: r.email_address,
                    message_id: message_id.clone(),
                    status: r.status,
                    diagnostic: r.diagnostic_code.unwrap_or_default(),
                    sent_by,
                })
                .collect()
        }
        ("Complaint", _, Some(complaint))
            if complaint.complaint_feedback_type.as_deref() != Some("not-spam") =>
        {
            complaint
                .complained_recipients
                .into_iter()
                .map(|r| ProviderEvent {
                    kind: BounceKind::Complaint,
                    recipient: r.email_address,
                    message_id: message_id.clone(),
                    status: None,
                    diagnostic: complaint
                        .complaint_feedback_type
                        .clone()
                        .unwrap_or_default(),
                    sent_by,
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_refusal_of_the_message_is_soft() {
        let bounce = |subtype: &str| {
            format!(
                r#"{{"notificationType":"Bounce","bounce":{{"bounceType":"Permanent",
                "bounceSubType":"{subtype}","bouncedRecipients":[{{"emailAddress":"a@example.org"}}]}}}}"#
            )
        };
        let kind = |subtype: &str| ses_notification(&bounce(subtype)).unwrap()[0].kind;
        assert_eq!(kind("General"), BounceKind::Hard);
        assert_eq!(kind("NoEmail"), BounceKind::Hard);
        assert_eq!(kind("MessageTooLarge"), BounceKind::Soft);
        assert_eq!(kind("ContentRejected"), BounceKind::Soft);
    }

    #[test]
    fn only_listed_hosts_serve_certificates() {
        let aws: Vec<String> = SNS_HOSTS.iter().map(|h| h.to_string()).collect();
        // A site anyone can put a file on, under Amazon's name.
        assert!(allowed_url("https://evil-bucket.s3.amazonaws.com/c.pem", &aws).is_none());
        assert!(allowed_url("https://sns.eu-west-1.evil.amazonaws.com/c.pem", &aws).is_none());
        assert!(allowed_url("https://sns..amazonaws.com/c.pem", &aws).is_none());
        // A bucket named "sns", on the hosts S3 serves buckets from.
        for host in [
            "sns.s3.amazonaws.com",
            "sns.s3-accelerate.amazonaws.com",
            "sns.s3-external-1.amazonaws.com",
            "sns.s3-website-us-east-1.amazonaws.com",
        ] {
            assert!(
                allowed_url(&format!("https://{host}/c.pem"), &aws).is_none(),
                "{host}"
            );
        }
        assert!(allowed_url("https://sns.us-gov-west-1.amazonaws.com/c.pem", &aws).is_some());
        assert!(allowed_url(
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
            &aws
        )
        .is_some());
        assert!(allowed_url(
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            &aws
        )
        .is_some());
        assert!(allowed_url("http://sns.eu-west-1.amazonaws.com/x.pem", &aws).is_none());
        assert!(allowed_url("https://amazonaws.com.evil.example/x.pem", &aws).is_none());
        assert!(allowed_url("https://evilamazonaws.com/x.pem", &aws).is_none());
        assert!(allowed_url("http://127.0.0.1:9/x.pem", &aws).is_none());
        let local = vec!["127.0.0.1".to_string()];
        assert!(allowed_url("http://127.0.0.1:9/x.pem", &local).is_some());
    }
}
