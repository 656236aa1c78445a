//! Logging setup: readable text by default, JSON lines when asked.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Libraries whose debug output is noise for an operator, and a lot of it:
/// the CSS inliner's selector engine logs the whole document of every
/// report, the SMTP client every command. They stay at `info` unless the
/// filter names them.
const QUIET_LIBRARIES: &[&str] = &[
    "selectors",
    "html5ever",
    "markup5ever",
    "cssparser",
    "css_inline",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "lettre",
    "sqlx",
    "mio",
    "reqwest",
];

/// Installs the global subscriber. `RUST_LOG` wins over the setting.
pub fn init(settings: &LogSettings) {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| settings.filter.clone());
    let filter = quiet_libraries(&directives);
    let builder = tracing_subscriber::fmt()
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

/// The filter of `directives`, with the noisy libraries held at `info`
/// unless a directive names them.
fn quiet_libraries(directives: &str) -> EnvFilter {
    let mut filter = EnvFilter::new(directives);
    for library in QUIET_LIBRARIES {
        let named = directives
            .split(',')
            .any(|d| d.trim().split(['=', '[', ':']).next() == Some(library));
        if !named {
            if let Ok(directive) = format!("{library}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_stay_quiet_at_debug_unless_named() {
        let filter = quiet_libraries("debug").to_string();
        assert!(filter.contains("selectors=info"), "{filter}");
        assert!(filter.contains("debug"), "{filter}");
        let named = quiet_libraries("debug,selectors=trace").to_string();
        assert!(named.contains("selectors=trace"), "{named}");
        assert!(!named.contains("selectors=info"), "{named}");
    }
}
