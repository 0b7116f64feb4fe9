//! Builds the running service from `Settings`: database, mail, the background
//! senders and the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::bounce::imap::MailboxPoller;
use crate::bounce::{Bounces, Tagger};
use crate::config::Settings;
use crate::dispatch::{DigestSender, OutboxSender, RateLimiter, Scheduler, SendContext};
use crate::domain::Signer;
use crate::http::{self, AppState, Pages};
use crate::mail::{Composer, Links, Mailer, Messages, Renderer};
use crate::store::Store;

/// The parts every command needs: a migrated store with the configured lists,
/// the signer for links, and everything to build and send mail.
pub struct Core {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub signer: Signer,
    pub messages: Arc<Messages>,
    pub mailer: Arc<Mailer>,
    pub outbox_wake: Arc<Notify>,
    pub digest_wake: Arc<Notify>,
    pub tagger: Arc<Tagger>,
    pub bounces: Bounces,
    /// Reads the bounce mailbox, when one is configured.
    pub mailbox: Option<MailboxPoller>,
}

impl Core {
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        crate::telemetry::meters::install();
        let store = Store::connect(&settings.database_url, settings.database_pool_size)
            .await
            .with_context(|| format!("opening the {} database", settings.database_url.backend_name()))?;
        store.sync_lists(settings.lists.clone()).await.context("saving the configured lists")?;
        let key = match &settings.secret_key {
            Some(key) => key.clone(),
            None => store
                .secret_or_insert("token_key", format!("{}{}", Signer::new_id(), Signer::new_id()))
                .await
                .context("loading the link-signing key")?,
        };
        let signer = Signer::new(key.as_bytes());
        let messages = Arc::new(Messages {
            renderer: Renderer::new().context("loading email templates")?,
            composer: Composer::new(settings.mail_from.clone(), settings.mail_domain()),
            links: Links::new(settings.base_url.as_str(), signer.clone()),
            confirm_ttl_hours: settings.confirm_token_ttl_hours,
            archived_lists: settings.lists.iter().filter(|l| l.archive).map(|l| l.slug.as_str().to_owned()).collect(),
        });
        let mailer = Arc::new(Mailer::from_settings(&settings).map_err(anyhow::Error::msg)?);
        let tagger = Tagger::new(signer.clone(), settings.bounce_address.clone());
        let bounces = Bounces::new(store.clone(), tagger.clone(), &settings);
        let mailbox = MailboxPoller::from_settings(&settings, bounces.clone()).map_err(anyhow::Error::msg)?;
        store.backfill_suppressions().await.context("filling the suppression list")?;
        Ok(Self {
            settings: Arc::new(settings),
            store,
            signer,
            messages,
            mailer,
            outbox_wake: Arc::new(Notify::new()),
            digest_wake: Arc::new(Notify::new()),
            tagger: Arc::new(tagger),
            bounces,
            mailbox,
        })
    }

    /// The metrics-only server on `metrics_listen`, with its port, when
    /// one is configured.
    pub fn metrics_server(&self) -> anyhow::Result<Option<(u16, actix_web::dev::Server)>> {
        let Some(address) = self.settings.metrics_listen else { return Ok(None) };
        let listener = TcpListener::bind(address).with_context(|| format!("listening for metrics on {address}"))?;
        let port = listener.local_addr()?.port();
        Ok(Some((port, http::metrics_server(listener, self.store.clone())?)))
    }

    /// Starts the outbox and digest senders (the bounce mailbox poller and the
    /// digest scheduler when configured) and the tallies' folding; they stop when `stop` says so,
    /// after finishing the sends in flight.
    pub fn start_senders(&self, stop: &watch::Sender<bool>) -> Senders {
        let ctx = SendContext {
            store: self.store.clone(),
            mailer: Arc::clone(&self.mailer),
            messages: Arc::clone(&self.messages),
            settings: Arc::clone(&self.settings),
            rate: Arc::new(RateLimiter::new(self.settings.send_rate_per_second)),
            tagger: Arc::clone(&self.tagger),
        };
        let share = {
            let (rate, store, shutdown) = (Arc::clone(&ctx.rate), self.store.clone(), stop.subscribe());
            tokio::spawn(async move { rate.run_share(store, shutdown).await })
        };
        let outbox = OutboxSender::new(ctx.clone(), Arc::clone(&self.outbox_wake));
        let digests = DigestSender::new(ctx, Arc::clone(&self.digest_wake));
        let mut tasks =
            vec![share, tokio::spawn(outbox.run(stop.subscribe())), tokio::spawn(digests.run(stop.subscribe()))];
        if let Some(poller) = &self.mailbox {
            tasks.push(tokio::spawn(poller.clone().run(stop.subscribe())));
        }
        tasks.push(tokio::spawn(fold_tallies(self.store.clone(), stop.subscribe())));
        let scheduler = Scheduler::new(self.store.clone(), Arc::clone(&self.settings), Arc::clone(&self.digest_wake));
        if let Some(scheduler) = scheduler {
            tasks.push(tokio::spawn(scheduler.run(stop.subscribe())));
        }
        Senders { tasks, mailer: Arc::clone(&self.mailer) }
    }
}

/// How often PostgreSQL's appended tally changes are folded in: at 5,000
/// signups a second a read then adds at most some 10,000 rows.
const TALLY_FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the list tallies' pending changes few (see `store::tallies`).
async fn fold_tallies(store: Store, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Err(e) = store.fold_tallies().await {
            tracing::warn!(error = %e, "could not fold the list tallies' changes");
        }
        tokio::select! {
            () = tokio::time::sleep(TALLY_FOLD_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The running background senders.
pub struct Senders {
    tasks: Vec<JoinHandle<()>>,
    mailer: Arc<Mailer>,
}

impl Senders {
    /// Waits for the senders to stop (after `stop` was sent), then closes
    /// idle SMTP connections.
    pub async fn join(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("a sender crashed")?;
        }
        self.mailer.close().await;
        Ok(())
    }
}

/// A built service, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// `GET /metrics` alone, on `metrics_listen`.
    metrics: Option<(u16, actix_web::dev::Server)>,
    core: Core,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(settings.listen).with_context(|| format!("listening on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let core = Core::open(settings).await?;
        let client_ip = http::ClientIp::new(&core.settings.trusted_proxies);
        let limits = http::Limits::new(&core.settings, &client_ip).map_err(anyhow::Error::msg)?;
        let state = web::Data::new(AppState {
            store: core.store.clone(),
            settings: Arc::clone(&core.settings),
            signer: core.signer.clone(),
            pages: Pages::new().context("loading page templates")?,
            messages: Arc::clone(&core.messages),
            client_ip,
            outbox_wake: Arc::clone(&core.outbox_wake),
            digest_wake: Arc::clone(&core.digest_wake),
            bounces: core.bounces.clone(),
            api_keys: http::ApiKeys::new(core.settings.api_key_signups_per_minute),
            openapi: http::openapi_document(&core.settings).context("writing the OpenAPI document")?,
            login_throttle: http::LoginThrottle::default(),
        });
        let cap = http::ConnectionCap::new(core.settings.max_connections_per_ip, &core.settings.trusted_proxies);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(http::refuse_over_cap))
                .wrap(http::security_headers())
                .wrap(from_fn(http::request_span))
                .configure(|cfg| http::configure(cfg, &limits))
                .default_service(web::to(http::not_found))
        })
        .on_connect(move |conn, data| cap.on_connect(conn, data))
        .listen(listener)?
        .run();
        let metrics = core.metrics_server()?;
        Ok(Self { port, server, metrics, core })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves and sends until SIGINT/SIGTERM: the server stops accepting and
    /// finishes its requests, then the senders finish the sends in flight.
    pub async fn run(self) -> anyhow::Result<()> {
        self.serve(true).await
    }

    /// Serves; sends too when `dispatch` (else `tidings worker` processes
    /// send what this one queues).
    pub async fn serve(self, dispatch: bool) -> anyhow::Result<()> {
        let (stop, _) = watch::channel(false);
        let senders = dispatch.then(|| self.core.start_senders(&stop));
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let served = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        let _ = stop.send(true);
        if let Some(senders) = senders {
            senders.join().await?;
        }
        served.context("HTTP server failed")
    }
}
