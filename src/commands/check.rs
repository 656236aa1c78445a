//! `newsletter config check`: are the settings usable, and do the database
//! and the mail relay answer?

use std::fmt::Write;

use secrecy::ExposeSecret;

use crate::config::{smtp_security, Settings, SmtpSecurity};
use crate::delivery::Mailer;
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

    if let Some(url) = settings
        .mail
        .smtp_url
        .as_ref()
        .and_then(|u| url::Url::parse(u.expose_secret()).ok())
    {
        let security = smtp_security(&url);
        let _ = writeln!(out, "  smtp tls    {}", security.describe());
        if security != SmtpSecurity::Encrypted {
            if url.password().is_some() {
                let _ = writeln!(
                    out,
                    "WARNING: the relay's password is sent unencrypted (mail.allow_plaintext_auth \
                     is on); use smtps:// or ?tls=required unless the relay is on a trusted network"
                );
            } else {
                let _ = writeln!(
                    out,
                    "WARNING: mail may cross the network to the relay unencrypted; use smtps:// \
                     or ?tls=required unless the relay is on this machine or a trusted network"
                );
            }
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
