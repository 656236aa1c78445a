//! The `newsletter` command: parse the command line, load settings, hand
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use newsletter::bounces::Intake;
use newsletter::commands::{admin, bounces, check, report, subscribers};
use newsletter::config::Settings;
use newsletter::domain::SubscriberStatus;
use newsletter::startup::{cancel_on_signal, load_signer, Application};
use newsletter::store::Store;

/// Self-hosted email newsletter: double opt-in sign-up, weekly reports
/// rendered to email and web, a durable queued SMTP sender, and reader
/// feedback.
///
/// Settings come from built-in defaults, then the TOML file given with
/// --config, then NEWSLETTER_* environment variables (nested keys joined
/// with "__", e.g. NEWSLETTER_MAIL__SMTP_URL).
#[derive(Parser)]
#[command(name = "newsletter", version, about, long_about)]
struct Cli {
    /// TOML settings file.
    #[arg(long, short, global = true, env = "NEWSLETTER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Subcommand)]
enum BouncesCommand {
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
enum ReportCommand {
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
enum SubscribersCommand {
    /// Write every reader (email, name, status, dates) to standard output
    /// or a file.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: subscribers::ExportFormat,
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
enum ConfigCommand {
    /// Validate the settings, then connect to the database and the mail
    /// relay and say what was found. Exits non-zero when anything fails.
    Check,
}

#[derive(Subcommand)]
enum AdminCommand {
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
enum TokensCommand {
    /// Every token: its id, editor, when it was created, last used and
    /// when it expires. Tokens themselves are not stored, so not shown.
    List,
    /// Revoke a token by its id: requests with it are refused at once.
    Revoke { id: i64 },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An MTA retries a message only on this status; any other failure
    // would bounce the bounce.
    let failure = match cli.command {
        Command::Bounces(BouncesCommand::Ingest { .. }) => ExitCode::from(bounces::EXIT_TEMPFAIL),
        _ => ExitCode::FAILURE,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return failure;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            failure
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    newsletter::telemetry::init(&settings.log);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            let cancel = CancellationToken::new();
            cancel_on_signal(cancel.clone());
            app.run_all(cancel).await
        }
        Command::Worker => {
            let app = Application::build(settings).await?;
            let cancel = CancellationToken::new();
            cancel_on_signal(cancel.clone());
            app.run_worker(cancel).await;
            app.state.store.close().await;
            Ok(())
        }
        Command::Migrate => {
            open_store(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Report(ReportCommand::Import { file }) => {
            let store = open_store(&settings).await?;
            println!("{}", report::import(&store, &file).await?);
            Ok(())
        }
        Command::Report(ReportCommand::Preview { file, out }) => {
            for written in report::preview(&settings, &file, &out)? {
                println!("wrote {}", written.display());
            }
            Ok(())
        }
        Command::Report(ReportCommand::List) => {
            let store = open_store(&settings).await?;
            print!("{}", report::list(&store).await?);
            Ok(())
        }
        Command::Report(ReportCommand::RetryFailed { report }) => {
            let store = open_store(&settings).await?;
            let max_attempts = settings.delivery.max_attempts;
            println!(
                "{}",
                report::retry_failed(&store, &report, max_attempts).await?
            );
            Ok(())
        }
        Command::Subscribers(SubscribersCommand::Export { format, out }) => {
            let store = open_store(&settings).await?;
            let bytes = subscribers::export(&store, format).await?;
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
            Ok(())
        }
        Command::Subscribers(SubscribersCommand::Import {
            file,
            status,
            dry_run,
        }) => {
            let status = SubscriberStatus::parse(&status).with_context(|| {
                format!("--status {status:?}: use confirmed, pending or unsubscribed")
            })?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let store = open_store(&settings).await?;
            let summary = subscribers::import(&store, &text, status, dry_run).await?;
            if dry_run {
                println!(
                    "{} rows are valid; nothing was stored (dry run)",
                    summary.rows
                );
            } else {
                println!(
                    "{} rows read, {} readers added, {} already on the list",
                    summary.rows,
                    summary.added,
                    summary.rows as u64 - summary.added
                );
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => match check::check_settings(&settings).await {
            Ok(report) => {
                print!("{report}");
                Ok(())
            }
            Err(report) => {
                print!("{report}");
                anyhow::bail!("the configuration has problems (see above)")
            }
        },
        Command::Admin(AdminCommand::Add { email }) => {
            let store = open_store(&settings).await?;
            let password = admin::read_password()?;
            admin::add_editor(&store, &email, password).await?;
            println!("editor {email} can now log in at {}/admin", settings.base());
            Ok(())
        }
        Command::Bounces(BouncesCommand::Ingest { recipient }) => {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut raw)
                .context("reading the message from standard input")?;
            let store = open_store(&settings).await?;
            let signer = load_signer(&settings, &store).await?;
            let intake = Intake::new(
                store.clone(),
                signer,
                settings.bounce_address()?,
                settings.bounces.clone(),
            );
            let outcome = bounces::ingest(&intake, &raw, recipient.as_deref()).await;
            store.close().await;
            println!("{}", outcome?);
            Ok(())
        }
        Command::Bounces(BouncesCommand::Poll) => {
            if settings.bounces.imap.is_none() {
                anyhow::bail!("no bounce mailbox is configured (bounces.imap)");
            }
            let app = Application::build(settings).await?;
            let summary = app
                .bounce_mailbox()?
                .context("no bounce mailbox")?
                .poll_once()
                .await?;
            println!(
                "{} messages taken, {} left in the mailbox",
                summary.taken, summary.left
            );
            Ok(())
        }
        Command::Admin(AdminCommand::Token {
            email,
            expires_in_days,
        }) => {
            let store = open_store(&settings).await?;
            let token = admin::create_token_expiring(&store, &email, expires_in_days).await?;
            println!("{token}");
            eprintln!("Keep this token safe: it is shown only once.");
            Ok(())
        }
        Command::Admin(AdminCommand::Tokens(TokensCommand::List)) => {
            let store = open_store(&settings).await?;
            print!("{}", admin::list_tokens(&store).await?);
            Ok(())
        }
        Command::Admin(AdminCommand::Tokens(TokensCommand::Revoke { id })) => {
            let store = open_store(&settings).await?;
            admin::revoke_token(&store, id).await?;
            println!("API token {id} revoked");
            Ok(())
        }
    }
}

/// Connects and brings the schema up to date.
async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url, 2)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}
