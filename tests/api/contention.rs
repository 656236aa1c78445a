//! Many writers at once: HTTP sign-ups and votes while workers claim and
//! record. On SQLite this is where "database is locked" would show up.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app_with, Backend};

crate::on_both_backends!(
    writes_from_requests_and_workers_never_fail,
    a_change_that_reads_first_waits_for_another_process_writing,
);

async fn writes_from_requests_and_workers_never_fail(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.subscription.signups_per_ip_per_hour = 0).await;
    app.insert_confirmed_readers(1500).await;
    let report = app
        .create_report(&crate::sending::report_source("busy"))
        .await;
    app.trigger_send(report, "k").await;
    app.smtp.set_data_delay(Duration::from_millis(1));

    // Two workers claim and record while requests write.
    let cancel = CancellationToken::new();
    let workers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.app.dispatcher.clone().run(cancel.clone())))
        .collect();
    let readers: Vec<uuid::Uuid> = app
        .reader_ids()
        .await
        .into_iter()
        .take(500)
        .map(|(_, public)| public)
        .collect();
    let issue = app.report_public_id(report).await;
    let signer = app.app.state.signer.clone();
    let app_ref = &app;
    let signups = futures::stream::iter(0..500).map(|i| -> futures::future::BoxFuture<'_, u16> {
        Box::pin(async move {
            app_ref
                .post_json(
                    "/subscriptions",
                    &json!({ "email": format!("busy{i}@example.com") }),
                )
                .await
                .status()
                .as_u16()
        })
    });
    let votes =
        futures::stream::iter(readers).map(|reader| -> futures::future::BoxFuture<'_, u16> {
            let token = signer.feedback_token(&issue, &reader);
            Box::pin(async move {
                app_ref
                    .post_form("/feedback", &format!("token={token}&answer=yes"))
                    .await
                    .status()
                    .as_u16()
            })
        });
    let statuses: Vec<u16> = futures::stream::select(signups, votes)
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(statuses.len(), 1000);
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );

    app.wait_until_sent(report, Duration::from_secs(120)).await;
    cancel.cancel();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(app.count("select count(*) from votes").await, 500);
    assert_eq!(
        app.count("select count(*) from subscribers where email like 'busy%'")
            .await,
        500
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from outbox where report_id = {report} and status = 'sent'"
        ))
        .await,
        1500
    );
}

/// Another process (here a second connection pool on the same database, as
/// `newsletter worker` or a command would open) writes while an editor's
/// resume reads the send and then writes it: the resume waits its turn and
/// succeeds instead of failing with "database is locked".
async fn a_change_that_reads_first_waits_for_another_process_writing(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    app.insert_confirmed_readers(3).await;
    let report = app
        .create_report(&crate::sending::report_source("turns"))
        .await;
    app.trigger_send(report, "k").await;
    assert!(app.store().pause_send(report).await.unwrap());

    let other = newsletter::store::Store::connect(&app.app.state.settings.database_url, 2)
        .await
        .unwrap();
    let mut held = other.pool().begin().await.unwrap();
    sqlx::query("update subscribers set name = 'Renamed' where email = 'reader0@example.com'")
        .execute(&mut *held)
        .await
        .unwrap();
    let store = app.store().clone();
    let resume = tokio::spawn(async move { store.resume_send(report).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.commit().await.unwrap();
    let resumed = resume.await.unwrap();
    assert!(matches!(resumed, Ok(true)), "{resumed:?}");
    other.pool().close().await;
}
