//! Bounces and complaints: samples in the shapes real mail systems send,
//! fed through the real `bounces ingest` command against a real send, and
//! the relay's own refusals.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use newsletter::bounces::{read_notice, BounceKind, NoticeKind};

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::smtp_server::Fault;

crate::on_both_backends!(
    bounces_fed_to_the_command_suppress_exactly_the_readers_they_name,
    soft_bounces_add_up_to_a_suppression,
    a_relay_refusing_a_recipient_counts_as_a_hard_bounce,
    the_report_page_and_dashboard_warn_of_high_bounce_and_complaint_rates,
    suppressed_readers_are_listed_exported_and_can_be_lifted,
    a_bounce_naming_an_address_finds_the_delivery_it_belongs_to,
);

pub const BOUNCE_ADDRESS: &str = "bounces@bounce.example.com";

/// A sample from tests/data/bounces with its placeholders filled in.
pub fn sample(name: &str, verp: &str, recipient: &str) -> String {
    let path = format!("{}/tests/data/bounces/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("%VERP%", verp)
        .replace("%RCPT%", recipient)
}

/// What each sample must be read as: kind per failed recipient, or `None`
/// for "not a bounce".
fn expected(name: &str) -> Option<Vec<(Option<&'static str>, BounceKind)>> {
    let reader = Some("reader@example.org");
    match name {
        "gmail-no-such-user.eml"
        | "exchange-recipient-not-found.eml"
        | "exchange-text-only.eml"
        | "exim-permanent.eml"
        | "qmail-permanent.eml" => Some(vec![(reader, BounceKind::Hard)]),
        "postfix-mailbox-full.eml" => Some(vec![(reader, BounceKind::Soft)]),
        "yahoo-arf-complaint.eml" => Some(vec![(reader, BounceKind::Complaint)]),
        "two-recipients-dsn.eml" => Some(vec![
            (Some("first@example.org"), BounceKind::Hard),
            (reader, BounceKind::Soft),
        ]),
        "exim-delay-warning.eml"
        | "arf-not-spam.eml"
        | "vacation-auto-reply.eml"
        | "challenge-response.eml" => None,
        other => panic!("no expectation for the sample {other}"),
    }
}

#[test]
fn every_sample_is_read_as_what_it_is() {
    let dir = format!("{}/tests/data/bounces", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".eml") {
            continue;
        }
        seen += 1;
        let verp = "bounces+17-0123456789abcdef01234567@bounce.example.com";
        let notice = read_notice(sample(&name, verp, "reader@example.org").as_bytes());
        let got: Option<Vec<(Option<String>, BounceKind)>> = match &notice.kind {
            NoticeKind::Bounce(failures) => Some(
                failures
                    .iter()
                    .map(|f| (f.recipient.clone(), f.kind))
                    .collect(),
            ),
            NoticeKind::Complaint(c) => Some(vec![(c.recipient.clone(), BounceKind::Complaint)]),
            NoticeKind::NotABounce(_) => None,
        };
        let want = expected(&name).map(|v| {
            v.into_iter()
                .map(|(r, k)| (r.map(str::to_string), k))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, want, "{name}: {notice:?}");
        if want.is_some() {
            assert!(
                notice.verp_candidates.iter().any(|c| c == verp),
                "{name}: the VERP address is found: {:?}",
                notice.verp_candidates
            );
        }
    }
    assert!(seen >= 12, "the corpus is there");
}

/// Runs `newsletter bounces ingest` with `message` on stdin.
pub fn ingest(app: &TestApp, message: &str, extra: &[&str]) -> Output {
    let settings = &app.app.state.settings;
    let soft_bounce_limit = settings.bounces.soft_bounce_limit.to_string();
    let args: Vec<&str> = ["bounces", "ingest"].iter().chain(extra).copied().collect();
    let env = [
        ("NEWSLETTER_DATABASE_URL", settings.database_url.as_str()),
        ("NEWSLETTER_MAIL__BOUNCE_ADDRESS", BOUNCE_ADDRESS),
        ("NEWSLETTER_BOUNCES__SOFT_BOUNCE_LIMIT", &soft_bounce_limit),
    ];
    crate::cli::newsletter(&args, &env, Some(message))
}

/// What `bounces ingest` says of the sample `name` sent back through
/// `verp` about `reader`.
fn verdict(app: &TestApp, name: &str, verp: &str, reader: &str, extra: &[&str]) -> String {
    stdout_of(&ingest(app, &sample(name, verp, reader), extra))
}

/// Runs `newsletter subscribers export --format FORMAT`; returns its output.
pub fn export(app: &TestApp, format: &str) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["subscribers", "export", "--format", format])
        .env(
            "NEWSLETTER_DATABASE_URL",
            &app.app.state.settings.database_url,
        )
        .env("NEWSLETTER_LOG__FILTER", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn stdout_of(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An app whose deliveries carry VERP bounce addresses, with two soft
/// bounces to a suppression.
pub async fn app_with_bounces(backend: Backend) -> TestApp {
    app_with_bounce_address(backend, |s| s.bounces.soft_bounce_limit = 2).await
}

/// An app whose deliveries carry VERP bounce addresses, with `customise`
/// applied on top.
pub async fn app_with_bounce_address(
    backend: Backend,
    customise: impl FnOnce(&mut newsletter::config::Settings),
) -> TestApp {
    spawn_app_with(backend, |s| {
        s.mail.bounce_address = Some(BOUNCE_ADDRESS.into());
        customise(s);
    })
    .await
}

/// Sends a report to `readers` (confirmed first) and returns the report id.
pub async fn send_report_to(app: &TestApp, readers: &[&str], slug: &str) -> i64 {
    for reader in readers {
        if app.status_of(reader).await.is_none() {
            app.confirmed_reader(reader).await;
        }
    }
    let report = app
        .create_report(&crate::sending::report_source(slug))
        .await;
    let response = app.trigger_send(report, slug).await;
    assert!(response.status().is_success());
    app.dispatch_all_pending().await;
    report
}

/// The envelope sender the report reached `reader` with.
pub fn envelope_sender_to(app: &TestApp, reader: &str, subject_part: &str) -> String {
    let mails = app.smtp.received_for(reader);
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.subject().contains(subject_part) || subject_part.is_empty())
        .unwrap_or_else(|| panic!("a mail to {reader}"));
    mail.mail_from.clone()
}

/// `own`'s envelope sender with the delivery part of `victim`'s token put
/// in: what a forger who received a copy of their own could try. A token is
/// the enciphered delivery (16 hex digits), then its signature.
pub fn token_moved(own: &str, victim: &str) -> String {
    let token = |address: &str| {
        let local = address.split('@').next().unwrap();
        local.split_once('+').unwrap().1.to_string()
    };
    let (mine, theirs) = (token(own), token(victim));
    assert_eq!(mine.len(), 40, "{own}");
    own.replacen(&mine, &format!("{}{}", &theirs[..16], &mine[16..]), 1)
}

pub async fn suppression_of(app: &TestApp, email: &str) -> Option<String> {
    sqlx::query_scalar("select reason from suppressions where email = $1")
        .bind(email)
        .fetch_optional(app.store().pool())
        .await
        .unwrap()
}

async fn bounces_fed_to_the_command_suppress_exactly_the_readers_they_name(backend: Backend) {
    let app = app_with_bounces(backend).await;
    let readers = [
        "gone@example.org",
        "angry@example.org",
        "away@example.org",
        "victim@example.org",
        "forger@example.org",
    ];
    let report = send_report_to(&app, &readers, "first-week").await;

    // Every delivery leaves with an envelope sender of its own; the From
    // the reader sees is unchanged.
    let mut senders = std::collections::HashSet::new();
    for reader in readers {
        let mail = app.smtp.received_for(reader).pop().unwrap();
        assert!(mail.mail_from.starts_with("bounces+"), "{}", mail.mail_from);
        assert!(mail.mail_from.ends_with("@bounce.example.com"));
        let parsed = mail.parsed();
        let from = parsed.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.address(), Some("news@example.com"));
        assert_eq!(from.name(), Some("Weekly Test"));
        senders.insert(mail.mail_from.clone());
    }
    assert_eq!(
        senders.len(),
        readers.len(),
        "one envelope sender per delivery"
    );
    let verp = |reader: &str| envelope_sender_to(&app, reader, "");

    let fed_back = |name: &str, reader: &str| verdict(&app, name, &verp(reader), reader, &[]);

    assert_eq!(
        fed_back("gmail-no-such-user.eml", "gone@example.org"),
        "hard gone@example.org, suppressed"
    );
    assert_eq!(
        fed_back("yahoo-arf-complaint.eml", "angry@example.org"),
        "complaint angry@example.org, suppressed"
    );
    let out = fed_back("vacation-auto-reply.eml", "away@example.org");
    assert!(out.starts_with("ignored: an automatic reply"), "{out}");

    // A forger who received their own copy moves its token to another
    // delivery: the signature no longer matches and nobody is suppressed.
    let own = verp("forger@example.org");
    let victim = verp("victim@example.org");
    let forged = token_moved(&own, &victim);
    let victim = "victim@example.org";
    let out = verdict(&app, "gmail-no-such-user.eml", &forged, victim, &[]);
    assert!(out.starts_with("refused"), "{out}");
    // The same through the envelope recipient an MTA passes.
    let extra = ["--recipient", forged.as_str()];
    let out = verdict(&app, "qmail-permanent.eml", BOUNCE_ADDRESS, victim, &extra);
    assert!(out.starts_with("refused"), "{out}");
    // A bounce with no token at all names no delivery.
    let out = verdict(&app, "exim-permanent.eml", BOUNCE_ADDRESS, victim, &[]);
    assert!(out.starts_with("ignored"), "{out}");

    assert_eq!(
        suppression_of(&app, "gone@example.org").await.as_deref(),
        Some("bounced")
    );
    assert_eq!(
        suppression_of(&app, "angry@example.org").await.as_deref(),
        Some("complained")
    );
    for untouched in [
        "away@example.org",
        "victim@example.org",
        "forger@example.org",
    ] {
        assert_eq!(suppression_of(&app, untouched).await, None, "{untouched}");
    }

    // Fed twice (an MTA retrying), a bounce counts once.
    let out = fed_back("gmail-no-such-user.eml", "gone@example.org");
    assert!(out.ends_with("(already recorded)"), "{out}");
    let stats = app.stats(report).await;
    assert_eq!(stats["bounces"]["hard_bounces"], 1, "{stats}");
    assert_eq!(stats["bounces"]["complaints"], 1, "{stats}");
    assert_eq!(stats["bounces"]["attempted"], 5, "{stats}");
    assert!((stats["bounces"]["bounce_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9);

    // The next report reaches everyone but the two suppressed readers.
    let before: Vec<usize> = readers
        .iter()
        .map(|r| app.smtp.received_for(r).len())
        .collect();
    send_report_to(&app, &readers, "second-week").await;
    for (reader, before) in readers.iter().zip(before) {
        let now = app.smtp.received_for(reader).len();
        let suppressed = matches!(*reader, "gone@example.org" | "angry@example.org");
        assert_eq!(now - before, usize::from(!suppressed), "{reader}");
    }

    // Signing up again does not mail a suppressed address.
    let before = app.smtp.received_for("gone@example.org").len();
    let body = serde_urlencoded::to_string([("email", "gone@example.org")]).unwrap();
    assert_eq!(app.post_form("/subscriptions", &body).await.status(), 200);
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.received_for("gone@example.org").len(), before);

    // The raw message is kept for the editor.
    let kept = app
        .count("select count(*) from bounce_messages where raw like '%RESOLVER%' or raw like '%NoSuchUser%'")
        .await;
    assert!(kept >= 1);
}

async fn soft_bounces_add_up_to_a_suppression(backend: Backend) {
    let app = app_with_bounces(backend).await;
    // The confirmation mail and the report are two deliveries; the limit
    // in these tests is two soft bounces.
    app.confirmed_reader("full@example.org").await;
    let confirmation_sender = envelope_sender_to(&app, "full@example.org", "confirm");
    send_report_to(&app, &["full@example.org"], "soft-week").await;
    let report_sender = envelope_sender_to(&app, "full@example.org", "");
    assert_ne!(confirmation_sender, report_sender);

    assert_eq!(
        verdict(
            &app,
            "postfix-mailbox-full.eml",
            &report_sender,
            "full@example.org",
            &[]
        ),
        "soft full@example.org"
    );
    assert_eq!(suppression_of(&app, "full@example.org").await, None);
    assert_eq!(
        verdict(
            &app,
            "postfix-mailbox-full.eml",
            &confirmation_sender,
            "full@example.org",
            &[]
        ),
        "soft full@example.org, suppressed"
    );
    assert_eq!(
        suppression_of(&app, "full@example.org").await.as_deref(),
        Some("bounced")
    );
}

async fn a_relay_refusing_a_recipient_counts_as_a_hard_bounce(backend: Backend) {
    // One message at a time, so the faults meet the deliveries in order.
    let app = spawn_app_with(backend, |s| s.delivery.concurrency = 1).await;
    app.confirmed_reader("nobody@example.org").await;
    app.confirmed_reader("flagged@example.org").await;
    let report = app
        .create_report(&crate::sending::report_source("refusals"))
        .await;
    // Deliveries go out in id order: the first reader is refused as
    // unknown, the second for content, which is no fault of the address.
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user"));
    app.smtp
        .push_fault(Fault::DataReply(550, "5.7.1 message looks like spam"));
    assert!(app
        .trigger_send(report, "refusals")
        .await
        .status()
        .is_success());
    app.dispatch_all_pending().await;
    assert_eq!(
        suppression_of(&app, "nobody@example.org").await.as_deref(),
        Some("bounced")
    );
    assert_eq!(suppression_of(&app, "flagged@example.org").await, None);
    let stats = app.stats(report).await;
    assert_eq!(stats["bounces"]["hard_bounces"], 1, "{stats}");
}

/// The text of `page` inside the element marked `marker`, up to its end tag.
fn element_text<'a>(page: &'a str, marker: &str) -> Option<&'a str> {
    let start = page.find(marker)?;
    let rest = &page[start..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')?;
    Some(rest[open..open + close].trim())
}

async fn the_report_page_and_dashboard_warn_of_high_bounce_and_complaint_rates(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.mail.bounce_address = Some(BOUNCE_ADDRESS.into());
        s.delivery.concurrency = 1;
    })
    .await;
    app.add_editor("editor@example.com", "correct horse battery")
        .await;
    app.log_in("editor@example.com", "correct horse battery")
        .await;
    for reader in [
        "nobody@example.org",
        "angry@example.org",
        "fine@example.org",
    ] {
        app.confirmed_reader(reader).await;
    }
    let report = app
        .create_report(&crate::sending::report_source("rates"))
        .await;
    // Deliveries go out in id order: the first reader's address is refused.
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user"));
    assert!(app
        .trigger_send(report, "rates")
        .await
        .status()
        .is_success());
    app.dispatch_all_pending().await;
    assert_eq!(
        verdict(
            &app,
            "yahoo-arf-complaint.eml",
            &envelope_sender_to(&app, "angry@example.org", ""),
            "angry@example.org",
            &[]
        ),
        "complaint angry@example.org, suppressed"
    );

    // One in three bounced and one in three complained.
    let page = app.page_text(&format!("/admin/reports/{report}")).await;
    assert_eq!(
        element_text(&page, "data-bounces=\"hard\""),
        Some("1"),
        "{page}"
    );
    assert_eq!(element_text(&page, "data-bounces=\"soft\""), Some("0"));
    assert_eq!(
        element_text(&page, "data-bounces=\"complaints\""),
        Some("1")
    );
    assert_eq!(
        element_text(&page, "data-bounces=\"bounce_rate\""),
        Some("33.33%")
    );
    assert_eq!(
        element_text(&page, "data-bounces=\"complaint_rate\""),
        Some("33.33%")
    );
    let alert = element_text(&page, "data-bounce-alert").expect("an alert");
    assert!(alert.contains("bounce rate is 33.33%"), "{alert}");
    assert!(alert.contains("complaint rate is 33.33%"), "{alert}");

    // A clean report to the reader left raises no alert.
    let clean = app
        .create_report(&crate::sending::report_source("clean"))
        .await;
    assert!(app.trigger_send(clean, "clean").await.status().is_success());
    app.dispatch_all_pending().await;
    let page = app.page_text(&format!("/admin/reports/{clean}")).await;
    assert_eq!(
        element_text(&page, "data-bounces=\"bounce_rate\""),
        Some("0.00%")
    );
    assert!(!page.contains("data-bounce-alert"), "{page}");

    // The dashboard flags the first report's row and only that one.
    let dashboard = app.page_text("/admin").await;
    let row = |id: i64| {
        let start = dashboard
            .find(&format!("data-report=\"{id}\""))
            .unwrap_or_else(|| panic!("row {id}: {dashboard}"));
        let end = dashboard[start..].find("</tr>").unwrap() + start;
        dashboard[start..end].to_string()
    };
    assert!(row(report).contains("data-bounce-alert"), "{}", row(report));
    assert!(row(report).contains("bounce rate is 33.33%"));
    assert!(!row(clean).contains("data-bounce-alert"), "{}", row(clean));
}

async fn suppressed_readers_are_listed_exported_and_can_be_lifted(backend: Backend) {
    let app = app_with_bounces(backend).await;
    app.add_editor("editor@example.com", "correct horse battery")
        .await;
    app.log_in("editor@example.com", "correct horse battery")
        .await;
    let readers = ["gone@example.org", "fine@example.org"];
    send_report_to(&app, &readers, "week-one").await;
    assert_eq!(
        verdict(
            &app,
            "gmail-no-such-user.eml",
            &envelope_sender_to(&app, "gone@example.org", ""),
            "gone@example.org",
            &[]
        ),
        "hard gone@example.org, suppressed"
    );

    let page = app.page_text("/admin/readers?suppressed=bounced").await;
    assert!(page.contains("data-reader=\"gone@example.org\""), "{page}");
    assert!(!page.contains("data-reader=\"fine@example.org\""), "{page}");
    assert!(page.contains("data-suppression=\"bounced\""), "{page}");
    let detail = element_text(&page, "data-suppression-detail").unwrap();
    assert!(detail.contains("does not exist"), "{detail}");
    let complained = app.page_text("/admin/readers?suppressed=complained").await;
    assert!(!complained.contains("data-reader="), "{complained}");
    assert_eq!(
        app.get("/admin/readers?suppressed=nonsense").await.status(),
        422
    );

    // The kept message is the one fed in, as plain text.
    let start = page.find("/admin/bounce-messages/").unwrap();
    let end = start + page[start..].find('"').unwrap();
    let raw = app.get(&page[start..end]).await;
    assert_eq!(raw.status(), 200);
    assert!(raw.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(raw.text().await.unwrap().contains("NoSuchUser"));

    // The export says who is suppressed, in both formats.
    let json: serde_json::Value = serde_json::from_slice(&export(&app, "json")).unwrap();
    let row = |email: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["email"] == email)
            .unwrap_or_else(|| panic!("{email} in {json}"))
            .clone()
    };
    assert_eq!(row("gone@example.org")["suppressed"], "bounced");
    assert!(row("gone@example.org")["suppressed_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(row("fine@example.org")["suppressed"], "");
    let csv = export(&app, "csv");
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let headers = reader.headers().unwrap().clone();
    let column = headers.iter().position(|h| h == "suppressed").unwrap();
    let by_email: std::collections::HashMap<String, String> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[column].to_string())
        })
        .collect();
    assert_eq!(by_email["gone@example.org"], "bounced");
    assert_eq!(by_email["fine@example.org"], "");

    // Un-suppressing needs the form's token.
    let id: i64 = sqlx::query_scalar("select id from subscribers where email = $1")
        .bind("gone@example.org")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    let path = format!("/admin/readers/{id}/unsuppress");
    let forged = app.post_form(&path, "csrf=wrong").await;
    assert!(forged.status().is_client_error(), "{}", forged.status());
    assert!(suppression_of(&app, "gone@example.org").await.is_some());
    let body = serde_urlencoded::to_string([("csrf", crate::admin_pages::csrf(&page))]).unwrap();
    let lifted = app.post_form(&path, &body).await;
    assert_eq!(lifted.status(), 303);
    assert_eq!(suppression_of(&app, "gone@example.org").await, None);
    let page = app.page_text("/admin/readers?suppressed=bounced").await;
    assert!(!page.contains("data-reader=\"gone@example.org\""), "{page}");

    let json: serde_json::Value = serde_json::from_slice(&export(&app, "json")).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["suppressed"] == ""));

    // The next send reaches the reader again.
    let before = app.smtp.received_for("gone@example.org").len();
    send_report_to(&app, &readers, "week-two").await;
    assert_eq!(app.smtp.received_for("gone@example.org").len(), before + 1);
}

#[test]
fn an_unstorable_bounce_asks_the_mta_to_try_again() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["bounces", "ingest"])
        .env(
            "NEWSLETTER_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nowhere",
        )
        .env("NEWSLETTER_LOG__FILTER", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(b"From: MAILER-DAEMON@x.example\r\n\r\nhello")
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
}

/// Bounces that carry no VERP address (a provider's event, a DSN quoting
/// only the Message-ID) are matched by address and Message-ID: to a
/// reader's report, to a test copy, and to nothing else.
async fn a_bounce_naming_an_address_finds_the_delivery_it_belongs_to(backend: Backend) {
    let app = spawn_app(backend).await;
    app.confirmed_reader("ana@example.com").await;
    app.confirmed_reader("bo@example.com").await;
    let report = app
        .create_report(&crate::sending::report_source("w1"))
        .await;
    app.trigger_send(report, "k").await;
    let store = app.store();
    store
        .queue_test_sends(
            report,
            &["copy@example.org".to_string()],
            newsletter::store::now_ms(),
        )
        .await
        .unwrap();
    app.dispatch_all_pending().await;

    let sent: Vec<(i64, String, String)> = sqlx::query_as(
        "select id, recipient, message_id from outbox where status = 'sent' and kind <> 'confirmation'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(sent.len(), 3);
    for (id, recipient, message_id) in &sent {
        let bare = message_id.trim_matches(['<', '>']);
        let found = store
            .delivery_by_message_id(bare, &recipient.to_uppercase())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{recipient}'s delivery by its Message-ID"));
        assert_eq!(found.outbox_id, *id, "{recipient}");
        let latest = store
            .latest_delivery_to(recipient, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.outbox_id, *id, "{recipient}");
        // The Message-ID of one delivery names no other recipient's.
        let other = if recipient == "ana@example.com" {
            "bo@example.com"
        } else {
            "ana@example.com"
        };
        assert!(store
            .delivery_by_message_id(message_id, other)
            .await
            .unwrap()
            .is_none());
    }
    assert!(store
        .latest_delivery_to("never@example.com", None)
        .await
        .unwrap()
        .is_none());
}
