//! `tidings subscribers import|export|erase`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

use crate::app::Core;
use crate::author;
use crate::domain::EmailAddress;
use crate::portability::export::export;
use crate::portability::formats::Format;
use crate::portability::import::{ImportError, ImportReport, import};
use crate::store::imports::ImportSettings;
use crate::store::readers::ExportFilter;

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Import readers from a CSV file (Tidings, Mailchimp, listmonk,
    /// Substack or Ghost export). Importing the same file twice changes
    /// nothing; nobody unsubscribed or suppressed is made confirmed again.
    Import {
        #[arg(long)]
        list: String,
        file: PathBuf,
        #[arg(long, default_value = "auto", value_parser = Format::NAMES)]
        format: String,
        /// Count what would happen and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send pending readers a confirmation email (otherwise nobody is mailed).
        #[arg(long)]
        send_confirmations: bool,
    },
    /// Write every reader's subscriptions as CSV to stdout.
    Export {
        #[arg(long)]
        list: Option<String>,
        #[arg(long, value_parser = ["confirmed", "pending", "unsubscribed", "suppressed"])]
        status: Option<String>,
    },
    /// Delete a reader's personal data everywhere (a suppressed address is
    /// kept as a hash only, so it is still never mailed).
    Erase { email: String },
}

pub async fn subscribers(core: Core, command: SubscribersCommand) -> anyhow::Result<()> {
    match command {
        SubscribersCommand::Import { list, file, format, dry_run, send_confirmations } => {
            let list = author::known_list(&core.settings, "--list", &list)?;
            let settings = ImportSettings {
                list: list.to_string(),
                dry_run,
                send_confirmations,
                confirm_ttl: chrono::Duration::hours(i64::from(core.settings.confirm_token_ttl_hours)),
                consent_version: core.settings.consent_version.clone(),
            };
            let terminal = std::io::stderr().is_terminal();
            let path = file.clone();
            let open = move || std::fs::File::open(&path);
            let progress = |r: &ImportReport| {
                if terminal {
                    eprint!("\r{} rows read, {} created, {} updated", r.rows, r.created, r.updated);
                    let _ = std::io::stderr().flush();
                }
            };
            let report = match import(&core.store, settings, &format, open, progress).await {
                Ok(report) => report,
                Err(ImportError::File(why)) => bail!("{}: {why}", file.display()),
                Err(ImportError::Store(e)) => return Err(e.into()),
            };
            if terminal {
                eprintln!();
            }
            print_report(&report);
            if send_confirmations && !dry_run {
                core.outbox_wake.notify_one();
                println!("confirmation emails are queued: `tidings worker` or `tidings serve` sends them");
            }
            Ok(())
        }
        SubscribersCommand::Export { list, status } => {
            let list = list.map(|l| author::known_list(&core.settings, "--list", &l)).transpose()?;
            let filter = ExportFilter { list: list.map(|l| l.to_string()), status };
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            let store = core.store.clone();
            let exporting = tokio::spawn(async move { export(&store, filter, tx).await });
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            while let Some(chunk) = rx.recv().await {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            exporting.await??;
            Ok(())
        }
        SubscribersCommand::Erase { email } => {
            let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            let Some(id) = core.store.reader_by_email(email.as_str().to_owned()).await? else {
                bail!("no reader with the address {}", email.as_str());
            };
            core.store.erase_reader(id).await?;
            println!("erased {} (a suppression, if any, is kept as a hash only)", email.as_str());
            Ok(())
        }
    }
}

fn print_report(r: &ImportReport) {
    let dry = if r.dry_run { " (dry run: nothing written)" } else { "" };
    println!(
        "{}: {} rows ({} format, {}){dry}: {} created, {} updated, {} unchanged, {} skipped, {} invalid",
        r.list, r.rows, r.format, r.encoding, r.created, r.updated, r.unchanged, r.skipped, r.invalid
    );
    for bad in &r.invalid_rows {
        println!("  line {}: {}", bad.line, bad.reason);
    }
    if r.invalid > r.invalid_rows.len() as u64 {
        println!("  … and {} more invalid rows", r.invalid - r.invalid_rows.len() as u64);
    }
}
