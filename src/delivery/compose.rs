//! Turns a claimed outbox row into a complete email.

use std::sync::Arc;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde::Serialize;
use tera::Tera;

use super::headers::{ListUnsubscribe, ListUnsubscribePost};
use crate::domain::Signer;
use crate::store::{ClaimedJob, JobKind};

/// Why a message could not be built. These are our faults, not the relay's:
/// the row is failed with the reason rather than retried forever.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("template: {0}")]
    Template(#[from] tera::Error),
    #[error("recipient address {0:?} is not usable")]
    Recipient(String),
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("{0}")]
    Missing(&'static str),
}

/// Everything needed to build messages, shared by the workers.
#[derive(Clone)]
pub struct Composer {
    tera: Arc<Tera>,
    signer: Signer,
    from: Mailbox,
    base: String,
    site_name: String,
    message_id_domain: String,
}

/// A built message and the Message-ID it carries.
pub struct Composed {
    pub message: Message,
    pub message_id: String,
}

#[derive(Serialize)]
struct ConfirmationContext<'a> {
    site_name: &'a str,
    name: Option<&'a str>,
    confirm_url: &'a str,
    unsubscribe_url: &'a str,
    home_url: &'a str,
}

impl Composer {
    pub fn new(
        tera: Arc<Tera>,
        signer: Signer,
        from: Mailbox,
        base: String,
        site_name: String,
    ) -> Self {
        let message_id_domain = from.email.domain().to_string();
        Composer {
            tera,
            signer,
            from,
            base,
            site_name,
            message_id_domain,
        }
    }

    /// The one-click unsubscribe link of a reader.
    pub fn unsubscribe_url(&self, subscriber_id: i64) -> String {
        format!(
            "{}/unsubscribe?token={}",
            self.base,
            self.signer.unsubscribe_token(subscriber_id).as_str()
        )
    }

    /// Builds the message for `job`.
    pub fn compose(&self, job: &ClaimedJob) -> Result<Composed, ComposeError> {
        match job.kind {
            JobKind::Confirmation => self.confirmation(job),
            JobKind::Report | JobKind::Test => Err(ComposeError::Missing(
                "report messages are built by the report sender",
            )),
        }
    }

    fn confirmation(&self, job: &ClaimedJob) -> Result<Composed, ComposeError> {
        let seed = job
            .seed
            .as_deref()
            .ok_or(ComposeError::Missing("confirmation without a seed"))?;
        let subscriber_id = job
            .subscriber_id
            .ok_or(ComposeError::Missing("confirmation without a subscriber"))?;
        let token = self.signer.confirmation_token(seed);
        let confirm_url = format!(
            "{}/subscriptions/confirm?token={}",
            self.base,
            token.as_str()
        );
        let unsubscribe_url = self.unsubscribe_url(subscriber_id);
        let context = ConfirmationContext {
            site_name: &self.site_name,
            name: job.subscriber_name.as_deref(),
            confirm_url: &confirm_url,
            unsubscribe_url: &unsubscribe_url,
            home_url: &self.base,
        };
        let context = tera::Context::from_serialize(&context)?;
        let html = self.tera.render("email/confirmation.html", &context)?;
        let text = self.tera.render("email/confirmation.txt", &context)?;
        let subject = format!("Please confirm your subscription to {}", self.site_name);
        self.build(job, &subject, &unsubscribe_url, text, html)
    }

    /// Assembles headers and the two alternative parts.
    pub fn build(
        &self,
        job: &ClaimedJob,
        subject: &str,
        unsubscribe_url: &str,
        text: String,
        html: String,
    ) -> Result<Composed, ComposeError> {
        let to = self.recipient(job)?;
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), self.message_id_domain);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id.clone()))
            .header(ListUnsubscribe(unsubscribe_url.to_string()))
            .header(ListUnsubscribePost)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )?;
        Ok(Composed {
            message,
            message_id,
        })
    }

    fn recipient(&self, job: &ClaimedJob) -> Result<Mailbox, ComposeError> {
        let address = job
            .recipient
            .parse()
            .map_err(|_| ComposeError::Recipient(job.recipient.clone()))?;
        Ok(Mailbox::new(job.subscriber_name.clone(), address))
    }
}
