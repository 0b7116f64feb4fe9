//! The command line: `tidings [serve]`, `tidings migrate`.

use clap::{Parser, Subcommand};

use crate::app::{Application, Core};
use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "tidings",
    version,
    about = "Newsletter subscriptions and digests with double opt-in"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and send mail in the background (the default).
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "tidings is serving");
            app.run().await
        }
        Command::Migrate => {
            let core = Core::open(settings).await?;
            tracing::info!(
                database = core.store.backend_name(),
                "database is up to date"
            );
            Ok(())
        }
    }
}
