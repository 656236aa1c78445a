//! The outbox worker against a misbehaving SMTP server.

use std::time::Duration;

use newsletter::store::now_ms;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, Backend, MAIL_WAIT};
use crate::smtp_server::Fault;

crate::on_both_backends!(
    a_451_is_retried_and_then_delivered,
    a_550_fails_for_good_with_the_reply_kept,
    a_dropped_connection_in_data_is_retried,
    smtp_down_at_first_and_up_later,
    a_crashed_workers_claims_come_back,
    the_background_worker_sends_without_help,
    an_idle_worker_starts_at_once_on_what_its_process_queues,
    attempts_run_out,
    a_421_and_close_is_retried,
    a_relay_slow_to_take_the_data_is_waited_for,
    a_verdict_already_read_survives_a_slow_envelope_after_it,
    messages_are_dkim_signed_when_a_key_is_configured,
    a_554_fails_for_good,
    a_timed_out_connection_is_not_reused,
    the_rate_limit_paces_messages,
);

async fn queue_confirmation(app: &crate::helpers::TestApp, email: &str) {
    let response = app
        .post_json("/subscriptions", &json!({ "email": email }))
        .await;
    assert_eq!(response.status(), 200);
}

async fn outbox_row(app: &crate::helpers::TestApp) -> (String, i64, Option<String>) {
    let row: (String, i64, Option<String>) =
        sqlx::query_as("select status, attempts, last_error from outbox order by id desc limit 1")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    row
}

/// An app whose retries wait an hour, so that a test sees a message
/// between its attempts; `retries_come_due` then lets the hour pass.
async fn spawn_app_retrying_later(
    backend: Backend,
    customise: impl FnOnce(&mut newsletter::config::Settings),
) -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(backend, |s| {
        s.delivery.retry_base_secs = 3600.0;
        s.delivery.retry_max_secs = 3600.0;
        customise(s);
    })
    .await
}

/// Makes every queued message due now, as if its retry time had come.
async fn retries_come_due(app: &crate::helpers::TestApp) {
    sqlx::query("update outbox set next_attempt_at = $1 where status = 'queued'")
        .bind(now_ms())
        .execute(app.store().pool())
        .await
        .unwrap();
}

/// Queues a confirmation to `email` with `fault` on the first attempt;
/// checks that the attempt failed temporarily with a reason mentioning
/// `expected`, and that the retry delivers it.
async fn assert_retried_then_delivered(
    backend: Backend,
    fault: Fault,
    email: &str,
    expected: &str,
) -> crate::helpers::TestApp {
    let app = spawn_app_retrying_later(backend, |_| {}).await;
    app.smtp.push_fault(fault);
    queue_confirmation(&app, email).await;
    assert_eq!(app.dispatch_all_pending().await, 1);
    assert!(app.smtp.received().is_empty());
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    let error = error.expect("the reason is kept");
    assert!(error.contains(expected), "{error}");
    assert_eq!(
        app.dispatch_all_pending().await,
        0,
        "not due before its time"
    );
    retries_come_due(&app).await;
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.received_for(email).len(), 1);
    assert_eq!(outbox_row(&app).await.0, "sent");
    app
}

async fn a_451_is_retried_and_then_delivered(backend: Backend) {
    let fault = Fault::RcptReply(451, "4.3.0 try again later");
    let app = assert_retried_then_delivered(backend, fault, "lee@example.com", "451").await;
    assert_eq!(outbox_row(&app).await.1, 2, "two attempts");
    assert_eq!(app.smtp.received()[0].mail_from, "news@example.com");
}

async fn a_550_fails_for_good_with_the_reply_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 user unknown"));
    queue_confirmation(&app, "max@example.com").await;
    app.dispatch_all_pending().await;
    app.dispatch_all_pending().await;
    assert!(app.smtp.received().is_empty());
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("user unknown"));
}

async fn a_dropped_connection_in_data_is_retried(backend: Backend) {
    assert_retried_then_delivered(backend, Fault::DropInData, "ned@example.com", "").await;
}

async fn smtp_down_at_first_and_up_later(backend: Backend) {
    let app = spawn_app_retrying_later(backend, |_| {}).await;
    app.smtp.stop().await;
    queue_confirmation(&app, "ola@example.com").await;
    app.dispatch_all_pending().await;
    // A relay that cannot be reached says nothing about the message: it
    // waits without using up an attempt.
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    assert!(error.is_some());

    app.smtp.restart().await;
    retries_come_due(&app).await;
    assert_eq!(app.dispatch_all_pending().await, 1);
    assert_eq!(app.smtp.received_for("ola@example.com").len(), 1);
    assert_eq!(outbox_row(&app).await.0, "sent");
}

async fn a_crashed_workers_claims_come_back(backend: Backend) {
    let app = spawn_app(backend).await;
    queue_confirmation(&app, "pia@example.com").await;
    // A worker claims the row and dies before sending.
    let now = now_ms();
    let claimed = app
        .store()
        .claim_due_jobs("crashed-worker", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(app.dispatch_all_pending().await, 0, "the lease still holds");
    // Its lease runs out.
    sqlx::query("update outbox set lease_until = $1")
        .bind(now - 1)
        .execute(app.store().pool())
        .await
        .unwrap();
    assert_eq!(app.dispatch_all_pending().await, 1);
    assert_eq!(app.smtp.received_for("pia@example.com").len(), 1);
}

async fn the_background_worker_sends_without_help(backend: Backend) {
    let app = spawn_app(backend).await;
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(app.app.dispatcher.clone().run(cancel.clone()));
    queue_confirmation(&app, "quinn@example.com").await;
    app.smtp.wait_for(1, MAIL_WAIT).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap();
    // The outcome is recorded once the batch finishes.
    assert_eq!(outbox_row(&app).await.0, "sent");
    assert_eq!(
        app.count("select count(*) from outbox where leased_by is not null")
            .await,
        0
    );
}

async fn an_idle_worker_starts_at_once_on_what_its_process_queues(backend: Backend) {
    // Polling once an hour: only the wake-up from this process can bring
    // these messages out before the deadline.
    let app =
        crate::helpers::spawn_app_with(backend, |s| s.delivery.poll_interval_ms = 3_600_000).await;
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(app.app.dispatcher.clone().run(cancel.clone()));
    // Let the worker find nothing and go to sleep first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A sign-up's confirmation.
    app.post_form("/subscriptions", "email=una%40example.com&name=Una")
        .await;
    app.smtp.wait_for(1, MAIL_WAIT).await;
    let link = crate::helpers::confirmation_link(&app.smtp.received()[0]);
    let token = crate::helpers::token_in(&link);
    let confirmed = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(confirmed.status(), 200);

    // A report sent through the API, as an editor would.
    let report = app
        .create_report(&crate::sending::report_source("wake-up"))
        .await;
    let response = app.trigger_send(report, "wake-up").await;
    assert!(response.status().is_success(), "{}", response.status());
    app.smtp.wait_for(2, MAIL_WAIT).await;
    assert_eq!(app.smtp.received_for("una@example.com").len(), 2);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap();
}

async fn attempts_run_out(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| s.delivery.max_attempts = 2).await;
    app.smtp
        .push_fault(Fault::DataReply(452, "4.2.2 mailbox full"));
    app.smtp
        .push_fault(Fault::DataReply(452, "4.2.2 mailbox full"));
    queue_confirmation(&app, "rex@example.com").await;
    app.dispatch_all_pending().await;
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(error.unwrap().contains("mailbox full"));
}

async fn a_421_and_close_is_retried(backend: Backend) {
    assert_retried_then_delivered(backend, Fault::CloseAtMail, "sam@example.com", "421").await;
}

/// A relay may take its time over a message's data (content scanning, a
/// busy queue): longer than a command's timeout is not given up on, since
/// a retry then could reach the reader a second time.
async fn a_relay_slow_to_take_the_data_is_waited_for(backend: Backend) {
    let app = spawn_app_retrying_later(backend, |s| s.mail.timeout_secs = 1).await;
    app.smtp.push_fault(Fault::SlowData(Duration::from_secs(3)));
    queue_confirmation(&app, "tia@example.com").await;
    app.dispatch_all_pending().await;
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts, error), ("sent", 1, None));
    retries_come_due(&app).await;
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.received_for("tia@example.com").len(), 1);
}

/// With pipelining, a message's data rides in the same write as the next
/// message's envelope. The relay answers the data at once and then takes
/// its time over the next recipient: the first message is delivered and
/// recorded so, and neither reader gets a second copy.
async fn a_verdict_already_read_survives_a_slow_envelope_after_it(backend: Backend) {
    let app = spawn_app_retrying_later(backend, |s| {
        s.mail.timeout_secs = 1;
        s.delivery.concurrency = 1;
    })
    .await;
    app.smtp.push_fault(Fault::Nothing);
    app.smtp.push_fault(Fault::SlowRcpt(Duration::from_secs(3)));
    queue_confirmation(&app, "vera@example.com").await;
    queue_confirmation(&app, "walt@example.com").await;
    app.dispatch_all_pending().await;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("select recipient, status, attempts from outbox order by id")
            .fetch_all(app.store().pool())
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("vera@example.com".into(), "sent".into(), 1),
            ("walt@example.com".into(), "queued".into(), 1),
        ],
        "the first was taken; the second's envelope timed out before its data"
    );
    retries_come_due(&app).await;
    app.dispatch_all_pending().await;
    assert_eq!(outbox_row(&app).await.0, "sent");
    for reader in ["vera@example.com", "walt@example.com"] {
        assert_eq!(app.smtp.received_for(reader).len(), 1, "{reader}");
    }
}

/// A PKCS#1 RSA key as `openssl genrsa -traditional` writes it still signs,
/// and the record made from it by `openssl rsa -pubout` verifies.
async fn messages_are_dkim_signed_when_a_key_is_configured(backend: Backend) {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.pem");
    let made = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl makes the test key");
    assert!(made.status.success());
    let public = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .expect("openssl writes the public key");
    assert!(public.status.success());
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(&public.stdout)
    );
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.mail.dkim = Some(newsletter::config::DkimSettings {
            selector: crate::dkim::SELECTOR.into(),
            domain: crate::dkim::DOMAIN.into(),
            private_key_file: key.clone(),
        });
    })
    .await;
    queue_confirmation(&app, "uma@example.com").await;
    app.dispatch_all_pending().await;
    let mail = &app.smtp.received_for("uma@example.com")[0];
    crate::dkim::verify(&mail.data, &record)
        .await
        .expect("the signature verifies");
}

async fn a_554_fails_for_good(backend: Backend) {
    let app = spawn_app(backend).await;
    app.smtp
        .push_fault(Fault::DataReply(554, "5.7.1 message rejected as spam"));
    queue_confirmation(&app, "vic@example.com").await;
    app.dispatch_all_pending().await;
    let (status, attempts, error) = outbox_row(&app).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("rejected as spam"));
}

async fn a_timed_out_connection_is_not_reused(backend: Backend) {
    let app = spawn_app_retrying_later(backend, |s| {
        s.mail.timeout_secs = 1;
        s.mail.data_timeout_secs = 1;
        s.delivery.concurrency = 1;
    })
    .await;
    // A first message warms the pool: one connection.
    queue_confirmation(&app, "w1@example.com").await;
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.connections(), 1);

    // The next one times out on that connection...
    app.smtp.push_fault(Fault::SlowData(Duration::from_secs(3)));
    queue_confirmation(&app, "w2@example.com").await;
    app.dispatch_all_pending().await;
    assert_eq!(outbox_row(&app).await.0, "queued");

    // ...so the retry must not read the late reply on it: a new connection.
    retries_come_due(&app).await;
    app.dispatch_all_pending().await;
    assert_eq!(
        app.smtp.connections(),
        2,
        "the timed-out connection was dropped"
    );
    assert_eq!(outbox_row(&app).await.0, "sent");
    // The relay took the first copy in the end, after we had given up on
    // its verdict: the documented repeat. Both copies carry one Message-ID,
    // by which a receiver can tell the second is the same message.
    for _ in 0..100 {
        if app.smtp.received_for("w2@example.com").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to_w2 = app.smtp.received_for("w2@example.com");
    assert_eq!(to_w2.len(), 2, "the slow copy and the retry");
    let ids: Vec<_> = to_w2.iter().map(|m| m.header("Message-ID")).collect();
    assert!(ids[0].is_some(), "{ids:?}");
    assert_eq!(ids[0], ids[1], "one Message-ID for both attempts");
    let other = app.smtp.received_for("w1@example.com")[0].header("Message-ID");
    assert_ne!(other, ids[0], "another delivery has its own");
}

/// A lower bound only: a slow machine can take longer, never shorter.
async fn the_rate_limit_paces_messages(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.delivery.rate_limit_per_sec = 20;
        s.subscription.signups_per_ip_per_hour = 0;
    })
    .await;
    for i in 0..21 {
        queue_confirmation(&app, &format!("paced{i}@example.com")).await;
    }
    let started = std::time::Instant::now();
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.count(), 21);
    // 21 messages at 20 per second: the first goes at once, the last a
    // second later.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}
