//! All SQL lives here; callers use functions named for what they mean.
//!
//! One set of portable queries serves SQLite and PostgreSQL through sqlx's
//! `Any` driver: `$N` placeholders, bigint Unix-millisecond times, text
//! statuses. The few statements that must differ (the queue claim) sit side by
//! side in the module that needs them.

/// `DeliveryState::Queued` as an SQL literal, for the statements that name
/// it so that the planner may use the partial index `outbox_queued` (a bound
/// parameter cannot prove an index's predicate). A test keeps the two the
/// same.
macro_rules! queued_literal {
    () => {
        "'queued'"
    };
}

/// The claim of a durable queue (mail or webhooks): its first `$4` rows in
/// the queued `status`, due by `$3` and not leased, leased to `$2` until
/// `$1`, the attempt counted, returning the given columns. `lock` is what
/// the inner select adds: SKIP LOCKED on PostgreSQL lets workers claim side
/// by side without waiting on each other's rows, and the lease then keeps
/// the rows theirs after the commit; SQLite has one writer and no row locks.
macro_rules! claim_due {
    (table: $table:literal, queued: [$($queued:tt)+], lock: $lock:literal, returning: $returning:literal) => {
        concat!(
            "update ", $table, " set lease_until = $1, leased_by = $2, attempts = attempts + 1 \
             where id in (select id from ", $table, " where status = ", $($queued)+,
            " and next_attempt_at <= $3 and (lease_until is null or lease_until < $3) \
             order by next_attempt_at, id limit $4", $lock, ") returning ", $returning
        )
    };
}

mod admins;
mod bounces;
mod consents;
mod direct_reads;
mod error;
mod events;
mod kept;
mod outbox;
mod reader_ids;
mod readers;
mod reports;
mod secrets;
mod sends;
mod signups;
mod subscribers;
#[cfg(test)]
mod test_stores;
mod votes;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

pub use admins::{ApiTokenInfo, Editor, EditorSession};
pub use bounces::{
    BounceEffect, BounceMessage, BounceStats, BouncedDelivery, NewBounce, SoftBouncePolicy,
    Suppression,
};
pub use consents::{Consent, PreconfirmedOutcome};
pub use direct_reads::DirectReader;
pub use error::{StorageProblem, StoreError};
pub use events::{ClaimedWebhook, WebhookDelivery, WebhookOutcome};
pub use kept::{HeldConnection, KeptConnection};
pub use outbox::{ClaimCheck, ClaimedJob, JobKind, JobOutcome};
pub use readers::{ReaderPage, ReaderQuery, WeekGrowth};
pub use reports::{ReportListing, ReportVersion, SaveOutcome, StoredReport};
pub use sends::{Failure, FinishCheck, Send, SendStats, TriggerOutcome};
pub use subscribers::{
    ConfirmOutcome, ImportedSubscriber, NewSignup, SignupOutcome, Subscriber, SubscriberImport,
};
pub use votes::{FeedbackComment, Helpfulness, ReportHelpfulness, VoteRecord};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle shared by the HTTP server and the workers.
///
/// SQLite allows one writer at a time; giving it a single-connection write
/// pool turns lock contention into a short in-process queue, so no request
/// ever sees "database is locked". PostgreSQL uses one pool for both.
#[derive(Clone, Debug)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    signups: signups::SignupQueue,
    /// Told when this process queues mail, so that its own idle worker
    /// starts at once instead of at its next poll.
    queued: Arc<tokio::sync::Notify>,
    /// The webhook events worth writing.
    events: Arc<events::EventInterest>,
    /// Readers' public ids, under a key read from the database on first use.
    reader_ids: reader_ids::ReaderIdsCell,
    /// The SQLite database's file, which [`DirectReader`]s open.
    sqlite_path: Option<std::path::PathBuf>,
}

/// Current time in Unix milliseconds, the unit every table uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Begins a write. On SQLite the write lock is taken at the start
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and writes later
    /// would otherwise fail at once with "database is locked" when another
    /// process (a `newsletter worker`, a command) wrote in between, instead
    /// of waiting its turn under the busy timeout.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
    }

    /// Mail was queued or made due by this process.
    fn mail_queued(&self) {
        self.queued.notify_one();
    }

    /// Resolves once this process has queued mail since the last call;
    /// mail queued by other processes is found by polling.
    pub async fn mail_queued_here(&self) {
        self.queued.notified().await
    }

    /// Connects, creating an SQLite file (and its directory) when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let (url, path) = prepare_sqlite_url(url)?;
            let options = AnyConnectOptions::from_str(&url)?;
            let read = sqlite_pool(max_connections.max(2), READ_CACHE_KIB)
                .connect_with(options.clone())
                .await?;
            // A write that failed on a full or broken disk may leave its
            // transaction open on the connection (SQLite keeps it after a
            // failed COMMIT): such a connection is closed, not reused.
            let write = sqlite_pool(1, WRITE_CACHE_KIB)
                .after_release(|_conn, _meta| {
                    Box::pin(async move { Ok(!error::take_replace_writer()) })
                })
                .connect_with(options)
                .await?;
            let queued = Arc::new(tokio::sync::Notify::new());
            let events = Arc::new(events::EventInterest::default());
            let reader_ids = reader_ids::ReaderIdsCell::default();
            Ok(Store {
                read,
                signups: signups::start(
                    write.clone(),
                    queued.clone(),
                    events.clone(),
                    reader_ids.clone(),
                ),
                write,
                backend: Backend::Sqlite,
                queued,
                events,
                reader_ids,
                // Another VFS or an immutable file is read only as sqlx
                // opens it.
                sqlite_path: (!url.contains("vfs=") && !url.contains("immutable=")).then_some(path),
            })
        } else {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                // A connection in steady use answers its next statement or
                // fails it, and a failed one is replaced; asking the server
                // first on every use doubled the round trips of each
                // statement. One idle long enough to have lost its server
                // (a restart, a timeout on the way) is still asked.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= STALE_AFTER {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await?;
            let queued = Arc::new(tokio::sync::Notify::new());
            let events = Arc::new(events::EventInterest::default());
            let reader_ids = reader_ids::ReaderIdsCell::default();
            Ok(Store {
                read: pool.clone(),
                signups: signups::start(
                    pool.clone(),
                    queued.clone(),
                    events.clone(),
                    reader_ids.clone(),
                ),
                write: pool,
                backend: Backend::Postgres,
                queued,
                events,
                reader_ids,
                sqlite_path: None,
            })
        }
    }

    /// Applies the migrations of this backend that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.write).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.write).await?,
        }
        Ok(())
    }

    /// A pool for ad-hoc statements (tests, maintenance).
    pub fn pool(&self) -> &AnyPool {
        &self.write
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// A PostgreSQL connection idle this long is asked before it is used.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// Page cache of the one write connection, in KiB. It writes every claim
/// and outcome; at a million deliveries the inner pages of the outbox's
/// trees outgrow SQLite's default of 2 MB, and each statement then read
/// them back from the operating system.
const WRITE_CACHE_KIB: u32 = 16_384;
/// Page cache of each read connection, in KiB (SQLite's default).
const READ_CACHE_KIB: u32 = 2_000;

fn sqlite_pool(max: u32, cache_kib: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A connection to a file cannot go stale; asking its thread first
        // cost a hand-over per statement.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // WAL lets readers proceed while the writer writes; the busy
                // timeout covers a second process (a `worker` beside `serve`).
                conn.execute(&*format!(
                    "pragma journal_mode = wal; pragma synchronous = normal; \
                     pragma busy_timeout = {busy}; pragma foreign_keys = on; \
                     pragma cache_size = -{cache_kib};",
                    busy = SQLITE_BUSY.as_millis()
                ))
                .await?;
                Ok(())
            })
        })
}

/// How long an SQLite statement waits for another connection's lock
/// (a `newsletter worker` beside `serve`, a command) before it fails.
const SQLITE_BUSY: Duration = Duration::from_secs(10);

/// Makes sure the file's directory exists and the file is created if
/// missing; the URL to connect with, and the file's path.
fn prepare_sqlite_url(url: &str) -> Result<(String, std::path::PathBuf), StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let raw = rest.split('?').next().unwrap_or_default();
    if raw.is_empty() || raw == ":memory:" {
        return Err(StoreError::Config(
            "an SQLite database needs a file path, e.g. sqlite://data/newsletter.db".into(),
        ));
    }
    let path = sqlx_file(url)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    check_data_directory(dir, &path)?;
    create_private_file(&path)?;
    let url = if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, path))
}

/// The file sqlx opens for `url`: its `Any` driver reads the URL as a URL
/// first (dropping `.` and `..` segments), then SQLite's options decode
/// the path (a `?` or `#` in a file name comes percent-encoded).
fn sqlx_file(url: &str) -> Result<std::path::PathBuf, StoreError> {
    let invalid = |e: &dyn std::fmt::Display| {
        StoreError::Config(format!("the SQLite database URL {url:?} is not valid: {e}"))
    };
    let normalised = url::Url::parse(url).map_err(|e| invalid(&e))?;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(normalised.as_str())
        .map_err(|e| invalid(&e))?;
    Ok(options.get_filename().to_path_buf())
}

/// Makes sure the database's directory exists and that the service can
/// write there, with one message that says what to do: SQLite itself only
/// says "unable to open database file", or fails later, on the first write.
fn check_data_directory(dir: &Path, file: &Path) -> Result<(), StoreError> {
    let advice = "make it writable for the user running newsletter, or set database_url to a \
                  file in a writable directory";
    // A directory made here is for this user only (the database holds the
    // signing key and password hashes); an existing one is left as it is.
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if let Err(e) = builder.create(dir) {
        return Err(StoreError::Config(format!(
            "the data directory {} does not exist and cannot be created ({e}): create it and {advice}",
            dir.display()
        )));
    }
    // SQLite needs to create its journal files beside the database.
    let probe = dir.join(format!(".newsletter-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return Err(StoreError::Config(format!(
                "the data directory {} cannot be written ({e}): {advice}",
                dir.display()
            )))
        }
    }
    if file.exists() {
        if let Err(e) = std::fs::OpenOptions::new().append(true).open(file) {
            return Err(StoreError::Config(format!(
                "the database file {} cannot be written ({e}): {advice}",
                file.display()
            )));
        }
    }
    Ok(())
}

/// Creates the database file readable by this user only: it holds the
/// signing key and password hashes. SQLite gives its journal files the
/// database file's permissions. An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

impl Store {
    /// The row id in `table` (one with a `public_id` column) of what a link
    /// names; a row id from a link made before public ids is taken as it is.
    async fn row_id_of(
        &self,
        table: &'static str,
        id: &crate::domain::LinkedId,
    ) -> Result<Option<i64>, StoreError> {
        use crate::domain::LinkedId;
        match id {
            LinkedId::Row(id) => Ok(Some(*id)),
            LinkedId::Public(id) if table == "subscribers" => {
                // An id made here names its row; its column is empty, so
                // a reader from before cannot be reached by a second id.
                if let Some(row) = self.reader_ids().await?.row_of(id) {
                    let found = sqlx::query_scalar(
                        "select id from subscribers where id = $1 and public_id is null",
                    )
                    .bind(row)
                    .fetch_optional(&self.read)
                    .await?;
                    if found.is_some() {
                        return Ok(found);
                    }
                    // One stored id in 2^61 deciphers too: it is looked up
                    // as stored, like any other.
                }
                Ok(
                    sqlx::query_scalar("select id from subscribers where public_id = $1")
                        .bind(id.to_string())
                        .fetch_optional(&self.read)
                        .await?,
                )
            }
            LinkedId::Public(id) => {
                let sql = format!("select id from {table} where public_id = $1");
                Ok(sqlx::query_scalar(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?)
            }
        }
    }
}

impl Store {
    /// Readers' public ids (see [`reader_ids`]).
    async fn reader_ids(&self) -> Result<&reader_ids::ReaderIds, StoreError> {
        self.reader_ids.get(&self.write).await
    }

    /// The public id of the reader in row `row`, as links and the API name
    /// them, or `None` when there is no such reader.
    pub async fn reader_public_id(&self, row: i64) -> Result<Option<uuid::Uuid>, StoreError> {
        let stored: Option<Option<String>> =
            sqlx::query_scalar("select public_id from subscribers where id = $1")
                .bind(row)
                .fetch_optional(&self.read)
                .await?;
        match stored {
            Some(stored) => Ok(Some(
                self.reader_ids().await?.of_row(row, stored.as_deref())?,
            )),
            None => Ok(None),
        }
    }
}

/// A new random public id, for a report about to be inserted.
fn new_public_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The public id kept in `column` of `row`.
fn public_id_in(row: &sqlx::any::AnyRow, column: &str) -> Result<uuid::Uuid, StoreError> {
    use sqlx::Row;
    let text: String = row.try_get(column)?;
    uuid::Uuid::try_parse(&text).map_err(|_| StoreError::Corrupt(format!("public id {text:?}")))
}

/// `$1, $2, …` for a list of `n` values starting at placeholder `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `columns` placeholders each,
/// numbered from `$1`, for a multi-row VALUES list.
fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(1 + r * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file made before connecting, and read by the direct claim
    /// checks, is the one sqlx opens: the URL read as a URL, the path
    /// percent-decoded.
    #[test]
    fn the_sqlite_file_is_named_as_sqlx_reads_the_url() {
        for (url, file) in [
            ("sqlite://data/newsletter.db", "data/newsletter.db"),
            (
                "sqlite:///var/lib/newsletter/db.sqlite",
                "/var/lib/newsletter/db.sqlite",
            ),
            ("sqlite:relative.db?mode=rwc", "relative.db"),
            ("sqlite://data/../x.db", "data/x.db"),
            ("sqlite:///tmp/a%20b%3F.db", "/tmp/a b?.db"),
        ] {
            assert_eq!(sqlx_file(url).unwrap(), Path::new(file), "{url}");
        }
    }

    #[test]
    fn value_rows_number_parameters_in_order() {
        assert_eq!(value_rows(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(value_rows(1, 3), "($1, $2, $3)");
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
    }

    #[test]
    fn the_queued_literal_is_the_queued_state() {
        let state = crate::domain::DeliveryState::Queued;
        assert_eq!(queued_literal!(), format!("'{state}'"));
    }
}
