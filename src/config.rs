//! Layered settings: built-in defaults, then an optional TOML file, then
//! `NEWSLETTER_*` environment variables (nested keys joined with `__`).
//!
//! Without a file named, the system one ([`SYSTEM_SETTINGS_FILE`]) is read
//! when it exists, so the service, and an operator running a maintenance
//! command on the server, find the installed settings without flags.
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

/// The settings file the Debian package installs.
pub const SYSTEM_SETTINGS_FILE: &str = "/etc/newsletter/newsletter.toml";

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
    /// Language of every word readers see: `en`, `zh-CN`, or any tag with
    /// a catalogue at `<templates_dir>/locales/<tag>.ftl`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Folder whose template files replace the built-in ones of the same
    /// name (`email/layout.html`, `pages/base.html`, …).
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    #[serde(default)]
    pub brand: BrandSettings,
    /// The sign-up form embedded in the team's own site.
    #[serde(default)]
    pub embed: EmbedSettings,
    pub mail: MailSettings,
    pub delivery: DeliverySettings,
    pub subscription: SubscriptionSettings,
    pub bounces: BounceSettings,
    pub log: LogSettings,
    pub http: HttpSettings,
    /// Outgoing webhooks: events posted to other software.
    #[serde(default)]
    pub webhooks: OutgoingWebhookSettings,
}

/// Outgoing webhooks: where events go and how hard to try.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutgoingWebhookSettings {
    pub endpoints: Vec<WebhookEndpoint>,
    /// Seconds to wait for an endpoint's answer.
    pub timeout_secs: u64,
    /// Posts of one event to one endpoint before it is marked failed.
    pub max_attempts: i64,
    /// First retry after this, doubled per attempt, with jitter.
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    /// Endpoints posted to at once per process (each endpoint gets its
    /// events one at a time, in order).
    pub concurrency: usize,
    /// Events and their deliveries are deleted this long after they
    /// happened, once nothing is left to try.
    pub retention_days: i64,
}

impl Default for OutgoingWebhookSettings {
    fn default() -> Self {
        OutgoingWebhookSettings {
            endpoints: Vec::new(),
            timeout_secs: 10,
            max_attempts: 12,
            retry_base_secs: 30.0,
            retry_max_secs: 6.0 * 3600.0,
            concurrency: 4,
            retention_days: 30,
        }
    }
}

/// One receiver of events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// A short name (letters, digits, `-`, `_`): deliveries are kept under
    /// it, and logs and `webhooks list` show it instead of the URL.
    pub name: String,
    pub url: Url,
    /// Key of the HMAC signature; at least 32 characters.
    #[serde(serialize_with = "serialize_secret")]
    pub secret: SecretString,
    /// The events it wants; all when unset.
    #[serde(default)]
    pub events: Option<Vec<crate::events::EventKind>>,
    /// Allows `http://` to a host other than this machine: events would
    /// cross the network unencrypted.
    #[serde(default)]
    pub allow_http: bool,
}

/// Shortest endpoint secret accepted.
pub const MIN_WEBHOOK_SECRET: usize = 32;

impl WebhookEndpoint {
    /// Whether this endpoint wants events of `kind`.
    pub fn wants(&self, kind: crate::events::EventKind) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(&kind))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let key = "webhooks.endpoints";
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                key,
                format!("name {name:?}: use 1 to 64 letters, digits, - or _"),
            ));
        }
        match self.url.scheme() {
            "https" => {}
            "http" if self.allow_http || is_loopback(&self.url) => {}
            "http" => {
                return Err(invalid(
                    key,
                    format!(
                        "{name}: the url must be https:// (events name readers); http:// is \
                         taken for this machine only, or with allow_http = true"
                    ),
                ))
            }
            other => {
                return Err(invalid(
                    key,
                    format!("{name}: the url must be https://, not {other}://"),
                ))
            }
        }
        if self.secret.expose_secret().chars().count() < MIN_WEBHOOK_SECRET {
            return Err(invalid(
                key,
                format!("{name}: the secret must be at least {MIN_WEBHOOK_SECRET} characters"),
            ));
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                key,
                format!("{name}: events is empty; leave it out for every event"),
            ));
        }
        Ok(())
    }
}

/// Whether `url` points at this machine.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The publication's look, without touching templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BrandSettings {
    /// Image shown at the top of the email and of every page.
    pub logo_url: Option<Url>,
    /// Links, buttons and headings: `#rrggbb` or `#rgb`.
    pub accent_color: String,
    /// A line at the foot of the email and of every page.
    pub footer: Option<String>,
    /// The sender's postal address, shown under the footer (US law asks it
    /// of commercial mail; readers elsewhere expect it).
    pub postal_address: Option<String>,
    /// Where readers' replies go, when not to the From address.
    pub reply_to: Option<String>,
}

impl Default for BrandSettings {
    fn default() -> Self {
        BrandSettings {
            logo_url: None,
            accent_color: "#0b5cad".into(),
            footer: None,
            postal_address: None,
            reply_to: None,
        }
    }
}

/// Sign-ups from the team's own web site.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedSettings {
    /// Sites whose pages may post the sign-up form or send JSON sign-ups
    /// from a script, e.g. `https://www.example.com` (scheme, host, port).
    pub allowed_origins: Vec<Url>,
    /// Where a reader lands after signing up from one of those sites; it
    /// must itself be on an allowed origin.
    pub thank_you_url: Option<Url>,
}

impl EmbedSettings {
    /// Whether `origin` (an `Origin` header's value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed.origin().ascii_serialization() == origin)
    }
}

fn default_language() -> String {
    crate::i18n::FALLBACK.into()
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
    /// How long the relay may take to give its verdict on a message's data,
    /// in seconds. Giving up there is the one moment a message the relay
    /// took may be sent again, so it is long (RFC 5321 allows 10 minutes).
    pub data_timeout_secs: u64,
    /// Optional DKIM signing.
    pub dkim: Option<DkimSettings>,
    /// The name this service gives itself in EHLO, a fully qualified
    /// domain. Unset: the From domain (relays refuse a bare host name).
    pub helo_name: Option<String>,
    /// Sender of confirmation mail, e.g. `Sign-ups <join@example.com>`.
    /// Unset: `from`.
    pub confirmation_from: Option<String>,
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

impl MailSettings {
    /// The EHLO name: `helo_name`, or else the From domain.
    pub fn hello_name(&self) -> String {
        self.helo_name.clone().unwrap_or_else(|| {
            self.from
                .parse::<Mailbox>()
                .map(|m| m.email.domain().to_string())
                .unwrap_or_else(|_| "localhost.localdomain".into())
        })
    }
}

/// Whether `name` is a domain of at least two labels of letters, digits and
/// hyphens, as `reject_non_fqdn_helo_hostname` and RFC 5321 want it.
fn is_fqdn(name: &str) -> bool {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// DKIM signing key and selector. The key's type decides the algorithm:
/// RSA (2048 bits or more) signs `rsa-sha256`, Ed25519 signs
/// `ed25519-sha256` (RFC 8463). `newsletter config check` prints the DNS
/// record to publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DkimSettings {
    pub selector: String,
    /// The signing domain (`d=`); the From domain or a parent of it, so
    /// that DMARC finds the signature aligned.
    pub domain: String,
    /// Path to the private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or
    /// Ed25519) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
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
    /// matches the suffix, `*` one AWS region name (`sns.*.amazonaws.com`),
    /// anything else the exact host. Only HTTPS, except on a loopback address.
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
            language: default_language(),
            templates_dir: None,
            brand: BrandSettings::default(),
            embed: EmbedSettings::default(),
            mail: MailSettings {
                smtp_url: None,
                outbox_dir: PathBuf::from("outbox"),
                from: "The Weekly Report <newsletter@localhost.localdomain>".into(),
                pool_size: 8,
                timeout_secs: 30,
                data_timeout_secs: 600,
                dkim: None,
                allow_plaintext_auth: false,
                bounce_address: None,
                helo_name: None,
                confirmation_from: None,
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
                    sns_certificate_hosts: crate::bounces::webhooks::SNS_HOSTS
                        .iter()
                        .map(|h| h.to_string())
                        .collect(),
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
            webhooks: OutgoingWebhookSettings::default(),
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
    /// Defaults, then `file` when given (it must exist) or else the system
    /// settings file when there is one, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_system_file(file, Path::new(SYSTEM_SETTINGS_FILE))
    }

    /// The file [`Settings::load`] reads: the one named, else the system
    /// one when it exists.
    pub fn file_to_read(named: Option<&Path>) -> Option<PathBuf> {
        chosen_file(named, Path::new(SYSTEM_SETTINGS_FILE)).map(Path::to_path_buf)
    }

    fn load_with_system_file(file: Option<&Path>, system: &Path) -> Result<Self, ConfigError> {
        let file = chosen_file(file, system);
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
        self.validate_look()?;
        if self.delivery.lease_secs == 0 {
            return Err(invalid("delivery.lease_secs", "must be at least 1"));
        }
        if let Some(wide) = self
            .bounces
            .webhooks
            .sns_certificate_hosts
            .iter()
            .find(|h| {
                matches!(
                    h.to_ascii_lowercase().as_str(),
                    ".amazonaws.com" | ".amazonaws.com.cn"
                )
            })
        {
            return Err(invalid(
                "bounces.webhooks.sns_certificate_hosts",
                format!(
                    "{wide:?} admits every site hosted at Amazon, S3 buckets anyone can fill \
                     included, so anyone could sign a forged bounce: use \"sns.*.amazonaws.com\" \
                     (the default)"
                ),
            ));
        }
        if self.mail.timeout_secs == 0 || self.mail.data_timeout_secs == 0 {
            return Err(invalid(
                "mail",
                "timeout_secs and data_timeout_secs must be at least 1",
            ));
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
        self.confirmation_sender()?;
        if let Some(name) = &self.mail.helo_name {
            if !is_fqdn(name) {
                return Err(invalid(
                    "mail.helo_name",
                    format!(
                        "{name:?} is not a fully qualified domain name such as mail.example.com"
                    ),
                ));
            }
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
        self.validate_webhooks()
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let hooks = &self.webhooks;
        if hooks.max_attempts < 1 || hooks.timeout_secs < 1 || hooks.concurrency < 1 {
            return Err(invalid(
                "webhooks",
                "max_attempts, timeout_secs and concurrency must be at least 1",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for endpoint in &hooks.endpoints {
            endpoint.validate()?;
            if !names.insert(endpoint.name.as_str()) {
                return Err(invalid(
                    "webhooks.endpoints",
                    format!("two endpoints are named {:?}", endpoint.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_look(&self) -> Result<(), ConfigError> {
        if self
            .language
            .parse::<unic_langid::LanguageIdentifier>()
            .is_err()
        {
            return Err(invalid(
                "language",
                "must be a language tag such as en or zh-CN",
            ));
        }
        let accent = self.brand.accent_color.strip_prefix('#').unwrap_or("");
        if !(matches!(accent.len(), 3 | 6) && accent.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(invalid(
                "brand.accent_color",
                "must be a colour such as #0b5cad",
            ));
        }
        if let Some(url) = &self.brand.logo_url {
            if !matches!(url.scheme(), "https" | "http") {
                return Err(invalid("brand.logo_url", "must be an https:// URL"));
            }
        }
        self.reply_to()?;
        for origin in &self.embed.allowed_origins {
            if !matches!(origin.scheme(), "https" | "http") || origin.host().is_none() {
                return Err(invalid(
                    "embed.allowed_origins",
                    format!("{origin} is not a web origin such as https://www.example.com"),
                ));
            }
        }
        if let Some(url) = &self.embed.thank_you_url {
            if !self.embed.allows(&url.origin().ascii_serialization()) {
                return Err(invalid(
                    "embed.thank_you_url",
                    "must be on one of embed.allowed_origins",
                ));
            }
        }
        Ok(())
    }

    /// The parsed Reply-To mailbox, when one is set.
    pub fn reply_to(&self) -> Result<Option<Mailbox>, ConfigError> {
        self.brand
            .reply_to
            .as_deref()
            .map(|r| {
                r.parse()
                    .map_err(|e| invalid("brand.reply_to", format!("{e}: {r}")))
            })
            .transpose()
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

    /// The sender of confirmation mail, when it is not `from`.
    pub fn confirmation_sender(&self) -> Result<Option<Mailbox>, ConfigError> {
        self.mail
            .confirmation_from
            .as_deref()
            .map(|from| {
                from.parse()
                    .map_err(|e| invalid("mail.confirmation_from", format!("{e}: {from}")))
            })
            .transpose()
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

fn chosen_file<'a>(named: Option<&'a Path>, system: &'a Path) -> Option<&'a Path> {
    named.or_else(|| system.exists().then_some(system))
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
    fn an_sns_host_rule_admitting_all_of_amazon_is_refused() {
        let mut s = Settings::default();
        s.bounces.webhooks.sns_certificate_hosts = vec![".amazonaws.com".into()];
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("sns_certificate_hosts") && err.contains("S3"),
            "{err}"
        );
        s.bounces.webhooks.sns_certificate_hosts = vec!["sns.*.amazonaws.com".into()];
        s.validate().unwrap();
    }

    /// The settings file the package installs names every setting, so an
    /// administrator finds each one there.
    #[test]
    fn the_packaged_settings_file_names_every_setting() {
        let packaged = include_str!("../debian/newsletter.toml");
        let named = |key: &str| {
            packaged.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.starts_with(&format!("{key} ="))
                    || line.starts_with(&format!("[{key}]"))
                    || line.starts_with(&format!("[[{key}]]"))
            })
        };
        fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
            if let Some(map) = value.as_object() {
                for (key, value) in map {
                    let path = match prefix.is_empty() {
                        true => key.clone(),
                        false => format!("{prefix}.{key}"),
                    };
                    out.push(path.clone());
                    keys(&path, value, out);
                }
            }
        }
        let mut settings = Settings::default();
        // Tables that are empty or unset by default, filled in to be seen.
        settings.mail.dkim = Some(DkimSettings {
            selector: "s".into(),
            domain: "example.com".into(),
            private_key_file: "k.pem".into(),
        });
        settings.bounces.imap = Some(
            serde_json::from_value(serde_json::json!({
                "host": "h", "port": 993, "username": "u", "password": "p",
                "mailbox": "INBOX", "poll_secs": 300, "ca_file": null
            }))
            .unwrap(),
        );
        let mut all = Vec::new();
        keys("", &serde_json::to_value(&settings).unwrap(), &mut all);
        let missing: Vec<&String> = all
            .iter()
            .filter(|path| {
                let last = path.rsplit('.').next().unwrap();
                // A table is named by its whole path, a key by its name.
                !(named(path) || named(last))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "not in debian/newsletter.toml: {missing:?}"
        );
    }

    #[test]
    fn timeouts_of_zero_are_refused() {
        let mut s = Settings::default();
        s.mail.data_timeout_secs = 0;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("data_timeout_secs"), "{err}");
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
    fn helo_name_defaults_to_the_from_domain_and_must_be_qualified() {
        let mut s = Settings::default();
        s.mail.from = "News <news@mail.example.org>".into();
        assert_eq!(s.mail.hello_name(), "mail.example.org");
        s.mail.helo_name = Some("vm".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("mail.helo_name"), "{err}");
        s.mail.helo_name = Some("out.example.org".into());
        s.validate().unwrap();
        assert_eq!(s.mail.hello_name(), "out.example.org");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn the_system_file_is_read_unless_another_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("system.toml", "site_name = \"Installed\"\n")?;
            jail.create_file("mine.toml", "site_name = \"Mine\"\n")?;
            let system = Path::new("system.toml");
            let s = Settings::load_with_system_file(None, system).unwrap();
            assert_eq!(s.site_name, "Installed");
            let s = Settings::load_with_system_file(Some(Path::new("mine.toml")), system).unwrap();
            assert_eq!(s.site_name, "Mine");
            let s = Settings::load_with_system_file(None, Path::new("absent.toml")).unwrap();
            assert_eq!(s.site_name, Settings::default().site_name);
            Ok(())
        });
    }

    #[test]
    fn the_packaged_settings_file_is_valid() {
        let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/newsletter.toml");
        let s = Settings::load_with_system_file(Some(&packaged), Path::new("absent.toml")).unwrap();
        assert_eq!(s.listen.port(), 8080);
        assert!(s.mail.outbox_dir.starts_with("/var/lib/newsletter"));
    }

    #[test]
    fn bad_smtp_url_is_named() {
        let mut s = Settings::default();
        s.mail.smtp_url = Some("http://x".to_string().into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn webhook_endpoints_are_read_from_the_file_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "n.toml",
                "[webhooks]\nmax_attempts = 5\n\n[[webhooks.endpoints]]\nname = \"crm\"\n\
                 url = \"https://crm.example.com/hooks\"\n\
                 secret = \"0123456789abcdef0123456789abcdef\"\n\
                 events = [\"subscriber.confirmed\", \"send.finished\"]\n",
            )?;
            let s = Settings::load(Some(Path::new("n.toml"))).unwrap();
            assert_eq!(s.webhooks.max_attempts, 5);
            let crm = &s.webhooks.endpoints[0];
            assert!(crm.wants(crate::events::EventKind::SendFinished));
            assert!(!crm.wants(crate::events::EventKind::SubscriberCreated));

            jail.create_file(
                "bad.toml",
                "[[webhooks.endpoints]]\nname = \"crm\"\nurl = \"https://crm.example.com/\"\n\
                 secret = \"0123456789abcdef0123456789abcdef\"\nevents = [\"subscriber.deleted\"]\n",
            )?;
            let err = Settings::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("subscriber.deleted"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_webhook_endpoint_needs_https_off_this_machine_and_a_long_secret() {
        let endpoint = |url: &str, secret: &str| WebhookEndpoint {
            name: "crm".into(),
            url: url.parse().unwrap(),
            secret: secret.to_string().into(),
            events: None,
            allow_http: false,
        };
        let long = "0123456789abcdef0123456789abcdef";
        let mut s = Settings::default();
        for ok in [
            "https://crm.example.com/hooks",
            "http://127.0.0.1:9000/hooks",
            "http://localhost/hooks",
            "http://[::1]:9000/",
        ] {
            s.webhooks.endpoints = vec![endpoint(ok, long)];
            s.validate().unwrap();
        }
        s.webhooks.endpoints = vec![endpoint("http://crm.example.com/hooks", long)];
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("https://") && err.contains("allow_http"),
            "{err}"
        );
        s.webhooks.endpoints[0].allow_http = true;
        s.validate().unwrap();

        s.webhooks.endpoints = vec![endpoint("https://crm.example.com/", "short-secret")];
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(
            !err.contains("short-secret"),
            "the secret is not repeated: {err}"
        );

        s.webhooks.endpoints = vec![
            endpoint("https://a.example.com/", long),
            endpoint("https://b.example.com/", long),
        ];
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("two endpoints"), "{err}");
    }
}
