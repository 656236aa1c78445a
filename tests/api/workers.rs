//! Real worker processes: several on one database, and one killed with
//! SIGKILL in the middle of a send.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use crate::helpers::{postgres_available, spawn_app, Backend};

/// Each delivery has at most this many messages on the wire or finished but
/// not yet recorded: `concurrency` sending, `concurrency` waiting for the
/// outcome writer and `concurrency` being written (the workers here run
/// with concurrency 4).
const IN_FLIGHT_PER_WORKER: usize = 3 * 4;

crate::on_both_backends!(
    killed_workers_lose_nothing_and_repeat_only_what_was_in_flight,
    sigterm_finishes_messages_in_flight_and_hands_back_the_rest,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_one_postgres_send_each_message_once() {
    if !postgres_available().await {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    app.insert_confirmed_readers(2000).await;
    let report = app
        .create_report(&crate::sending::report_source("scale-out"))
        .await;
    let response = app.trigger_send(report, "k").await;
    assert_eq!(response.status(), 202);
    app.smtp.set_data_delay(Duration::from_millis(1));

    let _first = app.spawn_worker_process(60);
    let _second = app.spawn_worker_process(60);
    app.wait_until_sent(report, Duration::from_secs(120)).await;

    let per_reader = deliveries_per_reader(&app);
    assert_eq!(per_reader.len(), 2000, "every reader got the report");
    let repeated: Vec<_> = per_reader.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent twice: {repeated:?}");
}

async fn killed_workers_lose_nothing_and_repeat_only_what_was_in_flight(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(2000).await;
    let report = app
        .create_report(&crate::sending::report_source("crash"))
        .await;
    app.trigger_send(report, "k").await;
    // Slow enough that every kill lands in the middle of the send.
    app.smtp.set_data_delay(Duration::from_millis(2));

    let kills = 5;
    for _ in 0..kills {
        let mut worker = app.spawn_worker_process(1);
        let target = app.smtp.count() + rand::thread_rng().gen_range(20..250);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while app.smtp.count() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker made no progress"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.start_kill().unwrap();
        worker.wait().await.unwrap();
    }
    let _last = app.spawn_worker_process(1);
    app.wait_until_sent(report, Duration::from_secs(120)).await;

    let per_reader = deliveries_per_reader(&app);
    assert_eq!(per_reader.len(), 2000, "nobody is lost");
    let duplicates: usize = per_reader.values().map(|n| n - 1).sum();
    eprintln!("{duplicates} duplicate deliveries after {kills} kills");
    assert!(
        duplicates <= kills * IN_FLIGHT_PER_WORKER,
        "{duplicates} duplicates after {kills} kills"
    );
    let sent = app
        .count(&format!(
            "select count(*) from outbox where report_id = {report} and status = 'sent'"
        ))
        .await;
    assert_eq!(sent, 2000);
}

async fn sigterm_finishes_messages_in_flight_and_hands_back_the_rest(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(500).await;
    let report = app
        .create_report(&crate::sending::report_source("graceful"))
        .await;
    app.trigger_send(report, "k").await;
    app.smtp.set_data_delay(Duration::from_millis(5));

    let mut worker = app.spawn_worker_process(600);
    while app.smtp.count() < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = worker.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops promptly")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");

    // Everything that went out is recorded, and nothing is left leased (the
    // lease here is ten minutes: only an explicit hand-back frees it).
    let sent = app
        .count(&format!(
            "select count(*) from outbox where report_id = {report} and status = 'sent'"
        ))
        .await;
    assert_eq!(sent as usize, deliveries_per_reader(&app).len());
    assert!(sent < 500, "stopped before the end");
    let leased = app
        .count(&format!(
            "select count(*) from outbox where report_id = {report} and leased_by is not null"
        ))
        .await;
    assert_eq!(leased, 0);

    let _next = app.spawn_worker_process(600);
    app.wait_until_sent(report, Duration::from_secs(60)).await;
    let per_reader = deliveries_per_reader(&app);
    assert_eq!(per_reader.len(), 500);
    assert!(
        per_reader.values().all(|n| *n == 1),
        "a graceful stop repeats nothing"
    );
}

pub fn deliveries_per_reader(app: &crate::helpers::TestApp) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for mail in app.smtp.received() {
        if mail.to().starts_with("reader") {
            *counts.entry(mail.to().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Restarts the PostgreSQL server itself, so it cannot run beside other
/// tests; `.ci/run` runs it on its own after the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared PostgreSQL server: run alone, as .ci/run does"]
async fn a_postgres_restart_in_the_middle_of_a_send_loses_nothing() {
    assert!(postgres_available().await, "this check needs PostgreSQL");
    let app = spawn_app(Backend::Postgres).await;
    app.insert_confirmed_readers(1000).await;
    let report = app
        .create_report(&crate::sending::report_source("restart"))
        .await;
    app.trigger_send(report, "k").await;
    // Slow enough (four connections, 20 ms each) that the restart, which
    // takes a second or two, lands in the middle of the send.
    app.smtp.set_data_delay(Duration::from_millis(20));
    let _worker = app.spawn_worker_process(5);
    while app.smtp.count() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster")
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let restarted = std::process::Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(&version)
        .args(["main", "restart"])
        .status()
        .unwrap();
    assert!(restarted.success());
    assert!(
        app.smtp.count() < 1000,
        "the restart came in the middle of the send"
    );

    app.wait_until_sent(report, Duration::from_secs(120)).await;
    let per_reader = deliveries_per_reader(&app);
    assert_eq!(per_reader.len(), 1000, "nobody is lost");
    let duplicates: usize = per_reader.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= IN_FLIGHT_PER_WORKER,
        "{duplicates} duplicates"
    );
}
