//! `tidings authors add|list|remove|password`: the accounts that sign in to
//! the dashboard. A password is asked for without echo on a terminal, or
//! read as one line from standard input; only its Argon2id hash is kept.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app::Core;
use crate::domain::{EmailAddress, Password};
use crate::store::authors::AddOutcome;

#[derive(Debug, Subcommand)]
pub enum AuthorsCommand {
    /// Add an author; the password is asked for (or read from stdin).
    Add { email: String },
    /// Every author and when they were added.
    List,
    /// Remove an author; their sessions end at once.
    Remove { email: String },
    /// Set a new password; every session of the author ends.
    Password { email: String },
}

pub async fn authors(core: Core, command: AuthorsCommand) -> anyhow::Result<()> {
    match command {
        AuthorsCommand::Add { email } => {
            let email = address(&email)?;
            let hash = hash(read_password()?).await?;
            match core.store.add_author(email.clone(), hash).await? {
                AddOutcome::Added(_) => println!("added {email}: sign in at /admin/login"),
                AddOutcome::Taken => {
                    bail!("{email} is an author already (`tidings authors password {email}` sets a new password)")
                }
            }
        }
        AuthorsCommand::List => {
            println!("{:<40} added (UTC)", "email");
            for author in core.store.authors().await? {
                println!("{:<40} {}", author.email, author.created_at.format("%F %T"));
            }
        }
        AuthorsCommand::Remove { email } => {
            let email = address(&email)?;
            if !core.store.remove_author(email.clone()).await? {
                bail!("no author {email} (see `tidings authors list`)");
            }
            println!("removed {email}");
        }
        AuthorsCommand::Password { email } => {
            let email = address(&email)?;
            let hash = hash(read_password()?).await?;
            if !core.store.set_author_password(email.clone(), hash).await? {
                bail!("no author {email} (see `tidings authors list`)");
            }
            println!("new password set for {email}; their sessions have ended");
        }
    }
    Ok(())
}

fn address(typed: &str) -> anyhow::Result<String> {
    Ok(EmailAddress::parse(typed).with_context(|| format!("{typed:?} is not an email address"))?.as_str().to_owned())
}

/// From a terminal: asked twice, without echo. Otherwise: the first line.
fn read_password() -> anyhow::Result<Password> {
    let typed = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line
    };
    Password::parse(&typed).map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))
}

async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || password.hash())
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}
