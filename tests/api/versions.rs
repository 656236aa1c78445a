//! What readers and editors receive is the report as it stood when its send
//! or test copy was queued, however often the draft changes around it.

use std::time::Duration;

use crate::helpers::{postgres_available, spawn_app, Backend, TestApp};
use crate::smtp_server::Received;

crate::on_both_backends!(
    a_test_copy_then_an_edit_then_the_send_delivers_the_edit,
    each_test_copy_carries_the_draft_as_it_stood_when_queued,
    more_revisions_queued_at_once_than_renders_kept_all_arrive,
);

/// A draft of the report `weekly` with its title and the wording of its one
/// news item.
fn draft(title: &str, wording: &str) -> String {
    format!(
        "---\ntitle: {title}\nslug: weekly\ndate: 2026-11-20\nsummary: This week in brief.\n---\n\n\
         # Industry news\n\n## The headline\n\n{wording}\n\nSource: Example Wire\n"
    )
}

/// Saves a new text of the draft; it must stay the same report.
async fn edit(app: &TestApp, report: i64, title: &str, wording: &str) {
    let id = app.create_report(&draft(title, wording)).await;
    assert_eq!(id, report, "saving the same slug edits the draft");
}

/// Asserts that `mail` is the text with `title` and `wording` and nothing of
/// the texts in `stale`, in its subject and in both parts.
fn assert_carries(mail: &Received, title: &str, wording: &str, stale: &[&str]) {
    let subject = mail.subject();
    assert!(
        subject == title || subject == format!("[Test] {title}"),
        "{} got subject {subject:?}, expected {title:?}",
        mail.to()
    );
    let (text, html) = (mail.text(), mail.html());
    assert!(text.contains(wording), "text part of {}: {text}", mail.to());
    assert!(html.contains(wording), "HTML part of {}", mail.to());
    for old in stale {
        assert!(
            !text.contains(old) && !html.contains(old) && !subject.contains(old),
            "{} still carries {old:?}",
            mail.to()
        );
    }
}

async fn a_test_copy_then_an_edit_then_the_send_delivers_the_edit(backend: Backend) {
    let app = spawn_app(backend).await;
    app.confirmed_reader("a@example.com").await;
    app.confirmed_reader("b@example.com").await;
    let report = app
        .create_report(&draft("Weekly with a tpyo", "The frist wording."))
        .await;
    app.send_test_copy(report, &["editor@example.com"]).await;
    app.dispatch_all_pending().await;
    let test = app.smtp.received_for("editor@example.com");
    assert_eq!(test.len(), 1);
    assert_carries(&test[0], "Weekly with a tpyo", "The frist wording.", &[]);

    edit(&app, report, "Weekly without a typo", "The final wording.").await;
    assert_eq!(app.trigger_send(report, "send").await.status(), 202);
    app.dispatch_all_pending().await;

    for reader in ["a@example.com", "b@example.com"] {
        let mails: Vec<Received> = app
            .smtp
            .received_for(reader)
            .into_iter()
            .filter(|m| !m.subject().starts_with("Please confirm"))
            .collect();
        assert_eq!(mails.len(), 1, "one report for {reader}");
        assert_carries(
            &mails[0],
            "Weekly without a typo",
            "The final wording.",
            &["tpyo", "frist"],
        );
    }
}

async fn each_test_copy_carries_the_draft_as_it_stood_when_queued(backend: Backend) {
    let app = spawn_app(backend).await;
    let report = app
        .create_report(&draft("First title", "Wording one."))
        .await;
    edit(&app, report, "Second title", "Wording two.").await;
    app.send_test_copy(report, &["second@example.com"]).await;
    app.dispatch_all_pending().await;
    let second = app.smtp.received_for("second@example.com");
    assert_carries(
        &second[0],
        "Second title",
        "Wording two.",
        &["Wording one."],
    );

    // Edited again, and once more while a test copy is still queued: each
    // copy goes out as the draft stood when it was asked for.
    edit(&app, report, "Third title", "Wording three.").await;
    app.send_test_copy(report, &["third@example.com"]).await;
    edit(&app, report, "Fourth title", "Wording four.").await;
    app.send_test_copy(report, &["fourth@example.com"]).await;
    app.dispatch_all_pending().await;

    let third = app.smtp.received_for("third@example.com");
    assert_eq!(third.len(), 1);
    assert_carries(
        &third[0],
        "Third title",
        "Wording three.",
        &["Wording two.", "Wording four."],
    );
    let fourth = app.smtp.received_for("fourth@example.com");
    assert_eq!(fourth.len(), 1);
    assert_carries(
        &fourth[0],
        "Fourth title",
        "Wording four.",
        &["Wording two.", "Wording three."],
    );
}

/// Two `newsletter worker` processes that each rendered earlier drafts
/// deliver the text as it stands when the send starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_one_postgres_deliver_the_edited_text() {
    if !postgres_available().await {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let _first = app.spawn_worker_process(60);
    let _second = app.spawn_worker_process(60);
    let editors: Vec<String> = (0..8).map(|i| format!("editor{i}@example.com")).collect();
    let editors: Vec<&str> = editors.iter().map(String::as_str).collect();

    let report = app.create_report(&draft("Draft one", "Wording one.")).await;
    app.send_test_copy(report, &editors).await;
    app.smtp.wait_for(8, Duration::from_secs(30)).await;
    edit(&app, report, "Draft two", "Wording two.").await;
    app.send_test_copy(report, &editors).await;
    let mails = app.smtp.wait_for(16, Duration::from_secs(30)).await;
    for mail in &mails[8..] {
        assert_carries(mail, "Draft two", "Wording two.", &["Wording one."]);
    }

    edit(&app, report, "Final", "Final wording.").await;
    app.insert_confirmed_readers(200).await;
    assert_eq!(app.trigger_send(report, "send").await.status(), 202);
    app.wait_until_sent(report, Duration::from_secs(60)).await;
    let readers: Vec<Received> = app
        .smtp
        .wait_for(216, Duration::from_secs(30))
        .await
        .into_iter()
        .filter(|m| m.to().starts_with("reader"))
        .collect();
    assert_eq!(readers.len(), 200);
    for mail in &readers {
        assert_carries(
            mail,
            "Final",
            "Final wording.",
            &["Wording one.", "Wording two."],
        );
    }
}

/// Twenty edits, each with a test copy, all waiting while no worker ran:
/// more revisions in one batch than the sender keeps rendered. Every copy
/// still goes out, each as its draft stood.
async fn more_revisions_queued_at_once_than_renders_kept_all_arrive(backend: Backend) {
    let app = spawn_app(backend).await;
    let report = app.create_report(&draft("Title 0", "Wording 0.")).await;
    for n in 1..=20 {
        edit(
            &app,
            report,
            &format!("Title {n}"),
            &format!("Wording {n}."),
        )
        .await;
        let editor = format!("editor{n}@example.com");
        app.send_test_copy(report, &[editor.as_str()]).await;
    }
    app.dispatch_all_pending().await;
    for n in 1..=20 {
        let mails = app.smtp.received_for(&format!("editor{n}@example.com"));
        assert_eq!(mails.len(), 1, "editor {n}");
        assert_carries(
            &mails[0],
            &format!("Title {n}"),
            &format!("Wording {n}."),
            &[],
        );
    }
    let failed: i64 = sqlx::query_scalar("select count(*) from outbox where status = 'failed'")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(failed, 0);
}
