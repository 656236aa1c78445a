//! What mailbox providers and relays look at, checked with what they use:
//! the headers of each kind of mail, SpamAssassin's stock rules on a real
//! report, and a real Postfix that refuses a bare EHLO name.

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::smtp_server::Received;

crate::on_both_backends!(
    each_kind_of_mail_carries_the_headers_of_its_kind,
    confirmations_can_come_from_their_own_sender,
    a_report_scores_at_most_half_a_point_with_spamassassin,
);

async fn report_copy(app: &TestApp, reader: &str) -> Received {
    app.smtp
        .received_for(reader)
        .into_iter()
        .find(|m| !m.subject().starts_with("Please confirm"))
        .expect("the reader's copy")
}

async fn each_kind_of_mail_carries_the_headers_of_its_kind(backend: Backend) {
    let app = spawn_app(backend).await;
    let confirmation = app.confirmed_reader("reader@example.com").await;
    assert_eq!(
        confirmation.hello, "example.com",
        "EHLO names the From domain"
    );
    assert_eq!(
        confirmation.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        confirmation.header("X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );

    let report = app
        .create_report(&crate::sending::report_source("headers"))
        .await;
    app.send_test_copy(report, &["editor@example.com"]).await;
    app.dispatch_all_pending().await;
    let test = &app.smtp.received_for("editor@example.com")[0];
    assert_eq!(
        test.header("List-Unsubscribe"),
        None,
        "nobody to unsubscribe behind a test copy"
    );
    assert_eq!(test.header("List-Unsubscribe-Post"), None);

    app.trigger_send(report, "send").await;
    app.dispatch_all_pending().await;
    let copy = report_copy(&app, "reader@example.com").await;
    let list_id = "\"The Weekly Report\" <the-weekly-report.example.com>";
    for mail in [test, &copy] {
        assert_eq!(mail.header("List-Id").as_deref(), Some(list_id));
        assert_eq!(mail.header("Precedence").as_deref(), Some("bulk"));
        assert_eq!(
            mail.header("X-Auto-Response-Suppress").as_deref(),
            Some("OOF, AutoReply")
        );
        assert_eq!(mail.header("Auto-Submitted"), None);
    }
    // The copy's one-click header works: the reader is unsubscribed.
    let url = copy.header("List-Unsubscribe").unwrap();
    let response = app
        .client
        .post(url.trim_matches(['<', '>']))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        app.status_of("reader@example.com").await.as_deref(),
        Some("unsubscribed")
    );
}

async fn confirmations_can_come_from_their_own_sender(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.mail.confirmation_from = Some("Sign-ups <join@example.com>".into());
    })
    .await;
    let confirmation = app.confirmed_reader("reader@example.com").await;
    let from = confirmation.header("From").unwrap();
    assert!(from.contains("join@example.com"), "{from}");
    let report = app
        .create_report(&crate::sending::report_source("senders"))
        .await;
    app.trigger_send(report, "send").await;
    app.dispatch_all_pending().await;
    let copy = report_copy(&app, "reader@example.com").await;
    let from = copy.header("From").unwrap();
    assert!(from.contains("news@example.com"), "{from}");
}

/// The project's own tools, beside the repository or at the shared path.
fn shared_tool(name: &str) -> Option<PathBuf> {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools");
    [beside, PathBuf::from("/work/shared/tools")]
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

/// Whether a tool this test needs is missing: said so and skipped, except
/// in CI, where it fails.
fn missing(what: &str) -> bool {
    assert!(
        std::env::var("CI").is_err(),
        "{what} is required in CI and is missing"
    );
    eprintln!("skipped: {what} is missing");
    true
}

async fn a_report_scores_at_most_half_a_point_with_spamassassin(backend: Backend) {
    if std::process::Command::new("spamassassin")
        .arg("--version")
        .output()
        .is_err()
        && missing("spamassassin (Debian package spamassassin)")
    {
        return;
    }
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(1).await;
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example.md"))
            .unwrap();
    let report = app.create_report(&source).await;
    app.trigger_send(report, "send").await;
    app.dispatch_all_pending().await;
    let copy = report_copy(&app, "reader0@example.com").await;

    // Local tests only: no DNS, no network rules.
    let mut child = tokio::process::Command::new("spamassassin")
        .args(["-L", "-t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut input, &copy.data)
        .await
        .unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("spamassassin answers within two minutes")
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let status = report
        .lines()
        .find(|l| l.starts_with("X-Spam-Status:"))
        .unwrap_or_else(|| panic!("no X-Spam-Status in:\n{report}"));
    let score: f64 = status
        .split("score=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {status}"));
    let details = report
        .split("Content analysis details")
        .nth(1)
        .unwrap_or_default();
    assert!(
        !details.contains("HTML_FONT_LOW_CONTRAST"),
        "hidden text in a colour like the background:{details}"
    );
    assert!(score <= 0.5, "SpamAssassin scored {score}:{details}");
}

/// Postfix with `reject_non_fqdn_helo_hostname` takes the service's mail
/// (EHLO with the From domain) and refuses a bare host name, which proves
/// the check is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_postfix_accepts_the_ehlo_name() {
    let Some(postfix) = shared_tool("local-postfix") else {
        missing("local-postfix");
        return;
    };
    let lock = std::fs::File::create("/tmp/newsletter-postfix.lock").unwrap();
    // One test at a time on the machine's port 25; the lock is released
    // when the file is closed at the end of the test.
    let locked = tokio::task::spawn_blocking({
        let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
        // SAFETY: flock on a file descriptor that stays open (`lock` lives
        // until the end of the test).
        move || unsafe { libc::flock(fd, libc::LOCK_EX) }
    })
    .await
    .unwrap();
    assert_eq!(locked, 0, "locking port 25");

    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.mail.smtp_url = Some("smtp://127.0.0.1:25".to_string().into());
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let started = crate::postfix::start_local_postfix(&postfix, logs.path(), app.smtp.port, true);
    if !started.status.success() {
        missing(&format!(
            "a startable Postfix ({})",
            String::from_utf8_lossy(&started.stderr)
        ));
        return;
    }
    let outcome = async {
        let body = serde_urlencoded::to_string([("email", "reader@example.com")]).unwrap();
        assert_eq!(app.post_form("/subscriptions", &body).await.status(), 200);
        app.dispatch_all_pending().await;
        // Postfix relays what it accepted to the test's SMTP server.
        let relayed = app.smtp.wait_for(1, Duration::from_secs(60)).await;
        assert_eq!(relayed[0].to(), "reader@example.com");
        assert_eq!(
            app.count("select count(*) from outbox where status = 'sent'")
                .await,
            1
        );

        // The same relay refuses a bare name, as it refused `EHLO vm`.
        let bare = spawn_app_with(Backend::Sqlite, |s| {
            s.mail.smtp_url = Some("smtp://127.0.0.1:25/vm".to_string().into());
            s.delivery.max_attempts = 1;
        })
        .await;
        let body = serde_urlencoded::to_string([("email", "bare@example.com")]).unwrap();
        assert_eq!(bare.post_form("/subscriptions", &body).await.status(), 200);
        bare.dispatch_all_pending().await;
        let reason: Option<String> = sqlx::query_scalar(
            "select last_error from outbox where recipient = 'bare@example.com'",
        )
        .fetch_one(bare.store().pool())
        .await
        .unwrap();
        let reason = reason.unwrap_or_default();
        assert!(reason.to_lowercase().contains("helo"), "{reason}");
    };
    let result = tokio::time::timeout(Duration::from_secs(120), outcome).await;
    let _ = std::process::Command::new(&postfix).arg("stop").output();
    drop(lock);
    result.expect("the Postfix exchange finishes within two minutes");
}
