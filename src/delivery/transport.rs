//! The way out: a pooled SMTP transport, or `.eml` files for development.

use std::time::Duration;

use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::smtp_pool::SmtpPool;

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
    dkim: Option<DkimConfig>,
    description: String,
}

/// A transport that cannot be set up from the settings.
#[derive(Debug, thiserror::Error)]
#[error("mail transport: {0}")]
pub struct TransportSetupError(String);

impl Mailer {
    pub fn from_settings(mail: &MailSettings) -> Result<Mailer, TransportSetupError> {
        let dkim = mail.dkim.as_ref().map(load_dkim).transpose()?;
        let (transport, description) = match &mail.smtp_url {
            Some(url) => {
                let transport = SmtpPool::from_url(
                    url.expose_secret(),
                    mail.pool_size as usize,
                    Duration::from_secs(mail.timeout_secs),
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
        Ok(Mailer {
            transport,
            dkim,
            description,
        })
    }

    /// Where mail goes, with credentials left out; for the startup log.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub async fn send(&self, mut message: Message) -> Result<(), MailError> {
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message.envelope(), &message.formatted()).await,
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Transient(e.to_string())),
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

fn load_dkim(d: &crate::config::DkimSettings) -> Result<DkimConfig, TransportSetupError> {
    let pem = std::fs::read_to_string(&d.private_key_file).map_err(|e| {
        TransportSetupError(format!(
            "cannot read DKIM key {}: {e}",
            d.private_key_file.display()
        ))
    })?;
    let key = DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa)
        .map_err(|e| TransportSetupError(format!("invalid DKIM key: {e}")))?;
    Ok(DkimConfig::default_config(
        d.selector.clone(),
        d.domain.clone(),
        key,
    ))
}
