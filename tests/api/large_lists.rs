//! What keeps a long list cheap: imports read in batches, counts kept by the
//! database as rows change, the archive parsing each report once. Each kept
//! figure is checked against a count of the rows themselves.

use newsletter::commands::subscribers::import;
use newsletter::domain::SubscriberStatus;
use reqwest::Method;

use crate::helpers::{
    drop_test_database, fresh_database, migrate_before, spawn_app, Backend, TestApp,
};
use crate::sending::report_source;
use crate::smtp_server::Fault;

crate::on_both_backends!(
    an_import_longer_than_a_batch_stores_every_row,
    a_bad_row_after_many_batches_stores_nothing,
    reader_counts_follow_every_change,
    a_search_finds_exactly_the_readers_whose_address_has_the_part,
    readers_of_before_are_found_and_charted_after_upgrade,
    send_counts_follow_every_delivery,
    the_archive_follows_a_changed_report,
);

/// Rows in the import tests: more than two of the import's batches.
const ROWS: usize = 12_345;

fn write_csv(dir: &std::path::Path, rows: usize, last_line: Option<&str>) -> std::path::PathBuf {
    let mut text = String::from("email,name,status,confirmed_at\n");
    for i in 0..rows {
        text.push_str(&format!(
            "r{i}@example.com,Reader {i},confirmed,2024-01-02\n"
        ));
    }
    if let Some(line) = last_line {
        text.push_str(line);
        text.push('\n');
    }
    let path = dir.join("readers.csv");
    std::fs::write(&path, text).unwrap();
    path
}

async fn an_import_longer_than_a_batch_stores_every_row(backend: Backend) {
    let app = spawn_app(backend).await;
    app.confirmed_reader("r7@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(dir.path(), ROWS, None);
    let summary = import(app.store(), &file, SubscriberStatus::Pending, false)
        .await
        .unwrap();
    assert_eq!((summary.rows, summary.added), (ROWS, ROWS as u64 - 1));
    assert_eq!(
        app.count("select count(*) from subscribers").await,
        ROWS as i64
    );
    let last = format!("r{}@example.com", ROWS - 1);
    assert_eq!(app.status_of(&last).await.as_deref(), Some("confirmed"));
    assert_counts_match(&app).await;
}

async fn a_bad_row_after_many_batches_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(
        dir.path(),
        ROWS,
        Some("r3@example.com,Again,confirmed,2024-01-02"),
    );
    let error = import(app.store(), &file, SubscriberStatus::Pending, false)
        .await
        .unwrap_err()
        .to_string();
    let line = ROWS + 2;
    assert!(
        error.contains(&format!("line {line}: r3@example.com is already on line 5")),
        "{error}"
    );
    assert_eq!(app.count("select count(*) from subscribers").await, 0);

    // Many bad rows: the first hundred named, the rest counted.
    let mut text = String::from("email\n");
    for i in 0..250 {
        text.push_str(&format!("not-an-address-{i}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let error = import(app.store(), &file, SubscriberStatus::Pending, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("line 101: ") && !error.contains("line 102: "),
        "{error}"
    );
    assert!(error.contains("and 150 more bad rows"), "{error}");
    assert_counts_match(&app).await;
}

/// The dashboard's and readers page's counts equal counts of the rows.
async fn assert_counts_match(app: &TestApp) {
    for status in ["pending", "confirmed", "unsubscribed"] {
        let counted = app
            .count(&format!(
                "select count(*) from subscribers where status = '{status}'"
            ))
            .await;
        let kept = app
            .store()
            .count_subscribers(SubscriberStatus::parse(status).unwrap())
            .await
            .unwrap();
        assert_eq!(kept, counted, "{status}");
    }
    let all = app.count("select count(*) from subscribers").await;
    assert_eq!(app.store().count_readers(None).await.unwrap(), all);
    assert_growth_matches(app.store()).await;
}

const DAY_MS: i64 = 86_400_000;

/// The overview's weekly growth equals the readers' own dates counted.
async fn assert_growth_matches(store: &newsletter::store::Store) {
    let now = newsletter::store::now_ms();
    let growth = store.reader_growth(12, now).await.unwrap();
    assert_eq!(growth.len(), 12);
    let this_week = growth.last().unwrap();
    assert!(this_week.start <= now && now < this_week.start + 7 * DAY_MS);
    for week in &growth {
        let end = week.start + 7 * DAY_MS;
        for (column, kept) in [
            ("created_at", week.signed_up),
            ("confirmed_at", week.confirmed),
            ("unsubscribed_at", week.unsubscribed),
        ] {
            let counted: i64 = sqlx::query_scalar(&format!(
                "select count(*) from subscribers where {column} >= $1 and {column} < $2"
            ))
            .bind(week.start)
            .bind(end)
            .fetch_one(store.pool())
            .await
            .unwrap();
            assert_eq!(kept, counted, "{column} in the week from {}", week.start);
        }
    }
}

/// Spreads the readers' dates over the last twelve weeks and more, as a
/// list that has grown for a while has them.
async fn spread_dates(store: &newsletter::store::Store) {
    let now = newsletter::store::now_ms();
    sqlx::query(
        "update subscribers set created_at = $1 - (id * 37 % 100) * $2, \
         confirmed_at = case when confirmed_at is null then null else $1 - (id * 11 % 90) * $2 end, \
         unsubscribed_at = case when unsubscribed_at is null then null else $1 - (id % 50) * $2 end",
    )
    .bind(now)
    .bind(DAY_MS)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn reader_counts_follow_every_change(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_up("pending@example.com").await;
    app.confirmed_reader("stays@example.com").await;
    let leaves = app.confirmed_reader("leaves@example.com").await;
    app.confirmed_reader("erased@example.com").await;
    app.insert_confirmed_readers(30).await;
    assert_counts_match(&app).await;
    spread_dates(app.store()).await;
    assert_counts_match(&app).await;

    let response = app.unsubscribe_through(&leaves).await;
    assert!(response.status().is_success());
    let erased: i64 =
        sqlx::query_scalar("select id from subscribers where email = 'erased@example.com'")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert!(app.store().delete_reader(erased).await.unwrap());
    assert_counts_match(&app).await;
    assert_eq!(
        app.store()
            .count_subscribers(SubscriberStatus::Unsubscribed)
            .await
            .unwrap(),
        1
    );
}

/// The stats API's figures equal counts of the send's deliveries.
async fn assert_send_counts_match(app: &TestApp, report_id: i64) -> serde_json::Value {
    let stats = app.stats(report_id).await;
    let total = app
        .count(&format!(
            "select count(*) from outbox where kind = 'report' and report_id = {report_id}"
        ))
        .await;
    assert_eq!(stats["total"], total, "{stats}");
    let mut sum = 0;
    for status in ["sent", "failed", "skipped", "paused", "cancelled"] {
        let counted = app
            .count(&format!(
                "select count(*) from outbox where kind = 'report' and report_id = {report_id} and status = '{status}'"
            ))
            .await;
        assert_eq!(stats[status], counted, "{status}: {stats}");
        sum += counted;
    }
    let queued = app
        .count(&format!(
            "select count(*) from outbox where kind = 'report' and report_id = {report_id} and status = 'queued'"
        ))
        .await;
    let in_flight = stats["in_flight"].as_i64().unwrap_or(0);
    assert_eq!(
        stats["queued"].as_i64().unwrap() + in_flight,
        queued,
        "{stats}"
    );
    assert_eq!(sum + queued, total);
    stats
}

async fn send_counts_follow_every_delivery(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(40).await;
    let first = app.create_report(&report_source("counted")).await;
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user here"));
    app.trigger_send(first, "one").await;
    let stats = assert_send_counts_match(&app, first).await;
    assert_eq!(stats["queued"], 40);

    // Pause, resume, send, erase a reader mid-way, then finish.
    let pause = app
        .api(Method::POST, &format!("/api/reports/{first}/pause"))
        .await
        .send()
        .await
        .unwrap();
    assert!(pause.status().is_success());
    let stats = assert_send_counts_match(&app, first).await;
    assert_eq!(stats["paused"], 40);
    app.api(Method::POST, &format!("/api/reports/{first}/resume"))
        .await
        .send()
        .await
        .unwrap();
    let erased: i64 =
        sqlx::query_scalar("select id from subscribers where email = 'reader3@example.com'")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    app.store().delete_reader(erased).await.unwrap();
    app.dispatch_all_pending().await;
    let stats = assert_send_counts_match(&app, first).await;
    assert_eq!(
        (stats["sent"].as_i64(), stats["failed"].as_i64()),
        (Some(38), Some(1))
    );
    assert_eq!(stats["skipped"], 1);
    assert_eq!(
        app.store().delivered_count(first).await.unwrap(),
        38,
        "the feedback page's response rate counts the same deliveries"
    );

    // A second report, cancelled before it went out: 40 readers less the
    // one erased and the one whose address the relay refused (a hard bounce
    // suppresses it).
    let second = app.create_report(&report_source("cancelled")).await;
    app.trigger_send(second, "two").await;
    let cancel = app
        .api(Method::POST, &format!("/api/reports/{second}/cancel"))
        .await
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success());
    let stats = assert_send_counts_match(&app, second).await;
    assert_eq!(stats["cancelled"], 38);
    assert_send_counts_match(&app, first).await;
}

async fn the_archive_follows_a_changed_report(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_report(&report_source("archived")).await;
    app.trigger_send(id, "k").await;
    let index = app.get("/archive").await.text().await.unwrap();
    assert!(index.contains("Weekly Report archived"), "{index}");
    assert!(app
        .get("/archive")
        .await
        .text()
        .await
        .unwrap()
        .contains("Weekly Report archived"));

    // A correction made in the database (say, by a later version of the
    // service) shows on the next visit: the parsed line is per version.
    let corrected = report_source("archived").replace("Weekly Report archived", "Corrected Report");
    sqlx::query("update reports set source = $1, updated_at = updated_at + 1 where id = $2")
        .bind(&corrected)
        .bind(id)
        .execute(app.store().pool())
        .await
        .unwrap();
    let index = app.get("/archive").await.text().await.unwrap();
    assert!(index.contains("Corrected Report"), "{index}");
    assert!(!index.contains("Weekly Report archived"), "{index}");
}

/// Addresses of every shape a search must tell apart.
const ADDRESSES: [&str; 9] = [
    "ann_lee@example.com",
    "annxlee@example.com",
    "Bob.Stone@Example.COM",
    "50%off@shop.example",
    "back\\slash@example.org",
    "读者@例子.中国",
    "zoe@example.net",
    "ab@x.io",
    "an@x.io",
];

async fn insert_readers(store: &newsletter::store::Store, addresses: &[&str]) {
    for (i, email) in addresses.iter().enumerate() {
        let status = if i % 3 == 0 { "pending" } else { "confirmed" };
        sqlx::query("insert into subscribers (email, status, created_at) values ($1, $2, $3)")
            .bind(*email)
            .bind(status)
            .bind(newsletter::store::now_ms() - i as i64 * DAY_MS)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

/// What a search for `part` must find: every address holding it, case
/// aside, each character taken literally; newest first.
async fn expected_matches(
    store: &newsletter::store::Store,
    part: &str,
    status: Option<SubscriberStatus>,
) -> Vec<String> {
    let mut all = store.all_subscribers().await.unwrap();
    all.reverse();
    all.into_iter()
        .filter(|r| r.email.to_lowercase().contains(&part.to_lowercase()))
        .filter(|r| status.is_none_or(|s| s == r.status))
        .map(|r| r.email)
        .collect()
}

async fn assert_search_matches(store: &newsletter::store::Store) {
    let parts = [
        "ann",
        "_le",
        "n_l",
        "xlee",
        "50%",
        "%",
        "\\",
        "STONE",
        "example.com",
        "读者",
        "例子.中",
        "a",
        "an",
        "x.io",
        "nobody here",
        "e",
        "zed",
    ];
    for part in parts {
        for status in [None, Some(SubscriberStatus::Confirmed)] {
            let query = newsletter::store::ReaderQuery {
                address: Some(part.to_string()),
                status,
                limit: 100,
                ..Default::default()
            };
            let page = store.find_readers(&query).await.unwrap();
            let found: Vec<String> = page.readers.into_iter().map(|r| r.email).collect();
            let expected = expected_matches(store, part, status).await;
            assert_eq!(found, expected, "searching for {part:?} ({status:?})");
            assert_eq!(page.matching, expected.len() as i64, "{part:?}");
        }
    }
}

async fn a_search_finds_exactly_the_readers_whose_address_has_the_part(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store();
    insert_readers(store, &ADDRESSES).await;
    app.insert_confirmed_readers(40).await;
    assert_search_matches(store).await;

    // Erased and changed addresses are found no more; new ones at once.
    let ann: i64 = app
        .count("select id from subscribers where email = 'ann_lee@example.com'")
        .await;
    assert!(store.delete_reader(ann).await.unwrap());
    sqlx::query("update subscribers set email = 'zed@example.net' where email = 'zoe@example.net'")
        .execute(store.pool())
        .await
        .unwrap();
    app.sign_up("annie_lee@example.com").await;
    assert_search_matches(store).await;
    let page = store
        .find_readers(&newsletter::store::ReaderQuery {
            address: Some("_lee".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let found: Vec<&str> = page.readers.iter().map(|r| r.email.as_str()).collect();
    assert_eq!(found, ["annie_lee@example.com"]);
}

async fn readers_of_before_are_found_and_charted_after_upgrade(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path()).await;
    let store = newsletter::store::Store::connect(&url, 2).await.unwrap();
    migrate_before(&store, backend, 20).await;
    insert_readers(&store, &ADDRESSES).await;
    spread_dates(&store).await;

    store.migrate().await.unwrap();
    assert_search_matches(&store).await;
    assert_growth_matches(&store).await;
    store.pool().close().await;
    drop_test_database(&url);
}
