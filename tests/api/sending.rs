//! Editors send a report: one delivery per confirmed reader, whatever the
//! triggers, retries and crashes.

use reqwest::Method;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::smtp_server::Fault;

crate::on_both_backends!(
    only_confirmed_readers_receive_the_report_once,
    concurrent_triggers_enqueue_once,
    a_451_is_retried_and_a_550_is_reported,
    a_reader_who_unsubscribes_during_a_send_is_skipped,
    pause_resume_and_cancel,
    a_scheduled_send_waits_for_its_time,
    test_sends_go_only_to_the_given_addresses,
    a_sent_report_cannot_be_edited,
);

/// A small report in the authoring format.
pub fn report_source(slug: &str) -> String {
    format!(
        "---\ntitle: Weekly Report {slug}\nslug: {slug}\ndate: 2026-11-20\nbyline: Ana Editor\neditor: Bo Desk\n\
         summary: Three things that happened this week.\n---\n\n\
         # Industry news\n\n## A headline worth reading\n\nThe body of the news item.\n\n\
         Source: Example Wire\n\nComment: Why it matters.\n"
    )
}

async fn readers(app: &TestApp, confirmed: &[&str]) {
    for email in confirmed {
        app.confirmed_reader(email).await;
    }
}

async fn report_mails(app: &TestApp) -> Vec<crate::smtp_server::Received> {
    app.smtp
        .received()
        .into_iter()
        .filter(|m| !m.subject().starts_with("Please confirm"))
        .collect()
}

async fn only_confirmed_readers_receive_the_report_once(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(
        &app,
        &[
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "gone@example.com",
        ],
    )
    .await;
    app.sign_up("pending@example.com").await;
    let gone = app.smtp.received_for("gone@example.com").pop().unwrap();
    let unsubscribe = gone.header("List-Unsubscribe").unwrap();
    app.client
        .post(unsubscribe.trim_matches(['<', '>']))
        .send()
        .await
        .unwrap();

    let id = app.create_report(&report_source("issue-1")).await;
    let response = app.trigger_send(id, "send-1").await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["send"]["total"], 3);
    app.dispatch_all_pending().await;
    let again = app.trigger_send(id, "send-1").await;
    assert_eq!(
        again.status(),
        200,
        "the same key answers with the same send"
    );
    let other = app.trigger_send(id, "send-2").await;
    assert_eq!(other.status(), 409, "a report is sent once");
    app.dispatch_all_pending().await;

    let mails = report_mails(&app).await;
    let mut to: Vec<&str> = mails.iter().map(|m| m.to()).collect();
    to.sort();
    assert_eq!(to, ["a@example.com", "b@example.com", "c@example.com"]);
    for mail in &mails {
        let parsed = mail.parsed();
        assert_eq!(parsed.subject(), Some("Weekly Report issue-1"));
        assert!(mail.header("From").unwrap().contains("news@example.com"));
        assert!(mail.header("Date").is_some());
        assert!(mail.header("Message-ID").is_some());
        assert!(mail
            .header("List-Unsubscribe")
            .unwrap()
            .contains("/unsubscribe?token="));
        assert_eq!(
            mail.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(mail
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"));
        assert!(!mail.text().is_empty() && !mail.html().is_empty());
    }
    let message_ids: i64 = app
        .count("select count(distinct message_id) from outbox where kind = 'report' and status = 'sent' and sent_at is not null")
        .await;
    assert_eq!(
        message_ids, 3,
        "each delivery records its Message-ID and time"
    );
    let stats = app.stats(id).await;
    assert_eq!(
        (stats["sent"].as_i64(), stats["total"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(stats["state"], "done");
}

async fn concurrent_triggers_enqueue_once(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com", "b@example.com", "c@example.com"]).await;
    let id = app.create_report(&report_source("issue-2")).await;
    let keys = ["k1", "k2", "k3", "k1", "k2", "k4", "k5", "k1"];
    let triggers = keys.iter().map(|k| app.trigger_send(id, k));
    let statuses: Vec<u16> = futures::future::join_all(triggers)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        app.count("select count(*) from outbox where kind = 'report'")
            .await,
        3
    );
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app).await.len(), 3);
}

async fn a_451_is_retried_and_a_550_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com", "b@example.com"]).await;
    let id = app.create_report(&report_source("issue-3")).await;
    app.smtp
        .push_fault(Fault::RcptReply(451, "4.7.1 greylisted, try again"));
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user here"));
    app.trigger_send(id, "k").await;
    app.dispatch_all_pending().await;
    let mails = report_mails(&app).await;
    assert_eq!(
        mails.len(),
        1,
        "one retried and delivered, one failed for good"
    );
    let stats = app.stats(id).await;
    assert_eq!(stats["sent"], 1);
    assert_eq!(stats["failed"], 1);
    let failure = &stats["failures"][0];
    assert!(
        failure["reason"].as_str().unwrap().contains("no such user"),
        "{failure}"
    );
    let retried: i64 = app
        .count("select count(*) from outbox where kind = 'report' and status = 'sent' and attempts = 2")
        .await;
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "select recipient, status, attempts, last_error from outbox where kind = 'report'",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    assert_eq!(retried, 1, "{rows:?}");
}

async fn a_reader_who_unsubscribes_during_a_send_is_skipped(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com", "b@example.com"]).await;
    let id = app.create_report(&report_source("issue-4")).await;
    app.trigger_send(id, "k").await;
    sqlx::query("update subscribers set status = 'unsubscribed' where email = 'b@example.com'")
        .execute(app.store().pool())
        .await
        .unwrap();
    app.dispatch_all_pending().await;
    let mails = report_mails(&app).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to(), "a@example.com");
    assert_eq!(app.stats(id).await["skipped"], 1);
}

async fn pause_resume_and_cancel(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com", "b@example.com"]).await;
    let first = app.create_report(&report_source("issue-5")).await;
    app.trigger_send(first, "k").await;
    let app = &app;
    let post =
        |path: String| async move { app.api(Method::POST, &path).await.send().await.unwrap() };
    assert_eq!(
        post(format!("/api/reports/{first}/pause")).await.status(),
        200
    );
    assert_eq!(
        post(format!("/api/reports/{first}/pause")).await.status(),
        409
    );
    app.dispatch_all_pending().await;
    assert!(
        report_mails(app).await.is_empty(),
        "nothing goes out while paused"
    );
    assert_eq!(app.stats(first).await["paused"], 2);
    assert_eq!(
        post(format!("/api/reports/{first}/resume")).await.status(),
        200
    );
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(app).await.len(), 2);

    let second = app.create_report(&report_source("issue-6")).await;
    app.trigger_send(second, "k2").await;
    assert_eq!(
        post(format!("/api/reports/{second}/cancel")).await.status(),
        200
    );
    app.dispatch_all_pending().await;
    assert_eq!(
        report_mails(app).await.len(),
        2,
        "a cancelled send sends nothing more"
    );
    assert_eq!(app.stats(second).await["cancelled"], 2);
    assert_eq!(
        post(format!("/api/reports/{second}/resume")).await.status(),
        409
    );
}

async fn a_scheduled_send_waits_for_its_time(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com"]).await;
    let id = app.create_report(&report_source("issue-7")).await;
    let response = app
        .api(Method::POST, &format!("/api/reports/{id}/send"))
        .await
        .header("idempotency-key", "later")
        .json(&serde_json::json!({ "scheduled_at": "2099-01-01T08:00:00Z" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.dispatch_all_pending().await;
    assert!(report_mails(&app).await.is_empty());
    assert_eq!(app.stats(id).await["state"], "scheduled");
    // Its time comes.
    sqlx::query("update sends set scheduled_at = $1")
        .bind(newsletter::store::now_ms() - 1000)
        .execute(app.store().pool())
        .await
        .unwrap();
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app).await.len(), 1);

    let bad = app
        .api(Method::POST, &format!("/api/reports/{id}/send"))
        .await
        .header("idempotency-key", "x")
        .json(&serde_json::json!({ "scheduled_at": "next tuesday" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let missing_key = app
        .api(Method::POST, &format!("/api/reports/{id}/send"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(missing_key.status(), 400);
}

async fn test_sends_go_only_to_the_given_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    readers(&app, &["a@example.com"]).await;
    let id = app.create_report(&report_source("issue-8")).await;
    app.send_test_copy(id, &["editor@example.com"]).await;
    app.dispatch_all_pending().await;
    let mails = report_mails(&app).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to(), "editor@example.com");
    assert!(mails[0].subject().starts_with("[Test]"));
    assert_eq!(
        app.stats(id).await["state"],
        "draft",
        "a test is not a send"
    );

    let bad = app
        .api(Method::POST, &format!("/api/reports/{id}/test"))
        .await
        .json(&serde_json::json!({ "addresses": ["not an address"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

async fn a_sent_report_cannot_be_edited(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_report(&report_source("issue-9")).await;
    assert_eq!(
        app.create_report(&report_source("issue-9")).await,
        id,
        "same slug updates the draft"
    );
    app.trigger_send(id, "k").await;
    let response = app
        .api(Method::POST, "/api/reports")
        .await
        .header("content-type", "text/markdown")
        .body(report_source("issue-9"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
}
