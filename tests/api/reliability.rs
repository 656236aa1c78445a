//! Sending that never repeats itself: slow relays, rate limits, pauses,
//! database outages and relays that cannot be used, through real worker
//! processes and a counting SMTP server.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;

use crate::helpers::{postgres_available, spawn_app, Backend, TestApp};
use crate::sending::report_source;
use crate::smtp_server::Fault;
use crate::workers::deliveries_per_reader;

/// The worker processes here send on four connections: at most four
/// messages are on the wire at any moment.
const ON_THE_WIRE: usize = 4;

crate::on_both_backends!(
    a_relay_slower_than_the_lease_gets_every_message_once,
    a_rate_limit_slower_than_the_lease_gets_every_message_once,
    pause_and_cancel_stop_at_the_messages_on_the_wire,
    a_relay_that_cannot_be_used_pauses_the_send_without_using_attempts,
    a_relay_refusing_us_pauses_the_send_and_suppresses_nobody,
    failed_deliveries_are_tried_once_more_on_request,
    an_overdue_scheduled_send_waits_for_an_editor,
);

/// Deliveries per reader of one report, told apart by subject.
fn deliveries_of(app: &TestApp, slug: &str) -> HashMap<String, usize> {
    let subject = format!("Weekly Report {slug}");
    let mut counts = HashMap::new();
    for mail in app.smtp.received() {
        if mail.to().starts_with("reader") && mail.subject() == subject {
            *counts.entry(mail.to().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn assert_each_once(per_reader: &HashMap<String, usize>, readers: usize) {
    assert_eq!(per_reader.len(), readers, "every reader got the report");
    let repeated: Vec<_> = per_reader.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent twice: {repeated:?}");
}

async fn started_send(app: &TestApp, readers: usize, slug: &str) -> i64 {
    app.insert_confirmed_readers(readers).await;
    let report = app.create_report(&report_source(slug)).await;
    let response = app.trigger_send(report, slug).await;
    assert_eq!(response.status(), 202);
    report
}

async fn a_relay_slower_than_the_lease_gets_every_message_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let report = started_send(&app, 120, "slow-relay").await;
    // A batch of 50 over four connections at 0.15 s a message takes about
    // two seconds: twice the one-second lease.
    app.smtp.set_data_delay(Duration::from_millis(150));
    let _worker = app.spawn_worker_process(1);
    app.wait_until_sent(report, Duration::from_secs(120)).await;
    assert_each_once(&deliveries_per_reader(&app), 120);
}

async fn a_rate_limit_slower_than_the_lease_gets_every_message_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let report = started_send(&app, 60, "rate-limited").await;
    // Ten a second: a claimed batch of 50 waits five seconds, five leases.
    let _worker = app
        .worker_command(1)
        .env("NEWSLETTER_DELIVERY__RATE_LIMIT_PER_SEC", "10")
        .spawn()
        .unwrap();
    app.wait_until_sent(report, Duration::from_secs(120)).await;
    assert_each_once(&deliveries_per_reader(&app), 60);
}

/// Waits until the worker holds no row of `report` any more: every message
/// it had on the wire is recorded, every row it had claimed is handed back.
async fn wait_until_released(app: &TestApp, report: i64) {
    let sql =
        format!("select count(*) from outbox where report_id = {report} and leased_by is not null");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.count(&sql).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker still holds rows of a stopped send"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_deliveries(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.smtp.count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn report_rows(app: &TestApp, report: i64, status: &str) -> i64 {
    app.count(&format!(
        "select count(*) from outbox where report_id = {report} and status = '{status}'"
    ))
    .await
}

/// Once 40 more messages went out, stops the send of `report` with
/// `action` (pause or cancel); returns how many messages went out after the
/// request returned, counted once the worker has let go of every row.
async fn stop_mid_send(app: &TestApp, report: i64, action: &str) -> usize {
    wait_for_deliveries(app, app.smtp.count() + 40).await;
    let stopped = app
        .api(Method::POST, &format!("/api/reports/{report}/{action}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 200);
    let at_stop = app.smtp.count();
    wait_until_released(app, report).await;
    app.smtp.count() - at_stop
}

async fn pause_and_cancel_stop_at_the_messages_on_the_wire(backend: Backend) {
    let app = spawn_app(backend).await;
    let readers = 400;
    let report = started_send(&app, readers, "pause").await;
    app.smtp.set_data_delay(Duration::from_millis(30));
    let _worker = app.spawn_worker_process(600);

    let after_pause = stop_mid_send(&app, report, "pause").await;
    assert!(
        after_pause <= ON_THE_WIRE,
        "{after_pause} messages went out after the pause returned"
    );
    let sent = report_rows(&app, report, "sent").await;
    assert_eq!(sent as usize, deliveries_of(&app, "pause").len());
    assert_eq!(
        report_rows(&app, report, "paused").await,
        readers as i64 - sent,
        "everything not sent waits, unleased"
    );
    resume(&app, report).await;
    app.wait_until_sent(report, Duration::from_secs(120)).await;
    assert_each_once(&deliveries_of(&app, "pause"), readers);

    // Cancel a second report in the middle of its send.
    let second = app.create_report(&report_source("cancel")).await;
    assert_eq!(app.trigger_send(second, "cancel").await.status(), 202);
    let after_cancel = stop_mid_send(&app, second, "cancel").await;
    assert!(
        after_cancel <= ON_THE_WIRE,
        "{after_cancel} messages went out after the cancel returned"
    );
    let delivered = deliveries_of(&app, "cancel");
    assert!(delivered.values().all(|n| *n == 1));
    let sent = report_rows(&app, second, "sent").await;
    assert_eq!(sent as usize, delivered.len());
    assert_eq!(
        report_rows(&app, second, "cancelled").await,
        readers as i64 - sent
    );
}

async fn a_relay_that_cannot_be_used_pauses_the_send_without_using_attempts(backend: Backend) {
    let app = spawn_app(backend).await;
    let readers = 30;
    let first = started_send(&app, readers, "relay-auth").await;
    // Wrong credentials: every login is refused with 535.
    app.smtp.refuse_auth(true);
    let with_login = format!("smtp://news:wrong@127.0.0.1:{}", app.smtp.port);
    let worker = relay_worker(&app, &with_login);
    let reason = wait_for_pause(&app, first).await;
    assert!(reason.contains("535"), "{reason}");
    assert_untouched(&app, first).await;
    // The report page says why, for the editor who comes to look.
    app.add_editor("ed@example.com", "a long enough password")
        .await;
    app.log_in("ed@example.com", "a long enough password").await;
    let page = app
        .get(&format!("/admin/reports/{first}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Waiting for an editor") && page.contains("535"),
        "the report page shows the reason"
    );
    // Settings fixed, the editor resumes: everyone gets it once.
    app.smtp.refuse_auth(false);
    resume(&app, first).await;
    app.wait_until_sent(first, Duration::from_secs(60)).await;
    assert_each_once(&deliveries_of(&app, "relay-auth"), readers);
    assert_logged_once(worker, "wrong").await;

    // The relay goes away altogether: connections are refused.
    app.smtp.stop().await;
    let second = app.create_report(&report_source("relay-down")).await;
    assert_eq!(app.trigger_send(second, "relay-down").await.status(), 202);
    let worker = relay_worker(&app, &app.smtp.url());
    let reason = wait_for_pause(&app, second).await;
    assert!(reason.contains("connect"), "{reason}");
    assert_untouched(&app, second).await;
    app.smtp.restart().await;
    resume(&app, second).await;
    app.wait_until_sent(second, Duration::from_secs(60)).await;
    assert_each_once(&deliveries_of(&app, "relay-down"), readers);
    assert_logged_once(worker, "wrong").await;
}

/// A relay that refuses us rather than the reader (relaying denied at
/// every recipient, our envelope sender refused) pauses the send: no
/// delivery is marked failed, nobody is suppressed, and once the relay is
/// fixed and the send resumed every reader gets the report once.
async fn a_relay_refusing_us_pauses_the_send_and_suppresses_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    let readers = 30;
    app.insert_confirmed_readers(readers).await;
    let refusals = [
        (
            "relay-denied",
            Fault::RcptReply(554, "5.7.1 <reader@example.com>: Relay access denied"),
            "Relay access denied",
        ),
        (
            "sender-refused",
            Fault::MailReply(553, "5.1.8 <news@example.com>: Sender address rejected"),
            "Sender address rejected",
        ),
    ];
    for (slug, fault, words) in refusals {
        // More refusals than the worker meets before it pauses (five in a
        // row, with four messages on the wire).
        for _ in 0..8 {
            app.smtp.push_fault(fault.clone());
        }
        let report = app.create_report(&report_source(slug)).await;
        assert_eq!(app.trigger_send(report, slug).await.status(), 202);
        let worker = relay_worker(&app, &app.smtp.url());
        let reason = wait_for_pause(&app, report).await;
        assert!(reason.contains(words), "{reason}");
        wait_until_released(&app, report).await;
        assert_eq!(report_rows(&app, report, "failed").await, 0, "{slug}");
        assert_eq!(app.count("select count(*) from suppressions").await, 0);
        assert_eq!(app.count("select count(*) from bounces").await, 0);
        // The relay is fixed; the editor resumes.
        app.smtp.clear_faults();
        resume(&app, report).await;
        app.wait_until_sent(report, Duration::from_secs(60)).await;
        assert_each_once(&deliveries_of(&app, slug), readers);
        assert_logged_once(worker, "password").await;
    }
}

/// A worker that pauses sends after five relay-wide failures in a row.
fn relay_worker(app: &TestApp, smtp_url: &str) -> tokio::process::Child {
    app.worker_command(600)
        .env("NEWSLETTER_MAIL__SMTP_URL", smtp_url)
        .env("NEWSLETTER_MAIL__ALLOW_PLAINTEXT_AUTH", "true")
        .env("NEWSLETTER_DELIVERY__PAUSE_AFTER_RELAY_FAILURES", "5")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops the worker; its log said once why it paused, and never `secret`.
async fn assert_logged_once(mut worker: tokio::process::Child, secret: &str) {
    worker.start_kill().unwrap();
    let output = worker.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        log.matches("sends paused: the mail relay cannot be used")
            .count(),
        1,
        "the log says why, once: {log}"
    );
    assert!(!log.contains(secret), "the password is never logged");
}

/// Waits for the send of `report` to pause itself; returns the reason the
/// stats give.
async fn wait_for_pause(app: &TestApp, report: i64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = app.stats(report).await;
        if stats["state"] == "paused" {
            return stats["pause_reason"]
                .as_str()
                .expect("a paused send says why")
                .to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send did not pause: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No delivery of `report` went out or used up an attempt.
async fn assert_untouched(app: &TestApp, report: i64) {
    wait_until_released(app, report).await;
    let attempts = app
        .count(&format!(
            "select coalesce(max(attempts), 0) from outbox where report_id = {report}"
        ))
        .await;
    if attempts != 0 {
        let rows: Vec<(i64, String, i64, Option<String>)> = sqlx::query_as(&format!(
            "select id, status, attempts, last_error from outbox where report_id = {report} and attempts > 0"
        ))
        .fetch_all(app.store().pool())
        .await
        .unwrap();
        panic!("a broken relay uses up no attempt: {rows:?}");
    }
    assert_eq!(report_rows(app, report, "sent").await, 0);
    assert_eq!(report_rows(app, report, "failed").await, 0);
}

async fn resume(app: &TestApp, report: i64) {
    let resumed = app
        .api(Method::POST, &format!("/api/reports/{report}/resume"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    assert_eq!(
        app.stats(report).await["pause_reason"],
        serde_json::Value::Null
    );
}

async fn failed_deliveries_are_tried_once_more_on_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let readers = 12;
    let report = started_send(&app, readers, "retry").await;
    for _ in 0..3 {
        app.smtp
            .push_fault(Fault::DataReply(554, "5.7.1 rejected for now"));
    }
    app.dispatch_all_pending().await;
    assert_eq!(report_rows(&app, report, "failed").await, 3);
    assert_eq!(app.stats(report).await["state"], "done");
    let failed_readers: Vec<String> = sqlx::query_scalar(
        "select recipient from outbox where status = 'failed' order by recipient",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();

    // Retried through the API: one of the three fails again, with a
    // temporary error, and that is its last attempt.
    app.smtp
        .push_fault(Fault::DataReply(451, "4.3.0 try again later"));
    let retried = app
        .api(Method::POST, &format!("/api/reports/{report}/retry-failed"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(
        retried.json::<serde_json::Value>().await.unwrap()["requeued"],
        3
    );
    app.dispatch_all_pending().await;
    assert_eq!(
        report_rows(&app, report, "failed").await,
        1,
        "tried once more, no more"
    );
    let gave_up: String =
        sqlx::query_scalar("select last_error from outbox where status = 'failed'")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert!(gave_up.contains("gave up"), "{gave_up}");
    assert_eq!(app.stats(report).await["state"], "done");

    // Retried from the command line: the last one arrives.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["report", "retry-failed", "retry"])
        .env(
            "NEWSLETTER_DATABASE_URL",
            &app.app.state.settings.database_url,
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 failed deliveries"));
    app.dispatch_all_pending().await;

    let per_reader = deliveries_of(&app, "retry");
    assert_each_once(&per_reader, readers);
    for reader in failed_readers {
        assert_eq!(per_reader[&reader], 1);
    }
    // Nothing failed is left; asking again touches nobody.
    let again = app
        .api(Method::POST, &format!("/api/reports/{report}/retry-failed"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["requeued"],
        0
    );
    app.dispatch_all_pending().await;
    assert_each_once(&deliveries_of(&app, "retry"), readers);
}

async fn an_overdue_scheduled_send_waits_for_an_editor(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(3).await;
    let report = app.create_report(&report_source("overdue")).await;
    let response = app
        .api(Method::POST, &format!("/api/reports/{report}/send"))
        .await
        .header("idempotency-key", "overdue")
        .json(&serde_json::json!({ "scheduled_at": "2099-01-01T08:00:00Z" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // The service was down when its time came, two hours ago.
    sqlx::query("update sends set scheduled_at = $1")
        .bind(newsletter::store::now_ms() - 2 * 3600 * 1000)
        .execute(app.store().pool())
        .await
        .unwrap();
    app.dispatch_all_pending().await;
    assert_eq!(
        app.smtp.count(),
        0,
        "an overdue send does not start on its own"
    );
    let stats = app.stats(report).await;
    assert_eq!(stats["state"], "paused");
    let reason = stats["pause_reason"].as_str().unwrap();
    assert!(reason.contains("was due at"), "{reason}");

    resume(&app, report).await;
    app.dispatch_all_pending().await;
    assert_each_once(&deliveries_of(&app, "overdue"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_longer_than_the_lease_repeats_at_most_the_messages_on_the_wire() {
    if !postgres_available().await {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let readers = 600;
    let report = started_send(&app, readers, "outage").await;
    app.smtp.set_data_delay(Duration::from_millis(10));
    let proxy = crate::tcp_proxy::TcpProxy::start("127.0.0.1:5432").await;
    let mut through_proxy = url::Url::parse(&app.app.state.settings.database_url).unwrap();
    through_proxy.set_port(Some(proxy.port())).unwrap();
    let _worker = app
        .worker_command(2)
        .env("NEWSLETTER_DATABASE_URL", through_proxy.as_str())
        .spawn()
        .unwrap();

    wait_for_deliveries(&app, 150).await;
    proxy.cut();
    let at_cut = app.smtp.count();
    // Four leases long: every lease the worker held has run out.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = app.smtp.count() - at_cut;
    assert!(
        during <= ON_THE_WIRE,
        "{during} messages started without the database"
    );
    assert!(app.smtp.count() < readers, "the outage came mid-send");
    proxy.restore();

    app.wait_until_sent(report, Duration::from_secs(120)).await;
    let per_reader = deliveries_of(&app, "outage");
    assert_eq!(per_reader.len(), readers, "nobody is lost");
    let duplicates: usize = per_reader.values().map(|n| n - 1).sum();
    eprintln!("{duplicates} duplicates after a database outage");
    assert!(duplicates <= ON_THE_WIRE, "{duplicates} duplicates");
}

/// A small tmpfs mounted for one test, so that its disk can fill up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (and a loud message) where mounting is not allowed; in CI
    /// that fails the test instead.
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m")])
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                if std::env::var("CI").is_ok() {
                    panic!("{why}");
                }
                eprintln!("SKIPPED: the full-disk test did not run: {why}");
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills every byte left.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while filler.write_all(&block).is_ok() {}
        // The last partial block, byte by byte in larger steps.
        for size in [4096, 512, 1] {
            while filler.write_all(&block[..size]).is_ok() {}
        }
    }

    fn make_room(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }

    /// Remounts read-only (or read-write again).
    fn set_read_only(&self, read_only: bool) {
        let option = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let done = std::process::Command::new("mount")
            .args(["-o", option])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(done.success(), "mount -o {option}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A sign-up through the form; its status and body.
async fn sign_up_status(app: &TestApp, email: &str) -> (u16, String) {
    let body = serde_urlencoded::to_string([("email", email)]).unwrap();
    let response = app.post_form("/subscriptions", &body).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Whether a fresh connection of its own sees `email` stored.
async fn stored_elsewhere(database_url: &str, email: &str) -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
    let found: Option<i64> = sqlx::query_scalar("select id from subscribers where email = $1")
        .bind(email)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    found.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_in_the_middle_of_a_send_loses_and_repeats_nothing() {
    let Some(disk) = SmallDisk::mount(48) else {
        return;
    };
    let database_url = format!("sqlite://{}/newsletter.db", disk.path().display());
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.database_url = database_url.clone();
        // Only the worker process sends.
        s.delivery.concurrency = 1;
        // Sign-ups go on until the disk refuses one.
        s.subscription.signups_per_ip_per_hour = 10_000;
    })
    .await;
    let readers = 800;
    let report = started_send(&app, readers, "disk-full").await;
    app.smtp.set_data_delay(Duration::from_millis(5));
    let mut worker = app
        .worker_command(30)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_deliveries(&app, 100).await;

    disk.fill();
    // A sign-up that fits in the space the database's log already holds
    // (it is reused after a checkpoint) is stored and acknowledged; the
    // first that needs more room is refused with a 503 that says why.
    let mut refused = None;
    for i in 0..2_000 {
        let email = format!("while-full-{i}@example.com");
        let (status, body) = sign_up_status(&app, &email).await;
        if status != 200 {
            refused = Some((status, body));
            break;
        }
        assert!(
            stored_elsewhere(&database_url, &email).await,
            "{email} was acknowledged but not stored"
        );
    }
    let (status, body) = refused.expect("the full disk refused no sign-up");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("disk"), "the answer says why: {body}");
    // Three seconds of a full disk while the worker goes on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    disk.make_room();

    // A write acknowledged now is there for everyone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = sign_up_status(&app, "after@example.com").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored_elsewhere(&database_url, "after@example.com").await);
    // Another writer is not locked out.
    newsletter::commands::admin::add_editor(
        app.store(),
        "ed@example.com",
        "long enough password".into(),
    )
    .await
    .expect("another write after the disk has room");

    app.wait_until_sent(report, Duration::from_secs(120)).await;
    let per_reader = deliveries_of(&app, "disk-full");
    assert_each_once(&per_reader, readers);
    // A restart repeats nothing either.
    worker.start_kill().unwrap();
    let output = worker.wait_with_output().await.unwrap();
    let _again = app.spawn_worker_process(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.stats(report).await["state"] != "done" {
        assert!(tokio::time::Instant::now() < deadline, "the send is stuck");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_each_once(&deliveries_of(&app, "disk-full"), readers);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        log.matches("the disk holding the database is full").count(),
        1,
        "the worker's log says why, once: {log}"
    );
}

/// `newsletter migrate` against `database_url`: exit status and stderr.
fn migrate(database_url: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("migrate")
        .env("NEWSLETTER_DATABASE_URL", database_url)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_clear_message(stderr: &str, says: &str) {
    assert!(stderr.contains(says), "{stderr}");
    assert_eq!(
        stderr.matches("database_url").count(),
        1,
        "one message, with what to do: {stderr}"
    );
    assert!(
        !stderr.contains("code: 14"),
        "no raw SQLite error: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_or_missing_data_directory_is_named_with_what_to_do() {
    let Some(disk) = SmallDisk::mount(4) else {
        return;
    };
    let existing = format!("sqlite://{}/newsletter.db", disk.path().display());
    assert!(migrate(&existing).0, "a writable directory works");
    disk.set_read_only(true);

    let (ok, stderr) = migrate(&existing);
    assert!(!ok);
    assert_one_clear_message(&stderr, "cannot be written");
    let fresh = format!("sqlite://{}/other.db", disk.path().display());
    let (ok, stderr) = migrate(&fresh);
    assert!(!ok);
    assert_one_clear_message(&stderr, "cannot be written");
    let missing = format!("sqlite://{}/data/newsletter.db", disk.path().display());
    let (ok, stderr) = migrate(&missing);
    assert!(!ok);
    assert_one_clear_message(&stderr, "does not exist and cannot be created");

    disk.set_read_only(false);
    assert!(migrate(&missing).0, "works once the directory is writable");
}
