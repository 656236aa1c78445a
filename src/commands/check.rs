//! `newsletter config check`: are the settings usable, and do the database
//! and the mail relay answer?

use std::fmt::Write;

use crate::config::Settings;
use crate::delivery::Mailer;
use crate::i18n::Catalogue;
use crate::render::overrides::render_samples;
use crate::startup::redact_url;
use crate::store::Store;

/// Checks everything it can and returns a report; `Err` holds the same
/// report when something failed.
pub async fn check_settings(settings: &Settings) -> Result<String, String> {
    let mut out = String::new();
    let mut ok = true;
    let _ = writeln!(out, "settings: valid");
    let _ = writeln!(out, "  listen      {}", settings.listen);
    let _ = writeln!(out, "  base_url    {}", settings.base_url);
    let _ = writeln!(out, "  from        {}", settings.mail.from);
    let _ = writeln!(
        out,
        "  secret_key  {}",
        if settings.secret_key.is_some() {
            "set in settings"
        } else {
            "kept in the database"
        }
    );

    ok &= check_look(settings, &mut out);

    let database = redact_url(&settings.database_url);
    match Store::connect(&settings.database_url, 1).await {
        Ok(store) => match store.ping().await {
            Ok(()) => {
                let _ = writeln!(out, "database: reachable ({database})");
                store.close().await;
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "database: NOT reachable ({database}): {e}");
            }
        },
        Err(e) => {
            ok = false;
            let _ = writeln!(out, "database: NOT reachable ({database}): {e}");
        }
    }

    match Mailer::from_settings(&settings.mail) {
        Ok(mailer) => match mailer.test_connection().await {
            Ok(()) => {
                let _ = writeln!(out, "mail: ready: {}", mailer.description());
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "mail: {} does NOT answer: {e}", mailer.description());
            }
        },
        Err(e) => {
            ok = false;
            let _ = writeln!(out, "mail: cannot be set up: {e}");
        }
    }
    if ok {
        Ok(out)
    } else {
        Err(out)
    }
}

/// The language's catalogue (listing messages taken from English) and the
/// templates, overrides included, rendered with the example report.
fn check_look(settings: &Settings, out: &mut String) -> bool {
    let dir = settings.templates_dir.as_deref();
    match Catalogue::load(&settings.language, dir) {
        Ok(catalogue) if catalogue.missing_keys().is_empty() => {
            let _ = writeln!(out, "language: {} (complete)", settings.language);
        }
        Ok(catalogue) => {
            let missing = catalogue.missing_keys();
            let _ = writeln!(
                out,
                "language: {}: {} messages missing, shown in English: {}",
                settings.language,
                missing.len(),
                missing.join(", ")
            );
        }
        Err(e) => {
            let _ = writeln!(out, "language: NOT usable: {e}");
            return false;
        }
    }
    let tera = match crate::render::templates_for(settings) {
        Ok(tera) => tera,
        Err(e) => {
            let _ = writeln!(out, "templates: NOT usable: {e}");
            return false;
        }
    };
    match render_samples(&tera, dir, &settings.language) {
        Ok(()) => {
            let source = match dir {
                Some(dir) => format!("overrides from {}", dir.display()),
                None => "built-in".to_string(),
            };
            let _ = writeln!(out, "templates: {source}; the example report renders");
            true
        }
        Err(e) => {
            let _ = writeln!(out, "templates: NOT usable: {e}");
            false
        }
    }
}
