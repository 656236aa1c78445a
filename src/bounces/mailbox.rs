//! Polling a bounce mailbox over IMAP with TLS: each unread message is fed
//! to the intake; what it understood (a recorded bounce or complaint, a
//! refused forgery) is deleted, everything else is only marked read and
//! left for a person.

use std::sync::Arc;
use std::time::Duration;

use async_imap::Client;
use futures::TryStreamExt;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::{Intake, IntakeResult};
use crate::config::ImapSettings;

/// Longest wait for any one step with the IMAP server.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a poll did not finish; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("IMAP connection to {0}: {1}")]
    Connect(String, String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("the IMAP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(transparent)]
    Intake(#[from] super::IntakeError),
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Messages understood and deleted.
    pub taken: usize,
    /// Messages left in the mailbox, marked read.
    pub left: usize,
}

/// The bounce mailbox and the intake its messages go to.
pub struct BounceMailbox {
    settings: ImapSettings,
    intake: Intake,
    tls: TlsConnector,
}

impl BounceMailbox {
    pub fn new(settings: ImapSettings, intake: Intake) -> Result<Self, MailboxError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| MailboxError::Tls(format!("reading {}: {e}", path.display())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| MailboxError::Tls(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| MailboxError::Tls(e.to_string()))?;
            }
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MailboxError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(BounceMailbox {
            settings,
            intake,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Polls every `poll_secs` until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let every = Duration::from_secs(self.settings.poll_secs.max(1));
        loop {
            match self.poll_once().await {
                Ok(s) if s.taken + s.left > 0 => {
                    tracing::info!(taken = s.taken, left = s.left, "bounce mailbox read")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the bounce mailbox failed; will retry")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Reads every unread message once.
    pub async fn poll_once(&self) -> Result<PollSummary, MailboxError> {
        let s = &self.settings;
        let address = format!("{}:{}", s.host, s.port);
        let tcp = step(TcpStream::connect(&address))
            .await?
            .map_err(|e| MailboxError::Connect(address.clone(), e.to_string()))?;
        let name =
            ServerName::try_from(s.host.clone()).map_err(|e| MailboxError::Tls(e.to_string()))?;
        let tls = step(self.tls.connect(name, tcp))
            .await?
            .map_err(|e| MailboxError::Connect(address.clone(), e.to_string()))?;
        let mut client = Client::new(tls);
        step(client.read_response())
            .await?
            .map_err(|e| MailboxError::Connect(address.clone(), e.to_string()))?;
        let mut session = step(client.login(&s.username, s.password.expose_secret()))
            .await?
            .map_err(|(e, _)| e)?;
        step(session.select(&s.mailbox)).await??;
        let mut uids: Vec<u32> = step(session.uid_search("UNSEEN"))
            .await??
            .into_iter()
            .collect();
        uids.sort_unstable();
        let mut summary = PollSummary::default();
        for uid in uids {
            let fetched: Vec<_> = step(async {
                session
                    .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                    .await?
                    .try_collect()
                    .await
            })
            .await??;
            let Some(raw) = fetched.iter().find_map(|f| f.body()) else {
                continue;
            };
            let result = self.intake.ingest_message(raw, "imap", None).await?;
            let understood = matches!(result, IntakeResult::Recorded(_) | IntakeResult::Forged);
            let flag = if understood {
                summary.taken += 1;
                "+FLAGS (\\Deleted)"
            } else {
                summary.left += 1;
                "+FLAGS (\\Seen)"
            };
            step(async {
                session
                    .uid_store(uid.to_string(), flag)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await??;
        }
        if summary.taken > 0 {
            step(async { session.expunge().await?.try_collect::<Vec<_>>().await }).await??;
        }
        let _ = step(session.logout()).await;
        Ok(summary)
    }
}

async fn step<T>(work: impl std::future::Future<Output = T>) -> Result<T, MailboxError> {
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .map_err(|_| MailboxError::Timeout(STEP_TIMEOUT))
}
