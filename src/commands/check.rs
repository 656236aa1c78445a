//! `newsletter config check`: are the settings usable, and do the database
//! and the mail relay answer?

use std::fmt::Write;

use secrecy::ExposeSecret;

use crate::config::{smtp_security, Settings, SmtpSecurity};
use crate::delivery::dkim::Signer;
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
    describe_webhooks(settings, &mut out);

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

    if let Some(dkim) = &settings.mail.dkim {
        match Signer::load(dkim) {
            Ok(signer) => describe_dkim(&mut out, settings, &signer),
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "dkim: NOT usable: {e}");
            }
        }
    } else {
        let _ = writeln!(
            out,
            "dkim: off (mail is not signed; set [mail.dkim] to sign it)"
        );
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

/// The algorithm, the record to publish (in zone-file form, split into
/// strings of at most 255 characters as DNS requires) and whether DMARC will
/// find the signature aligned with the From address.
fn describe_dkim(out: &mut String, settings: &Settings, signer: &Signer) {
    let record = signer.dns_record();
    let _ = writeln!(
        out,
        "dkim: {} key, signing d={}; publish this TXT record:",
        signer.algorithm().name(),
        settings
            .mail
            .dkim
            .as_ref()
            .map_or("", |d| d.domain.as_str()),
    );
    let chunks: Vec<String> = record
        .value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let _ = writeln!(out, "  {}. IN TXT {}", record.name, chunks.join(" "));
    let Some(dkim) = &settings.mail.dkim else {
        return;
    };
    let d = dkim.domain.to_ascii_lowercase();
    // Confirmations may leave from another address; each From must align
    // with d= for DMARC (relaxed alignment: the domain or one under it).
    let senders = [
        ("From", settings.sender().ok()),
        (
            "confirmation From",
            settings.confirmation_sender().ok().flatten(),
        ),
    ];
    for (which, sender) in senders {
        let Some(sender) = sender else { continue };
        let domain = sender.email.domain().to_ascii_lowercase();
        if domain != d && !domain.ends_with(&format!(".{d}")) {
            let _ = writeln!(
                out,
                "  WARNING: the {which} domain {domain} is not {d} or under it: DMARC will not count this signature"
            );
        }
    }
}

/// Each outgoing webhook endpoint: its name, where it posts (any password in
/// the URL hidden) and what it wants; never its secret.
fn describe_webhooks(settings: &Settings, out: &mut String) {
    let endpoints = &settings.webhooks.endpoints;
    if endpoints.is_empty() {
        let _ = writeln!(
            out,
            "webhooks: none (set [[webhooks.endpoints]] to post events)"
        );
        return;
    }
    let _ = writeln!(
        out,
        "webhooks: {} endpoint{}, signed with their secrets",
        endpoints.len(),
        if endpoints.len() == 1 { "" } else { "s" }
    );
    for endpoint in endpoints {
        let events = match &endpoint.events {
            Some(events) => events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            None => "every event".to_string(),
        };
        let _ = writeln!(
            out,
            "  {}  {}  {events}",
            endpoint.name,
            redact_url(endpoint.url.as_str())
        );
        if endpoint.url.scheme() == "http" {
            let _ = writeln!(
                out,
                "  WARNING: {} gets events over plain http://: readers' addresses travel unencrypted",
                endpoint.name
            );
        }
    }
}
