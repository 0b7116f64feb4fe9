//! `tidings bounces import` and `tidings suppressions list|add|remove`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app::Core;
use crate::bounce::{Tally, mailbox};
use crate::domain::{EmailAddress, SuppressionReason};

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read returned mail (an mbox file, a Maildir folder, or one .eml) and
    /// apply the bounces and complaints it reports. Importing the same
    /// file again changes nothing.
    Import { path: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum SuppressionsCommand {
    /// Addresses never mailed, newest first: address, reason, source, when.
    List {
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Never mail this address (reason `manual`; only `remove` lifts it).
    Add {
        email: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Mail may go to this address again.
    Remove { email: String },
}

pub async fn bounces(core: Core, command: BouncesCommand) -> anyhow::Result<()> {
    match command {
        BouncesCommand::Import { path } => {
            let shown = path.display().to_string();
            let messages = tokio::task::spawn_blocking(move || mailbox::messages(&path))
                .await
                .context("reading the mailbox")?
                .map_err(anyhow::Error::msg)?;
            let mut tally = Tally::default();
            for raw in &messages {
                tally.add(core.bounces.read_report(raw, "import").await?);
            }
            println!("{shown}: {} message(s): {tally}", messages.len());
            Ok(())
        }
    }
}

pub async fn suppressions(core: Core, command: SuppressionsCommand) -> anyhow::Result<()> {
    match command {
        SuppressionsCommand::List { limit } => {
            if !(1..=1_000_000).contains(&limit) {
                bail!("--limit must be between 1 and 1000000");
            }
            for s in core.store.suppressions(limit, 0).await? {
                let who = s.email.unwrap_or_else(|| format!("(erased) {}", &s.address_hash[..16]));
                let detail = s.detail.map(|d| format!(" — {d}")).unwrap_or_default();
                println!("{who}\t{}\t{}\t{}{detail}", s.reason.as_str(), s.source, s.created_at.and_utc().to_rfc3339());
            }
            Ok(())
        }
        SuppressionsCommand::Add { email, note } => {
            let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            core.store.suppress(email.as_str().to_owned(), SuppressionReason::Manual, "cli".into(), note).await?;
            println!("{} is suppressed (manual)", email.as_str());
            Ok(())
        }
        SuppressionsCommand::Remove { email } => {
            let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            if !core.store.lift_suppression(email.as_str().to_owned()).await? {
                bail!("{} is not suppressed", email.as_str());
            }
            println!("{} may be mailed again", email.as_str());
            Ok(())
        }
    }
}
