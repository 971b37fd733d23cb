//! Building and running the service: store, metrics, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::routes::{self, AppState};
use crate::store::Store;
use crate::telemetry::Metrics;

pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
}

impl Application {
    /// Connects to Postgres (creating the database and schema when missing,
    /// migrating) and binds the listener, so `port()` is known before serving.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = Store::connect(&config).await?;
        let metrics = Arc::new(Metrics::new()?);
        let router = routes::router(AppState { store, metrics });
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            addr,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "schema registry listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")
    }
}
