//! The `newsletter` command: parse the command line, load settings, hand
//! over to the library.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{
    AdminCommand, BouncesCommand, Cli, Command, ConfigCommand, ExportFormat, ReportCommand,
    SubscribersCommand, TokensCommand, WebhooksCommand,
};

use newsletter::bounces::Intake;
use newsletter::commands::{admin, bounces, check, report, subscribers, webhooks};
use newsletter::config::Settings;
use newsletter::domain::{SubscriberStatus, WebhookState};
use newsletter::startup::{cancel_on_signal, load_signer, Application};
use newsletter::store::{now_ms, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Needs no settings: it must work before any are written.
    if let Command::Completions { shell } = cli.command {
        shell.write_completions(&mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
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
            let format = match format {
                ExportFormat::Csv => subscribers::ExportFormat::Csv,
                ExportFormat::Json => subscribers::ExportFormat::Json,
            };
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
            let store = open_store(&settings).await?;
            let summary = subscribers::import(&store, &file, status, dry_run).await?;
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
        Command::Config(ConfigCommand::Check) => {
            match Settings::file_to_read(cli.config.as_deref()) {
                Some(file) => println!("settings file: {}", file.display()),
                None => println!("settings file: none (defaults and environment)"),
            }
            match check::check_settings(&settings).await {
                Ok(report) => {
                    print!("{report}");
                    Ok(())
                }
                Err(report) => {
                    print!("{report}");
                    anyhow::bail!("the configuration has problems (see above)")
                }
            }
        }
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
        Command::Webhooks(WebhooksCommand::List { status, limit }) => {
            let status = status
                .map(|s| {
                    s.parse::<WebhookState>()
                        .ok()
                        .with_context(|| format!("--status {s:?}: use queued, delivered or failed"))
                })
                .transpose()?;
            let store = open_store(&settings).await?;
            print!("{}", webhooks::list(&store, status, limit).await?);
            Ok(())
        }
        Command::Webhooks(WebhooksCommand::Retry) => {
            let store = open_store(&settings).await?;
            let n = store.retry_webhooks_now(now_ms()).await?;
            println!("{n} deliveries will be posted now");
            Ok(())
        }
        Command::Completions { .. } => unreachable!("handled before the settings are read"),
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
