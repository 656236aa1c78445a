//! Logging setup: readable text by default, JSON lines when asked.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber. `RUST_LOG` wins over the setting.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // stdout is for command output (a token, a CSV); the log goes to stderr.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        // stdout belongs to the commands' output (a token, a CSV, a
        // bounce's verdict).
        .with_writer(std::io::stderr);
    let result = if settings.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests): keep the first one.
    let _ = result;
}
