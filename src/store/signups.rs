//! Sign-ups written in batches.
//!
//! A sign-up is three small writes (the reader, a confirmation token, the
//! queued mail). Done one request at a time, a burst of sign-ups spends its
//! time handing statements to the database one by one and committing each.
//! Here one task takes every sign-up waiting at that moment and writes them
//! together: a few multi-row statements and one commit for the lot. Under no
//! load a batch is a single sign-up, so nothing waits for a batch to fill.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot, Notify};

#[cfg(test)]
use super::Store;

use super::events::EventInterest;
use super::reader_ids::{ReaderIds, ReaderIdsCell};
use super::{now_ms, placeholders, value_rows, JobKind, SignupOutcome, StoreError};
use crate::domain::SubscriberStatus;

/// Most sign-ups in one transaction (six parameters each).
const MAX_BATCH: usize = 128;
/// Sign-ups that may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

/// A sign-up handed to the writer task.
#[derive(Debug)]
pub(super) struct SignupJob {
    pub email: String,
    pub name: Option<String>,
    pub seed: String,
    pub token_hash: String,
    pub expires_at: i64,
    pub confirmations_per_day: i64,
    pub reply: oneshot::Sender<Result<SignupOutcome, String>>,
}

pub(super) type SignupQueue = mpsc::Sender<SignupJob>;

/// Starts the writer task, which ends when every sender is gone. `queued`
/// is told whenever it queues confirmation mail; `interest` says which
/// events to write; `reader_ids` names new readers in those events.
pub(super) fn start(
    write: AnyPool,
    queued: Arc<Notify>,
    interest: Arc<EventInterest>,
    reader_ids: ReaderIdsCell,
) -> SignupQueue {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let writer = Writer {
        write,
        queued,
        interest,
        reader_ids,
    };
    tokio::spawn(writer.run(receiver));
    sender
}

/// What the writer task writes with.
struct Writer {
    write: AnyPool,
    queued: Arc<Notify>,
    interest: Arc<EventInterest>,
    reader_ids: ReaderIdsCell,
}

impl Writer {
    async fn run(self, mut incoming: mpsc::Receiver<SignupJob>) {
        let mut held: VecDeque<SignupJob> = VecDeque::new();
        loop {
            if held.is_empty() {
                match incoming.recv().await {
                    Some(job) => held.push_back(job),
                    None => return,
                }
            }
            while held.len() < MAX_BATCH {
                match incoming.try_recv() {
                    Ok(job) => held.push_back(job),
                    Err(_) => break,
                }
            }
            let (batch, later) = next_batch(held);
            held = later;
            self.write_answering(batch).await;
        }
    }

    /// Writes a batch and answers its sign-ups. When the batch fails, each
    /// sign-up is tried again on its own, so that one that cannot be stored
    /// does not take the others down with it.
    async fn write_answering(&self, batch: Vec<SignupJob>) {
        match self.write_batch(&batch).await {
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, size = batch.len(), "a batch of sign-ups failed; writing them one by one");
                for job in batch {
                    let result = self.write_batch(std::slice::from_ref(&job)).await;
                    wake_if_mail_queued(&self.queued, &result);
                    answer(vec![job], result);
                }
            }
            result => {
                wake_if_mail_queued(&self.queued, &result);
                answer(batch, result)
            }
        }
    }

    async fn write_batch(&self, batch: &[SignupJob]) -> Result<Vec<SignupOutcome>, StoreError> {
        // Read before the transaction: on SQLite the key's first read needs the
        // one write connection the transaction would hold.
        let ids = self.reader_ids.get(&self.write).await?;
        write_batch(&self.write, batch, &self.interest, ids).await
    }
}

/// A worker of this process sleeping between polls sends the confirmations
/// now rather than at its next poll.
fn wake_if_mail_queued(queued: &Notify, result: &Result<Vec<SignupOutcome>, StoreError>) {
    if let Ok(outcomes) = result {
        if outcomes
            .iter()
            .any(|o| matches!(o, SignupOutcome::ConfirmationQueued))
        {
            queued.notify_one();
        }
    }
}

/// Takes the next batch from the sign-ups waiting, in their order: at most
/// `MAX_BATCH`, one per address. Two sign-ups of one address cannot share a
/// statement (an upsert may touch a row once), so the second waits, with
/// everything beyond the batch, for the next one. The batch comes sorted by
/// address: one order for every writer, so concurrent batches from several
/// processes lock rows in the same order and cannot deadlock.
fn next_batch(waiting: VecDeque<SignupJob>) -> (Vec<SignupJob>, VecDeque<SignupJob>) {
    let mut batch = Vec::new();
    let mut addresses = HashSet::new();
    let mut later = VecDeque::new();
    for job in waiting {
        if batch.len() < MAX_BATCH && addresses.insert(job.email.clone()) {
            batch.push(job);
        } else {
            later.push_back(job);
        }
    }
    batch.sort_by(|a, b| a.email.cmp(&b.email));
    (batch, later)
}

/// Gives every sign-up of a batch its answer: its own outcome, or the
/// batch's error (nothing of the batch was stored).
fn answer(batch: Vec<SignupJob>, result: Result<Vec<SignupOutcome>, StoreError>) {
    match result {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let message = e.to_string();
            tracing::error!(error = %message, size = batch.len(), "a batch of sign-ups failed");
            for job in batch {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
    }
}

/// A reader a batch signed up, as the upsert returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reader {
    id: i64,
    /// The id links and webhooks name the reader by.
    public_id: String,
    status: SubscriberStatus,
    /// Added by this batch.
    new: bool,
}

/// Stores one batch in one transaction: the readers, then, for those due
/// one, a confirmation token and its mail. Returns each sign-up's outcome,
/// in the batch's order.
async fn write_batch(
    write: &AnyPool,
    batch: &[SignupJob],
    interest: &EventInterest,
    ids: &ReaderIds,
) -> Result<Vec<SignupOutcome>, StoreError> {
    let now = now_ms();
    let mut tx = write.begin().await?;
    let readers = upsert_readers(&mut tx, batch, now, ids).await?;
    let recent = recent_confirmations(&mut tx, &readers, now).await?;
    let (outcomes, confirm) = decide(batch, &readers, &recent)?;
    if !confirm.is_empty() {
        queue_confirmations(&mut tx, &confirm, now).await?;
    }
    super::events::record_signups(
        &mut tx,
        interest,
        batch.iter().filter_map(|job| {
            let reader = readers.get(&job.email)?;
            reader.new.then_some((
                reader.public_id.as_str(),
                job.email.as_str(),
                job.name.as_deref(),
                reader.status.as_str(),
            ))
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    super::error::writes_work();
    Ok(outcomes)
}

/// Inserts every new reader at once and returns every reader of the batch
/// by address. A sign-up changes nothing about a reader already here: not
/// the name (a stranger could rename them), not the status (one who asked
/// never to be mailed again stays so until they confirm). The no-op update
/// makes the row come back in `returning`.
async fn upsert_readers(
    tx: &mut Transaction<'_, Any>,
    batch: &[SignupJob],
    now: i64,
    ids: &ReaderIds,
) -> Result<HashMap<String, Reader>, StoreError> {
    let sql = format!(
        "insert into subscribers (email, name, status, created_at) values {} \
         on conflict (email) do update set status = subscribers.status \
         returning id, public_id, email, status, created_at",
        value_rows(batch.len(), 4)
    );
    let mut query = sqlx::query_as(&sql);
    for job in batch {
        query = query
            .bind(job.email.as_str())
            .bind(job.name.as_deref())
            .bind(SubscriberStatus::Pending.as_str())
            .bind(now);
    }
    let rows: Vec<(i64, Option<String>, String, String, i64)> = query.fetch_all(&mut **tx).await?;
    rows.into_iter()
        .map(|(id, stored, email, status, created_at)| {
            let public_id = ids.of_row(id, stored.as_deref())?.to_string();
            let status = SubscriberStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("subscriber status {status:?}")))?;
            let new = created_at == now;
            Ok((
                email,
                Reader {
                    id,
                    public_id,
                    status,
                    new,
                },
            ))
        })
        .collect()
}

/// Confirmation mails queued in the last day for the readers who were here
/// before and are not confirmed, by reader id.
async fn recent_confirmations(
    tx: &mut Transaction<'_, Any>,
    readers: &HashMap<String, Reader>,
    now: i64,
) -> Result<HashMap<i64, i64>, StoreError> {
    let returning: Vec<i64> = readers
        .values()
        .filter(|r| r.status != SubscriberStatus::Confirmed && !r.new)
        .map(|r| r.id)
        .collect();
    if returning.is_empty() {
        return Ok(HashMap::new());
    }
    // Naming kind <> 'report' lets the planner use the index of a reader's
    // deliveries, which holds no reports (migration 0024).
    let sql = format!(
        "select subscriber_id, count(*) as n from outbox where kind <> 'report' and kind = $2 \
         and created_at > $1 and subscriber_id in ({}) group by subscriber_id",
        placeholders(3, returning.len())
    );
    let mut query = sqlx::query_as(&sql)
        .bind(now - 24 * 3600 * 1000)
        .bind(JobKind::Confirmation.as_str());
    for id in &returning {
        query = query.bind(*id);
    }
    let rows: Vec<(i64, i64)> = query.fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().collect())
}

/// What each sign-up gets, and the sign-ups whose confirmation is to be
/// queued, with their reader's id.
#[allow(clippy::type_complexity)]
fn decide<'a>(
    batch: &'a [SignupJob],
    readers: &HashMap<String, Reader>,
    recent: &HashMap<i64, i64>,
) -> Result<(Vec<SignupOutcome>, Vec<(i64, &'a SignupJob)>), StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut confirm = Vec::new();
    for job in batch {
        let reader = readers.get(&job.email).ok_or_else(|| {
            StoreError::Corrupt("a sign-up's upsert returned no row for its address".into())
        })?;
        let outcome = match reader.status {
            SubscriberStatus::Confirmed => SignupOutcome::AlreadyConfirmed,
            // One who left gets a confirmation too: following it is how
            // they come back, and nothing else mails them meanwhile.
            SubscriberStatus::Pending | SubscriberStatus::Unsubscribed => {
                if recent.get(&reader.id).copied().unwrap_or(0) >= job.confirmations_per_day {
                    SignupOutcome::RateLimited
                } else {
                    confirm.push((reader.id, job));
                    SignupOutcome::ConfirmationQueued
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok((outcomes, confirm))
}

/// Stores a confirmation token and queues its mail for each sign-up.
async fn queue_confirmations(
    tx: &mut Transaction<'_, Any>,
    confirm: &[(i64, &SignupJob)],
    now: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "insert into confirmation_tokens (token_hash, subscriber_id, created_at, expires_at, name) \
         values {}",
        value_rows(confirm.len(), 5)
    );
    let mut query = sqlx::query(&sql);
    for (id, job) in confirm {
        query = query
            .bind(job.token_hash.as_str())
            .bind(*id)
            .bind(now)
            .bind(job.expires_at)
            .bind(job.name.as_deref());
    }
    query.execute(&mut **tx).await?;

    let sql = format!(
        "insert into outbox (kind, subscriber_id, recipient, seed, next_attempt_at, created_at) \
         values {}",
        value_rows(confirm.len(), 6)
    );
    let mut query = sqlx::query(&sql);
    for (id, job) in confirm {
        query = query
            .bind(JobKind::Confirmation.as_str())
            .bind(*id)
            .bind(job.email.as_str())
            .bind(job.seed.as_str())
            .bind(now)
            .bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::stores;

    fn job(email: &str) -> (SignupJob, oneshot::Receiver<Result<SignupOutcome, String>>) {
        let (reply, answer) = oneshot::channel();
        let job = SignupJob {
            email: email.to_string(),
            name: None,
            seed: format!("seed of {email}"),
            token_hash: format!("token of {email}"),
            expires_at: now_ms() + 3_600_000,
            confirmations_per_day: 1,
            reply,
        };
        (job, answer)
    }

    fn emails(jobs: &[SignupJob]) -> Vec<&str> {
        jobs.iter().map(|j| j.email.as_str()).collect()
    }

    #[test]
    fn a_batch_takes_one_sign_up_per_address_in_address_order() {
        let waiting = ["b@x.org", "a@x.org", "b@x.org", "c@x.org"]
            .map(|e| job(e).0)
            .into();
        let (batch, later) = next_batch(waiting);
        assert_eq!(emails(&batch), ["a@x.org", "b@x.org", "c@x.org"]);
        assert_eq!(emails(&Vec::from(later)), ["b@x.org"]);
    }

    #[test]
    fn a_batch_is_capped_and_the_rest_waits_in_order() {
        let waiting = (0..MAX_BATCH + 3)
            .map(|i| job(&format!("r{i:04}@x.org")).0)
            .collect();
        let (batch, later) = next_batch(waiting);
        assert_eq!(batch.len(), MAX_BATCH);
        let later = Vec::from(later);
        let expected: Vec<String> = (MAX_BATCH..MAX_BATCH + 3)
            .map(|i| format!("r{i:04}@x.org"))
            .collect();
        assert_eq!(emails(&later), expected);
    }

    #[tokio::test]
    async fn each_sign_up_gets_its_own_outcome_or_the_batch_error() {
        let (a, a_answer) = job("a@x.org");
        let (b, b_answer) = job("b@x.org");
        answer(
            vec![a, b],
            Ok(vec![
                SignupOutcome::ConfirmationQueued,
                SignupOutcome::RateLimited,
            ]),
        );
        assert_eq!(
            a_answer.await.unwrap(),
            Ok(SignupOutcome::ConfirmationQueued)
        );
        assert_eq!(b_answer.await.unwrap(), Ok(SignupOutcome::RateLimited));

        let (c, c_answer) = job("c@x.org");
        let (d, d_answer) = job("d@x.org");
        answer(vec![c, d], Err(StoreError::Batch("disk full".into())));
        for answered in [c_answer.await.unwrap(), d_answer.await.unwrap()] {
            assert!(answered.unwrap_err().contains("disk full"));
        }
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_stores_readers_tokens_and_mails_as_each_is_due() {
        for store in stores("signups").await {
            let (first, _) = job("again@x.org");
            let ids = store.reader_ids().await.unwrap();
            write_batch(&store.write, &[first], &store.events, ids)
                .await
                .unwrap();
            sqlx::query("insert into subscribers (email, status, created_at) values ('in@x.org', 'confirmed', 1)")
                .execute(store.pool())
                .await
                .unwrap();
            let (mut again, _) = job("again@x.org");
            again.token_hash = "a second token".into();
            let batch = [again, job("in@x.org").0, job("new@x.org").0];
            let outcomes = write_batch(&store.write, &batch, &store.events, ids)
                .await
                .unwrap();
            assert_eq!(
                outcomes,
                [
                    SignupOutcome::RateLimited,
                    SignupOutcome::AlreadyConfirmed,
                    SignupOutcome::ConfirmationQueued
                ]
            );
            assert_eq!(count(&store, "select count(*) from subscribers").await, 3);
            assert_eq!(
                count(
                    &store,
                    "select count(*) from outbox where recipient = 'new@x.org'"
                )
                .await,
                1
            );
            assert_eq!(count(&store, "select count(*) from outbox").await, 2);
            assert_eq!(
                count(&store, "select count(*) from confirmation_tokens").await,
                2
            );
        }
    }

    #[tokio::test]
    async fn a_sign_up_that_cannot_be_stored_does_not_lose_the_others() {
        for store in stores("signups").await {
            let queue = start(
                store.write.clone(),
                Arc::new(Notify::new()),
                store.events.clone(),
                store.reader_ids.clone(),
            );
            // Two sign-ups with one token: the second cannot be stored.
            let (a, a_answer) = job("a@x.org");
            let (mut b, b_answer) = job("b@x.org");
            b.token_hash = a.token_hash.clone();
            let (c, c_answer) = job("c@x.org");
            for j in [a, b, c] {
                queue.send(j).await.unwrap();
            }
            assert_eq!(
                a_answer.await.unwrap(),
                Ok(SignupOutcome::ConfirmationQueued)
            );
            assert!(b_answer.await.unwrap().is_err());
            assert_eq!(
                c_answer.await.unwrap(),
                Ok(SignupOutcome::ConfirmationQueued)
            );
            assert_eq!(count(&store, "select count(*) from outbox").await, 2);
            assert_eq!(
                count(
                    &store,
                    "select count(*) from subscribers where email = 'b@x.org'"
                )
                .await,
                0,
                "nothing of the failed sign-up stays"
            );
            // The writer goes on.
            let (d, d_answer) = job("d@x.org");
            queue.send(d).await.unwrap();
            assert_eq!(
                d_answer.await.unwrap(),
                Ok(SignupOutcome::ConfirmationQueued)
            );
        }
    }
}
