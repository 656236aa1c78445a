//! The last check before a message goes on the wire, for all of a worker's
//! senders at once.
//!
//! Each sender asks, just before it writes a message, whether its claim
//! still holds: still queued (not paused or cancelled), still this
//! worker's, with lease time to spare. Asked one by one, that is a database
//! round trip per message, the largest share of a message's cost on
//! PostgreSQL. Here the questions that arrive while one read is under way
//! wait for the next, which answers them all: each answer still comes from
//! a read made after its question was asked, and an idle worker's single
//! question goes at once. On SQLite, where a read is over before the next
//! question comes, each is read at once on the asking task's own thread
//! instead (see `store::DirectReader`), and only a read that fails there
//! goes the shared way.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{now_ms, ClaimCheck, DirectReader, Store, StoreError};

/// Questions answered by one read at most.
const MOST_PER_READ: usize = 256;

type Answer = Result<ClaimCheck, String>;

struct Question {
    id: i64,
    answer: oneshot::Sender<Answer>,
}

/// Shared by the clones of one worker.
pub(super) struct ClaimGate {
    store: Store,
    worker: Arc<str>,
    /// A claim must hold at least this much longer to be used.
    margin: Duration,
    /// How long one read may take before its questions fail.
    deadline: Duration,
    /// Started on the first question, inside the runtime; the reading task
    /// ends when the gate is dropped.
    questions: OnceLock<mpsc::Sender<Question>>,
    /// Reads made by the asking task itself, where the store offers them.
    direct: Option<DirectReader>,
}

impl ClaimGate {
    pub fn new(store: Store, worker: Arc<str>, margin: Duration, deadline: Duration) -> Self {
        ClaimGate {
            direct: store.direct_reader(),
            store,
            worker,
            margin,
            deadline,
            questions: OnceLock::new(),
        }
    }

    /// Where the claims on deliveries `ids` stand now, or why that cannot
    /// be told, in the order asked. All are asked before any answer is
    /// awaited, so one read mostly answers them together.
    pub async fn check(&self, ids: &[i64]) -> Vec<Answer> {
        if let Some(direct) = &self.direct {
            let valid_until = now_ms() + self.margin.as_millis() as i64;
            match direct.check_claims(ids, &self.worker, valid_until) {
                Ok(checks) => return ids.iter().map(|&id| Ok(found(&checks, id))).collect(),
                // Another connection's lock, mostly: the pool, which waits
                // its turn, is asked instead.
                Err(e) => tracing::debug!(error = %e, "direct claim check failed; asking the pool"),
            }
        }
        let stopped = || Err("the claim checks stopped".to_string());
        let questions = self.questions.get_or_init(|| self.start());
        let mut pending = Vec::with_capacity(ids.len());
        for &id in ids {
            let (answer, answered) = oneshot::channel();
            match questions.send(Question { id, answer }).await {
                Ok(()) => pending.push(Some(answered)),
                Err(_) => pending.push(None),
            }
        }
        let mut answers = Vec::with_capacity(ids.len());
        for answered in pending {
            answers.push(match answered {
                Some(answered) => answered.await.unwrap_or_else(|_| stopped()),
                None => stopped(),
            });
        }
        answers
    }

    fn start(&self) -> mpsc::Sender<Question> {
        let (questions, mut asked) = mpsc::channel::<Question>(MOST_PER_READ * 4);
        let (store, worker) = (self.store.clone(), self.worker.clone());
        let (margin, deadline) = (self.margin, self.deadline);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MOST_PER_READ);
            let mut ids = Vec::with_capacity(MOST_PER_READ);
            let mut reader = store.kept_reader();
            while reader
                .idle_until(asked.recv_many(&mut batch, MOST_PER_READ))
                .await
                > 0
            {
                ids.clear();
                ids.extend(batch.iter().map(|q: &Question| q.id));
                let valid_until = now_ms() + margin.as_millis() as i64;
                let (store, ids, worker) = (&store, &ids, &worker);
                let read = reader
                    .run(deadline, |mut held| async move {
                        let read = store
                            .check_claims(held.as_mut(), ids, worker, valid_until)
                            .await;
                        (held, read)
                    })
                    .await;
                for question in batch.drain(..) {
                    // A sender that stopped waiting needs no answer.
                    let _ = question.answer.send(answer(&read, question.id));
                }
            }
        });
        questions
    }
}

/// The answer for delivery `id` from a read of several, sorted by id; a
/// row the read did not find is `Lost`.
fn answer(read: &Result<Vec<(i64, ClaimCheck)>, StoreError>, id: i64) -> Answer {
    match read {
        Ok(checks) => Ok(found(checks, id)),
        Err(e) => Err(e.to_string()),
    }
}

/// Delivery `id`'s check among `checks`, sorted by id; `Lost` when the
/// read did not find it.
fn found(checks: &[(i64, ClaimCheck)], id: i64) -> ClaimCheck {
    checks
        .binary_search_by_key(&id, |(id, _)| *id)
        .map_or(ClaimCheck::Lost, |at| checks[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct read that fails does not fail the message: the check is
    /// asked of the pool instead, and the next direct read opens afresh.
    #[tokio::test]
    async fn a_direct_read_that_fails_is_asked_of_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()), 4)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "insert into outbox (kind, recipient, next_attempt_at, created_at, status) \
             values ('confirmation', 'a@x.org', 0, 0, 'queued')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let now = now_ms();
        let id = store
            .claim_due_jobs("w", now, now + 600_000, 10)
            .await
            .unwrap()[0]
            .id;
        // A read connection of the pool is open (and idle, for the gate to
        // take); the gate's own is opened on its first read, and the file is
        // not where it looks.
        store.ping().await.unwrap();
        let away = dir.path().join("away.db");
        std::fs::rename(&path, &away).unwrap();
        let direct = store.direct_reader().unwrap();
        assert!(direct.check_claims(&[id], "w", now).is_err());
        let gate = ClaimGate::new(
            store.clone(),
            "w".into(),
            Duration::from_secs(1),
            Duration::from_secs(30),
        );
        let answers = gate.check(&[id]).await;
        assert!(matches!(answers[..], [Ok(ClaimCheck::Held)]), "{answers:?}");

        std::fs::rename(&away, &path).unwrap();
        assert_eq!(
            direct.check_claims(&[id], "w", now).unwrap(),
            vec![(id, ClaimCheck::Held)],
            "the direct read answers again"
        );
        store.close().await;
    }
}
