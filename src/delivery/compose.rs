//! Turns a claimed outbox row into a complete email.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde::Serialize;
use tera::Tera;

use super::headers::{ListUnsubscribe, ListUnsubscribePost};
use crate::bounces::BounceAddress;
use crate::domain::Signer;
use crate::report::{Reader, RenderedReport, SendContext};
use crate::store::{ClaimedJob, JobKind, ReportVersion};

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
    #[error("the report cannot be rendered: {0}")]
    Report(String),
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
    /// The VERP base address; every delivery's envelope sender is made
    /// from it when set.
    bounce_address: Option<BounceAddress>,
    /// Report revisions rendered once per process, then personalised per
    /// reader.
    reports: Arc<Mutex<RenderCache>>,
}

/// Identifies the exact text a delivery carries: a report and a revision of
/// its source. A render is only ever reused for the same text.
pub type ReportKey = (i64, i64);

/// Renders kept per process. A draft's revisions are rendered one after
/// another as an editor tests them, so only the latest few are kept.
#[derive(Default)]
struct RenderCache {
    renders: HashMap<ReportKey, Arc<RenderedReport>>,
    /// Keys in the order they were rendered, oldest first.
    order: std::collections::VecDeque<ReportKey>,
}

/// Renders kept at most: the revisions in flight at once are few.
const KEPT_RENDERS: usize = 16;

impl RenderCache {
    fn insert(&mut self, key: ReportKey, rendered: Arc<RenderedReport>) {
        if self.renders.insert(key, rendered).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > KEPT_RENDERS {
            if let Some(oldest) = self.order.pop_front() {
                self.renders.remove(&oldest);
            }
        }
    }
}

/// A built message and the Message-ID it carries.
pub struct Composed {
    pub message: Message,
    pub message_id: String,
}

#[derive(Serialize)]
struct ConfirmationContext<'a> {
    site_name: &'a str,
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
            bounce_address: None,
            reports: Arc::default(),
        }
    }

    /// Gives every delivery an envelope sender of its own (VERP).
    pub fn with_bounce_address(mut self, bounce_address: Option<BounceAddress>) -> Self {
        self.bounce_address = bounce_address;
        self
    }

    /// The envelope of `job`: its own signed bounce address as the sender
    /// when VERP is on, else lettre's default (the From address).
    fn envelope(&self, job: &ClaimedJob, to: &Mailbox) -> Result<Option<Envelope>, ComposeError> {
        let Some(bounce) = &self.bounce_address else {
            return Ok(None);
        };
        let sender = bounce.envelope_sender(&self.signer, job.id);
        Ok(Some(Envelope::new(Some(sender), vec![to.email.clone()])?))
    }

    /// Whether this revision of a report is rendered and ready to personalise.
    pub fn has_report(&self, key: ReportKey) -> bool {
        self.lock_reports().renders.contains_key(&key)
    }

    /// Renders a revision of a report once; every copy of it is filled from
    /// that render.
    pub fn prepare_report(&self, version: &ReportVersion) -> Result<(), ComposeError> {
        let report = crate::report::Report::parse(&version.source)
            .map_err(|e| ComposeError::Report(e.to_string()))?;
        let context = SendContext {
            base_url: &self.base,
            site_name: &self.site_name,
            archive_url: format!("{}/archive/{}", self.base, version.slug),
        };
        let rendered = crate::report::render_report(&self.tera, &report, &context)
            .map_err(|e| ComposeError::Report(e.to_string()))?;
        self.lock_reports()
            .insert((version.report_id, version.revision), Arc::new(rendered));
        Ok(())
    }

    fn lock_reports(&self) -> std::sync::MutexGuard<'_, RenderCache> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The feedback link of a reader for a report and an answer.
    pub fn feedback_url(&self, report_id: i64, subscriber_id: i64, answer: &str) -> String {
        format!(
            "{}/feedback?token={}&answer={answer}",
            self.base,
            self.signer.feedback_token(report_id, subscriber_id)
        )
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
            JobKind::Report | JobKind::Test => self.report(job),
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
        // No name: until the address confirms, it is whatever the person
        // who typed the address chose, and our mail must not carry it.
        let context = ConfirmationContext {
            site_name: &self.site_name,
            confirm_url: &confirm_url,
            unsubscribe_url: &unsubscribe_url,
            home_url: &self.base,
        };
        let context = tera::Context::from_serialize(&context)?;
        let html = self.tera.render("email/confirmation.html", &context)?;
        let text = self.tera.render("email/confirmation.txt", &context)?;
        let subject = format!("Please confirm your subscription to {}", self.site_name);
        self.build(
            job,
            &subject,
            &unsubscribe_url,
            Body::new(text),
            Body::new(html),
        )
    }

    /// A reader's copy of a report (or an editor's test copy, whose links
    /// lead nowhere on purpose).
    fn report(&self, job: &ClaimedJob) -> Result<Composed, ComposeError> {
        let key = report_key(job)?;
        let report_id = key.0;
        let rendered = self
            .lock_reports()
            .renders
            .get(&key)
            .cloned()
            .ok_or(ComposeError::Missing("report not prepared"))?;
        let (unsubscribe_url, yes, no, subject) = match (job.kind, job.subscriber_id) {
            (JobKind::Report, Some(reader)) => (
                self.unsubscribe_url(reader),
                self.feedback_url(report_id, reader, "yes"),
                self.feedback_url(report_id, reader, "no"),
                rendered.subject.clone(),
            ),
            (JobKind::Test, _) => {
                let inert = format!("{}/unsubscribe?token=test-copy", self.base);
                let feedback = format!("{}/feedback?token=test-copy", self.base);
                (
                    inert,
                    feedback.clone(),
                    feedback,
                    format!("[Test] {}", rendered.subject),
                )
            }
            _ => return Err(ComposeError::Missing("report delivery without a reader")),
        };
        let reader = Reader {
            name: job.subscriber_name.as_deref(),
            unsubscribe_url: &unsubscribe_url,
            feedback_yes_url: &yes,
            feedback_no_url: &no,
        };
        let html = pre_encoded(rendered.html.fill_quoted_printable(&reader, true));
        let text = pre_encoded(rendered.text.fill_quoted_printable(&reader, false));
        self.build(job, &subject, &unsubscribe_url, text, html)
    }

    /// Assembles headers and the two alternative parts.
    pub fn build(
        &self,
        job: &ClaimedJob,
        subject: &str,
        unsubscribe_url: &str,
        text: Body,
        html: Body,
    ) -> Result<Composed, ComposeError> {
        let to = self.recipient(job)?;
        let envelope = self.envelope(job, &to)?;
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), self.message_id_domain);
        let message = assemble(
            self.from.clone(),
            to,
            subject,
            &message_id,
            unsubscribe_url,
            text,
            html,
            envelope,
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
        // A confirmation goes to an address that has not agreed to anything
        // yet: no display name chosen by whoever signed it up.
        let name = match job.kind {
            JobKind::Confirmation => None,
            JobKind::Report | JobKind::Test => job.subscriber_name.clone(),
        };
        Ok(Mailbox::new(name, address))
    }
}

/// The report revision a report or test delivery carries.
pub fn report_key(job: &ClaimedJob) -> Result<ReportKey, ComposeError> {
    let report_id = job
        .report_id
        .ok_or(ComposeError::Missing("report delivery without a report"))?;
    let revision = job
        .report_revision
        .ok_or(ComposeError::Missing("report delivery without a revision"))?;
    Ok((report_id, revision))
}

/// A part already in quoted-printable form, as a report's personalised
/// copy comes (see `Personalisable::fill_quoted_printable`).
fn pre_encoded(bytes: Vec<u8>) -> Body {
    Body::dangerous_pre_encoded(bytes, ContentTransferEncoding::QuotedPrintable)
}

/// A complete message as every email of the service is shaped: From, To,
/// Subject, Date, Message-ID, one-click unsubscribe headers, and the text
/// and HTML parts as alternatives. `envelope` replaces the one lettre
/// derives from From and To.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    from: Mailbox,
    to: Mailbox,
    subject: &str,
    message_id: &str,
    unsubscribe_url: &str,
    text: Body,
    html: Body,
    envelope: Option<Envelope>,
) -> Result<Message, lettre::error::Error> {
    let builder = match envelope {
        Some(envelope) => Message::builder().envelope(envelope),
        None => Message::builder(),
    };
    builder
        .from(from)
        .to(to)
        .subject(subject)
        .date_now()
        .message_id(Some(message_id.to_string()))
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
        )
}
