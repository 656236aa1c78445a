//! The queued sender: workers claim due messages from the outbox, build
//! them, send them over a pooled transport and record what happened.

mod claim_gate;
mod compose;
pub mod dkim;
mod headers;
mod holdings;
mod retry;
mod smtp_pool;
mod smtp_transaction;
mod transport;
mod worker;

pub use compose::{assemble, ComposeError, Composer, Shape};
pub use headers::{list_id, ListUnsubscribe, ListUnsubscribePost};
pub use retry::retry_delay;
pub use transport::{MailError, MailSession, Mailer};
pub use worker::{DispatchError, Dispatcher};
