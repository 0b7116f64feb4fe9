//! `tidings api-keys create|list|revoke`: keys for server-side signup
//! clients. A key is printed once, at creation; only its hash is kept.

use anyhow::bail;
use clap::Subcommand;

use crate::app::Core;
use crate::domain::ApiKeySecret;
use crate::store::api_keys::CreateOutcome;

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it (once: it cannot be shown again).
    Create {
        /// What the key is for, e.g. `blog-backend` (unique).
        #[arg(long)]
        name: String,
    },
    /// Every key: name, when created, whether revoked. Keys themselves are
    /// never shown.
    List,
    /// Revoke a key by name: signups with it are refused from then on
    /// (within 10 seconds on a running server).
    Revoke { name: String },
}

pub async fn api_keys(core: Core, command: ApiKeysCommand) -> anyhow::Result<()> {
    match command {
        ApiKeysCommand::Create { name } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1 to 100 printable characters");
            }
            let key = ApiKeySecret::generate();
            match core.store.create_api_key(name.clone(), key.hash()).await? {
                CreateOutcome::Created(_) => {
                    eprintln!("API key {name:?} created. Keep it secret; it is not shown again:");
                    println!("{}", key.expose());
                }
                CreateOutcome::NameTaken => bail!("a key named {name:?} exists already: choose another name"),
            }
        }
        ApiKeysCommand::List => {
            println!("{:<32} {:<20} status", "name", "created (UTC)");
            for key in core.store.api_keys().await? {
                let status = key.revoked_at.map_or("live".to_owned(), |at| format!("revoked {}", at.format("%F %T")));
                println!("{:<32} {:<20} {status}", key.name, key.created_at.format("%F %T").to_string());
            }
        }
        ApiKeysCommand::Revoke { name } => {
            if !core.store.revoke_api_key(name.clone()).await? {
                bail!("no live key named {name:?} (see `tidings api-keys list`)");
            }
            println!("revoked {name:?}");
        }
    }
    Ok(())
}
