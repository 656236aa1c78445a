//! The worker loop: claim a batch, send it with bounded concurrency, record
//! the outcomes, repeat until cancelled.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::compose::Composer;
use super::retry::retry_delay;
use super::transport::{MailError, Mailer};
use crate::config::DeliverySettings;
use crate::domain::SubscriberStatus;
use crate::store::{now_ms, ClaimedJob, JobKind, JobOutcome, Store, StoreError};

/// Why a delivery run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One of the run's own tasks ended (a panic, or its partner gone).
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
}

/// A claimed batch: messages to send, and those that fail at once because
/// their report cannot be rendered.
#[derive(Default)]
struct Claimed {
    jobs: Vec<ClaimedJob>,
    unusable: Vec<JobOutcome>,
}

/// The outcome writer's result, whether it returned or panicked.
fn joined(
    done: Result<Result<(), StoreError>, tokio::task::JoinError>,
) -> Result<(), DispatchError> {
    done.map_err(|_| DispatchError::Stopped("the outcome writer"))?
        .map_err(DispatchError::from)
}

/// One process's sender. Several may run against one PostgreSQL database.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    mailer: Arc<Mailer>,
    composer: Composer,
    settings: DeliverySettings,
    worker_id: Arc<str>,
    pace: Option<Arc<Mutex<Interval>>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        mailer: Arc<Mailer>,
        composer: Composer,
        settings: DeliverySettings,
    ) -> Self {
        let pace = (settings.rate_limit_per_sec > 0).then(|| {
            let mut interval = tokio::time::interval(Duration::from_secs_f64(
                1.0 / settings.rate_limit_per_sec as f64,
            ));
            // After an idle spell, do not burst to catch up.
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Arc::new(Mutex::new(interval))
        });
        let worker_id: Arc<str> = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()).into();
        Dispatcher {
            store,
            mailer,
            composer,
            settings,
            worker_id,
            pace,
        }
    }

    /// Claims and sends one batch; returns how many messages it handled.
    pub async fn dispatch_batch(&self, cancel: &CancellationToken) -> Result<usize, DispatchError> {
        let Some(claimed) = self.claim().await? else {
            return Ok(0);
        };
        let count = claimed.jobs.len() + claimed.unusable.len();
        // Outcomes are written as they come in by a task of their own, so
        // sending never waits for the database.
        let (outcomes, recorder) = self.start_recorder();
        let mut recorder_gone = false;
        for failed in claimed.unusable {
            recorder_gone |= outcomes.send(failed).await.is_err();
        }
        // Each message is built and sent by a task of its own, so building
        // (rendering, encoding) spreads over every core.
        let mut finished = futures::stream::iter(claimed.jobs)
            .map(|job| {
                let this = self.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move { this.deliver(job, &cancel).await })
            })
            .buffer_unordered(self.concurrency());
        while !recorder_gone {
            let Some(done) = finished.next().await else {
                break;
            };
            // A task that panicked leaves its lease to expire.
            let Ok(Some(outcome)) = done else { continue };
            recorder_gone = outcomes.send(outcome).await.is_err();
        }
        drop(finished);
        drop(outcomes);
        joined(recorder.await)?;
        if recorder_gone {
            return Err(DispatchError::Stopped("the outcome writer"));
        }
        if cancel.is_cancelled() {
            self.store.release_leases(&self.worker_id).await?;
        }
        Ok(count)
    }

    /// Leases the next batch and renders its reports; `None` when nothing
    /// is due.
    async fn claim(&self) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let lease_until = now + (self.settings.lease_secs * 1000) as i64;
        let batch = self
            .store
            .claim_due_jobs(&self.worker_id, now, lease_until, self.settings.batch_size)
            .await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let reasons = self.prepare_reports(&batch).await?;
        let mut claimed = Claimed::default();
        for job in batch {
            match job.report_id.and_then(|id| reasons.get(&id)) {
                Some(reason) => claimed.unusable.push(JobOutcome::Failed {
                    id: job.id,
                    reason: reason.clone(),
                }),
                None => claimed.jobs.push(job),
            }
        }
        Ok(Some(claimed))
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    /// Writes outcomes, retrying for a while: the messages are already
    /// sent, and losing their outcome would send them again.
    async fn record(&self, outcomes: &[JobOutcome]) -> Result<(), StoreError> {
        for outcome in outcomes {
            let label = match outcome {
                JobOutcome::Sent { .. } => "sent",
                JobOutcome::Retry { .. } => "retry",
                JobOutcome::Failed { .. } | JobOutcome::Refused { .. } => "failed",
                JobOutcome::Skipped { .. } => "skipped",
            };
            metrics::counter!(crate::metrics::DELIVERIES, "outcome" => label).increment(1);
        }
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match self.store.record_outcomes(outcomes).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 12 => {
                    tries += 1;
                    tracing::warn!(error = %e, "recording outcomes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Renders each report of the batch not rendered yet. Returns the
    /// reports that cannot be rendered, with the reason, so that their
    /// deliveries fail with it instead of retrying forever.
    async fn prepare_reports(
        &self,
        jobs: &[ClaimedJob],
    ) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let mut unusable = std::collections::HashMap::new();
        let mut ids: Vec<i64> = jobs.iter().filter_map(|j| j.report_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if self.composer.has_report(id) {
                continue;
            }
            match self.store.report(id).await? {
                Some(stored) => {
                    if let Err(e) = self.composer.prepare_report(&stored) {
                        tracing::error!(report = id, error = %e, "cannot render report");
                        unusable.insert(id, e.to_string());
                    }
                }
                None => {
                    unusable.insert(id, "the report no longer exists".to_string());
                }
            }
        }
        Ok(unusable)
    }

    /// Starts scheduled sends that are due and closes finished ones.
    pub async fn tend_sends(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let started = self.store.start_due_sends(now).await?;
        if started > 0 {
            tracing::info!(started, "scheduled sends started");
        }
        self.store.finish_completed_sends(now).await?;
        Ok(())
    }

    /// Sends everything that is due now; for tests and one-shot runs.
    pub async fn dispatch_all_pending(&self) -> Result<usize, DispatchError> {
        let never = CancellationToken::new();
        let mut total = 0;
        loop {
            self.tend_sends().await?;
            let n = self.dispatch_batch(&never).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Runs until `cancel` fires: then stops claiming, lets messages in
    /// flight finish, and hands back any leases it still holds.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(worker = %self.worker_id, "delivery worker started");
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            if let Err(e) = self.pump(&cancel).await {
                // Most often the database is restarting: back off and come
                // back; the pool reconnects by itself.
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "delivery interrupted; will retry");
                let pause = idle.max(Duration::from_millis(250 * u64::from(failures.min(40))));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            } else {
                failures = 0;
            }
        }
        match self.store.release_leases(&self.worker_id).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "handed back unsent claims"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not hand back claims; they expire on their own")
            }
        }
        tracing::info!(worker = %self.worker_id, "delivery worker stopped");
    }

    /// The long-running sender: `concurrency` tasks each take the next
    /// message from a short queue, build it and send it, as a bare SMTP loop
    /// would; this task keeps the queue filled, claiming the next batch while
    /// the last messages of the previous one are still on the wire, so the
    /// connections never wait for a claim. Returns when `cancel` fires (Ok)
    /// or when the database fails (Err).
    async fn pump(&self, cancel: &CancellationToken) -> Result<(), DispatchError> {
        let (jobs, queue) = tokio::sync::mpsc::channel::<ClaimedJob>(self.concurrency());
        let queue = Arc::new(Mutex::new(queue));
        let (outcomes, recorder) = self.start_recorder();
        let senders: Vec<_> = (0..self.concurrency())
            .map(|_| {
                let (this, queue, outcomes, cancel) = (
                    self.clone(),
                    queue.clone(),
                    outcomes.clone(),
                    cancel.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let job = queue.lock().await.recv().await;
                        let Some(job) = job else { break };
                        if let Some(outcome) = this.deliver(job, &cancel).await {
                            if outcomes.send(outcome).await.is_err() {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        // Only the senders hold the queue now: if they all stop, feeding it
        // fails instead of waiting forever.
        drop(queue);
        let fed = self.feed(cancel, &jobs, &outcomes).await;
        drop(jobs);
        drop(outcomes);
        for sender in senders {
            let _ = sender.await;
        }
        let recorded = joined(recorder.await);
        fed.and(recorded)
    }

    /// Claims batches and queues their messages until `cancel` fires.
    async fn feed(
        &self,
        cancel: &CancellationToken,
        jobs: &tokio::sync::mpsc::Sender<ClaimedJob>,
        outcomes: &tokio::sync::mpsc::Sender<JobOutcome>,
    ) -> Result<(), DispatchError> {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        let mut last_tended = Instant::now() - Duration::from_secs(60);
        while !cancel.is_cancelled() {
            if last_tended.elapsed() >= Duration::from_secs(1) {
                last_tended = Instant::now();
                if let Err(e) = self.tend_sends().await {
                    tracing::warn!(error = %e, "starting scheduled sends failed; will retry");
                }
            }
            let Some(claimed) = self.claim().await? else {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(idle) => {}
                }
                continue;
            };
            for failed in claimed.unusable {
                if outcomes.send(failed).await.is_err() {
                    return Err(DispatchError::Stopped("the outcome writer"));
                }
            }
            for job in claimed.jobs {
                if jobs.send(job).await.is_err() {
                    return Err(DispatchError::Stopped("the senders"));
                }
            }
        }
        Ok(())
    }

    /// A task that writes outcomes as they come, a few at a time. The
    /// channel is as small as the concurrency: a crash repeats at most the
    /// messages on the wire, those waiting here and those being written.
    fn start_recorder(
        &self,
    ) -> (
        tokio::sync::mpsc::Sender<JobOutcome>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (outcomes, mut incoming) = tokio::sync::mpsc::channel::<JobOutcome>(self.concurrency());
        let this = self.clone();
        let most = self.concurrency();
        let recorder = tokio::spawn(async move {
            let mut chunk = Vec::with_capacity(most);
            while incoming.recv_many(&mut chunk, most).await > 0 {
                this.record(&chunk).await?;
                chunk.clear();
            }
            Ok(())
        });
        (outcomes, recorder)
    }

    /// Sends one message. `None` means "not attempted": the lease is handed
    /// back by the caller.
    async fn deliver(&self, job: ClaimedJob, cancel: &CancellationToken) -> Option<JobOutcome> {
        if cancel.is_cancelled() {
            return None;
        }
        if job.kind != JobKind::Test
            && job.subscriber_status == Some(SubscriberStatus::Unsubscribed)
        {
            return Some(JobOutcome::Skipped {
                id: job.id,
                reason: "reader unsubscribed before delivery".into(),
            });
        }
        if let (Some(reason), false) = (job.suppressed, job.kind == JobKind::Test) {
            return Some(JobOutcome::Skipped {
                id: job.id,
                reason: format!("the address is suppressed ({})", reason.as_str()),
            });
        }
        let composed = match self.composer.compose(&job) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "cannot build message");
                return Some(JobOutcome::Failed {
                    id: job.id,
                    reason: e.to_string(),
                });
            }
        };
        if let Some(pace) = &self.pace {
            pace.lock().await.tick().await;
        }
        let started = Instant::now();
        let result = self.mailer.send(composed.message).await;
        metrics::histogram!(crate::metrics::SMTP_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::debug!(
            job = job.id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "smtp send"
        );
        Some(match result {
            Ok(()) => JobOutcome::Sent {
                id: job.id,
                message_id: composed.message_id,
                at: now_ms(),
            },
            Err(MailError::Permanent(reason)) if crate::bounces::is_recipient_refusal(&reason) => {
                tracing::warn!(job = job.id, %reason, "the relay refused the recipient");
                JobOutcome::Refused { id: job.id, reason }
            }
            Err(MailError::Permanent(reason)) => {
                tracing::warn!(job = job.id, %reason, "delivery failed permanently");
                JobOutcome::Failed { id: job.id, reason }
            }
            Err(MailError::Transient(reason)) if job.attempts >= self.settings.max_attempts => {
                tracing::warn!(job = job.id, %reason, "delivery failed; no attempts left");
                JobOutcome::Failed {
                    id: job.id,
                    reason: format!("gave up after {} attempts: {reason}", job.attempts),
                }
            }
            Err(MailError::Transient(reason)) => {
                let delay = retry_delay(
                    job.attempts,
                    self.settings.retry_base_secs,
                    self.settings.retry_max_secs,
                );
                tracing::info!(job = job.id, %reason, retry_in_ms = delay.as_millis() as u64, "delivery will be retried");
                JobOutcome::Retry {
                    id: job.id,
                    at: now_ms() + delay.as_millis() as i64,
                    reason,
                }
            }
        })
    }
}
