//! The work behind the command-line subcommands other than `serve` and
//! `worker`, kept in the library so it can be tested.

pub mod admin;
pub mod bounces;
pub mod check;
pub mod report;
pub mod subscribers;
pub mod webhooks;
