//! The `newsletter` command: parse the command line, load settings, hand
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use newsletter::config::Settings;
use newsletter::startup::{cancel_on_signal, Application};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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
            let store = Store::connect(&settings.database_url, 2)
                .await
                .context("connecting to the database")?;
            store.migrate().await.context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
    }
}
