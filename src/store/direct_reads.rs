//! The last check before the wire, read from SQLite on the asking task's
//! own thread.
//!
//! Through the pool, each read of an SQLite database is a command handed to
//! the connection's own thread and an answer handed back: two wake-ups of
//! sleeping threads, which on a small machine cost more than the read.
//! The check runs once for nearly every message, since on SQLite one read
//! is over before the next question comes, so those wake-ups were a large
//! part of what a message cost. A read by primary key takes microseconds,
//! so here it is made where it is asked, on a connection of its own.
//! PostgreSQL keeps the pooled read, where the round trip to the server is
//! the cost and one read answers many questions.
//!
//! A read here never waits for a lock: it runs on a thread of the runtime,
//! which must not stall. In WAL mode a reader meets a lock only in rare
//! moments (a connection recovering the log); the check then fails at once
//! and the caller asks the pool, which waits its turn.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::outbox::{claim_check, claim_checks_sql, ClaimCheck};
use super::StoreError;
use crate::domain::DeliveryState;

/// Claim checks on a connection of their own to an SQLite database, made
/// synchronously: each takes a few microseconds, less than handing it to
/// another thread would.
pub struct DirectReader {
    path: PathBuf,
    /// Opened on first use; dropped after a failure other than a lock, to
    /// be opened again.
    connection: Mutex<Option<Connection>>,
}

impl DirectReader {
    pub(super) fn new(path: &Path) -> DirectReader {
        DirectReader {
            path: path.to_path_buf(),
            connection: Mutex::new(None),
        }
    }

    /// Where each of the claimed messages `ids` stands, as
    /// [`super::Store::check_claims`] answers it: sorted by id, a row that
    /// is gone left out.
    pub fn check_claims(
        &self,
        ids: &[i64],
        worker: &str,
        valid_until: i64,
    ) -> Result<Vec<(i64, ClaimCheck)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let connection = match guard.as_mut() {
            Some(connection) => connection,
            None => guard.insert(self.open().map_err(|e| StoreError::Direct(e.to_string()))?),
        };
        let read = read_claims(connection, ids, worker, valid_until);
        if read.as_ref().is_err_and(|e| !is_lock(e)) {
            // Whatever state the failure left it in, the next read starts
            // on a fresh connection.
            *guard = None;
        }
        read.map_err(|e| StoreError::Direct(e.to_string()))
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write without create: the file exists (the pool made it),
        // and a read-only connection could not set up the shared memory of
        // a WAL database that no other connection has open.
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never waits for a lock (see the module).
        connection.busy_timeout(Duration::ZERO)?;
        // It only ever reads: anything else is refused.
        connection.pragma_update(None, "query_only", true)?;
        Ok(connection)
    }
}

/// Why a direct read failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("outbox row {0}: {1}")]
    Corrupt(i64, String),
}

/// Whether another connection's lock stopped the read: the connection is
/// sound, only the moment was wrong.
fn is_lock(e: &ReadError) -> bool {
    matches!(
        e,
        ReadError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn read_claims(
    connection: &Connection,
    ids: &[i64],
    worker: &str,
    valid_until: i64,
) -> Result<Vec<(i64, ClaimCheck)>, ReadError> {
    // `$1`, `$2`… are numbered in the order they appear, so they bind
    // positionally here as they do through sqlx.
    let mut statement = connection.prepare_cached(&claim_checks_sql(ids.len()))?;
    let rows = statement.query_map(rusqlite::params_from_iter(ids), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<i64>>(3)?,
        ))
    })?;
    let mut checks = Vec::with_capacity(ids.len());
    for row in rows {
        let (id, status, leased_by, lease_until) = row?;
        let status: DeliveryState = status
            .parse()
            .map_err(|e: crate::domain::UnknownState| ReadError::Corrupt(id, e.to_string()))?;
        let check = claim_check(
            status,
            leased_by.as_deref(),
            lease_until,
            worker,
            valid_until,
        );
        checks.push((id, check));
    }
    checks.sort_unstable_by_key(|(id, _)| *id);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{claimed_confirmations, stores};
    use crate::store::Backend;

    /// The direct read answers as the pooled one does, for a claim held,
    /// withdrawn by a pause, lost to another worker or to its outcome,
    /// running out, and gone; and it sees what the pool's writer committed
    /// a moment before, so a pause stops the very next message.
    #[tokio::test]
    async fn the_direct_check_sees_each_change_the_pool_commits() {
        for store in stores("direct_reads").await {
            let direct = store.direct_reader();
            if store.backend != Backend::Sqlite {
                assert!(direct.is_none(), "PostgreSQL keeps the pooled read");
                continue;
            }
            let direct = direct.expect("SQLite reads directly");
            let jobs = claimed_confirmations(&store, 4).await;
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            let mut asked = ids.clone();
            asked.push(999_999);
            asked.reverse();
            let both = |valid_until: i64| {
                let (store, direct, asked) = (&store, &direct, &asked);
                async move {
                    let pooled = store
                        .check_claims(None, asked, "w", valid_until)
                        .await
                        .unwrap();
                    let direct = direct.check_claims(asked, "w", valid_until).unwrap();
                    assert_eq!(direct, pooled, "both reads agree");
                    direct
                }
            };
            let held: Vec<_> = ids.iter().map(|&id| (id, ClaimCheck::Held)).collect();
            assert_eq!(both(50_000).await, held);
            for (sql, id) in [
                ("update outbox set status = 'paused' where id = $1", ids[0]),
                ("update outbox set leased_by = 'v' where id = $1", ids[1]),
                ("update outbox set status = 'sent' where id = $1", ids[2]),
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            let changed = vec![
                (ids[0], ClaimCheck::Withdrawn),
                (ids[1], ClaimCheck::Lost),
                (ids[2], ClaimCheck::Lost),
                (ids[3], ClaimCheck::Held),
            ];
            assert_eq!(both(50_000).await, changed);
            let expiring = vec![
                (ids[0], ClaimCheck::Withdrawn),
                (ids[1], ClaimCheck::Lost),
                (ids[2], ClaimCheck::Lost),
                (ids[3], ClaimCheck::Expiring),
            ];
            assert_eq!(both(100_000).await, expiring, "no lease time to spare");
            assert!(direct.check_claims(&[], "w", 0).unwrap().is_empty());
        }
    }

    /// A read that fails leaves no broken connection behind: the next one
    /// opens a fresh connection and answers.
    #[tokio::test]
    async fn a_failed_read_is_followed_by_a_fresh_connection() {
        for store in stores("direct_fails").await {
            let Some(direct) = store.direct_reader() else {
                continue;
            };
            assert!(direct.check_claims(&[1], "w", 0).unwrap().is_empty());
            sqlx::query("alter table outbox rename to outbox_away")
                .execute(store.pool())
                .await
                .unwrap();
            let failed = direct.check_claims(&[1], "w", 0).unwrap_err();
            assert!(failed.to_string().contains("outbox"), "{failed}");
            sqlx::query("alter table outbox_away rename to outbox")
                .execute(store.pool())
                .await
                .unwrap();
            assert!(direct.check_claims(&[1], "w", 0).unwrap().is_empty());
        }
    }
}
