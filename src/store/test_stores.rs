//! The databases the store's own tests run on: a migrated SQLite file in a
//! temporary directory, and a migrated PostgreSQL database when the test
//! server is there (always under CI). Each goes when its test ends.

use std::ops::Deref;

use super::Store;

/// The PostgreSQL server the tests use, as `.ci/run` names it.
fn postgres_base() -> String {
    std::env::var("NEWSLETTER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store for one test; its database is removed when it is dropped.
pub(super) struct TestStore {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop.
    database: Option<String>,
}

impl Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(name) = self.database.take() else {
            return;
        };
        // Drop runs on the test's runtime, which must not be blocked on: the
        // statement runs on a thread and a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = Store::connect(&postgres_base(), 1).await?;
                sqlx::query(&format!("drop database if exists {name} with (force)"))
                    .execute(admin.pool())
                    .await?;
                Ok::<_, super::StoreError>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("the test database was not dropped: {dropped:?}");
        }
    }
}

/// One store per backend, named for the test module (`nl_test_` first, so
/// that `.ci/run` clears what a crashed run left).
pub(super) async fn stores(module: &str) -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/{module}.db", dir.path().display());
    let mut stores = vec![TestStore {
        store: Store::connect(&url, 2).await.unwrap(),
        _dir: Some(dir),
        database: None,
    }];
    let base = postgres_base();
    match Store::connect(&base, 1).await {
        Ok(admin) => {
            let name = format!("nl_test_{module}_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("create database {name}"))
                .execute(admin.pool())
                .await
                .unwrap();
            let mut url = url::Url::parse(&base).unwrap();
            url.set_path(&name);
            stores.push(TestStore {
                store: Store::connect(url.as_str(), 2).await.unwrap(),
                _dir: None,
                database: Some(name),
            });
        }
        Err(e) if std::env::var("CI").is_ok() => panic!("no PostgreSQL at {base}: {e}"),
        Err(_) => {}
    }
    for store in &stores {
        store.migrate().await.unwrap();
    }
    stores
}

/// A value bound to a statement whose plan is asked for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg {
    Int(i64),
    Text(&'static str),
}

/// The planner's plan for `sql` with `args`, one step a line (SQLite's last
/// column and PostgreSQL's only one describe a step).
pub(super) async fn plan(store: &Store, sql: &str, args: &[Arg]) -> String {
    use sqlx::Row;

    let explain = match store.backend {
        super::Backend::Sqlite => "explain query plan ",
        super::Backend::Postgres => "explain ",
    };
    let sql = format!("{explain}{sql}");
    let query = args
        .iter()
        .fold(sqlx::query(&sql), |query, arg| match *arg {
            Arg::Int(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
        });
    let rows = query.fetch_all(store.pool()).await.unwrap();
    rows.iter()
        .map(|row| row.try_get::<String, _>(row.len() - 1).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `plan` reads the whole of `table` (or the whole of an index of it).
pub(super) fn reads_all_of(plan: &str, table: &str) -> bool {
    plan.lines().any(|step| {
        let step = step.trim_start_matches(['-', '>', ' ', '|', '`']);
        step.starts_with(&format!("SCAN {table}")) || step.contains(&format!("Seq Scan on {table}"))
    })
}

/// `n` confirmations queued and claimed by worker `w` (leases until
/// 100,000), in id order.
pub(super) async fn claimed_confirmations(store: &Store, n: usize) -> Vec<super::ClaimedJob> {
    let rows: Vec<String> = (0..n)
        .map(|i| format!("('confirmation', 'r{i}@x.org', 0, 0, 'queued')"))
        .collect();
    sqlx::query(&format!(
        "insert into outbox (kind, recipient, next_attempt_at, created_at, status) values {}",
        rows.join(", ")
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let jobs = store.claim_due_jobs("w", 10, 100_000, 10).await.unwrap();
    assert_eq!(jobs.len(), n);
    jobs
}
