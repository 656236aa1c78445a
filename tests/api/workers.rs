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
    leases_outlive_a_relay_slower_than_the_lease_and_show_in_flight,
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
        wait_for_messages(&app, target).await;
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

/// On PostgreSQL a claim writes the leased row beside the old one on its
/// page and no index entry (a heap-only update): no index names the lease
/// columns, and the outbox's pages keep room for the claimed versions.
/// PostgreSQL's own statistics tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_on_postgres_write_no_index_entries() {
    if !postgres_available().await {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    app.insert_confirmed_readers(1000).await;
    let report = app
        .create_report(&crate::sending::report_source("in-place"))
        .await;
    app.trigger_send(report, "k").await;
    let queued = "select count(*) from outbox where status = 'queued'";
    assert_eq!(app.count(queued).await, 1000);

    let now = newsletter::store::now_ms();
    let mut claimed = 0;
    while claimed < 1000 {
        let batch = app
            .store()
            .claim_due_jobs("a-worker-of-this-test", now, now + 60_000, 50)
            .await
            .unwrap();
        assert!(!batch.is_empty());
        claimed += batch.len();
    }

    // Each backend sends its counts to the statistics within seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (updated, in_place) = loop {
        let counts: (i64, i64) = sqlx::query_as(
            "select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables where relname = 'outbox'",
        )
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        if counts.0 >= 1000 {
            break counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "updates counted: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(updated, 1000);
    // A page keeps room for most of its rows' claimed versions, not all:
    // the rest go to another page, and only they write index entries.
    // With an index on a lease column, none would be in place.
    assert!(in_place >= 800, "claims in place: {in_place} of {updated}");
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
    wait_for_messages(&app, 50).await;
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

/// A worker keeps the ids of the rows it holds and renews their leases by
/// those ids; it publishes how many it holds, which is what the report's
/// progress shows in flight. Here every message takes longer on the wire
/// than the lease lasts.
async fn leases_outlive_a_relay_slower_than_the_lease_and_show_in_flight(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(12).await;
    let report = app
        .create_report(&crate::sending::report_source("slow-relay"))
        .await;
    app.trigger_send(report, "k").await;
    app.smtp.set_data_delay(Duration::from_secs(3));
    // One batch takes all twelve; four go on the wire at once, so the last
    // of them waits three times the delay for its turn.
    let _worker = app.spawn_worker_process(2);

    // Every row still queued, with its lease.
    let queued = |app: &crate::helpers::TestApp| {
        let sql = format!(
            "select id, leased_by, lease_until from outbox \
             where report_id = {report} and status = 'queued' order by id"
        );
        let pool = app.store().pool().clone();
        async move {
            sqlx::query_as::<_, (i64, Option<String>, Option<i64>)>(&sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let worker = loop {
        let rows = queued(&app).await;
        if rows.len() == 12 && rows.iter().all(|(_, by, _)| by.is_some()) {
            break rows[0].1.clone().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "claimed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // What the worker published shows, within the second it publishes in:
    // every delivery not sent yet is held, none merely queued.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = app.stats(report).await;
        if stats["in_flight"].as_i64().unwrap() > 0 {
            assert_eq!(stats["queued"], 0, "{stats}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // For twice the two-second lease, every message not sent yet stays
    // this worker's, with its lease ahead of the clock: never handed back,
    // never expired, never claimed again.
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut watched = 0;
    while tokio::time::Instant::now() < watch_until {
        let now = newsletter::store::now_ms();
        let rows = queued(&app).await;
        for (id, by, until) in &rows {
            assert_eq!(by.as_deref(), Some(worker.as_str()), "row {id}: {rows:?}");
            assert!(until.unwrap() > now, "row {id}'s lease ran out: {rows:?}");
        }
        watched += usize::from(!rows.is_empty());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(watched > 10, "the rows were watched while they waited");

    app.wait_until_sent(report, Duration::from_secs(60)).await;
    let per_reader = deliveries_per_reader(&app);
    assert_eq!(per_reader.len(), 12);
    assert!(per_reader.values().all(|n| *n == 1), "{per_reader:?}");
    // Once it holds nothing, the worker says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .count("select count(*) from delivery_holds where held > 0")
        .await
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds left published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the SMTP server has received `count` messages in all; fails
/// when the workers stop making progress.
async fn wait_for_messages(app: &crate::helpers::TestApp, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.smtp.count() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} messages arrived in 60 s",
            app.smtp.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// The variable that allows a test to restart the PostgreSQL cluster.
const RESTART_POSTGRES_ENV: &str = "NEWSLETTER_TEST_RESTART_POSTGRES";

/// Restarts the PostgreSQL server itself, so it cannot run beside other
/// tests; `.ci/run` runs it on its own after the suite, with
/// `NEWSLETTER_TEST_RESTART_POSTGRES=1`. Without that it restarts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared PostgreSQL server: run alone, as .ci/run does"]
async fn a_postgres_restart_in_the_middle_of_a_send_loses_nothing() {
    if std::env::var(RESTART_POSTGRES_ENV).as_deref() != Ok("1") {
        assert!(
            std::env::var("CI").is_err(),
            "{RESTART_POSTGRES_ENV}=1 is required in CI"
        );
        eprintln!("skipping: set {RESTART_POSTGRES_ENV}=1 to let this test restart PostgreSQL");
        return;
    }
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
    wait_for_messages(&app, 200).await;
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
