//! The loop back from the mail world: bounces and spam complaints, however
//! they arrive (a pipe from the MTA, a polled mailbox, a provider's
//! webhook, or the relay's own refusal), turned into suppressed addresses
//! that are never mailed again without an editor's say.

mod classify;
mod intake;
mod mailbox;
mod parse;
mod verp;
pub mod webhooks;

pub use classify::{classify, is_recipient_refusal, is_relay_refusal};
pub use intake::{Intake, IntakeError, IntakeResult, ProviderEvent, Recorded};
pub use mailbox::{BounceMailbox, MailboxError, PollSummary};
pub use parse::{read_notice, Complaint, Failure, Notice, NoticeKind};
pub use verp::{BounceAddress, BounceAddressError, ForgedToken};

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceKind {
    /// The address will not work (5.x.x: no such user, no such domain).
    Hard,
    /// It may work later (4.x.x: mailbox full, greylisting given up).
    Soft,
    /// The reader reported the message as spam.
    Complaint,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Complaint => "complaint",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hard" => Some(BounceKind::Hard),
            "soft" => Some(BounceKind::Soft),
            "complaint" => Some(BounceKind::Complaint),
            _ => None,
        }
    }
}

/// Why an address is not mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    Bounced,
    Complained,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounced => "bounced",
            SuppressionReason::Complained => "complained",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bounced" => Some(SuppressionReason::Bounced),
            "complained" => Some(SuppressionReason::Complained),
            _ => None,
        }
    }
}
