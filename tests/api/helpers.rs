//! Spawning the real service for a test: its own database (an SQLite file
//! or a fresh PostgreSQL database), its own SMTP server, a random port.

use std::time::Duration;

use newsletter::config::Settings;
use newsletter::startup::Application;
use newsletter::store::Store;
use reqwest::Response;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::smtp_server::{Received, TestSmtp};

/// The environment variable naming the PostgreSQL server for tests. Each
/// test creates its own database there.
pub const POSTGRES_ENV: &str = "NEWSLETTER_TEST_POSTGRES_URL";

/// Where PostgreSQL is looked for when the variable is not set.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test function once per backend, as `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_available().await {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        }
    )*};
}

/// Whether PostgreSQL tests can run. They are skipped on a machine without
/// PostgreSQL, but never in CI, where an unreachable server fails the test;
/// likewise when the variable is set explicitly.
pub async fn postgres_available() -> bool {
    let url = postgres_url();
    match sqlx::PgConnection::connect(&url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            true
        }
        Err(e) if std::env::var("CI").is_ok() || std::env::var(POSTGRES_ENV).is_ok() => {
            panic!("PostgreSQL at {url} is required here and unreachable: {e}")
        }
        Err(_) => {
            eprintln!("skipping: no PostgreSQL at {url} (set {POSTGRES_ENV} to point elsewhere)");
            false
        }
    }
}

/// A database URL of a fresh, empty database for one test.
/// Brings `store`'s database to the schema as it was before migration
/// `version`, as an installation of an earlier release has it.
pub async fn migrate_before(store: &newsletter::store::Store, backend: Backend, version: i64) {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!("{}/migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new(&path))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(store.pool()).await.unwrap();
}

pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/test.db", dir.display()),
        Backend::Postgres => {
            let base = postgres_url();
            let name = format!("nl_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connect to test postgres");
            sqlx::query(&format!("create database {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&base).expect("postgres url");
            url.set_path(&name);
            url.to_string()
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub app: Application,
    pub smtp: TestSmtp,
    pub client: reqwest::Client,
    /// Holds the SQLite file and the outbox directory for the test's life.
    _dir: tempfile::TempDir,
    cancel: CancellationToken,
    token: std::sync::OnceLock<String>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
        drop_test_database(&self.app.state.settings.database_url);
    }
}

/// Drops a test's PostgreSQL database, ending the connections still open to
/// it, so that no test leaves one behind (SQLite files go with the temp dir).
pub fn drop_test_database(url: &str) {
    let Some(name) = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme().starts_with("postgres"))
        .map(|u| u.path().trim_start_matches('/').to_string())
        .filter(|name| name.starts_with("nl_test_"))
    else {
        return;
    };
    // Drop runs on the test's runtime, which must not be blocked on: the
    // statement runs on a thread and a runtime of its own.
    let dropped = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            // Ending the test's connections takes a moment: not worth a warning.
            let options = postgres_url()
                .parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| e.to_string())?
                .disable_statement_logging();
            let mut conn = sqlx::PgConnection::connect_with(&options)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&mut conn)
                .await
                .map_err(|e| format!("dropping {name}: {e}"))?;
            conn.close().await.map_err(|e| e.to_string())
        })
    })
    .join();
    let problem = match dropped {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => "the thread dropping it panicked".to_string(),
    };
    // A second panic while the test is already failing would abort the run.
    if std::thread::panicking() {
        eprintln!("the test database was not dropped: {problem}");
    } else {
        panic!("the test database was not dropped: {problem}");
    }
}

/// Settings for a test: everything local, retries without delay.
pub fn test_settings(database_url: &str, smtp: &TestSmtp, dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.database_url = database_url.to_string();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.mail.smtp_url = Some(smtp.url().into());
    settings.mail.outbox_dir = dir.join("outbox");
    settings.mail.from = "Weekly Test <news@example.com>".into();
    settings.mail.timeout_secs = 5;
    settings.mail.pool_size = 2;
    settings.delivery.retry_base_secs = 0.0;
    settings.delivery.retry_max_secs = 0.0;
    settings.delivery.poll_interval_ms = 50;
    settings.delivery.concurrency = 4;
    settings.log.filter = "warn".into();
    newsletter::telemetry::init(&settings.log);
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = TestSmtp::start().await;
    let database_url = fresh_database(backend, dir.path()).await;
    let mut settings = test_settings(&database_url, &smtp, dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    settings.base_url = address.parse().unwrap();
    customise(&mut settings);
    let app = Application::build(settings).await.expect("build app");

    let cancel = CancellationToken::new();
    let server = Application {
        state: app.state.clone(),
        dispatcher: app.dispatcher.clone(),
    };
    let server_cancel = cancel.clone();
    tokio::spawn(async move {
        let _ = server.serve_http(listener, server_cancel).await;
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    TestApp {
        address,
        app,
        smtp,
        client,
        _dir: dir,
        cancel,
        token: std::sync::OnceLock::new(),
    }
}

impl TestApp {
    pub fn store(&self) -> &Store {
        &self.app.state.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends every message that is due now with the worker's own loop;
    /// returns how many it handled. A queue that never drains fails the
    /// test rather than hanging it.
    pub async fn dispatch_all_pending(&self) -> usize {
        tokio::time::timeout(DRAIN_DEADLINE, self.app.dispatcher.dispatch_all_pending())
            .await
            .expect("the queue drains")
            .expect("dispatch")
    }

    pub async fn post_form(&self, path: &str, body: &str) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// The text of the page at `path`, or at a full link into this app.
    pub async fn page_text(&self, path: &str) -> String {
        let path = path.strip_prefix(&self.address).unwrap_or(path);
        self.get(path).await.text().await.expect("a page")
    }

    /// Opens the confirmation link of `mail`, then confirms as its button
    /// does; returns both pages.
    pub async fn confirm_through_pages(&self, mail: &Received) -> (String, String) {
        let link = confirmation_link(mail);
        let page = self.page_text(&link).await;
        let confirmed = self
            .post_form(
                "/subscriptions/confirm",
                &format!("token={}", token_in(&link)),
            )
            .await
            .text()
            .await
            .expect("a page");
        (page, confirmed)
    }

    /// The mail to `email` whose subject starts with `subject`.
    pub fn mail_to(&self, email: &str, subject: &str) -> Received {
        self.smtp
            .received_for(email)
            .into_iter()
            .find(|m| m.subject().starts_with(subject))
            .unwrap_or_else(|| panic!("no mail {subject:?} to {email}"))
    }

    /// Signs `email` up through the form and returns the confirmation mail.
    pub async fn sign_up(&self, email: &str) -> Received {
        let before = self.smtp.received_for(email).len();
        let body = serde_urlencoded::to_string([("email", email)]).unwrap();
        let response = self.post_form("/subscriptions", &body).await;
        assert_eq!(response.status(), 200);
        self.dispatch_all_pending().await;
        let mut mails = self.smtp.received_for(email);
        assert_eq!(mails.len(), before + 1, "one confirmation mail for {email}");
        mails.pop().unwrap()
    }

    /// Follows `mail`'s one-click `List-Unsubscribe` link as a mail
    /// client does, with a POST; returns the answer.
    pub async fn unsubscribe_through(&self, mail: &Received) -> Response {
        let link = mail
            .header("List-Unsubscribe")
            .expect("a List-Unsubscribe header");
        self.client
            .post(link.trim_matches(['<', '>']))
            .send()
            .await
            .unwrap()
    }

    /// Signs up and confirms `email`; returns the confirmation mail.
    pub async fn confirmed_reader(&self, email: &str) -> Received {
        let mail = self.sign_up(email).await;
        let link = confirmation_link(&mail);
        let token = token_in(&link);
        let response = self
            .post_form("/subscriptions/confirm", &format!("token={token}"))
            .await;
        assert_eq!(response.status(), 200, "confirming {email}");
        mail
    }

    /// Adds an editor with `password`.
    pub async fn add_editor(&self, email: &str, password: &str) {
        newsletter::commands::admin::add_editor(self.store(), email, password.to_string())
            .await
            .expect("add editor");
    }

    /// A fresh API token of a (new) editor.
    pub async fn api_token(&self) -> String {
        let email = format!("api-{}@example.com", uuid::Uuid::new_v4().simple());
        self.add_editor(&email, "a long enough password").await;
        newsletter::commands::admin::create_token(self.store(), &email)
            .await
            .expect("token")
    }

    /// An API request with a valid token.
    pub async fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let token = match self.token.get() {
            Some(t) => t.clone(),
            None => {
                let t = self.api_token().await;
                let _ = self.token.set(t.clone());
                t
            }
        };
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Stores a report through the API and returns its id.
    pub async fn create_report(&self, source: &str) -> i64 {
        let response = self
            .api(reqwest::Method::POST, "/api/reports")
            .await
            .header("content-type", "text/markdown")
            .body(source.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(status.is_success(), "creating a report: {status} {body}");
        body["id"].as_i64().unwrap()
    }

    /// Triggers the send of a report with an idempotency key.
    pub async fn trigger_send(&self, report_id: i64, key: &str) -> reqwest::Response {
        self.api(
            reqwest::Method::POST,
            &format!("/api/reports/{report_id}/send"),
        )
        .await
        .header("idempotency-key", key)
        .send()
        .await
        .unwrap()
    }

    /// Asks for test copies of a report through the API.
    pub async fn send_test_copy(&self, report_id: i64, addresses: &[&str]) {
        let response = self
            .api(
                reqwest::Method::POST,
                &format!("/api/reports/{report_id}/test"),
            )
            .await
            .json(&serde_json::json!({ "addresses": addresses }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "queueing a test copy");
    }

    /// An API call with a valid token and an optional JSON body: the status
    /// and the JSON answer (`Null` for an empty body).
    pub async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.api(method, path).await;
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    }

    /// The JSON answer of an API `GET`.
    pub async fn api_get(&self, path: &str) -> serde_json::Value {
        self.api_call(reqwest::Method::GET, path, None).await.1
    }

    pub async fn stats(&self, report_id: i64) -> serde_json::Value {
        self.api_get(&format!("/api/reports/{report_id}/stats"))
            .await
    }

    /// Logs in through the form; returns the Set-Cookie header.
    pub async fn log_in(&self, email: &str, password: &str) -> String {
        let body = serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap();
        let response = self.post_form("/admin/login", &body).await;
        assert_eq!(response.status(), 303, "login");
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("nl_session="))
            .expect("a session cookie")
    }

    /// Adds `n` confirmed readers `reader{i}@example.com` straight into the
    /// database (the sign-up path has its own tests).
    pub async fn insert_confirmed_readers(&self, n: usize) {
        for chunk_start in (0..n).step_by(500) {
            let end = (chunk_start + 500).min(n);
            let values: Vec<String> = (chunk_start..end)
                .map(|i| format!("('reader{i}@example.com', 'Reader {i}', 'confirmed', 0, 0)"))
                .collect();
            let sql = format!(
                "insert into subscribers (email, name, status, created_at, confirmed_at) values {}",
                values.join(", ")
            );
            sqlx::query(&sql)
                .execute(self.store().pool())
                .await
                .unwrap();
        }
    }

    /// A `newsletter worker` process against this app's database and SMTP
    /// server. It is killed when dropped.
    pub fn spawn_worker_process(&self, lease_secs: u64) -> tokio::process::Child {
        self.worker_command(lease_secs)
            .spawn()
            .expect("start a worker process")
    }

    /// The command `spawn_worker_process` runs, for a test to add settings
    /// (environment variables override those set here).
    pub fn worker_command(&self, lease_secs: u64) -> tokio::process::Command {
        let settings = &self.app.state.settings;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_newsletter"));
        command
            .arg("worker")
            .env("NEWSLETTER_DATABASE_URL", &settings.database_url)
            .env("NEWSLETTER_BASE_URL", settings.base_url.as_str())
            .env("NEWSLETTER_MAIL__SMTP_URL", self.smtp.url())
            .env("NEWSLETTER_MAIL__FROM", &settings.mail.from)
            .env("NEWSLETTER_MAIL__TIMEOUT_SECS", "5")
            .env("NEWSLETTER_DELIVERY__LEASE_SECS", lease_secs.to_string())
            .env("NEWSLETTER_DELIVERY__POLL_INTERVAL_MS", "50")
            .env("NEWSLETTER_DELIVERY__RETRY_BASE_SECS", "0")
            .env("NEWSLETTER_DELIVERY__RETRY_MAX_SECS", "0")
            .env("NEWSLETTER_DELIVERY__CONCURRENCY", "4")
            .env("NEWSLETTER_DELIVERY__BATCH_SIZE", "50")
            .env("NEWSLETTER_LOG__FILTER", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Waits until no delivery of `report_id` is left queued.
    pub async fn wait_until_sent(&self, report_id: i64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let sql = format!(
            "select count(*) from outbox where report_id = {report_id} and status = 'queued'"
        );
        while self.count(&sql).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the send did not finish in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A count from an SQL statement, for checking what is stored.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.store().pool())
            .await
            .expect(sql)
    }

    /// The public id of a report, which its links carry.
    pub async fn report_public_id(&self, report_id: i64) -> uuid::Uuid {
        let text: String = sqlx::query_scalar("select public_id from reports where id = $1")
            .bind(report_id)
            .fetch_one(self.store().pool())
            .await
            .unwrap();
        text.parse().unwrap()
    }

    /// Every reader's row id and public id, oldest first.
    pub async fn reader_ids(&self) -> Vec<(i64, uuid::Uuid)> {
        let rows: Vec<i64> = sqlx::query_scalar("select id from subscribers order by id")
            .fetch_all(self.store().pool())
            .await
            .unwrap();
        let mut ids = Vec::with_capacity(rows.len());
        for id in rows {
            let public = self.store().reader_public_id(id).await.unwrap().unwrap();
            ids.push((id, public));
        }
        ids
    }

    pub async fn status_of(&self, email: &str) -> Option<String> {
        sqlx::query_scalar("select status from subscribers where email = $1")
            .bind(email)
            .fetch_optional(self.store().pool())
            .await
            .unwrap()
    }
}

pub fn confirmation_link(mail: &Received) -> String {
    mail.link_starting_with("http://127.0.0.1")
        .filter(|l| l.contains("/subscriptions/confirm?token="))
        .expect("a confirmation link in the text part")
}

pub fn token_in(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("token parameter")
        .to_string()
}

pub const MAIL_WAIT: Duration = Duration::from_secs(10);

/// Longest a test waits for the queue to drain: far beyond what any test
/// queues, only there so that a queue that never empties fails the test.
const DRAIN_DEADLINE: Duration = Duration::from_secs(300);
