//! Provider webhooks, each with a genuine call and a forged one. Keys and
//! certificates are made for the test with OpenSSL, which also signs the
//! calls: the service's checks are verified against another implementation.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::bounces::{send_report_to, suppression_of};
use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(
    mailgun_calls_count_only_with_a_valid_signature,
    postmark_calls_count_only_with_the_webhook_password,
    sendgrid_calls_count_only_with_a_valid_signature,
    ses_notifications_count_only_when_sns_signed_them,
);

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces";

/// Runs openssl with `args`, feeding `input`; returns its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sign_with(key: &Path, digest: &str, data: &[u8]) -> String {
    STANDARD.encode(openssl(
        &["dgst", digest, "-sign", key.to_str().unwrap()],
        data,
    ))
}

async fn app_with_webhooks(
    backend: Backend,
    cert_host: &str,
    sendgrid_key: Option<String>,
) -> TestApp {
    let cert_host = cert_host.to_string();
    crate::bounces::app_with_bounce_address(backend, move |s| {
        let hooks = &mut s.bounces.webhooks;
        hooks.mailgun_signing_key = Some("mailgun-signing-key".to_string().into());
        hooks.postmark_username = Some("postmark".to_string().into());
        hooks.postmark_password = Some("a long webhook password".to_string().into());
        hooks.sendgrid_public_key = sendgrid_key;
        hooks.ses_topic_arns = vec![TOPIC.into()];
        hooks.sns_certificate_hosts = vec![cert_host];
    })
    .await
}

async fn post(
    app: &TestApp,
    provider: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = app
        .client
        .post(app.url(&format!("/webhooks/{provider}")))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn mailgun_body(key: &str, timestamp: i64, recipient: &str, event: &str) -> String {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "severity": "permanent",
            "reason": "bounce",
            "recipient": recipient,
            "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
            "message": {"headers": {"message-id": "unknown@example.com"}}
        }
    })
    .to_string()
}

async fn mailgun_calls_count_only_with_a_valid_signature(backend: Backend) {
    let app = app_with_webhooks(backend, "127.0.0.1", None).await;
    send_report_to(
        &app,
        &["mg-gone@example.org", "mg-kept@example.org"],
        "mailgun",
    )
    .await;
    let now = chrono::Utc::now().timestamp();

    let forged = mailgun_body("not-the-key", now, "mg-kept@example.org", "failed");
    let (status, body) = post(&app, "mailgun", &forged, &[]).await;
    assert_eq!(status, 401, "{body}");
    let replayed = mailgun_body(
        "mailgun-signing-key",
        now - 3600,
        "mg-kept@example.org",
        "failed",
    );
    assert_eq!(post(&app, "mailgun", &replayed, &[]).await.0, 401);
    assert_eq!(post(&app, "mailgun", "{not json", &[]).await.0, 400);
    assert_eq!(suppression_of(&app, "mg-kept@example.org").await, None);

    let genuine = mailgun_body("mailgun-signing-key", now, "mg-gone@example.org", "failed");
    let (status, body) = post(&app, "mailgun", &genuine, &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"recorded":1,"suppressed":1}"#)
    );
    assert_eq!(
        suppression_of(&app, "mg-gone@example.org").await.as_deref(),
        Some("bounced")
    );
    // Mailgun retries a call it thinks failed: counted once.
    assert_eq!(
        post(&app, "mailgun", &genuine, &[]).await.1,
        r#"{"recorded":0,"suppressed":1}"#
    );
    // Its signature covers the timestamp and token only: copied onto other
    // events (another reader), it is refused.
    let mut swapped: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    swapped["event-data"]["recipient"] = json!("mg-kept@example.org");
    let (status, body) = post(&app, "mailgun", &swapped.to_string(), &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(suppression_of(&app, "mg-kept@example.org").await, None);
}

async fn postmark_calls_count_only_with_the_webhook_password(backend: Backend) {
    let app = app_with_webhooks(backend, "127.0.0.1", None).await;
    send_report_to(
        &app,
        &["pm-angry@example.org", "pm-away@example.org"],
        "postmark",
    )
    .await;
    let complaint = json!({
        "RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512,
        "Email": "pm-angry@example.org", "Description": "The subscriber explicitly marked this message as spam."
    })
    .to_string();
    let good = format!(
        "Basic {}",
        STANDARD.encode("postmark:a long webhook password")
    );
    let bad = format!("Basic {}", STANDARD.encode("postmark:guess"));
    assert_eq!(
        post(&app, "postmark", &complaint, &[("authorization", &bad)])
            .await
            .0,
        401
    );
    assert_eq!(post(&app, "postmark", &complaint, &[]).await.0, 401);
    assert_eq!(suppression_of(&app, "pm-angry@example.org").await, None);
    let (status, _) = post(&app, "postmark", &complaint, &[("authorization", &good)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        suppression_of(&app, "pm-angry@example.org")
            .await
            .as_deref(),
        Some("complained")
    );
    // Postmark calls an auto-responder a bounce; it is not one.
    let auto = json!({
        "RecordType": "Bounce", "Type": "AutoResponder", "TypeCode": 1,
        "Email": "pm-away@example.org", "Description": "Automatic email responder"
    })
    .to_string();
    assert_eq!(
        post(&app, "postmark", &auto, &[("authorization", &good)])
            .await
            .0,
        200
    );
    assert_eq!(suppression_of(&app, "pm-away@example.org").await, None);
}

async fn sendgrid_calls_count_only_with_a_valid_signature(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sendgrid.pem");
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            key.to_str().unwrap(),
        ],
        b"",
    );
    let public = STANDARD.encode(openssl(
        &[
            "ec",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ],
        b"",
    ));
    let app = app_with_webhooks(backend, "127.0.0.1", Some(public)).await;
    send_report_to(
        &app,
        &["sg-gone@example.org", "sg-kept@example.org"],
        "sendgrid",
    )
    .await;
    let events = |email: &str| {
        json!([
            {"email": email, "timestamp": 1700000000, "event": "bounce", "type": "bounce",
             "status": "5.1.1", "reason": "550 5.1.1 unknown user", "smtp-id": "<x@example.com>"},
            {"email": "sg-kept@example.org", "timestamp": 1700000000, "event": "deferred",
             "response": "451 try later"}
        ])
        .to_string()
    };
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let body = events("sg-gone@example.org");
    let signature = sign_with(&key, "-sha256", format!("{timestamp}{body}").as_bytes());
    let headers = [
        ("x-twilio-email-event-webhook-signature", signature.as_str()),
        ("x-twilio-email-event-webhook-timestamp", timestamp.as_str()),
    ];
    // The same signature over a body that names someone else.
    let forged = events("sg-kept@example.org");
    assert_eq!(post(&app, "sendgrid", &forged, &headers).await.0, 401);
    assert_eq!(post(&app, "sendgrid", &body, &[]).await.0, 401);
    assert_eq!(suppression_of(&app, "sg-kept@example.org").await, None);
    let (status, text) = post(&app, "sendgrid", &body, &headers).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"recorded":1,"suppressed":1}"#)
    );
    assert_eq!(
        suppression_of(&app, "sg-gone@example.org").await.as_deref(),
        Some("bounced")
    );
    assert_eq!(suppression_of(&app, "sg-kept@example.org").await, None);
}

/// A local stand-in for SNS's certificate host and subscription link.
async fn sns_host(cert_pem: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let confirmations = Arc::new(AtomicUsize::new(0));
    let counter = confirmations.clone();
    let router = axum::Router::new()
        .route(
            "/SimpleNotificationService-test.pem",
            axum::routing::get(move || {
                let pem = cert_pem.clone();
                async move { pem }
            }),
        )
        .route(
            "/confirm",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "<ConfirmSubscriptionResponse/>" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (address, confirmations)
}

/// An SNS message signed as SNS signs: the named fields, in order.
fn sns_message(
    key: &Path,
    version: &str,
    fields: &[(&str, &str)],
    cert_url: &str,
) -> serde_json::Value {
    let signed_names: &[&str] = if fields
        .iter()
        .any(|(n, v)| *n == "Type" && *v == "Notification")
    {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let text: String = signed_names
        .iter()
        .filter_map(|name| fields.iter().find(|(n, _)| n == name))
        .map(|(n, v)| format!("{n}\n{v}\n"))
        .collect();
    let digest = if version == "1" { "-sha1" } else { "-sha256" };
    let mut message = serde_json::Map::new();
    for (name, value) in fields {
        message.insert(name.to_string(), json!(value));
    }
    message.insert("SignatureVersion".into(), json!(version));
    message.insert(
        "Signature".into(),
        json!(sign_with(key, digest, text.as_bytes())),
    );
    message.insert("SigningCertURL".into(), json!(cert_url));
    serde_json::Value::Object(message)
}

fn ses_bounce(email: &str) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": email, "action": "failed",
                   "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"commonHeaders": {"messageId": "<nothing@example.com>"}}
    })
    .to_string()
}

async fn ses_notifications_count_only_when_sns_signed_them(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sns.key");
    let cert = dir.path().join("sns.pem");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-subj",
            "/CN=sns.test",
            "-days",
            "2",
        ],
        b"",
    );
    let (host, confirmations) = sns_host(std::fs::read(&cert).unwrap()).await;
    let cert_url = format!("{host}/SimpleNotificationService-test.pem");
    let app = app_with_webhooks(backend, "127.0.0.1", None).await;
    send_report_to(
        &app,
        &[
            "ses-gone@example.org",
            "ses-angry@example.org",
            "ses-kept@example.org",
        ],
        "ses",
    )
    .await;
    let sns = [("x-amz-sns-message-type", "Notification")];

    // The subscription is confirmed by visiting its link.
    let confirm_url = format!("{host}/confirm?Action=ConfirmSubscription&Token=t0k3n");
    let subscription = sns_message(
        &key,
        "1",
        &[
            ("Type", "SubscriptionConfirmation"),
            ("MessageId", "m-0"),
            ("Token", "t0k3n"),
            ("TopicArn", TOPIC),
            ("Message", "You have chosen to subscribe."),
            ("SubscribeURL", &confirm_url),
            ("Timestamp", "2026-11-23T10:00:00.000Z"),
        ],
        &cert_url,
    );
    let (status, body) = post(&app, "ses", &subscription.to_string(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(confirmations.load(Ordering::SeqCst), 1);

    let bounce = ses_bounce("ses-gone@example.org");
    let genuine = sns_message(
        &key,
        "1",
        &[
            ("Type", "Notification"),
            ("MessageId", "m-1"),
            ("TopicArn", TOPIC),
            ("Subject", "Amazon SES Email Receipt Notification"),
            ("Message", &bounce),
            ("Timestamp", "2026-11-23T10:00:01.000Z"),
        ],
        &cert_url,
    );
    // Forged: a genuine signature over a message that now names another reader.
    let mut forged = genuine.clone();
    forged["Message"] = json!(ses_bounce("ses-kept@example.org"));
    assert_eq!(post(&app, "ses", &forged.to_string(), &sns).await.0, 401);
    // A certificate from anywhere but the allowed hosts is not fetched.
    let mut elsewhere = genuine.clone();
    elsewhere["SigningCertURL"] = json!(cert_url.replace("127.0.0.1", "localhost"));
    assert_eq!(post(&app, "ses", &elsewhere.to_string(), &sns).await.0, 401);
    // Another topic's notifications are not ours, however well signed.
    let other_topic = sns_message(
        &key,
        "1",
        &[
            ("Type", "Notification"),
            ("MessageId", "m-2"),
            (
                "TopicArn",
                "arn:aws:sns:eu-west-1:999999999999:someone-else",
            ),
            ("Message", &ses_bounce("ses-kept@example.org")),
            ("Timestamp", "2026-11-23T10:00:02.000Z"),
        ],
        &cert_url,
    );
    assert_eq!(
        post(&app, "ses", &other_topic.to_string(), &sns).await.0,
        401
    );
    assert_eq!(suppression_of(&app, "ses-kept@example.org").await, None);

    let (status, body) = post(&app, "ses", &genuine.to_string(), &sns).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"recorded":1,"suppressed":1}"#)
    );
    assert_eq!(
        suppression_of(&app, "ses-gone@example.org")
            .await
            .as_deref(),
        Some("bounced")
    );

    // Signature version 2 (SHA-256), and a complaint.
    let complaint = json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "ses-angry@example.org"}],
                      "complaintFeedbackType": "abuse"},
        "mail": {"commonHeaders": {"messageId": "<nothing@example.com>"}}
    })
    .to_string();
    let v2 = sns_message(
        &key,
        "2",
        &[
            ("Type", "Notification"),
            ("MessageId", "m-3"),
            ("TopicArn", TOPIC),
            ("Message", &complaint),
            ("Timestamp", "2026-11-23T10:00:03.000Z"),
        ],
        &cert_url,
    );
    assert_eq!(post(&app, "ses", &v2.to_string(), &sns).await.0, 200);
    assert_eq!(
        suppression_of(&app, "ses-angry@example.org")
            .await
            .as_deref(),
        Some("complained")
    );
    assert_eq!(suppression_of(&app, "ses-kept@example.org").await, None);

    // A genuine notification of long ago (signed by SNS, so still valid),
    // about a message SES had before our latest delivery to the reader
    // went out, replayed now: it is about no delivery we can name. The
    // same about a message SES had just now counts.
    let bounce_of = |id: &str, when: chrono::DateTime<chrono::Utc>| {
        let when = when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut bounce: serde_json::Value =
            serde_json::from_str(&ses_bounce("ses-kept@example.org")).unwrap();
        bounce["mail"]["timestamp"] = json!(when);
        let fields = [
            ("Type", "Notification"),
            ("MessageId", id),
            ("TopicArn", TOPIC),
            ("Message", &bounce.to_string()),
            ("Timestamp", &when),
        ];
        sns_message(&key, "2", &fields, &cert_url).to_string()
    };
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let (status, body) = post(&app, "ses", &bounce_of("m-4", an_hour_ago), &sns).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"recorded":0,"suppressed":0}"#)
    );
    assert_eq!(suppression_of(&app, "ses-kept@example.org").await, None);
    let now = chrono::Utc::now();
    let (status, body) = post(&app, "ses", &bounce_of("m-5", now), &sns).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"recorded":1,"suppressed":1}"#)
    );
}

#[tokio::test]
async fn an_unconfigured_provider_has_no_endpoint() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    for provider in ["ses", "postmark", "mailgun", "sendgrid", "nonsense"] {
        assert_eq!(post(&app, provider, "{}", &[]).await.0, 404, "{provider}");
    }
}
