//! The worker loop: claim a batch, send it with bounded concurrency, record
//! the outcomes, repeat until cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Mutex;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::claim_gate::ClaimGate;
use super::compose::{report_key, ComposeError, Composed, Composer, ReportKey};
use super::holdings::Holdings;
use super::retry::retry_delay;
use super::transport::{MailError, MailSession, Mailer};
use crate::config::DeliverySettings;
use crate::domain::SubscriberStatus;
use crate::store::{
    now_ms, ClaimCheck, ClaimedJob, FinishCheck, JobKind, JobOutcome, KeptConnection, Store,
    StoreError,
};

/// How often a worker holding deliveries publishes how many it holds.
const PUBLISH_HOLDS_EVERY: Duration = Duration::from_secs(1);

/// How long a published count of deliveries in flight counts.
const HOLDS_COUNT_FOR: Duration = Duration::from_secs(5);

/// What a worker last published of the deliveries it holds.
#[derive(Default)]
struct Published {
    held: Vec<(i64, i64)>,
    at: Option<Instant>,
}

/// Longest wait for the database before a sender gives up on a message:
/// a worker cut off from its database stops starting new messages within it.
const DATABASE_DEADLINE: Duration = Duration::from_secs(5);

/// How often the finish check reads the deliveries rather than trusting
/// the kept counts (see `Store::finish_completed_sends`).
const EXACT_FINISH_EVERY: Duration = Duration::from_secs(300);

/// How long outcomes are still retried once shutdown has begun.
const RECORD_AT_SHUTDOWN: Duration = Duration::from_secs(30);

/// Why a delivery run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One of the run's own tasks ended (a panic, or its partner gone).
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
    /// The database did not answer in time, or leases could not be renewed:
    /// no new message is started until it does.
    #[error("the database is out of reach: {0}")]
    Unreachable(String),
}

/// What a sender did with one claimed message.
enum Handled {
    /// Sent or tried: the outcome to record.
    Outcome(JobOutcome),
    /// Not sent because its send was paused or cancelled: hand the row back.
    Withdrawn,
    /// Not sent, and nothing to write: shutdown began, or the row is no
    /// longer this worker's.
    Untouched,
    /// Handed to the relay; its outcome comes with the next message's, or
    /// when the sender's line is settled.
    OnTheWire,
}

/// A message whose data waits on the sender's connection for the next
/// message's envelope.
struct OnWire {
    job: ClaimedJob,
    message_id: String,
    started: Instant,
    /// When its claim was last read to hold.
    checked: Instant,
    /// Whether another message's data went out with its envelope: then a
    /// pause that returned after its check would already let that one
    /// through, and this one must be checked again before its data goes.
    behind_another: bool,
}

/// One sender's way to the relay: its mail session, the message it holds
/// on the wire, and outcomes learned along the way, to be recorded.
struct Line<'d> {
    session: MailSession<'d>,
    on_wire: Option<OnWire>,
    settled: Vec<JobOutcome>,
}

/// When a run of the sender ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// When the cancellation token fires: the service's worker.
    Cancelled,
    /// As soon as nothing is due: the queue drained by hand.
    Idle,
}

/// A claimed batch: messages to send, and those that fail at once because
/// their report cannot be rendered.
#[derive(Default)]
struct Claimed {
    jobs: Vec<ClaimedJob>,
    unusable: Vec<JobOutcome>,
}

/// How long outcomes that have begun a write wait for others to join them.
/// Written as they came, a busy worker's writes held about seven outcomes
/// each, and every write costs a commit (on SQLite, the log pages it
/// touched, and two hand-offs to the connection's thread) whatever it
/// holds. A write still holds no more outcomes than there are senders, so
/// what a crash can leave sent but unrecorded stays bounded by the
/// concurrency.
const GATHER_OUTCOMES: Duration = Duration::from_millis(5);

/// Adds to `chunk` the outcomes that arrive within [`GATHER_OUTCOMES`], up
/// to `most` in all.
async fn gather<T>(incoming: &mut tokio::sync::mpsc::Receiver<T>, chunk: &mut Vec<T>, most: usize) {
    let until = tokio::time::Instant::now() + GATHER_OUTCOMES;
    while chunk.len() < most {
        let room = most - chunk.len();
        match tokio::time::timeout_at(until, incoming.recv_many(chunk, room)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The next queued message, if one is there now. The queue being locked
/// means another sender is waiting on it: it is empty. An empty queue gets
/// one chance to be refilled, since the feeder may be just about to run.
async fn take_now(queue: &Mutex<tokio::sync::mpsc::Receiver<ClaimedJob>>) -> Option<ClaimedJob> {
    for _ in 0..2 {
        match queue.try_lock().map(|mut q| q.try_recv()) {
            Ok(Ok(job)) => return Some(job),
            Ok(Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)) => return None,
            _ => tokio::task::yield_now().await,
        }
    }
    None
}

/// Hands the outcomes a line learned to the outcome writer; false when
/// the writer is gone.
async fn pass_on(
    outcomes: &tokio::sync::mpsc::Sender<JobOutcome>,
    settled: &mut Vec<JobOutcome>,
) -> bool {
    for outcome in settled.drain(..) {
        if outcomes.send(outcome).await.is_err() {
            return false;
        }
    }
    true
}

/// Spawns `task` inside the current span, so that what it logs carries
/// the worker's id.
fn spawn_in_span<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(task.in_current_span())
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
    /// Relay-wide failures in a row, across this worker's senders.
    relay_failures: Arc<AtomicU32>,
    gate: Arc<ClaimGate>,
    /// The rows this worker holds, shared by its clones.
    holdings: Holdings,
    /// When the finish check last read the deliveries themselves; none yet,
    /// so a starting worker does it first. A monotonic clock, so that the
    /// wall clock set back cannot put the next exact check off.
    exact_finish_at: Arc<std::sync::Mutex<Option<Instant>>>,
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
        // Written into every row the worker claims, so short: the row grows
        // by it, and a claimed row must fit beside the old one on its page
        // (migration 0025). 64 random bits tell apart the workers that could
        // share a process id on different hosts.
        let worker_id: Arc<str> =
            format!("{}-{:016x}", std::process::id(), rand::random::<u64>()).into();
        let lease = Duration::from_secs(settings.lease_secs.max(1));
        let gate = Arc::new(ClaimGate::new(
            store.clone(),
            worker_id.clone(),
            lease / 3,
            DATABASE_DEADLINE,
        ));
        Dispatcher {
            gate,
            store,
            mailer,
            composer,
            settings,
            worker_id,
            pace,
            relay_failures: Arc::new(AtomicU32::new(0)),
            holdings: Holdings::default(),
            exact_finish_at: Arc::default(),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_secs.max(1))
    }

    /// Keeps this worker's leases alive until the returned token is
    /// cancelled: every row it holds, waiting or on the wire, stays its own
    /// however long the relay or the rate limit makes it wait. Also
    /// publishes, every second while it holds any, how many deliveries of
    /// each report it holds.
    fn start_renewer(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let every = (self.lease() / 4).max(Duration::from_millis(100));
        let (this, until) = (self.clone(), stop.clone());
        let renewer = spawn_in_span(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = until.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                failing = this.renew(failing).await;
            }
        });
        // A task of its own, so that a slow write of the counts never holds
        // up a renewal.
        let (this, until) = (self.clone(), stop.clone());
        let publisher = spawn_in_span(async move {
            let mut published = Published::default();
            loop {
                tokio::select! {
                    _ = until.cancelled() => break,
                    _ = tokio::time::sleep(PUBLISH_HOLDS_EVERY) => {}
                }
                this.publish_holds(&mut published, this.holdings.by_report())
                    .await;
            }
            // The run is over: nothing of this worker is in flight.
            this.publish_holds(&mut published, Vec::new()).await;
        });
        let both = tokio::spawn(async move {
            let _ = renewer.await;
            let _ = publisher.await;
        });
        (stop, both)
    }

    /// Renews the leases held; returns whether renewing fails, saying so
    /// once when that changes.
    async fn renew(&self, failing: bool) -> bool {
        let lease_until = now_ms() + self.lease().as_millis() as i64;
        let held = self.holdings.ids();
        let renewed = tokio::time::timeout(
            DATABASE_DEADLINE,
            self.store.renew_leases(&self.worker_id, &held, lease_until),
        )
        .await;
        match renewed {
            Ok(Ok(_)) => {
                if failing {
                    tracing::info!("lease renewal works again");
                }
                false
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot renew leases; no new message starts until this works");
                }
                true
            }
            Err(_) => {
                if !failing {
                    tracing::warn!("cannot renew leases: the database does not answer");
                }
                true
            }
        }
    }

    /// Writes what this worker holds by report when it changed, or when
    /// what it wrote last is about to stop counting. It only feeds the
    /// progress shown, so a failure is logged and the next tick tries again.
    async fn publish_holds(&self, published: &mut Published, now_held: Vec<(i64, i64)>) {
        let stale = published
            .at
            .is_some_and(|at| at.elapsed() >= HOLDS_COUNT_FOR / 2);
        if now_held == published.held && (now_held.is_empty() || !stale) {
            return;
        }
        let now = now_ms();
        let until = now + HOLDS_COUNT_FOR.as_millis() as i64;
        let written = tokio::time::timeout(
            DATABASE_DEADLINE,
            self.store
                .publish_holds(&self.worker_id, &now_held, now, until),
        )
        .await;
        match written {
            Ok(Ok(())) => {
                published.held = now_held;
                published.at = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot publish the deliveries in flight"),
            Err(_) => tracing::debug!("cannot publish the deliveries in flight: no answer"),
        }
    }

    /// Hands back every row this worker still holds, if it can.
    async fn release_held(&self) -> Result<u64, StoreError> {
        let held = self.holdings.ids();
        let released = self.store.release_leases(&self.worker_id, &held).await?;
        // The rest were recorded by now, or are another worker's.
        self.holdings.forget(&held);
        Ok(released)
    }

    /// Reads, just before messages go out, whether they may: still queued,
    /// still this worker's, with lease time to spare. One answer per id, in
    /// order.
    async fn gate(&self, ids: &[i64]) -> Result<Vec<ClaimCheck>, DispatchError> {
        let answers = tokio::time::timeout(DATABASE_DEADLINE, self.gate.check(ids))
            .await
            .map_err(|_| {
                DispatchError::Unreachable(format!(
                    "no answer within {} s",
                    DATABASE_DEADLINE.as_secs()
                ))
            })?;
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(ClaimCheck::Expiring) => Err(DispatchError::Unreachable(
                    "leases are not being renewed".into(),
                )),
                Ok(check) => Ok(check),
                Err(e) => Err(DispatchError::Unreachable(e)),
            })
            .collect()
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
        self.holdings.take(&batch);
        let reasons = self.prepare_reports(&batch).await?;
        let mut claimed = Claimed::default();
        for job in batch {
            let reason = match job.kind {
                JobKind::Confirmation => None,
                JobKind::Report | JobKind::Test => match report_key(&job) {
                    Ok(key) => reasons.get(&key).cloned(),
                    Err(e) => Some(e.to_string()),
                },
            };
            match reason {
                Some(reason) => claimed
                    .unusable
                    .push(JobOutcome::Failed { id: job.id, reason }),
                None => claimed.jobs.push(job),
            }
        }
        Ok(Some(claimed))
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    /// Writes outcomes, retrying until it works: the messages are already
    /// sent, and losing their outcome would send them again. The leases stay
    /// renewed meanwhile, so nobody else takes the rows. Only once shutdown
    /// has begun does it give up, after a while.
    #[tracing::instrument(name = "record_outcomes", skip_all, fields(outcomes = outcomes.len()))]
    async fn record(
        &self,
        writer: &mut KeptConnection,
        outcomes: &[JobOutcome],
        cancel: &CancellationToken,
    ) -> Result<(), StoreError> {
        for outcome in outcomes {
            let label = match outcome {
                JobOutcome::Sent { .. } => "sent",
                JobOutcome::Retry { .. } => "retry",
                JobOutcome::Failed { .. } | JobOutcome::Refused { .. } => "failed",
                JobOutcome::Skipped { .. } => "skipped",
                JobOutcome::Deferred { .. } => "deferred",
            };
            metrics::counter!(crate::metrics::DELIVERIES, "outcome" => label).increment(1);
        }
        let mut delay = Duration::from_millis(100);
        let mut tries = 0u32;
        let mut shutdown_since: Option<Instant> = None;
        loop {
            let error = match writer
                .run(DATABASE_DEADLINE * 6, |mut held| async move {
                    let written = self.store.record_outcomes(held.as_mut(), outcomes).await;
                    (held, written)
                })
                .await
            {
                Ok(()) => {
                    if tries > 0 {
                        tracing::info!(tries, "outcomes recorded after the database came back");
                    }
                    self.holdings.let_go(outcomes.iter().map(JobOutcome::id));
                    return Ok(());
                }
                Err(e) => e,
            };
            if cancel.is_cancelled() {
                let since = *shutdown_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= RECORD_AT_SHUTDOWN {
                    return Err(error);
                }
            }
            tries += 1;
            // Once at first, then now and then: an outage is one story.
            if tries == 1 || tries.is_multiple_of(30) {
                tracing::warn!(error = %error, tries, "recording outcomes failed; retrying");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Renders each report revision of the batch not rendered yet. Returns
    /// the revisions that cannot be rendered, with the reason, so that their
    /// deliveries fail with it instead of retrying forever.
    async fn prepare_reports(
        &self,
        jobs: &[ClaimedJob],
    ) -> Result<HashMap<ReportKey, String>, StoreError> {
        let mut unusable = HashMap::new();
        let mut keys: Vec<ReportKey> = jobs.iter().filter_map(|j| report_key(j).ok()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            if self.composer.has_report(key) {
                continue;
            }
            match self.store.report_version(key.0, key.1).await? {
                Some(version) => {
                    if let Err(e) = self.composer.prepare_report(&version) {
                        tracing::error!(report = key.0, revision = key.1, error = %e, "cannot render report");
                        unusable.insert(key, e.to_string());
                    }
                }
                None => {
                    unusable.insert(key, "the report no longer exists".to_string());
                }
            }
        }
        Ok(unusable)
    }

    /// Builds a job's message. A revision rendered for the batch may have
    /// been pushed out of the renders kept since (many revisions in flight
    /// at once: test copies of one edit after another beside a send); it
    /// is rendered again rather than failing its deliveries.
    async fn compose(
        &self,
        job: &ClaimedJob,
    ) -> Result<Result<Composed, ComposeError>, StoreError> {
        match self.composer.compose(job) {
            Err(ComposeError::NotPrepared(_)) => {
                let unusable = self.prepare_reports(std::slice::from_ref(job)).await?;
                if let Some(reason) = unusable.into_values().next() {
                    return Ok(Err(ComposeError::Report(reason)));
                }
                Ok(self.composer.compose(job))
            }
            built => Ok(built),
        }
    }

    /// Starts scheduled sends that are due and closes finished ones.
    async fn tend_sends(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let overdue_after = (self.settings.overdue_after_secs * 1000) as i64;
        let started = self.store.start_due_sends(now, overdue_after).await?;
        if started > 0 {
            tracing::info!(started, "scheduled sends started");
        }
        let check = {
            let mut last = self.exact_finish_at.lock().expect("not poisoned");
            if last.is_none_or(|at| at.elapsed() >= EXACT_FINISH_EVERY) {
                *last = Some(Instant::now());
                FinishCheck::Exact
            } else {
                FinishCheck::Counted
            }
        };
        self.store.finish_completed_sends(now, check).await?;
        Ok(())
    }

    /// Sends everything that is due now with the worker's own loop, and
    /// returns how many messages it handled once nothing more is due (a
    /// retry that comes due meanwhile is sent too): for tests, benchmarks
    /// and one-shot runs.
    pub async fn dispatch_all_pending(&self) -> Result<usize, DispatchError> {
        let never = CancellationToken::new();
        let mut total = 0;
        loop {
            // Each run ends with every outcome written, so the next one
            // sees what the last one left due, and tends the sends first.
            let handled = self.pump(&never, Until::Idle).await?;
            if handled == 0 {
                return Ok(total);
            }
            total += handled;
        }
    }

    /// Runs until `cancel` fires: then stops claiming, lets messages in
    /// flight finish, and hands back any leases it still holds.
    #[tracing::instrument(name = "delivery_worker", skip_all, fields(worker = %self.worker_id))]
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(worker = %self.worker_id, "delivery worker started");
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            // Whatever an earlier, failed run still held goes back first.
            let ran = match self.release_held().await {
                Ok(_) => self.pump(&cancel, Until::Cancelled).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = ran {
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
        match self.release_held().await {
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
    /// connections never wait for a claim. Leases are renewed all along, and
    /// each message is checked just before it goes out. Returns when `cancel`
    /// fires or, with `Until::Idle`, when nothing is due (Ok, with how many
    /// messages it claimed), or when the database fails (Err), in every case
    /// only once every outcome is written.
    async fn pump(&self, cancel: &CancellationToken, until: Until) -> Result<usize, DispatchError> {
        let (stop_renewing, renewer) = self.start_renewer();
        // Cancelled when a sender finds the database out of reach: feeding
        // stops and the run ends.
        let broken = CancellationToken::new();
        let failure: Arc<std::sync::Mutex<Option<DispatchError>>> = Arc::default();
        let (jobs, queue) = tokio::sync::mpsc::channel::<ClaimedJob>(self.concurrency());
        let queue = Arc::new(Mutex::new(queue));
        let (outcomes, recorder) = self.start_recorder(cancel);
        let senders: Vec<_> = (0..self.concurrency())
            .map(|_| {
                let (this, queue, outcomes, cancel, broken, failure) = (
                    self.clone(),
                    queue.clone(),
                    outcomes.clone(),
                    cancel.clone(),
                    broken.clone(),
                    failure.clone(),
                );
                spawn_in_span(async move {
                    let mut line = Line {
                        session: this.mailer.session(),
                        on_wire: None,
                        settled: Vec::new(),
                    };
                    while !broken.is_cancelled() {
                        // A message on the wire goes on waiting only while
                        // the next one is already queued; otherwise its data
                        // is written now, not after the wait.
                        let ready = match line.on_wire {
                            Some(_) => take_now(&queue).await,
                            None => None,
                        };
                        let job = match ready {
                            Some(job) => job,
                            None => {
                                this.settle(&mut line).await;
                                if !pass_on(&outcomes, &mut line.settled).await {
                                    break;
                                }
                                let job = queue.lock().await.recv().await;
                                let Some(job) = job else { break };
                                job
                            }
                        };
                        let id = job.id;
                        let handled = match this.handle(job, &cancel, &mut line).await {
                            Ok(Handled::Withdrawn) => this
                                .store
                                .release_job(id, &this.worker_id)
                                .await
                                .map(|()| {
                                    this.holdings.let_go([id]);
                                    Handled::Untouched
                                })
                                .map_err(DispatchError::from),
                            other => other,
                        };
                        if !pass_on(&outcomes, &mut line.settled).await {
                            break;
                        }
                        match handled {
                            Ok(Handled::Outcome(outcome)) => {
                                if outcomes.send(outcome).await.is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "no new message starts until the database answers");
                                failure.lock().expect("not poisoned").get_or_insert(e);
                                broken.cancel();
                            }
                        }
                    }
                    // Whatever is on the wire was sent: its outcome is
                    // recorded however the run ends.
                    this.settle(&mut line).await;
                    pass_on(&outcomes, &mut line.settled).await;
                })
            })
            .collect();
        // Only the senders hold the queue now: if they all stop, feeding it
        // fails instead of waiting forever.
        drop(queue);
        let fed = self.feed(cancel, until, &broken, &jobs, &outcomes).await;
        drop(jobs);
        drop(outcomes);
        for sender in senders {
            let _ = sender.await;
        }
        let recorded = joined(recorder.await);
        stop_renewing.cancel();
        let _ = renewer.await;
        let failed = failure.lock().expect("not poisoned").take();
        match failed {
            Some(e) => Err(e),
            None => fed.and_then(|claimed| recorded.map(|()| claimed)),
        }
    }

    /// Claims batches and queues their messages until `cancel` fires, a
    /// sender finds the database gone (`broken`) or, with `Until::Idle`,
    /// nothing is due. Returns how many messages it claimed.
    async fn feed(
        &self,
        cancel: &CancellationToken,
        until: Until,
        broken: &CancellationToken,
        jobs: &tokio::sync::mpsc::Sender<ClaimedJob>,
        outcomes: &tokio::sync::mpsc::Sender<JobOutcome>,
    ) -> Result<usize, DispatchError> {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        let mut last_tended = Instant::now() - Duration::from_secs(60);
        let mut claimed_so_far = 0;
        while !cancel.is_cancelled() && !broken.is_cancelled() {
            if last_tended.elapsed() >= Duration::from_secs(1) {
                last_tended = Instant::now();
                if let Err(e) = self.tend_sends().await {
                    tracing::warn!(error = %e, "starting scheduled sends failed; will retry");
                }
            }
            let Some(claimed) = self.claim().await? else {
                if until == Until::Idle {
                    break;
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = broken.cancelled() => break,
                    _ = tokio::time::sleep(idle) => {}
                    // Queued here: a send just triggered starts now, not
                    // at the next poll.
                    _ = self.store.mail_queued_here() => {
                        last_tended = Instant::now() - Duration::from_secs(60);
                    }
                }
                continue;
            };
            claimed_so_far += claimed.jobs.len() + claimed.unusable.len();
            for failed in claimed.unusable {
                if outcomes.send(failed).await.is_err() {
                    return Err(DispatchError::Stopped("the outcome writer"));
                }
            }
            for job in claimed.jobs {
                tokio::select! {
                    sent = jobs.send(job) => if sent.is_err() {
                        if broken.is_cancelled() {
                            return Ok(claimed_so_far);
                        }
                        return Err(DispatchError::Stopped("the senders"));
                    },
                    // The rows not queued yet stay leased to this worker and
                    // are handed back when the run ends.
                    _ = broken.cancelled() => return Ok(claimed_so_far),
                }
            }
        }
        Ok(claimed_so_far)
    }

    /// A task that writes outcomes as they come, a few at a time. The
    /// channel is as small as the concurrency: a crash repeats at most the
    /// messages on the wire, those waiting here and those being written.
    fn start_recorder(
        &self,
        cancel: &CancellationToken,
    ) -> (
        tokio::sync::mpsc::Sender<JobOutcome>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (outcomes, mut incoming) = tokio::sync::mpsc::channel::<JobOutcome>(self.concurrency());
        let this = self.clone();
        let cancel = cancel.clone();
        let most = self.concurrency();
        let recorder = spawn_in_span(async move {
            let mut chunk = Vec::with_capacity(most);
            let mut writer = this.store.kept_writer();
            while writer
                .idle_until(incoming.recv_many(&mut chunk, most))
                .await
                > 0
            {
                gather(&mut incoming, &mut chunk, most).await;
                this.record(&mut writer, &chunk, &cancel).await?;
                chunk.clear();
            }
            Ok(())
        });
        (outcomes, recorder)
    }

    /// Sends one message, unless its send was paused or cancelled meanwhile
    /// or its claim is no longer certain: checked just before it is built
    /// and, when the rate limit made it wait, again just before it goes out.
    #[tracing::instrument(
        name = "delivery",
        skip_all,
        fields(delivery = job.id, report = job.report_id, kind = ?job.kind, attempt = job.attempts)
    )]
    async fn handle(
        &self,
        job: ClaimedJob,
        cancel: &CancellationToken,
        line: &mut Line<'_>,
    ) -> Result<Handled, DispatchError> {
        if cancel.is_cancelled() {
            return Ok(Handled::Untouched);
        }
        // A confirmation still queued is one asked for after the reader
        // left (leaving withdraws the older ones): it is their way back.
        if job.kind == JobKind::Report
            && job.subscriber_status == Some(SubscriberStatus::Unsubscribed)
        {
            return Ok(Handled::Outcome(JobOutcome::Skipped {
                id: job.id,
                reason: "reader unsubscribed before delivery".into(),
            }));
        }
        if let (Some(reason), false) = (job.suppressed, job.kind == JobKind::Test) {
            return Ok(Handled::Outcome(JobOutcome::Skipped {
                id: job.id,
                reason: format!("the address is suppressed ({})", reason.as_str()),
            }));
        }
        let mut checked = Instant::now();
        if let Some(not_now) = self.may_send(job.id, line).await? {
            return Ok(not_now);
        }
        let composed = match self.compose(&job).await? {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "cannot build message");
                return Ok(Handled::Outcome(JobOutcome::Failed {
                    id: job.id,
                    reason: e.to_string(),
                }));
            }
        };
        if let Some(pace) = &self.pace {
            let due = pace.lock().await.tick().now_or_never().is_some();
            if !due {
                // Nothing stays on the wire while the rate limit holds
                // this sender back.
                self.settle(line).await;
                pace.lock().await.tick().await;
            }
            if cancel.is_cancelled() {
                return Ok(Handled::Untouched);
            }
            checked = Instant::now();
            if let Some(not_now) = self.may_send(job.id, line).await? {
                return Ok(not_now);
            }
        }
        let mut on_wire = OnWire {
            job,
            message_id: composed.message_id,
            started: Instant::now(),
            checked,
            behind_another: false,
        };
        let outcomes = line.session.send(composed.message).await;
        on_wire.behind_another = outcomes.before.is_some();
        if let Some(result) = outcomes.before {
            match line.on_wire.take() {
                Some(before) => {
                    let outcome = self.outcome(before, result).await;
                    line.settled.push(outcome);
                }
                None => debug_assert!(false, "an outcome for no message on the wire"),
            }
        }
        Ok(match outcomes.this {
            Some(result) => Handled::Outcome(self.outcome(on_wire, result).await),
            None => {
                debug_assert!(line.on_wire.is_none(), "two messages on the wire");
                line.on_wire = Some(on_wire);
                Handled::OnTheWire
            }
        })
    }

    /// Writes the data of the message on the line's wire, if any, and keeps
    /// its outcome with the others to record. Its claim is read again first
    /// unless the last reading still stands: it went out alone (so a pause
    /// lets no other message on this connection through) and its lease is
    /// still sure to be this worker's, the check having asked for lease
    /// time to spare.
    async fn settle(&self, line: &mut Line<'_>) {
        let recheck = line
            .on_wire
            .as_ref()
            .filter(|w| w.behind_another || w.checked.elapsed() >= self.lease() / 6)
            .map(|w| w.job.id);
        if let Some(id) = recheck {
            match self.gate(&[id]).await {
                Ok(checks) if checks[0] == ClaimCheck::Held => {}
                Ok(checks) => self.drop_on_wire(line, Some(checks[0])).await,
                Err(_) => self.drop_on_wire(line, None).await,
            }
        }
        let result = line.session.finish().await;
        let on_wire = line.on_wire.take();
        match (on_wire, result) {
            (Some(on_wire), Some(result)) => {
                let outcome = self.outcome(on_wire, result).await;
                line.settled.push(outcome);
            }
            (None, None) => {}
            _ => debug_assert!(false, "the message on the wire and the session disagree"),
        }
    }

    /// What to record for a message the relay answered.
    async fn outcome(&self, sent: OnWire, result: Result<(), MailError>) -> JobOutcome {
        let OnWire {
            job,
            message_id,
            started,
            ..
        } = sent;
        metrics::histogram!(crate::metrics::SMTP_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::debug!(
            job = job.id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "smtp send"
        );
        // Relaying denied or authentication required: every message would
        // meet it, so it counts towards pausing the send, not against the
        // reader or the message.
        let result = match result {
            Err(MailError::Permanent(reason)) if crate::bounces::is_relay_refusal(&reason) => {
                Err(MailError::Relay(reason))
            }
            other => other,
        };
        if !matches!(result, Err(MailError::Relay(_))) {
            self.relay_failures.store(0, Ordering::Relaxed);
        }
        match result {
            Ok(()) => JobOutcome::Sent {
                id: job.id,
                message_id,
                at: now_ms(),
            },
            Err(MailError::Relay(reason)) => self.relay_failed(&job, reason).await,
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
        }
    }

    /// `None` when message `id` may go out now; otherwise what to do
    /// instead. The message on the line's wire, whose data would go out
    /// with this one's envelope, is checked in the same read.
    async fn may_send(
        &self,
        id: i64,
        line: &mut Line<'_>,
    ) -> Result<Option<Handled>, DispatchError> {
        let pair = [id, line.on_wire.as_ref().map_or(0, |w| w.job.id)];
        let ids = if line.on_wire.is_some() {
            &pair[..]
        } else {
            &pair[..1]
        };
        let checks = match self.gate(ids).await {
            Ok(checks) => checks,
            Err(e) => {
                self.drop_on_wire(line, None).await;
                return Err(e);
            }
        };
        if let Some(&check) = checks.get(1) {
            if check != ClaimCheck::Held {
                self.drop_on_wire(line, Some(check)).await;
            }
        }
        Ok(match checks[0] {
            ClaimCheck::Held => None,
            ClaimCheck::Withdrawn => Some(Handled::Withdrawn),
            ClaimCheck::Lost => {
                self.holdings.let_go([id]);
                Some(Handled::Untouched)
            }
            ClaimCheck::Expiring => Some(Handled::Untouched),
        })
    }

    /// The message on the line's wire may no longer go out (`check`), or
    /// that cannot be told (`None`): its data is never written, and the
    /// connection closes, so the relay discards the transaction. A message
    /// whose send was paused or cancelled is handed back; any other waits
    /// for its lease to run out.
    async fn drop_on_wire(&self, line: &mut Line<'_>, check: Option<ClaimCheck>) {
        let Some(dropped) = line.on_wire.take() else {
            return;
        };
        line.session.abandon();
        let id = dropped.job.id;
        tracing::info!(
            job = id,
            "message not sent: its claim ended while it waited on the wire"
        );
        match check {
            Some(ClaimCheck::Withdrawn) => {
                match self.store.release_job(id, &self.worker_id).await {
                    Ok(()) => self.holdings.let_go([id]),
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "cannot hand the message back; its lease runs out instead")
                    }
                }
            }
            Some(ClaimCheck::Lost) => self.holdings.let_go([id]),
            _ => {}
        }
    }

    /// The relay cannot be used: the message is put back without using an
    /// attempt, and after enough such failures in a row every send in
    /// progress is paused with the reason, for an editor to resume once the
    /// relay is fixed.
    async fn relay_failed(&self, job: &ClaimedJob, reason: String) -> JobOutcome {
        let failures = self.relay_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = self.settings.pause_after_relay_failures;
        if threshold > 0 && failures >= threshold {
            self.relay_failures.store(0, Ordering::Relaxed);
            let why = format!(
                "paused after {failures} failures in a row to reach the mail relay: {reason}"
            );
            match self.store.pause_sends_in_progress(&why).await {
                Ok(paused) if !paused.is_empty() => {
                    tracing::error!(reports = ?paused, reason = %why, "sends paused: the mail relay cannot be used; fix the mail settings, then resume");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not pause the sends"),
            }
        }
        let delay = retry_delay(
            job.attempts.max(1),
            self.settings.retry_base_secs,
            self.settings.retry_max_secs,
        )
        .max(Duration::from_millis(self.settings.poll_interval_ms));
        JobOutcome::Deferred {
            id: job.id,
            at: now_ms() + delay.as_millis() as i64,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcomes that arrive while a write gathers join it, up to `most`;
    /// later ones, or more than `most`, wait for the next write, and a
    /// closed channel ends the gathering at once.
    #[tokio::test(start_paused = true)]
    async fn a_write_gathers_what_arrives_soon_up_to_its_size() {
        let (outcomes, mut incoming) = tokio::sync::mpsc::channel::<u32>(16);
        let sender = tokio::spawn(async move {
            for (n, after_ms) in [(1, 1), (2, 2), (3, 1), (4, 10)] {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                outcomes.send(n).await.unwrap();
            }
            outcomes
        });
        let mut chunk = Vec::new();
        incoming.recv_many(&mut chunk, 8).await;
        gather(&mut incoming, &mut chunk, 8).await;
        assert_eq!(chunk, [1, 2, 3], "the fourth came after the window");

        let outcomes = sender.await.unwrap();
        for n in 5..8 {
            outcomes.send(n).await.unwrap();
        }
        chunk.clear();
        incoming.recv_many(&mut chunk, 2).await;
        let started = tokio::time::Instant::now();
        gather(&mut incoming, &mut chunk, 3).await;
        assert_eq!(chunk, [4, 5, 6]);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a full write does not wait"
        );

        drop(outcomes);
        chunk.clear();
        incoming.recv_many(&mut chunk, 8).await;
        let started = tokio::time::Instant::now();
        gather(&mut incoming, &mut chunk, 8).await;
        assert_eq!(chunk, [7]);
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing more can come");
    }
}
