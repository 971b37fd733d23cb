//! The ingress: validates requests, writes them as commands to Kafka
//! (answering only after the broker acknowledged), and serves reads from
//! the Postgres read model, waiting for the caller's own write on request.
//!
//! - [`routes`]: the endpoints, one module per resource;
//! - [`error`]: the one error body every non-2xx answer uses;
//! - [`correlation`]: the `X-Correlation-ID` layer;
//! - [`extract`]: JSON input with unknown fields refused;
//! - [`commands`]: producing commands to Kafka;
//! - [`read_model`] and [`waiters`]: reading carts and waiting for versions.

pub mod commands;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod read_model;
pub mod routes;
pub mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;

use platform::config::PipelineConfig;
use platform::ops::Readiness;
use schemas::{topics, Codec};

#[derive(Debug, Clone)]
pub struct Config {
    /// `INGRESS_ADDR`
    pub addr: SocketAddr,
    pub pipeline: PipelineConfig,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        Ok(Config {
            addr: platform::config::addr("INGRESS_ADDR", "127.0.0.1:8080")?,
            pipeline: PipelineConfig::from_env()?,
        })
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub commands: commands::CommandWriter,
    pub pool: PgPool,
    pub waiters: Arc<waiters::VersionWaiters>,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Application {
    /// Connects to Kafka, the registry and Postgres, and binds the address
    /// (port 0 picks a free one, for tests).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let p = &config.pipeline;
        let pool = platform::db::connect(&p.database_url, &p.database_schema, 16).await?;
        let codec = Arc::new(Codec::new(
            &p.schema_registry_url,
            p.topics.clone(),
            topics::ALL,
        )?);
        codec.register(topics::ALL).await?;
        let producer = platform::kafka::producer(&p.kafka_brokers)?;
        platform::kafka::warm_up(&producer, Duration::from_secs(10)).await?;
        let waiters = waiters::VersionWaiters::listen(&pool).await?;
        let readiness = Readiness::new()
            .kafka(producer.clone())
            .registry(p.schema_registry_url.clone())
            .postgres(pool.clone());
        let state = AppState {
            commands: commands::CommandWriter::new(producer, codec),
            pool,
            waiters,
        };
        let router = Router::new()
            .merge(routes::router(state))
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed)
            .route_layer(axum::middleware::from_fn(http_metrics::layer))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .layer(axum::middleware::from_fn(correlation::layer))
            .merge(platform::ops::router(readiness));
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        Ok(Application { listener, router })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}
