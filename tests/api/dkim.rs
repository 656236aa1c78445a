//! Every kind of message the service sends carries a DKIM signature that an
//! independent verifier (`cfdkim`, with its own canonicalisation and its own
//! RSA and Ed25519 code) accepts, given the published key instead of DNS;
//! and a message changed on the way fails it.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use futures::future::BoxFuture;
use newsletter::config::DkimSettings;

use crate::helpers::{spawn_app_with, Backend};
use crate::smtp_server::Received;

crate::on_both_backends!(
    rsa_signatures_on_every_kind_of_message_verify,
    ed25519_signatures_on_every_kind_of_message_verify,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    Ed25519,
}

/// A fresh key in a PEM file, and the TXT record that publishes it, both
/// made here with aws-lc-rs, not by the service.
pub struct TestKey {
    pub file: PathBuf,
    pub record: String,
    _dir: tempfile::TempDir,
}

fn pem(label: &str, der: &[u8]) -> String {
    use x509_cert::der::pem::{encode_string, LineEnding};
    encode_string(label, LineEnding::LF, der).unwrap()
}

pub fn test_key(kind: KeyKind) -> TestKey {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (pkcs8, record) = match kind {
        KeyKind::Rsa2048 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().unwrap();
            let public: aws_lc_rs::encoding::PublicKeyX509Der = pair.public_key().as_der().unwrap();
            (
                pkcs8.as_ref().to_vec(),
                format!("v=DKIM1; k=rsa; p={}", b64(public.as_ref())),
            )
        }
        KeyKind::Ed25519 => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            (
                pkcs8.as_ref().to_vec(),
                format!("v=DKIM1; k=ed25519; p={}", b64(pair.public_key().as_ref())),
            )
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dkim.pem");
    std::fs::write(&file, pem("PRIVATE KEY", &pkcs8)).unwrap();
    TestKey {
        file,
        record,
        _dir: dir,
    }
}

pub const SELECTOR: &str = "news2026";
pub const DOMAIN: &str = "example.com";

pub fn dkim_settings(key: &TestKey) -> DkimSettings {
    DkimSettings {
        selector: SELECTOR.into(),
        domain: DOMAIN.into(),
        private_key_file: key.file.clone(),
    }
}

/// DNS as the verifier sees it: the one published record.
struct Published(String);

impl cfdkim::dns::Lookup for Published {
    fn lookup_txt<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, cfdkim::DKIMError>> {
        Box::pin(async move {
            if name.trim_end_matches('.') == format!("{SELECTOR}._domainkey.{DOMAIN}") {
                Ok(vec![self.0.clone()])
            } else {
                Err(cfdkim::DKIMError::NoKeyForSignature)
            }
        })
    }
}

/// What the independent verifier says of a message: `Ok` when it passes.
pub async fn verify(message: &[u8], record: &str) -> Result<(), String> {
    let parsed = mailparse::parse_mail(message).map_err(|e| e.to_string())?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let result = cfdkim::verify_email_with_resolver(
        &logger,
        DOMAIN,
        &parsed,
        Arc::new(Published(record.to_string())),
    )
    .await
    .map_err(|e| e.to_string())?;
    match result.summary() {
        "pass" => Ok(()),
        other => Err(format!("{other}: {:?}", result.error())),
    }
}

/// The tags of the message's DKIM-Signature header.
fn signature_tags(mail: &Received) -> std::collections::HashMap<String, String> {
    let value = mail.header("DKIM-Signature").expect("a DKIM-Signature");
    value
        .split(';')
        .filter_map(|tag| {
            let (k, v) = tag.split_once('=')?;
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            Some((k.trim().to_string(), v))
        })
        .collect()
}

/// Checks the signature of `mail` as a mailbox provider would, and that a
/// changed header or a changed body breaks it.
async fn assert_signed(mail: &Received, record: &str, algorithm: &str, list_headers: &[&str]) {
    verify(&mail.data, record)
        .await
        .unwrap_or_else(|e| panic!("{:?} does not verify: {e}", mail.subject()));
    let tags = signature_tags(mail);
    assert_eq!(tags["a"], algorithm);
    assert_eq!(tags["c"], "relaxed/relaxed");
    assert_eq!(tags["d"], DOMAIN);
    assert!(!tags.contains_key("l"), "no body length limit");
    let signed: Vec<String> = tags["h"].split(':').map(|h| h.to_lowercase()).collect();
    let required = ["from", "to", "subject", "date", "message-id"];
    for header in required.iter().chain(list_headers) {
        assert!(
            signed.iter().any(|h| h == *header),
            "h= lacks {header}: {signed:?}"
        );
    }

    let text = String::from_utf8(mail.data.clone()).unwrap();
    let subject_line = text
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap()
        .to_string();
    let forged = text.replacen(&subject_line, "Subject: You won a prize", 1);
    assert!(
        verify(forged.as_bytes(), record).await.is_err(),
        "a changed Subject must fail"
    );
    // A relay that adds Sender keeps it valid; a Reply-To added on the way
    // (to take readers' answers elsewhere) fails it.
    let with_sender = format!("Sender: relay@relay.example.net\r\n{text}");
    verify(with_sender.as_bytes(), record)
        .await
        .expect("a relay adding Sender keeps the signature");
    let with_reply_to = format!("Reply-To: thief@evil.example\r\n{text}");
    assert!(
        verify(with_reply_to.as_bytes(), record).await.is_err(),
        "an added Reply-To must fail"
    );
    let body_at = text.find("\r\n\r\n").unwrap() + 4;
    let mut tampered = text.clone();
    tampered.insert_str(body_at, "Click here: http://evil.example/\r\n");
    assert!(
        verify(tampered.as_bytes(), record).await.is_err(),
        "a changed body must fail"
    );
}

/// What a reader's copy carries for one-click unsubscribing and filters.
const LIST_HEADERS: [&str; 3] = ["list-id", "list-unsubscribe", "list-unsubscribe-post"];

async fn every_kind_of_message(backend: Backend, kind: KeyKind, algorithm: &str) {
    let key = test_key(kind);
    let settings = dkim_settings(&key);
    let app = spawn_app_with(backend, |s| s.mail.dkim = Some(settings)).await;
    let confirmation = app.confirmed_reader("reader@example.com").await;
    // Its one-click headers count only when the signature covers them.
    let one_click = &LIST_HEADERS[1..];
    assert_signed(&confirmation, &key.record, algorithm, one_click).await;
    // A Chinese reader's name and a Chinese title, folded and encoded
    // (RFC 2047) in To and Subject, where relaxed canonicalisation has the
    // most to do.
    sqlx::query("update subscribers set name = $1 where email = $2")
        .bind("王小明")
        .bind("reader@example.com")
        .execute(app.store().pool())
        .await
        .unwrap();

    let report = app
        .create_report(&crate::sending::report_source("signed"))
        .await;
    app.send_test_copy(report, &["editor@example.com"]).await;
    app.dispatch_all_pending().await;
    let test = app.smtp.received_for("editor@example.com");
    assert_eq!(test.len(), 1);
    assert_signed(&test[0], &key.record, algorithm, &LIST_HEADERS[..1]).await;

    assert_eq!(app.trigger_send(report, "send").await.status(), 202);
    app.dispatch_all_pending().await;
    let copy = app
        .smtp
        .received_for("reader@example.com")
        .into_iter()
        .find(|m| m.subject() == "Weekly Report signed")
        .expect("the reader's copy");
    assert_signed(&copy, &key.record, algorithm, &LIST_HEADERS).await;

    let title = "本周行业报告：芯片、模型与监管的一周回顾，以及编辑部的长篇评论";
    let chinese = crate::sending::report_source("zh-signed")
        .replace("title: Weekly Report zh-signed", &format!("title: {title}"));
    let report = app.create_report(&chinese).await;
    assert_eq!(app.trigger_send(report, "zh").await.status(), 202);
    app.dispatch_all_pending().await;
    let copy = app
        .smtp
        .received_for("reader@example.com")
        .into_iter()
        .find(|m| m.subject() == title)
        .expect("the reader's Chinese copy");
    let raw = String::from_utf8(copy.data.clone()).unwrap();
    assert!(
        raw.to_ascii_lowercase().contains("subject: =?utf-8?"),
        "an encoded Subject"
    );
    assert_eq!(copy.to_name().as_deref(), Some("王小明"));
    assert_signed(&copy, &key.record, algorithm, &LIST_HEADERS).await;
}

async fn rsa_signatures_on_every_kind_of_message_verify(backend: Backend) {
    every_kind_of_message(backend, KeyKind::Rsa2048, "rsa-sha256").await;
}

async fn ed25519_signatures_on_every_kind_of_message_verify(backend: Backend) {
    every_kind_of_message(backend, KeyKind::Ed25519, "ed25519-sha256").await;
}
