//! The command line: serve, worker, migrate, and the author's posts,
//! digest, DKIM, bounce and suppression commands.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod api_keys;
mod authors;
mod bounces;
mod subscribers;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

pub use self::api_keys::ApiKeysCommand;
pub use self::authors::AuthorsCommand;
pub use self::bounces::{BouncesCommand, SuppressionsCommand};
pub use self::subscribers::SubscribersCommand;
use crate::app::{Application, Core};
use crate::author::{self, PostInput, Preview};
use crate::config::Settings;
use crate::domain::DigestState;
use crate::feed;
use crate::mail::{Dkim, dkim};
use crate::store::digests::{ControlOutcome, DigestStatus, TriggerOutcome};
use crate::store::posts::{ListsMode, Upsert};

#[derive(Debug, Parser)]
#[command(name = "tidings", version, about = "Newsletter subscriptions and digests with double opt-in")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and send mail in the background (the default).
    Serve {
        /// Serve HTTP only; `tidings worker` processes send the mail
        /// (queued in the database, so nothing waits for this process).
        #[arg(long)]
        no_dispatch: bool,
    },
    /// Only send mail (confirmations and digests), no web server. Several
    /// workers can share one PostgreSQL database.
    Worker,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Copy the SQLite database into a new file, consistently, while
    /// Tidings serves (on PostgreSQL: use `pg_dump`).
    Backup { path: PathBuf },
    /// Print the effective configuration (defaults, file, environment) as
    /// TOML, every secret shown as `***`.
    Config,
    /// Exit 0 when the server on `TIDINGS_LISTEN` answers `/health` with
    /// 200 (its database is up), 1 otherwise: a container's health check.
    Health,
    /// Add, import and list posts.
    #[command(subcommand)]
    Posts(PostsCommand),
    /// Preview, send and follow digests.
    #[command(subcommand)]
    Digest(DigestCommand),
    /// Make DKIM keys and show the DNS records to publish.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Apply bounce and complaint reports from a mailbox file.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// See and edit the addresses that are never mailed.
    #[command(subcommand)]
    Suppressions(SuppressionsCommand),
    /// Import, export and erase readers.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Keys for server-side signup clients (`Authorization: Bearer`).
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// The accounts that sign in to the dashboard at /admin.
    #[command(subcommand)]
    Authors(AuthorsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new key file (never over an existing one) and print the DNS
    /// record to publish and the settings that use it.
    Keygen {
        /// The selector: the key is published at SELECTOR._domainkey.DOMAIN.
        #[arg(long)]
        selector: String,
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
        /// Where to write the key; default `dkim-SELECTOR.pem`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The signing domain; default the domain of TIDINGS_MAIL_FROM.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Print the DNS record of every configured key (checks that each loads).
    Show,
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Fetch the configured feeds (`feed_url` of each list) and add their posts.
    Pull {
        #[arg(long)]
        list: Option<String>,
    },
    /// Import an RSS 2.0 or Atom file as posts of a list. On the list's
    /// first import, posts older than TIDINGS_FEED_FIRST_LOOKBACK_DAYS are
    /// stored as already sent.
    Import {
        #[arg(long)]
        list: String,
        file: PathBuf,
        /// Count every post of the file as new, however old.
        #[arg(long)]
        all_new: bool,
    },
    /// Add a post, or update the post with the same URL.
    Add {
        /// A list the post belongs to (repeat for several).
        #[arg(long = "list", required = true)]
        lists: Vec<String>,
        #[arg(long)]
        title: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "")]
        summary: String,
        /// RFC 3339, e.g. 2026-11-25T09:30:00Z (default: now).
        #[arg(long)]
        published_at: Option<String>,
    },
    /// List posts, newest first.
    List {
        #[arg(long)]
        list: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Send the list's new posts to every confirmed reader, showing progress.
    Send {
        #[arg(long)]
        list: String,
        #[arg(long)]
        subject: Option<String>,
        /// Only say what would be sent.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the HTML a reader would get to stdout or a file.
    Preview {
        #[arg(long)]
        list: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show one digest, or the latest ones.
    Status { id: Option<i64> },
    /// Stop sending a digest until it is resumed (survives restarts).
    Pause { id: i64 },
    /// Send again what a digest has not delivered: what is pending and what
    /// failed for a reason that is not the reader's. Shows progress.
    Resume { id: i64 },
    /// End a digest: what is still pending is never sent.
    Cancel { id: i64 },
    /// Each scheduled list's next slots, and what the last ones did.
    Schedule,
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve { no_dispatch: false }) {
        Command::Serve { no_dispatch } => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), dispatch = !no_dispatch, "tidings is serving");
            app.serve(!no_dispatch).await
        }
        Command::Health => health(&settings).await,
        Command::Backup { path } => backup(Core::open(settings).await?, path).await,
        Command::Config => {
            print!("{}", settings.to_redacted_toml().map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Worker => worker(Core::open(settings).await?).await,
        Command::Migrate => {
            let core = Core::open(settings).await?;
            tracing::info!(database = core.store.backend_name(), "database is up to date");
            Ok(())
        }
        Command::Posts(command) => posts(Core::open(settings).await?, command).await,
        Command::Digest(command) => digest(Core::open(settings).await?, command).await,
        Command::Dkim(command) => dkim(&settings, command),
        Command::Bounces(command) => bounces::bounces(Core::open(settings).await?, command).await,
        Command::Suppressions(command) => bounces::suppressions(Core::open(settings).await?, command).await,
        Command::Subscribers(command) => subscribers::subscribers(Core::open(settings).await?, command).await,
        Command::ApiKeys(command) => api_keys::api_keys(Core::open(settings).await?, command).await,
        Command::Authors(command) => authors::authors(Core::open(settings).await?, command).await,
    }
}

fn dkim(settings: &Settings, command: DkimCommand) -> anyhow::Result<()> {
    match command {
        DkimCommand::Keygen { selector, algorithm, out, domain } => {
            let algorithm = dkim::Algorithm::parse(&algorithm).map_err(anyhow::Error::msg)?;
            let domain = domain.unwrap_or_else(|| settings.mail_from.email.domain().to_owned());
            let path = out.unwrap_or_else(|| PathBuf::from(format!("dkim-{selector}.pem")));
            let (pem, public) = dkim::generate(algorithm).map_err(anyhow::Error::msg)?;
            dkim::write_new_key(&path, &pem).map_err(anyhow::Error::msg)?;
            println!("wrote {}", path.display());
            println!("publish this DNS record:");
            println!("{}", dkim::dns_record(&selector, &domain, algorithm, &public));
            println!("then set TIDINGS_DKIM_SELECTOR={selector} TIDINGS_DKIM_KEY_FILE={}", path.display());
            Ok(())
        }
        DkimCommand::Show => {
            let Some(keys) = Dkim::from_settings(settings).map_err(anyhow::Error::msg)? else {
                bail!("no DKIM key is configured: set TIDINGS_DKIM_SELECTOR and TIDINGS_DKIM_KEY_FILE");
            };
            for key in keys.keys() {
                println!("{}", key.dns_record());
            }
            Ok(())
        }
    }
}

fn print_import(r: &feed::ImportReport) {
    let old = if r.already_sent > 0 {
        format!(", {} older ones stored as already sent", r.already_sent)
    } else {
        String::new()
    };
    println!(
        "{}: {} new, {} updated, {} unchanged, {} skipped{old}",
        r.list, r.created, r.updated, r.unchanged, r.skipped
    );
}

async fn backup(core: Core, path: PathBuf) -> anyhow::Result<()> {
    use crate::store::backup::BackupOutcome;
    match core.store.backup_to(path.clone()).await? {
        BackupOutcome::Written(bytes) => {
            println!("backed up to {} ({bytes} bytes)", path.display());
            Ok(())
        }
        BackupOutcome::Exists => bail!("{} exists already: a backup never overwrites a file", path.display()),
        BackupOutcome::UsePgDump => bail!(
            "the database is PostgreSQL: back it up with its own tools, e.g. `pg_dump --format=custom --file=tidings.dump DBNAME`, and restore with `pg_restore`"
        ),
    }
}

/// Asks the local server's `/health`, as a container's health check does.
async fn health(settings: &Settings) -> anyhow::Result<()> {
    let mut address = settings.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{address}/health");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let res = client.get(&url).send().await.with_context(|| format!("no answer from {url}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    println!("{body}");
    Ok(())
}

async fn worker(core: Core) -> anyhow::Result<()> {
    let (stop, _) = watch::channel(false);
    let senders = core.start_senders(&stop);
    let metrics = core.metrics_server()?.map(|(port, server)| {
        tracing::info!(port, "metrics are served");
        let handle = server.handle();
        (tokio::spawn(server), handle)
    });
    tracing::info!("worker is sending");
    shutdown_signal().await;
    tracing::info!("stopping: finishing the sends in flight");
    let _ = stop.send(true);
    if let Some((task, handle)) = metrics {
        handle.stop(true).await;
        let _ = task.await;
    }
    senders.join().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn posts(core: Core, command: PostsCommand) -> anyhow::Result<()> {
    match command {
        PostsCommand::Pull { list } => {
            for r in feed::pull(&core.store, &core.settings, list.as_deref()).await? {
                print_import(&r);
            }
        }
        PostsCommand::Import { list, file, all_new } => {
            let list = author::known_list(&core.settings, "--list", &list)?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let lookback = (!all_new).then(|| core.settings.feed_first_lookback());
            let r = feed::import(&core.store, &list, &bytes, lookback).await?;
            print_import(&r);
        }
        PostsCommand::Add { lists, title, url, summary, published_at } => {
            let published_at = published_at.unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
            let input = PostInput { title, url, summary, published_at, lists };
            let post = author::parse_post(&input, &core.settings)?;
            match core.store.upsert_posts(vec![post], ListsMode::Replace).await?.first() {
                Some(Upsert::Created(id)) => println!("added post {id}"),
                Some(Upsert::Updated(id)) => println!("updated post {id}"),
                Some(Upsert::Unchanged(id)) => println!("post {id} is unchanged"),
                None => bail!("the post was not saved"),
            }
        }
        PostsCommand::List { list } => {
            let list = list.map(|l| author::known_list(&core.settings, "--list", &l)).transpose()?;
            for p in core.store.posts(list.map(|l| l.to_string()), 1000).await? {
                println!(
                    "{:>5}  {}  [{}]  {}\n       {}",
                    p.id,
                    p.published_at.format("%Y-%m-%d"),
                    p.lists.join(","),
                    p.title,
                    p.url
                );
            }
        }
    }
    Ok(())
}

async fn digest(core: Core, command: DigestCommand) -> anyhow::Result<()> {
    match command {
        DigestCommand::Preview { list, out } => {
            let list = author::known_list(&core.settings, "--list", &list)?;
            match author::preview(&core.store, &core.messages, list).await? {
                Preview::Html(html) => match out {
                    Some(path) => std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?,
                    None => println!("{html}"),
                },
                Preview::NoNewPosts => bail!("no new posts in this list since its last digest"),
            }
            Ok(())
        }
        DigestCommand::Status { id } => {
            let statuses = match id {
                Some(id) => vec![core.store.digest_status(id).await?.context("no digest with that id")?],
                None => core.store.digest_statuses(20).await?,
            };
            for s in statuses {
                println!("{}", status_line(&s));
            }
            Ok(())
        }
        DigestCommand::Pause { id } => {
            control(core.store.pause_digest(id).await?, id, "paused")?;
            println!("digest {id} paused: nothing more is sent until `tidings digest resume {id}`");
            Ok(())
        }
        DigestCommand::Cancel { id } => {
            control(core.store.cancel_digest(id).await?, id, "cancelled")?;
            let s = core.store.digest_status(id).await?.context("no digest with that id")?;
            println!("digest {id} cancelled: {} messages will not be sent", s.cancelled);
            Ok(())
        }
        DigestCommand::Schedule => {
            let now = chrono::Utc::now();
            let runs = core.store.schedule_runs(200).await?;
            let mut any = false;
            for list in &core.settings.lists {
                let Some(Ok(schedule)) = list.schedule() else { continue };
                any = true;
                println!("{} \"{}\" ({}):", list.slug, schedule.spec(), schedule.timezone());
                for slot in schedule.upcoming(now, 3) {
                    println!("  next {}  ({} UTC)", slot.to_rfc3339(), slot.with_timezone(&chrono::Utc).to_rfc3339());
                }
                for run in runs.iter().filter(|r| r.list == list.slug.as_str()).take(5) {
                    let digest = run.digest.map(|d| format!(", digest {d}")).unwrap_or_default();
                    let outcome = run.outcome.as_deref().unwrap_or("running");
                    println!("  last {} UTC: {outcome}{digest}", run.slot.and_utc().to_rfc3339());
                }
            }
            if !any {
                println!("no list has a schedule: add schedule = \"mon 08:00\" to a [[lists]] table");
            }
            Ok(())
        }
        DigestCommand::Resume { id } => {
            control(core.store.resume_digest(id).await?, id, "resumed")?;
            eprintln!("digest {id} resumed");
            send_and_follow(&core, id).await
        }
        DigestCommand::Send { list, subject, dry_run } => {
            let list = author::known_list(&core.settings, "--list", &list)?;
            let subject = subject.as_deref().map(author::parse_subject).transpose()?;
            if dry_run {
                return dry_run_report(&core, list).await;
            }
            let summary = match core.store.trigger_digest(list, subject, None).await? {
                TriggerOutcome::Created(s) | TriggerOutcome::Replayed(s) => s,
                TriggerOutcome::NoNewPosts => bail!("no new posts in this list since its last digest"),
                TriggerOutcome::UnknownList | TriggerOutcome::KeyReused => bail!("no such list"),
            };
            eprintln!(
                "digest {} of {} posts to {} readers of {}",
                summary.id, summary.posts, summary.recipients, summary.list
            );
            send_and_follow(&core, summary.id).await
        }
    }
}

/// Sends from this process too, showing progress until the digest is
/// finished or paused: it finishes on its own, and shares the work safely
/// with any server or worker already running. Fails unless all went out.
async fn send_and_follow(core: &Core, id: i64) -> anyhow::Result<()> {
    let (stop, _) = watch::channel(false);
    let senders = core.start_senders(&stop);
    let last = follow(core, id).await;
    let _ = stop.send(true);
    senders.join().await?;
    let last = last?;
    match last.status {
        DigestState::Failed => {
            bail!("digest {} failed: no message could be delivered ({})", last.id, last_error(&last))
        }
        DigestState::Paused => {
            bail!("digest {} is paused: {}", last.id, last.paused_reason.as_deref().unwrap_or("paused by the author"))
        }
        DigestState::Cancelled => bail!("digest {} was cancelled", last.id),
        _ => Ok(()),
    }
}

fn last_error(s: &DigestStatus) -> &str {
    s.last_error.as_deref().unwrap_or("no error recorded")
}

fn status_line(s: &DigestStatus) -> String {
    let mut line = format!(
        "digest {} [{}] {}: {} of {} sent, {} failed, {} bounced, {} skipped, {} cancelled, {} pending — {}",
        s.id, s.list, s.status, s.sent, s.recipients, s.failed, s.bounced, s.skipped, s.cancelled, s.pending, s.subject
    );
    if let Some(reason) = &s.paused_reason {
        line.push_str(&format!("\n  paused: {reason}"));
    } else if let Some(error) = &s.last_error {
        line.push_str(&format!("\n  last error: {error}"));
    }
    line
}

/// A pause, resume or cancel the store refused, as a message that says why.
fn control(outcome: ControlOutcome, id: i64, done: &str) -> anyhow::Result<()> {
    match outcome {
        ControlOutcome::Done => Ok(()),
        ControlOutcome::NotFound => bail!("no digest with id {id}"),
        ControlOutcome::Refused(state) => bail!("digest {id} is {state}: it cannot be {done}"),
    }
}

async fn dry_run_report(core: &Core, list: crate::domain::ListSlug) -> anyhow::Result<()> {
    let recipients = core.store.recipient_count(list.clone()).await?;
    let Some((list, posts)) = core.store.unsent_posts(list).await? else { bail!("no such list") };
    println!("dry run: nothing is sent");
    println!("list: {} ({})", list.name, list.slug);
    println!("recipients: {recipients} confirmed readers");
    println!("posts: {}", posts.len());
    for p in &posts {
        println!("  - {} <{}>", p.title, p.url);
    }
    if posts.is_empty() {
        bail!("no new posts in this list since its last digest: nothing would be sent");
    }
    Ok(())
}

/// Draws progress until the digest is finished: a live bar on a terminal,
/// a line every few seconds otherwise.
async fn follow(core: &Core, id: i64) -> anyhow::Result<DigestStatus> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_line = Instant::now() - Duration::from_secs(60);
    loop {
        let status = core.store.digest_status(id).await?.context("the digest disappeared")?;
        let done = status.sent + status.failed + status.bounced + status.skipped + status.cancelled;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 { (status.pending as f64 / rate) as u64 } else { 0 };
        let width = 30usize;
        let filled = if status.recipients > 0 { (done as usize * width) / status.recipients as usize } else { width };
        let line = format!(
            "[{}{}] {done}/{} sent {} failed {} bounced {} skipped  {rate:.0}/s  ETA {}:{:02}",
            "#".repeat(filled.min(width)),
            ".".repeat(width - filled.min(width)),
            status.recipients,
            status.failed,
            status.bounced,
            status.skipped,
            eta / 60,
            eta % 60,
        );
        if tty {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else if status.is_finished()
            || status.status == DigestState::Paused
            || last_line.elapsed() >= Duration::from_secs(2)
        {
            eprintln!("{line}");
            last_line = Instant::now();
        }
        let stopped = status.is_finished() || status.status == DigestState::Paused;
        if stopped {
            if tty {
                eprintln!();
            }
            eprintln!(
                "digest {} {}: {} sent, {} failed, {} bounced, {} skipped, {} cancelled in {:.1}s",
                status.id,
                status.status,
                status.sent,
                status.failed,
                status.bounced,
                status.skipped,
                status.cancelled,
                started.elapsed().as_secs_f64()
            );
            if let Some(reason) = &status.paused_reason {
                eprintln!("paused: {reason}");
            }
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
