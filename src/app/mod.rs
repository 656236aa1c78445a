//! What the product does for an editor, whoever asks: the JSON API, the
//! editors' pages, the commands and the tests all come through here.
//!
//! Functions take parsed input and return typed results
//! ([`ReportProgress`], [`FeedbackSummary`], …); how a result is shown,
//! as JSON or as a page, is the caller's business. Errors say what the
//! caller can act on and leave the wording of the answer to it.

mod feedback;
mod overview;
mod preview;
mod progress;
mod sending;

use crate::config::Settings;
use crate::store::{Store, StoreError, StoredReport};

pub use feedback::{helpful_sentence, rfc3339, FeedbackCsv, FeedbackSummary};
pub use overview::{Moment, Overview, ReaderCounts, ReportSummary, SendFigures};
pub use preview::{render_sample, Sample};
pub use progress::{ReportProgress, ReportState};
pub use sending::{parse_schedule, SendAction, MAX_TEST_ADDRESSES};

/// The editors' side of the newsletter over one store and its settings.
#[derive(Clone, Copy)]
pub struct Newsletter<'a> {
    store: &'a Store,
    settings: &'a Settings,
}

impl<'a> Newsletter<'a> {
    pub fn new(store: &'a Store, settings: &'a Settings) -> Self {
        Newsletter { store, settings }
    }

    /// Report `id`, or `NotFound` when there is none.
    pub async fn report(&self, id: i64) -> Result<StoredReport, ServiceError> {
        self.store
            .report(id)
            .await?
            .ok_or(ServiceError::NotFound("no such report"))
    }
}

/// Why the service refused or failed. The messages are meant for the
/// person who asked; `Store` and `Internal` are not, and are logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Well-formed but unacceptable input: the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// The request clashes with where things stand.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}
