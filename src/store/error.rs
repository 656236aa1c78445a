//! The store's one error type, and the one place that notices when the
//! disk under the database fails.

use std::sync::atomic::{AtomicBool, Ordering};

/// A database failure. Never shown to users as is: the HTTP layer logs it and
/// answers with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database configuration: {0}")]
    Config(String),
    /// A batched write failed; every caller in the batch gets its message.
    #[error("database error: {0}")]
    Batch(String),
    /// A use of the database ran out of time.
    #[error("the database did not answer within {} s", .0.as_secs())]
    Unanswered(std::time::Duration),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// A read on a connection outside the pools (see `direct_reads`).
    #[error("database error: {0}")]
    Direct(String),
}

/// Why the database cannot be written, when the disk is to blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageProblem {
    /// No space left (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    Full,
    /// The file or its file system became read-only.
    ReadOnly,
    /// The disk reported an I/O error.
    Io,
}

impl StorageProblem {
    /// What a user sees (HTTP 503).
    pub fn public_message(self) -> &'static str {
        match self {
            StorageProblem::Full => {
                "the server's disk is full, so nothing was stored; please try again in a few minutes"
            }
            StorageProblem::ReadOnly | StorageProblem::Io => {
                "the server cannot write to its disk right now, so nothing was stored; please try again in a few minutes"
            }
        }
    }

    /// What the operator reads in the log, once per episode.
    fn log_message(self) -> &'static str {
        match self {
            StorageProblem::Full => {
                "the disk holding the database is full: writes fail (and are answered 503) until \
                 there is room; free some space, nothing acknowledged is lost"
            }
            StorageProblem::ReadOnly => {
                "the database has become read-only: writes fail (and are answered 503) until it \
                 is writable again; check the file system and the file's permissions"
            }
            StorageProblem::Io => {
                "the disk holding the database reports I/O errors: writes fail (and are answered \
                 503) until it recovers; check the disk"
            }
        }
    }

    fn of_message(message: &str) -> Option<StorageProblem> {
        let message = message.to_ascii_lowercase();
        if message.contains("disk is full") || message.contains("no space left") {
            Some(StorageProblem::Full)
        } else if message.contains("readonly database") || message.contains("read-only file system")
        {
            Some(StorageProblem::ReadOnly)
        } else if message.contains("disk i/o error") {
            Some(StorageProblem::Io)
        } else {
            None
        }
    }
}

/// Set while the disk is known to be failing: the log says so once, and
/// the SQLite writer's connection is replaced so that no transaction a
/// failed commit left open survives.
static FAILING: AtomicBool = AtomicBool::new(false);
/// Set by every storage error, taken by the writer pool when the connection
/// comes back.
static REPLACE_WRITER: AtomicBool = AtomicBool::new(false);

impl StoreError {
    /// Whether the disk is to blame, and how.
    pub fn storage_problem(&self) -> Option<StorageProblem> {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                if db.code().as_deref() == Some("53100") {
                    return Some(StorageProblem::Full);
                }
                StorageProblem::of_message(db.message())
            }
            StoreError::Database(sqlx::Error::Io(e)) => StorageProblem::of_message(&e.to_string()),
            StoreError::Batch(message) => StorageProblem::of_message(message),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let error = StoreError::Database(e);
        if let Some(problem) = error.storage_problem() {
            REPLACE_WRITER.store(true, Ordering::SeqCst);
            if !FAILING.swap(true, Ordering::SeqCst) {
                tracing::error!(error = %error, "{}", problem.log_message());
            }
        }
        error
    }
}

/// A write went through: if the disk was failing, it works again.
pub(super) fn writes_work() {
    if FAILING.swap(false, Ordering::SeqCst) {
        tracing::info!("the database can be written again");
    }
}

/// Whether the writer's connection should be closed rather than reused,
/// after a storage error (a failed COMMIT can leave SQLite's transaction
/// open, holding the write lock).
pub(super) fn take_replace_writer() -> bool {
    REPLACE_WRITER.swap(false, Ordering::SeqCst)
}
