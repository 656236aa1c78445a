//! Posts events to their endpoints: route new events, claim due deliveries
//! under a lease, post them with a signature and a timeout, record what
//! became of each, and try again later with exponential back-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::signature::{sign, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER};
use crate::config::{OutgoingWebhookSettings, WebhookEndpoint};
use crate::delivery::retry_delay;
use crate::store::{now_ms, ClaimedWebhook, Store, StoreError, WebhookOutcome};

/// Deliveries claimed per round trip.
const BATCH: i64 = 50;
/// How often an idle sender looks for new events.
const IDLE: Duration = Duration::from_secs(1);
/// How often old events are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// One process's webhook poster. Several may run against one PostgreSQL
/// database: each delivery is leased to one of them at a time.
#[derive(Clone)]
pub struct WebhookSender {
    store: Store,
    client: reqwest::Client,
    endpoints: Arc<HashMap<String, WebhookEndpoint>>,
    all_endpoints: Arc<[WebhookEndpoint]>,
    settings: OutgoingWebhookSettings,
    worker_id: Arc<str>,
}

/// What one post came to, before it is turned into an outcome.
enum Answer {
    Accepted(u16),
    /// Worth another try: a network error, a timeout, 408, 429 or 5xx.
    /// `after` is the endpoint's Retry-After, when it gave one.
    Transient {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// The endpoint refused it (another 4xx, or a redirect, which is not
    /// followed): trying again would change nothing.
    Refused {
        status: u16,
        error: String,
    },
}

impl WebhookSender {
    pub fn new(store: Store, settings: OutgoingWebhookSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs))
            // A redirect could send a signed event somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("newsletter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| (e.name.clone(), e.clone()))
            .collect();
        Ok(WebhookSender {
            store,
            client,
            endpoints: Arc::new(endpoints),
            all_endpoints: settings.endpoints.clone().into(),
            settings,
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()).into(),
        })
    }

    /// A claim's lease: renewed while the batch is posted, so it only has
    /// to outlast a worker that died.
    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs * 4).max(Duration::from_secs(60))
    }

    /// Keeps this sender's leases alive until the returned token is
    /// cancelled, however long the endpoints take.
    fn start_renewer(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (this, until) = (self.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = until.cancelled() => return,
                    _ = tokio::time::sleep(this.lease() / 4) => {}
                }
                let lease_until = now_ms() + this.lease().as_millis() as i64;
                if let Err(e) = this
                    .store
                    .renew_webhook_leases(&this.worker_id, lease_until)
                    .await
                {
                    tracing::warn!(error = %e, "cannot renew webhook leases");
                }
            }
        });
        (stop, handle)
    }

    /// Routes new events, then posts one batch of due deliveries; returns
    /// how many events and deliveries it handled.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let routed = self
            .store
            .route_webhook_events(&self.all_endpoints, now)
            .await?;
        let lease_until = now + self.lease().as_millis() as i64;
        let claimed = self
            .store
            .claim_due_webhooks(&self.worker_id, now, lease_until, BATCH)
            .await?;
        let count = claimed.len();
        // One endpoint's events go one after another, in the order they
        // happened (a retried one may come after later ones); endpoints are
        // posted to side by side, so a slow one delays only its own.
        let mut queues: Vec<Vec<ClaimedWebhook>> = Vec::new();
        for job in claimed {
            match queues.iter_mut().find(|q| q[0].endpoint == job.endpoint) {
                Some(queue) => queue.push(job),
                None => queues.push(vec![job]),
            }
        }
        let (stop_renewing, renewer) = self.start_renewer();
        let mut runs = futures::stream::iter(queues)
            .map(|queue| {
                let this = self.clone();
                async move { this.post_in_order(queue).await }
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        let mut failure = None;
        while let Some(run) = runs.next().await {
            if let Err(e) = run {
                failure.get_or_insert(e);
            }
        }
        stop_renewing.cancel();
        let _ = renewer.await;
        match failure {
            Some(e) => Err(e),
            None => Ok(routed + count),
        }
    }

    /// Posts everything due now, retries included when they are due at
    /// once; for tests and one-shot runs.
    pub async fn deliver_all_pending(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.deliver_due().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Runs until `cancel` fires, then hands back what it claimed and did
    /// not post.
    pub async fn run(self, cancel: CancellationToken) {
        if self.settings.endpoints.is_empty() {
            tracing::debug!("no webhook endpoints configured");
        }
        let mut last_purge: Option<tokio::time::Instant> = None;
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                last_purge = Some(tokio::time::Instant::now());
                self.purge().await;
            }
            let pause = match self.deliver_due().await {
                Ok(0) => IDLE,
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "webhook delivery interrupted; will retry");
                    IDLE * failures.min(30)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if let Err(e) = self.store.release_webhook_leases(&self.worker_id).await {
            tracing::warn!(error = %e, "could not hand back webhook claims; they expire on their own");
        }
    }

    async fn purge(&self) {
        let before = now_ms() - self.settings.retention_days.max(1) * 86_400_000;
        match self.store.purge_webhook_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "old webhook events deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete old webhook events"),
        }
    }

    async fn record(&self, outcome: &WebhookOutcome) -> Result<(), StoreError> {
        let label = match outcome {
            WebhookOutcome::Delivered { .. } => "delivered",
            WebhookOutcome::Retry { .. } => "retry",
            WebhookOutcome::Failed { .. } => "failed",
        };
        metrics::counter!(crate::metrics::WEBHOOKS, "outcome" => label).increment(1);
        self.store
            .record_webhook_outcome(&self.worker_id, outcome)
            .await
    }

    /// Posts one endpoint's deliveries one after another. Once one is to be
    /// retried, the rest are handed back untried: a dead endpoint costs one
    /// timeout per batch, and its events keep their order.
    async fn post_in_order(&self, queue: Vec<ClaimedWebhook>) -> Result<(), StoreError> {
        let mut jobs = queue.into_iter();
        for job in jobs.by_ref() {
            let outcome = self.post(job).await;
            self.record(&outcome).await?;
            if matches!(outcome, WebhookOutcome::Retry { .. }) {
                break;
            }
        }
        let untried: Vec<i64> = jobs.map(|job| job.id).collect();
        if !untried.is_empty() {
            self.store
                .release_webhooks(&self.worker_id, &untried)
                .await?;
        }
        Ok(())
    }

    /// Posts one delivery and says what became of it.
    async fn post(&self, job: ClaimedWebhook) -> WebhookOutcome {
        let Some(endpoint) = self.endpoints.get(&job.endpoint) else {
            return WebhookOutcome::Failed {
                id: job.id,
                status: None,
                error: format!(
                    "no endpoint named {:?} is configured any more",
                    job.endpoint
                ),
            };
        };
        let answer = self.send(endpoint, &job).await;
        match answer {
            Answer::Accepted(status) => WebhookOutcome::Delivered {
                id: job.id,
                status,
                at: now_ms(),
            },
            Answer::Refused { status, error } => {
                tracing::warn!(endpoint = %job.endpoint, event = %job.event_id, %error, "webhook refused; not retried");
                WebhookOutcome::Failed {
                    id: job.id,
                    status: Some(status),
                    error,
                }
            }
            Answer::Transient { status, error, .. }
                if job.attempts >= self.settings.max_attempts =>
            {
                tracing::warn!(endpoint = %job.endpoint, event = %job.event_id, %error, "webhook failed; no attempts left");
                WebhookOutcome::Failed {
                    id: job.id,
                    status,
                    error: format!("gave up after {} attempts: {error}", job.attempts),
                }
            }
            Answer::Transient {
                status,
                error,
                after,
            } => {
                let backoff = retry_delay(
                    job.attempts,
                    self.settings.retry_base_secs,
                    self.settings.retry_max_secs,
                );
                let cap = Duration::from_secs_f64(self.settings.retry_max_secs.max(0.0));
                let delay = after.map_or(backoff, |after| backoff.max(after.min(cap)));
                tracing::info!(endpoint = %job.endpoint, event = %job.event_id, %error, retry_in_ms = delay.as_millis() as u64, "webhook will be retried");
                WebhookOutcome::Retry {
                    id: job.id,
                    at: now_ms() + delay.as_millis() as i64,
                    status,
                    error,
                }
            }
        }
    }

    async fn send(&self, endpoint: &WebhookEndpoint, job: &ClaimedWebhook) -> Answer {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(
            endpoint.secret.expose_secret().as_bytes(),
            timestamp,
            &job.body,
        );
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, job.event_id.as_str())
            .header(EVENT_TYPE_HEADER, job.kind.as_str())
            .body(job.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // The URL may hold credentials: it stays out of the message.
            Err(e) => {
                return Answer::Transient {
                    status: None,
                    error: e.without_url().to_string(),
                    after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Accepted(status.as_u16());
        }
        let error = format!("the endpoint answered {status}");
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        if transient {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Answer::Transient {
                status: Some(status.as_u16()),
                error,
                after,
            }
        } else {
            Answer::Refused {
                status: status.as_u16(),
                error,
            }
        }
    }
}
