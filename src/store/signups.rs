//! Sign-ups written in batches.
//!
//! A sign-up is three small writes (the reader, a confirmation token, the
//! queued mail). Done one request at a time, a burst of sign-ups spends its
//! time handing statements to the database one by one and committing each.
//! Here one task takes every sign-up waiting at that moment and writes them
//! together: a few multi-row statements and one commit for the lot. Under no
//! load a batch is a single sign-up, so nothing waits for a batch to fill.

use std::collections::{HashMap, HashSet, VecDeque};

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::{now_ms, placeholders, value_rows, JobKind, StoreError};
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
    pub reply: oneshot::Sender<Result<super::SignupOutcome, String>>,
}

pub(super) type SignupQueue = mpsc::Sender<SignupJob>;

/// Starts the writer task; it ends when every sender is gone.
pub(super) fn start(write: AnyPool) -> SignupQueue {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(run(write, receiver));
    sender
}

async fn run(write: AnyPool, mut incoming: mpsc::Receiver<SignupJob>) {
    // Two sign-ups of one address cannot share a statement (an upsert may
    // touch a row once), so the second waits for the next batch.
    let mut held: VecDeque<SignupJob> = VecDeque::new();
    loop {
        let mut batch = Vec::new();
        let mut addresses = HashSet::new();
        let mut later = VecDeque::new();
        let mut take = |job: SignupJob, batch: &mut Vec<SignupJob>| {
            if addresses.insert(job.email.clone()) {
                batch.push(job);
            } else {
                later.push_back(job);
            }
        };
        while let Some(job) = held.pop_front() {
            take(job, &mut batch);
        }
        if batch.is_empty() {
            match incoming.recv().await {
                Some(job) => take(job, &mut batch),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(job) => take(job, &mut batch),
                Err(_) => break,
            }
        }
        held = later;
        // One order for every writer, so concurrent batches from several
        // processes lock rows in the same order and cannot deadlock.
        batch.sort_by(|a, b| a.email.cmp(&b.email));
        match write_batch(&write, &batch).await {
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
}

async fn write_batch(
    write: &AnyPool,
    batch: &[SignupJob],
) -> Result<Vec<super::SignupOutcome>, StoreError> {
    use super::SignupOutcome::*;
    let now = now_ms();
    let mut tx = write.begin().await?;

    // Insert every new reader at once. A sign-up changes nothing about a
    // reader already here: not the name (a stranger could rename them), not
    // the status (one who asked never to be mailed again stays so until
    // they confirm). The no-op update makes the row come back in `returning`.
    let sql = format!(
        "insert into subscribers (public_id, email, name, status, created_at) values {} \
         on conflict (email) do update set status = subscribers.status \
         returning id, email, status, created_at",
        value_rows(batch.len(), 5)
    );
    let mut query = sqlx::query(&sql);
    for job in batch {
        query = query
            .bind(super::new_public_id())
            .bind(job.email.as_str())
            .bind(job.name.as_deref())
            .bind(SubscriberStatus::Pending.as_str())
            .bind(now);
    }
    let mut readers: HashMap<String, (i64, String, bool)> = HashMap::with_capacity(batch.len());
    for row in query.fetch_all(&mut *tx).await? {
        let created_at: i64 = row.try_get("created_at")?;
        readers.insert(
            row.try_get("email")?,
            (
                row.try_get("id")?,
                row.try_get("status")?,
                created_at == now,
            ),
        );
    }

    // Readers who were here before may have had confirmation mails lately.
    let returning: Vec<i64> = readers
        .values()
        .filter(|(_, status, new)| status != SubscriberStatus::Confirmed.as_str() && !new)
        .map(|(id, _, _)| *id)
        .collect();
    let mut recent: HashMap<i64, i64> = HashMap::new();
    if !returning.is_empty() {
        let sql = format!(
            "select subscriber_id, count(*) as n from outbox where kind = 'confirmation' \
             and created_at > $1 and subscriber_id in ({}) group by subscriber_id",
            placeholders(2, returning.len())
        );
        let mut query = sqlx::query(&sql).bind(now - 24 * 3600 * 1000);
        for id in &returning {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *tx).await? {
            recent.insert(row.try_get("subscriber_id")?, row.try_get("n")?);
        }
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut confirm = Vec::new();
    for job in batch {
        let (id, status, _) = readers.get(&job.email).ok_or_else(|| {
            StoreError::Corrupt("a sign-up's upsert returned no row for its address".into())
        })?;
        let outcome = match SubscriberStatus::parse(status) {
            Some(SubscriberStatus::Confirmed) => AlreadyConfirmed,
            // One who left gets a confirmation too: following it is how
            // they come back, and nothing else mails them meanwhile.
            Some(SubscriberStatus::Pending | SubscriberStatus::Unsubscribed) => {
                if recent.get(id).copied().unwrap_or(0) >= job.confirmations_per_day {
                    RateLimited
                } else {
                    confirm.push((*id, job));
                    ConfirmationQueued
                }
            }
            None => return Err(StoreError::Corrupt(format!("subscriber status {status:?}"))),
        };
        outcomes.push(outcome);
    }

    if !confirm.is_empty() {
        let sql = format!(
            "insert into confirmation_tokens (token_hash, subscriber_id, created_at, expires_at, name) \
             values {}",
            value_rows(confirm.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (id, job) in &confirm {
            query = query
                .bind(job.token_hash.as_str())
                .bind(*id)
                .bind(now)
                .bind(job.expires_at)
                .bind(job.name.as_deref());
        }
        query.execute(&mut *tx).await?;

        let sql = format!(
            "insert into outbox (kind, subscriber_id, recipient, seed, next_attempt_at, created_at) \
             values {}",
            value_rows(confirm.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (id, job) in &confirm {
            query = query
                .bind(JobKind::Confirmation.as_str())
                .bind(*id)
                .bind(job.email.as_str())
                .bind(job.seed.as_str())
                .bind(now)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    super::events::record_signups(
        &mut tx,
        batch.iter().filter_map(|job| {
            let (id, status, new) = readers.get(&job.email)?;
            new.then_some((
                *id,
                job.email.as_str(),
                job.name.as_deref(),
                status.as_str(),
            ))
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    super::error::writes_work();
    Ok(outcomes)
}
