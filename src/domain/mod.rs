//! Parsed, trusted values. Input from the outside world becomes one of these
//! types at the boundary, so the rest of the code never re-validates.

mod email;
pub mod feistel;
mod name;
mod password;
mod spreadsheet;
mod state;
mod token;

pub use email::{EmailError, SubscriberEmail};
pub use name::{NameError, SubscriberName};
pub use password::{
    check_strength, hash_password, verify_password, verify_password_in, PasswordError,
    MIN_PASSWORD_CHARS,
};
pub use spreadsheet::spreadsheet_text;
pub use state::{DeliveryState, SendState, UnknownState, WebhookState};
pub use token::{
    confirmation_seed, random_token, sha256_hex, ConfirmationToken, LinkedId, Signer, TokenError,
    UnsubscribeToken,
};

/// Where a subscriber stands in the double opt-in flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    Pending,
    Confirmed,
    Unsubscribed,
}

impl SubscriberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberStatus::Pending => "pending",
            SubscriberStatus::Confirmed => "confirmed",
            SubscriberStatus::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(SubscriberStatus::Pending),
            "confirmed" => Some(SubscriberStatus::Confirmed),
            "unsubscribed" => Some(SubscriberStatus::Unsubscribed),
            _ => None,
        }
    }
}
