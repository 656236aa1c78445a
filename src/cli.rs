//! The command line's shape: every command, argument and help text. The
//! binary parses it, and the build script includes this same file to write
//! the shell completions and manual pages that the Debian package installs,
//! so they cannot drift from what the program accepts. It therefore uses
//! nothing but clap and the standard library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Self-hosted email newsletter: double opt-in sign-up, weekly reports
/// rendered to email and web, a durable queued SMTP sender, and reader
/// feedback.
///
/// Settings come from built-in defaults, then a TOML file (the one given
/// with --config, else /etc/newsletter/newsletter.toml when it exists), then
/// NEWSLETTER_* environment variables (nested keys joined with "__", e.g.
/// NEWSLETTER_MAIL__SMTP_URL).
#[derive(Parser)]
#[command(name = "newsletter", version, about, long_about)]
pub struct Cli {
    /// TOML settings file [default: /etc/newsletter/newsletter.toml when it
    /// exists].
    #[arg(long, short, global = true, env = "NEWSLETTER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the web server and the delivery workers in one process (the
    /// usual way to run the service). Applies migrations first.
    Serve,
    /// Run only the delivery workers: start more of these, on more machines,
    /// against one PostgreSQL database to send faster.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Work with report files.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Export or import the list of readers.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Inspect the settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage editor accounts and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Take bounces and complaints that come back by mail.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Look at and retry the outgoing webhooks (events posted to other
    /// software).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Print the completion script for a shell. The Debian package installs
    /// them; elsewhere, e.g. `newsletter completions bash >
    /// ~/.local/share/bash-completion/completions/newsletter`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Subcommand)]
pub enum BouncesCommand {
    /// Read one raw message (a bounce, a complaint report, or anything
    /// else sent to the bounce address) from standard input and record it;
    /// for a Postfix pipe transport, procmail or .forward. Exits 0 when
    /// the message was taken (whatever it turned out to be) and 75
    /// (temporary failure: the MTA keeps the message and tries again) when
    /// it could not be stored.
    Ingest {
        /// The address the MTA delivered the message to (Postfix:
        /// ${original_recipient}); the delivery's token is read from it.
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Read the bounce mailbox (bounces.imap) once and exit; `serve`
    /// polls it on its own.
    Poll,
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// The latest deliveries of events to endpoints, newest first: event,
    /// endpoint, status, attempts, the endpoint's last answer.
    List {
        /// Only deliveries in this status: queued, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Post again every failed delivery, and now every one waiting for its
    /// next attempt: for when an endpoint that was down works again.
    Retry,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Store a report file as a draft, or update the draft with the same
    /// slug. A malformed file is refused with the line at fault.
    Import { file: PathBuf },
    /// Render a report file as a reader would get it, into DIR:
    /// report.html, report.txt, report.eml and archive.html.
    Preview {
        file: PathBuf,
        #[arg(long, default_value = "preview")]
        out: PathBuf,
    },
    /// List the stored reports and where their sends stand.
    List,
    /// Give every failed delivery of a report's send one more attempt (a
    /// reader who got the report never gets it twice). REPORT is a slug or
    /// an id.
    RetryFailed { report: String },
}

#[derive(Subcommand)]
pub enum SubscribersCommand {
    /// Write every reader (email, name, status, dates) to standard output
    /// or a file.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// File to write instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add readers from a CSV file (listmonk and Mailchimp exports work as
    /// they are). Every bad row is listed with its line number and nothing is
    /// imported until all rows are good. Addresses already on the list are
    /// left unchanged.
    Import {
        file: PathBuf,
        /// Status for rows without a status column: confirmed, pending or
        /// unsubscribed.
        #[arg(long, default_value = "confirmed")]
        status: String,
        /// Check the file without storing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the settings, then connect to the database and the mail
    /// relay and say what was found. Exits non-zero when anything fails.
    Check,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Add an editor, or set a new password for one. The password is asked
    /// for at the terminal, or read as one line from standard input; it is
    /// never a command-line argument.
    Add {
        /// The editor's email address (their login).
        email: String,
    },
    /// Create an API token for scripts (`Authorization: Bearer <token>`).
    /// It is shown once; only its hash is stored.
    Token {
        /// The editor the token acts for.
        email: String,
        /// Days after which the token stops working; it never expires
        /// when not given.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List or revoke API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Every token: its id, editor, when it was created, last used and
    /// when it expires. Tokens themselves are not stored, so not shown.
    List,
    /// Revoke a token by its id: requests with it are refused at once.
    Revoke { id: i64 },
}

/// Output formats of `subscribers export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// Shells that `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// Writes this shell's completion script for the whole command line.
    pub fn write_completions(self, out: &mut dyn std::io::Write) {
        let mut command = <Cli as clap::CommandFactory>::command();
        let shell = match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        clap_complete::generate(shell, &mut command, "newsletter", out);
    }
}
