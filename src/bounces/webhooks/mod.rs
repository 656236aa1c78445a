//! Provider webhooks: each provider's report of bounces and complaints,
//! authenticated the way the provider documents, read into
//! [`ProviderEvent`]s for the intake.

mod mailgun;
mod postmark;
mod sendgrid;
mod sns;

pub use mailgun::mailgun_events;
pub use postmark::postmark_events;
pub use sendgrid::{sendgrid_events, SendgridKey};
pub use sns::{ses_events, SnsOutcome, SNS_HOSTS};

/// Why a webhook call was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The provider is not configured here: the endpoint does not exist.
    #[error("this provider's webhook is not set up")]
    NotConfigured,
    /// Missing or wrong credentials or signature.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not what the provider sends.
    #[error("{0}")]
    Malformed(String),
    /// Fetching the signing certificate or confirming a subscription failed;
    /// the provider retries.
    #[error("{0}")]
    Upstream(String),
}

fn malformed(e: impl std::fmt::Display) -> WebhookError {
    WebhookError::Malformed(format!("the body is not a valid notification: {e}"))
}

/// Rejects a signed timestamp (Unix seconds) too far from now: a captured
/// request replayed later is refused.
fn check_age(timestamp: i64, max_age_secs: i64) -> Result<(), WebhookError> {
    let now = chrono::Utc::now().timestamp();
    if (now - timestamp).abs() > max_age_secs {
        return Err(WebhookError::Unauthorized(
            "the signed timestamp is too old or in the future",
        ));
    }
    Ok(())
}
