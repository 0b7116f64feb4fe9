//! Builds the running service from `Settings`: database, mail, the background
//! sender and the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::dispatch::OutboxSender;
use crate::domain::Signer;
use crate::http::{self, AppState, Pages};
use crate::mail::{Composer, Links, Mailer, Messages, Renderer};
use crate::store::Store;

/// The parts every command needs: a migrated store with the configured lists,
/// and the signer for links.
pub struct Core {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub signer: Signer,
}

impl Core {
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url, settings.database_pool_size)
            .await
            .with_context(|| {
                format!(
                    "opening the {} database",
                    settings.database_url.backend_name()
                )
            })?;
        store
            .sync_lists(settings.lists.clone())
            .await
            .context("saving the configured lists")?;
        let key = match &settings.secret_key {
            Some(key) => key.clone(),
            None => store
                .secret_or_insert(
                    "token_key",
                    format!("{}{}", Signer::new_id(), Signer::new_id()),
                )
                .await
                .context("loading the link-signing key")?,
        };
        Ok(Self {
            settings: Arc::new(settings),
            store,
            signer: Signer::new(key.as_bytes()),
        })
    }

    pub fn messages(&self) -> anyhow::Result<Messages> {
        let s = &self.settings;
        Ok(Messages {
            renderer: Renderer::new().context("loading email templates")?,
            composer: Composer::new(s.mail_from.clone(), s.mail_domain()),
            links: Links::new(s.base_url.as_str(), self.signer.clone()),
            confirm_ttl_hours: s.confirm_token_ttl_hours,
        })
    }
}

/// A built service, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    sender: OutboxSender,
    mailer: Arc<Mailer>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("listening on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let core = Core::open(settings).await?;
        let mailer = Arc::new(Mailer::from_settings(&core.settings).map_err(anyhow::Error::msg)?);
        let messages = Arc::new(core.messages()?);
        let wake = Arc::new(Notify::new());
        let sender = OutboxSender::new(
            core.store.clone(),
            Arc::clone(&mailer),
            messages,
            Arc::clone(&core.settings),
            Arc::clone(&wake),
        );
        let state = web::Data::new(AppState {
            store: core.store.clone(),
            settings: Arc::clone(&core.settings),
            signer: core.signer.clone(),
            pages: Pages::new().context("loading page templates")?,
            outbox_wake: wake,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(http::security_headers())
                .wrap(from_fn(http::request_span))
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        })
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            sender,
            mailer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM: the server stops accepting and finishes
    /// its requests, then the sender finishes the sends in flight.
    pub async fn run(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let sender = tokio::spawn(self.sender.run(stopped));
        let served = self.server.await;
        let _ = stop.send(true);
        sender.await.context("outbox sender crashed")?;
        self.mailer.close().await;
        served.context("HTTP server failed")
    }
}
