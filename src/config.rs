//! Layered settings: built-in defaults, then an optional TOML file, then
//! `NEWSLETTER_*` environment variables (nested keys joined with `__`).
//!
//! The defaults run on a fresh machine with nothing installed: SQLite in
//! `data/`, mail written as `.eml` files to `outbox/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// Everything the service can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// `sqlite://path` (embedded) or `postgres://…` (scale-out).
    pub database_url: String,
    /// Public address of the service; every link in an email is built from it.
    pub base_url: Url,
    /// Name shown on pages and in the From header.
    pub site_name: String,
    /// Key for signing tokens. Generated and stored in the database on first
    /// run when not set here.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub secret_key: Option<SecretString>,
    /// Header a reverse proxy puts the client's address in (e.g.
    /// `X-Forwarded-For` or `X-Real-IP`); unset when clients connect directly.
    pub client_ip_header: Option<String>,
    /// Bearer token Prometheus sends to read `/metrics`; without it the
    /// endpoint does not exist.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub metrics_token: Option<SecretString>,
    pub mail: MailSettings,
    pub delivery: DeliverySettings,
    pub subscription: SubscriptionSettings,
    pub bounces: BounceSettings,
    pub log: LogSettings,
    pub http: HttpSettings,
}

/// How mail leaves the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailSettings {
    /// `smtp://user:pass@host:port` or `smtps://…`. When unset, mail is
    /// written to `outbox_dir` as `.eml` files instead.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub smtp_url: Option<SecretString>,
    /// Directory for the file transport.
    pub outbox_dir: PathBuf,
    /// Sender, e.g. `Weekly Report <news@example.com>`.
    pub from: String,
    /// Pooled SMTP connections kept open per process.
    pub pool_size: u32,
    /// Timeout for one SMTP command, in seconds.
    pub timeout_secs: u64,
    /// Optional DKIM signing.
    pub dkim: Option<DkimSettings>,
    /// Let a relay's user name and password travel unencrypted
    /// (`smtp://user:pass@host` without `?tls=required`). Off: such a URL is
    /// refused, because anyone on the path could read the password.
    pub allow_plaintext_auth: bool,
    /// Where bounces go, e.g. `bounces@bounce.example.com`. When set, every
    /// delivery leaves with its own envelope sender
    /// `bounces+<signed token>@bounce.example.com`, so a bounce names the
    /// delivery it is about; the visible From stays `from`.
    pub bounce_address: Option<String>,
}

/// DKIM signing key and selector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DkimSettings {
    pub selector: String,
    pub domain: String,
    /// Path to an RSA private key in PEM (PKCS#1) form.
    pub private_key_file: PathBuf,
}

/// The queued sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverySettings {
    /// Messages sent at once by one process.
    pub concurrency: usize,
    /// Rows claimed per round trip.
    pub batch_size: i64,
    /// How long a claim is held before another worker may take the row.
    pub lease_secs: u64,
    /// Attempts before a temporarily failing message is given up.
    pub max_attempts: i64,
    /// First retry delay; doubled each attempt, with jitter.
    pub retry_base_secs: f64,
    /// Ceiling for the retry delay.
    pub retry_max_secs: f64,
    /// Sleep between polls when the queue is empty, in milliseconds.
    pub poll_interval_ms: u64,
    /// Messages per second across this process (0 = unlimited).
    pub rate_limit_per_sec: u32,
    /// Failures in a row to reach the relay at all (connection refused, TLS
    /// or credentials refused) after which every send in progress pauses
    /// itself, with the reason, until an editor resumes it (0 = never).
    pub pause_after_relay_failures: u32,
    /// A scheduled send found more than this late (the service was down at
    /// its time) does not start on its own; it waits for an editor.
    pub overdue_after_secs: u64,
}

/// Double opt-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionSettings {
    /// Lifetime of a confirmation link, in hours.
    pub confirmation_ttl_hours: u64,
    /// Confirmation mails one address may receive in 24 hours.
    pub confirmations_per_day: i64,
    /// Sign-up requests one client address may make per hour (0 = no limit).
    pub signups_per_ip_per_hour: usize,
}

/// The HTTP server's own limits, so that slow, idle or numerous clients
/// cannot take the service from everybody else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpSettings {
    /// Connections served at once; more are closed as they arrive. Keep it
    /// under the process's open-file limit (`LimitNOFILE`).
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, counted from the
    /// connection's start or the previous response: idle and trickling
    /// connections are closed after this.
    pub header_timeout_secs: u64,
    /// Seconds a connection may go with no byte moving either way while a
    /// request is read or answered.
    pub idle_timeout_secs: u64,
    /// Password checks run at once (Argon2id, about 19 MiB each); a login
    /// beyond these is answered 503 at once.
    pub login_concurrency: usize,
}

/// What bounces and complaints do, and where they come from besides the
/// `bounces ingest` command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BounceSettings {
    /// Soft bounces (mailbox full, greylisting given up) of one address
    /// within `soft_bounce_days` that suppress it like a hard bounce.
    pub soft_bounce_limit: i64,
    pub soft_bounce_days: i64,
    /// Raw bounce messages are kept up to this many bytes…
    pub raw_max_bytes: usize,
    /// …for this many days.
    pub raw_retention_days: i64,
    pub webhooks: WebhookSettings,
    /// A bounce mailbox to poll; none when unset.
    pub imap: Option<ImapSettings>,
}

/// Provider webhooks (`POST /webhooks/<provider>`). A provider whose
/// credentials are not set has no endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// Amazon SES through SNS: the topic ARNs whose notifications are
    /// taken. A valid SNS signature only proves that some topic sent it.
    pub ses_topic_arns: Vec<String>,
    /// Hosts the SNS signing certificate may be fetched from: `.suffix`
    /// matches the suffix, anything else the exact host. Only HTTPS, except
    /// on a loopback address.
    pub sns_certificate_hosts: Vec<String>,
    /// Postmark: the basic-auth user and password put in the webhook URL.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub postmark_username: Option<SecretString>,
    #[serde(serialize_with = "serialize_secret_opt")]
    pub postmark_password: Option<SecretString>,
    /// Mailgun: the HTTP webhook signing key.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub mailgun_signing_key: Option<SecretString>,
    /// SendGrid: the signed event webhook's verification key (base64, as
    /// SendGrid shows it).
    pub sendgrid_public_key: Option<String>,
    /// Signed webhooks older than this are refused (replays).
    pub max_age_secs: i64,
}

/// The bounce mailbox, read over IMAP with TLS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    #[serde(serialize_with = "serialize_secret")]
    pub password: SecretString,
    pub mailbox: String,
    /// Seconds between polls.
    pub poll_secs: u64,
    /// A PEM file of extra trusted certificates (a private CA); the
    /// system's roots are used besides.
    pub ca_file: Option<PathBuf>,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info,newsletter=debug`.
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/newsletter.db".into(),
            base_url: Url::parse("http://127.0.0.1:8080").expect("static url"),
            site_name: "The Weekly Report".into(),
            secret_key: None,
            client_ip_header: None,
            metrics_token: None,
            mail: MailSettings {
                smtp_url: None,
                outbox_dir: PathBuf::from("outbox"),
                from: "The Weekly Report <newsletter@localhost.localdomain>".into(),
                pool_size: 8,
                timeout_secs: 30,
                dkim: None,
                allow_plaintext_auth: false,
                bounce_address: None,
            },
            delivery: DeliverySettings {
                concurrency: 8,
                batch_size: 200,
                lease_secs: 300,
                max_attempts: 8,
                retry_base_secs: 30.0,
                retry_max_secs: 6.0 * 3600.0,
                poll_interval_ms: 1000,
                rate_limit_per_sec: 0,
                pause_after_relay_failures: 20,
                overdue_after_secs: 3600,
            },
            subscription: SubscriptionSettings {
                confirmation_ttl_hours: 48,
                confirmations_per_day: 3,
                signups_per_ip_per_hour: 30,
            },
            bounces: BounceSettings {
                soft_bounce_limit: 3,
                soft_bounce_days: 14,
                raw_max_bytes: 64 * 1024,
                raw_retention_days: 90,
                webhooks: WebhookSettings {
                    ses_topic_arns: Vec::new(),
                    sns_certificate_hosts: vec![".amazonaws.com".into()],
                    postmark_username: None,
                    postmark_password: None,
                    mailgun_signing_key: None,
                    sendgrid_public_key: None,
                    max_age_secs: 600,
                },
                imap: None,
            },
            log: LogSettings {
                filter: "info".into(),
                json: false,
            },
            http: HttpSettings {
                max_connections: 1024,
                header_timeout_secs: 10,
                idle_timeout_secs: 60,
                login_concurrency: 2,
            },
        }
    }
}

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Settings {
    /// Defaults, then `file` when given (it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(invalid(
                    "config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let settings: Settings = figment
            .merge(Env::prefixed("NEWSLETTER_").split("__"))
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Rejects combinations that would only fail later, at send time.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(invalid("base_url", "must be an http:// or https:// URL"));
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        self.sender()?;
        if let Some(url) = &self.mail.smtp_url {
            let url = Url::parse(url.expose_secret())
                .map_err(|e| invalid("mail.smtp_url", e.to_string()))?;
            if !matches!(url.scheme(), "smtp" | "smtps") {
                return Err(invalid(
                    "mail.smtp_url",
                    "must be an smtp:// or smtps:// URL",
                ));
            }
            if url.password().is_some()
                && smtp_security(&url) != SmtpSecurity::Encrypted
                && !self.mail.allow_plaintext_auth
            {
                return Err(invalid(
                    "mail.smtp_url",
                    "has a user name and password but no guaranteed encryption, so the password \
                     would cross the network in clear: use smtps://… or add ?tls=required, \
                     or set mail.allow_plaintext_auth = true if the relay is on a trusted network",
                ));
            }
        }
        if let Some(key) = &self.secret_key {
            if key.expose_secret().len() < 32 {
                return Err(invalid("secret_key", "must be at least 32 characters"));
            }
        }
        if self.delivery.concurrency == 0 || self.delivery.batch_size <= 0 {
            return Err(invalid(
                "delivery",
                "concurrency and batch_size must be at least 1",
            ));
        }
        if self.delivery.lease_secs == 0 {
            return Err(invalid("delivery.lease_secs", "must be at least 1"));
        }
        let http = &self.http;
        if http.max_connections == 0
            || http.header_timeout_secs == 0
            || http.idle_timeout_secs == 0
            || http.login_concurrency == 0
        {
            return Err(invalid(
                "http",
                "max_connections, header_timeout_secs, idle_timeout_secs and login_concurrency must be at least 1",
            ));
        }
        if let Some(address) = &self.mail.bounce_address {
            crate::bounces::BounceAddress::parse(address)
                .map_err(|e| invalid("mail.bounce_address", e.to_string()))?;
        }
        if self.bounces.soft_bounce_limit < 1 || self.bounces.soft_bounce_days < 1 {
            return Err(invalid(
                "bounces",
                "soft_bounce_limit and soft_bounce_days must be at least 1",
            ));
        }
        if let Some(key) = &self.bounces.webhooks.sendgrid_public_key {
            crate::bounces::webhooks::SendgridKey::parse(key)
                .map_err(|e| invalid("bounces.webhooks.sendgrid_public_key", e.to_string()))?;
        }
        if self.delivery.max_attempts <= 0 {
            return Err(invalid("delivery.max_attempts", "must be at least 1"));
        }
        Ok(())
    }

    /// The parsed From mailbox.
    pub fn sender(&self) -> Result<Mailbox, ConfigError> {
        self.mail
            .from
            .parse()
            .map_err(|e| invalid("mail.from", format!("{e}: {}", self.mail.from)))
    }

    /// The parsed VERP base address, when bounces are to be told apart.
    pub fn bounce_address(&self) -> Result<Option<crate::bounces::BounceAddress>, ConfigError> {
        self.mail
            .bounce_address
            .as_deref()
            .map(crate::bounces::BounceAddress::parse)
            .transpose()
            .map_err(|e| invalid("mail.bounce_address", e.to_string()))
    }

    pub fn confirmation_ttl(&self) -> Duration {
        Duration::from_secs(self.subscription.confirmation_ttl_hours * 3600)
    }

    /// Base URL without a trailing slash, for joining paths.
    pub fn base(&self) -> String {
        self.base_url.as_str().trim_end_matches('/').to_string()
    }
}

/// How an SMTP URL protects what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://` or `?tls=required`: always encrypted, or no mail at all.
    Encrypted,
    /// `?tls=opportunistic`: encrypted when the relay offers STARTTLS.
    WhenOffered,
    /// Plain `smtp://`: never encrypted.
    None,
}

impl SmtpSecurity {
    /// The sentence `config check` prints.
    pub fn describe(self) -> &'static str {
        match self {
            SmtpSecurity::Encrypted => "TLS required (smtps:// or ?tls=required)",
            SmtpSecurity::WhenOffered => {
                "STARTTLS when the relay offers it, otherwise unencrypted (?tls=opportunistic)"
            }
            SmtpSecurity::None => "no encryption (plain smtp://)",
        }
    }
}

/// The protection an `smtp://`/`smtps://` URL asks for.
pub fn smtp_security(url: &Url) -> SmtpSecurity {
    if url.scheme() == "smtps" {
        return SmtpSecurity::Encrypted;
    }
    match url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned())
        .as_deref()
    {
        Some("required") => SmtpSecurity::Encrypted,
        Some("opportunistic") => SmtpSecurity::WhenOffered,
        _ => SmtpSecurity::None,
    }
}

fn serialize_secret<S: serde::Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.expose_secret())
}

fn serialize_secret_opt<S: serde::Serializer>(
    value: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(v.expose_secret()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn environment_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "n.toml",
                "site_name = \"From file\"\n[delivery]\nconcurrency = 3\n",
            )?;
            jail.set_env("NEWSLETTER_DELIVERY__CONCURRENCY", "5");
            let s = Settings::load(Some(Path::new("n.toml"))).unwrap();
            assert_eq!(s.site_name, "From file");
            assert_eq!(s.delivery.concurrency, 5);
            Ok(())
        });
    }

    #[test]
    fn a_password_without_tls_is_refused_unless_allowed() {
        let mut s = Settings::default();
        for url in [
            "smtp://user:secret@relay.example.com",
            "smtp://user:secret@relay.example.com?tls=opportunistic",
        ] {
            s.mail.smtp_url = Some(url.to_string().into());
            s.mail.allow_plaintext_auth = false;
            let err = s.validate().unwrap_err().to_string();
            assert!(
                err.contains("in clear") && err.contains("tls=required"),
                "{err}"
            );
            assert!(
                !err.contains("secret"),
                "the password is not repeated: {err}"
            );
            s.mail.allow_plaintext_auth = true;
            s.validate().unwrap();
        }
        s.mail.allow_plaintext_auth = false;
        for url in [
            "smtps://user:secret@relay.example.com",
            "smtp://user:secret@relay.example.com?tls=required",
            "smtp://relay.example.com",
        ] {
            s.mail.smtp_url = Some(url.to_string().into());
            s.validate().unwrap();
        }
    }

    #[test]
    fn bad_smtp_url_is_named() {
        let mut s = Settings::default();
        s.mail.smtp_url = Some("http://x".to_string().into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
    }
}
