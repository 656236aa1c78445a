//! Builds the service from settings and runs it: HTTP server, workers, or
//! both, under one cancellation token so that shutdown is orderly.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bounces::{BounceMailbox, Intake};
use crate::config::Settings;
use crate::delivery::{Composer, Dispatcher, Mailer};
use crate::domain::{random_token, Signer};
use crate::events::WebhookSender;
use crate::http::limiter::AttemptLimiter;
use crate::http::password_checks::PasswordChecks;
use crate::http::server::ConnectionLimits;
use crate::http::{router, AppState};
use crate::i18n::Catalogue;
use crate::render;
use crate::store::Store;

/// Login throttling keys kept at once (a few hundred bytes each).
const LOGIN_KEYS: usize = 20_000;

/// The assembled service.
pub struct Application {
    pub state: AppState,
    pub dispatcher: Dispatcher,
}

impl Application {
    /// Connects to the database, applies migrations, loads the signing key
    /// and the templates, and sets up the mail transport.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::connect(&settings.database_url, 16)
            .await
            .with_context(|| format!("connecting to {}", redact_url(&settings.database_url)))?;
        store.migrate().await.context("applying migrations")?;
        store.record_events_for(&settings.webhooks.endpoints);
        crate::metrics::install();
        let signer = load_signer(&settings, &store).await?;
        let tera = Arc::new(render::templates_for(&settings).context("loading templates")?);
        let catalogue = Arc::new(Catalogue::load(
            &settings.language,
            settings.templates_dir.as_deref(),
        )?);
        let mailer = Arc::new(Mailer::from_settings(&settings.mail)?);
        tracing::info!(
            transport = mailer.description(),
            "mail goes to {}",
            mailer.description()
        );

        let composer = Composer::new(
            tera.clone(),
            signer.clone(),
            settings.sender()?,
            settings.base(),
            settings.site_name.clone(),
        )
        .with_bounce_address(settings.bounce_address()?)
        .with_confirmation_from(settings.confirmation_sender()?)
        .with_reply_to(settings.reply_to()?)
        .with_catalogue(catalogue.clone());
        let dispatcher =
            Dispatcher::new(store.clone(), mailer, composer, settings.delivery.clone());
        let signup_limiter = Arc::new(AttemptLimiter::new(
            settings.subscription.signups_per_ip_per_hour,
            std::time::Duration::from_secs(3600),
        ));
        let password_checks = Arc::new(
            PasswordChecks::new(settings.http.login_concurrency)
                .context("preparing password checks")?,
        );
        let state = AppState {
            store,
            settings: Arc::new(settings),
            signer,
            tera,
            catalogue,
            login_limiter: Arc::new(AttemptLimiter::with_capacity(
                usize::MAX,
                std::time::Duration::from_secs(15 * 60),
                LOGIN_KEYS,
            )),
            signup_limiter,
            password_checks,
            archive_entries: Arc::default(),
            signup_accepted_page: Arc::default(),
        };
        Ok(Application { state, dispatcher })
    }

    /// Serves HTTP on `listener` until `cancel` fires, then finishes the
    /// requests in progress.
    pub async fn serve_http(
        &self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let limits = ConnectionLimits::from(&self.state.settings.http);
        crate::http::server::serve(listener, router(self.state.clone()), limits, cancel).await;
        Ok(())
    }

    /// Runs the delivery worker, and the webhook poster beside it, until
    /// `cancel` fires.
    pub async fn run_worker(&self, cancel: CancellationToken) {
        let webhooks = self.spawn_webhook_sender(&cancel);
        self.dispatcher.clone().run(cancel).await;
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
    }

    /// The poster of outgoing webhooks, as every worker runs it.
    pub fn webhook_sender(&self) -> anyhow::Result<WebhookSender> {
        WebhookSender::new(
            self.state.store.clone(),
            self.state.settings.webhooks.clone(),
        )
        .context("preparing the webhook client")
    }

    fn spawn_webhook_sender(
        &self,
        cancel: &CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match self.webhook_sender() {
            Ok(sender) => Some(tokio::spawn(sender.run(cancel.clone()))),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "outgoing webhooks are not sent");
                None
            }
        }
    }

    /// The bounce intake, as every way in uses it.
    pub fn intake(&self) -> anyhow::Result<Intake> {
        let settings = &self.state.settings;
        Ok(Intake::new(
            self.state.store.clone(),
            self.state.signer.clone(),
            settings.bounce_address()?,
            settings.bounces.clone(),
        ))
    }

    /// The bounce mailbox poller, when one is configured.
    pub fn bounce_mailbox(&self) -> anyhow::Result<Option<BounceMailbox>> {
        let Some(imap) = self.state.settings.bounces.imap.clone() else {
            return Ok(None);
        };
        Ok(Some(BounceMailbox::new(imap, self.intake()?)?))
    }

    /// `serve`: HTTP and the worker in one process.
    pub async fn run_all(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let listen = self.state.settings.listen;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!("listening on http://{}", listener.local_addr()?);
        let worker = {
            let dispatcher = self.dispatcher.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { dispatcher.run(cancel).await })
        };
        let webhooks = self.spawn_webhook_sender(&cancel);
        if let Some(mailbox) = self.bounce_mailbox()? {
            tracing::info!("polling the bounce mailbox");
            tokio::spawn(mailbox.run(cancel.clone()));
        }
        let served = self.serve_http(listener, cancel.clone()).await;
        cancel.cancel();
        worker.await.context("worker task")?;
        if let Some(webhooks) = webhooks {
            webhooks.await.context("webhook task")?;
        }
        self.state.store.close().await;
        served
    }
}

/// The configured key, or the one stored in the database (created on first
/// run). Processes sharing a database thereby share the key.
pub async fn load_signer(settings: &Settings, store: &Store) -> anyhow::Result<Signer> {
    if let Some(key) = &settings.secret_key {
        return Ok(Signer::new(key.expose_secret().as_bytes()));
    }
    let candidate = format!("{}{}", random_token(), random_token());
    let key = store
        .secret_or_insert("signing_key", &candidate)
        .await
        .context("loading the signing key")?;
    Ok(Signer::new(key.as_bytes()))
}

/// Cancels `cancel` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down: no new work is taken, work in flight finishes");
        cancel.cancel();
    });
}

/// A database URL with any password replaced (in the user part or as a
/// `password` parameter), for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        changed = true;
    }
    let secret = |key: &str| {
        let key = key.to_ascii_lowercase();
        key.contains("password") || key.contains("passwd") || key == "pass"
    };
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_wherever_they_are_given() {
        let url = redact_url("postgres://app:s3cret@db/news?sslmode=require&password=s3cret");
        assert!(!url.contains("s3cret"), "{url}");
        assert!(url.contains("sslmode=require"), "{url}");
        assert_eq!(
            redact_url("sqlite://data/newsletter.db"),
            "sqlite://data/newsletter.db"
        );
    }
}
