//! Smaller defences: which proxy header line counts, what caches may keep,
//! what `config check` prints, how private the database file is, and how
//! much a debug log can say.

use std::os::unix::fs::PermissionsExt;

use reqwest::Method;

use crate::cli::newsletter;
use crate::helpers::{spawn_app, spawn_app_with, Backend};

crate::on_both_backends!(
    the_last_forwarded_for_line_is_the_client,
    private_pages_are_never_cached_and_https_is_pinned,
);

async fn the_last_forwarded_for_line_is_the_client(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.client_ip_header = Some("X-Forwarded-For".into());
        s.subscription.signups_per_ip_per_hour = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        // The client forges a first line; our proxy appends the last.
        let response = app
            .client
            .post(app.url("/subscriptions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-forwarded-for", "203.0.113.7")
            .body(format!("email=r{i}%40example.com"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "one client, however it signs");
    assert_eq!(app.count("select count(*) from subscribers").await, 2);
}

async fn private_pages_are_never_cached_and_https_is_pinned(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app
        .create_report(&crate::sending::report_source("cache"))
        .await;
    for path in ["/admin/login", "/admin"] {
        let response = app.get(path).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert!(response
            .headers()
            .get("strict-transport-security")
            .is_none());
    }
    let csv = app
        .api(Method::GET, &format!("/api/reports/{id}/feedback.csv"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["cache-control"], "no-store");
    let home = app.get("/").await;
    assert!(home.headers().get("cache-control").is_none());

    let secure = spawn_app_with(backend, |s| {
        s.base_url = "https://news.example".parse().unwrap();
    })
    .await;
    for path in ["/", "/admin/login"] {
        let response = secure.get(path).await;
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
}

#[test]
fn config_check_hides_a_password_given_as_a_parameter() {
    let out = newsletter(
        &["config", "check"],
        &[(
            "NEWSLETTER_DATABASE_URL",
            "postgres://app@127.0.0.1:1/news?sslmode=disable&password=hunter2-secret",
        )],
        None,
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("database: NOT reachable"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("password=***"), "{printed}");
}

#[test]
fn a_new_sqlite_database_is_private_to_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("state").join("newsletter");
    let url = format!("sqlite://{}/news.db", db_dir.display());
    let out = newsletter(&["migrate"], &[("NEWSLETTER_DATABASE_URL", &url)], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db_dir), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&db_dir.join("news.db")), 0o600);
    for entry in std::fs::read_dir(&db_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn a_debug_log_of_a_preview_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let report = concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example.md");
    let out = newsletter(
        &[
            "report",
            "preview",
            report,
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[("RUST_LOG", "debug")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.len() < 100_000,
        "{} bytes of log for one preview",
        out.stderr.len()
    );
}
