//! A connection kept by a task that uses the database many times a second.
//!
//! A connection taken from the pool for each use also goes back each time,
//! and the pool asks it whether it still works as it comes back: a second
//! exchange with the database for every statement or transaction. The tasks
//! on a send's hot path (the last check before the wire, the outcome writer)
//! keep one instead, under the same two rules: a use that fails or runs out
//! of time drops it, since it may have been left mid-statement; and one
//! unused for [`KEEP_IDLE`] goes back to the pool, which makes sure of it
//! before its next use.

use std::future::Future;
use std::time::Duration;

use super::{Backend, Store, StoreError};

/// How long a kept connection waits for its next use before it goes back.
pub const KEEP_IDLE: Duration = Duration::from_secs(5);

/// The smallest pool a connection is kept from: a smaller one cannot spare
/// one (SQLite's single writer above all, which everything shares).
const KEPT_MIN_POOL: u32 = 4;

/// A connection being kept, as the store's statements take it.
pub struct HeldConnection(pub(super) sqlx::pool::PoolConnection<sqlx::Any>);

/// Which of the store's pools a [`KeptConnection`] comes from.
#[derive(Debug, Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// A connection taken on first use and kept between uses (see the module).
pub struct KeptConnection {
    store: Store,
    side: Side,
    held: Option<HeldConnection>,
}

impl Store {
    /// A read connection to keep.
    pub fn kept_reader(&self) -> KeptConnection {
        KeptConnection {
            store: self.clone(),
            side: Side::Read,
            held: None,
        }
    }

    /// A write connection to keep. SQLite has one writer, which is never
    /// kept: each use takes it from the pool.
    pub fn kept_writer(&self) -> KeptConnection {
        KeptConnection {
            store: self.clone(),
            side: Side::Write,
            held: None,
        }
    }

    /// Begins a write transaction on a kept connection, the way
    /// [`Store::begin_write`] does on the pool.
    pub(super) async fn begin_kept<'c>(
        &self,
        held: &'c mut HeldConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => sqlx::Connection::begin_with(&mut *held.0, "BEGIN IMMEDIATE").await,
            Backend::Postgres => sqlx::Connection::begin(&mut *held.0).await,
        }
    }
}

impl KeptConnection {
    /// Runs one use of the database within `deadline`. `work` is handed the
    /// kept connection (taken first when there is none, and where the pool
    /// can spare one; `None` means the pool's) and hands it back with its
    /// result, to be kept if the use worked.
    pub async fn run<T, F, Fut>(&mut self, deadline: Duration, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Option<HeldConnection>) -> Fut,
        Fut: Future<Output = (Option<HeldConnection>, Result<T, StoreError>)>,
    {
        let used = tokio::time::timeout(deadline, async {
            let held = match self.held.take() {
                Some(held) => Some(held),
                None => take(self.pool()).await?,
            };
            let (held, result) = work(held).await;
            if result.is_ok() {
                self.held = held;
            }
            result
        })
        .await;
        used.unwrap_or_else(|_| Err(StoreError::Unanswered(deadline)))
    }

    /// Awaits `next`, the task's next piece of work, handing the connection
    /// back to the pool if that takes [`KEEP_IDLE`] or longer.
    pub async fn idle_until<F: Future>(&mut self, next: F) -> F::Output {
        let mut next = std::pin::pin!(next);
        if self.held.is_some() {
            match tokio::time::timeout(KEEP_IDLE, next.as_mut()).await {
                Ok(output) => return output,
                Err(_) => self.held = None,
            }
        }
        next.await
    }

    fn pool(&self) -> &sqlx::AnyPool {
        match self.side {
            Side::Read => &self.store.read,
            Side::Write => &self.store.write,
        }
    }
}

/// A connection of `pool` to keep, unless the pool is too small to spare one.
async fn take(pool: &sqlx::AnyPool) -> Result<Option<HeldConnection>, StoreError> {
    if pool.options().get_max_connections() < KEPT_MIN_POOL {
        return Ok(None);
    }
    Ok(Some(HeldConnection(pool.acquire().await?)))
}
