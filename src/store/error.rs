//! The store's one error type.

/// A database failure. Never shown to users as is: the HTTP layer logs it and
/// answers with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database configuration: {0}")]
    Config(String),
    /// A batched write failed; every caller in the batch gets its message.
    #[error("database error: {0}")]
    Batch(String),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}
