//! The way out: a pooled SMTP transport, or `.eml` files for development.

use std::time::Duration;

use std::sync::Arc;

use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use super::dkim::Signer;
use super::smtp_pool::{Session, SmtpPool};

use crate::config::MailSettings;

/// Why a message did not go out, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Try again later: a 4xx reply, a refused or dropped connection, a timeout.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Do not retry: a 5xx reply.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The relay itself cannot be used (connection refused, TLS handshake
    /// failed, credentials refused): every message would fail the same way,
    /// so this says nothing about the message.
    #[error("the relay cannot be used: {0}")]
    Relay(String),
}

impl MailError {
    /// The same failure, seen before any message was handed over.
    pub(super) fn at_relay(self) -> MailError {
        match self {
            MailError::Transient(m) | MailError::Permanent(m) | MailError::Relay(m) => {
                MailError::Relay(m)
            }
        }
    }
}

enum Transport {
    Smtp(SmtpPool),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Sends built messages, signing them with DKIM when configured.
pub struct Mailer {
    transport: Transport,
    dkim: Option<Arc<Signer>>,
    /// Turns at signing, one per core.
    signing: Semaphore,
    description: String,
}

/// Outcomes a [`MailSession::send`] learned.
pub use super::smtp_pool::Outcomes;

enum Way<'m> {
    Smtp(Box<Session<'m>>),
    File(&'m AsyncFileTransport<Tokio1Executor>),
}

/// One sender's messages, in order. Over SMTP a message's outcome may come
/// with the next message's (its data rides with that message's envelope);
/// [`MailSession::finish`] settles the last one. A session dropped before
/// then has not delivered that message.
pub struct MailSession<'m> {
    dkim: Option<&'m Arc<Signer>>,
    signing: &'m Semaphore,
    way: Way<'m>,
}

impl MailSession<'_> {
    pub async fn send(&mut self, message: Message) -> Outcomes {
        let envelope = message.envelope().clone();
        let mut bytes = message.formatted();
        if let Some(signer) = self.dkim {
            match sign_off_runtime(signer.clone(), self.signing, bytes).await {
                Ok(signed) => bytes = signed,
                // A message held before stays held for the next one.
                Err(e) => {
                    return Outcomes {
                        before: None,
                        this: Some(Err(e)),
                    }
                }
            }
        }
        match &mut self.way {
            Way::Smtp(session) => session.send(&envelope, &bytes).await,
            Way::File(file) => Outcomes {
                before: None,
                this: Some(
                    file.send_raw(&envelope, &bytes)
                        .await
                        .map(|_| ())
                        .map_err(|e| MailError::Transient(e.to_string())),
                ),
            },
        }
    }

    /// Drops the message still held, unsent: see [`Session::abandon`].
    pub fn abandon(&mut self) {
        if let Way::Smtp(session) = &mut self.way {
            session.abandon();
        }
    }

    /// The outcome of the message still held, if any.
    pub async fn finish(&mut self) -> Option<Result<(), MailError>> {
        match &mut self.way {
            Way::Smtp(session) => session.finish().await,
            Way::File(_) => None,
        }
    }
}

/// A transport that cannot be set up from the settings.
#[derive(Debug, thiserror::Error)]
#[error("mail transport: {0}")]
pub struct TransportSetupError(String);

impl Mailer {
    pub fn from_settings(mail: &MailSettings) -> Result<Mailer, TransportSetupError> {
        let dkim = mail
            .dkim
            .as_ref()
            .map(|d| Signer::load(d).map(Arc::new))
            .transpose()
            .map_err(|e| TransportSetupError(e.to_string()))?;
        let (transport, description) = match &mail.smtp_url {
            Some(url) => {
                let transport = SmtpPool::from_url(
                    url.expose_secret(),
                    mail.pool_size as usize,
                    Duration::from_secs(mail.timeout_secs),
                    Duration::from_secs(mail.data_timeout_secs),
                    &mail.hello_name(),
                )
                .map_err(TransportSetupError)?;
                (
                    Transport::Smtp(transport),
                    describe_smtp(url.expose_secret()),
                )
            }
            None => {
                std::fs::create_dir_all(&mail.outbox_dir).map_err(|e| {
                    TransportSetupError(format!("cannot create {}: {e}", mail.outbox_dir.display()))
                })?;
                (
                    Transport::File(AsyncFileTransport::new(&mail.outbox_dir)),
                    format!(
                        "files in {} (no SMTP relay configured)",
                        mail.outbox_dir.display()
                    ),
                )
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Mailer {
            transport,
            dkim,
            signing: Semaphore::new(cores),
            description,
        })
    }

    /// Where mail goes, with credentials left out; for the startup log.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The DKIM signer, when mail is signed.
    pub fn dkim(&self) -> Option<&Signer> {
        self.dkim.as_deref()
    }

    /// A run of messages, sent one after another by one sender.
    pub fn session(&self) -> MailSession<'_> {
        MailSession {
            dkim: self.dkim.as_ref(),
            signing: &self.signing,
            way: match &self.transport {
                Transport::Smtp(smtp) => Way::Smtp(Box::new(smtp.session())),
                Transport::File(file) => Way::File(file),
            },
        }
    }

    /// Opens a connection and says hello, for `config check`.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp.test_connection().await,
            Transport::File(_) => Ok(()),
        }
    }
}

/// 5xx replies are final; everything else (4xx, I/O, timeouts, a closed
/// connection) may work on the next attempt.
pub(super) fn classify(e: lettre::transport::smtp::Error) -> MailError {
    if e.is_permanent() {
        MailError::Permanent(e.to_string())
    } else {
        MailError::Transient(e.to_string())
    }
}

fn describe_smtp(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "SMTP relay {}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "default".into())
        ),
        Err(_) => "SMTP relay".into(),
    }
}

/// Signs on tokio's blocking pool: an RSA signature is a few hundred
/// microseconds of CPU, and on the runtime's own threads a send's
/// signatures would hold up every HTTP request queued behind them. No more
/// signatures run at once than there are cores (`signing`): sixteen senders
/// each with a thread of its own would only take turns on the same cores,
/// paying for the switches.
async fn sign_off_runtime(
    signer: Arc<Signer>,
    signing: &Semaphore,
    message: Vec<u8>,
) -> Result<Vec<u8>, MailError> {
    let stopped = || MailError::Transient("the signing task stopped".into());
    let _turn = signing.acquire().await.map_err(|_| stopped())?;
    tokio::task::spawn_blocking(move || signer.sign(&message))
        .await
        .map_err(|_| stopped())?
        // A message that cannot be signed never will be: our fault, final.
        .map_err(|e| MailError::Permanent(e.to_string()))
}
