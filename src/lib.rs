//! `newsletter`: a self-hosted email newsletter service.
//!
//! The map of the crate:
//! - [`bounces`]: bounces and complaints, and the addresses they suppress.
//! - [`config`]: layered settings (defaults, TOML file, `NEWSLETTER_*` env).
//! - [`domain`]: parsed values (addresses, names, tokens).
//! - [`events`]: outgoing webhooks: signed posts of what happens to other software.
//! - [`store`]: all SQL, for SQLite and PostgreSQL alike.
//! - [`delivery`]: the outbox queue, workers, SMTP transport and retries.
//! - [`report`]: the weekly report format and its rendering.
//! - [`render`]: templates embedded in the binary, in the configured look.
//! - [`i18n`]: the message catalogues of every reader-facing word.
//! - [`app`]: what the service does for editors (sending, progress,
//!   feedback), with typed results that the web interface and the
//!   commands show in their own ways.
//! - [`http`]: the web interface.
//! - [`metrics`]: Prometheus metrics.
//! - [`startup`]: assembling and running the service.
//! - [`commands`]: the work behind the maintenance subcommands.

/// glibc's allocator took a sixth of a send's CPU in profiles (a message's
/// many short-lived buffers, freed on other threads than allocated them);
/// mimalloc serves that pattern from per-thread pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod bounces;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod events;
pub mod http;
pub mod i18n;
pub mod metrics;
pub mod render;
pub mod report;
pub mod startup;
pub mod store;
pub mod telemetry;
