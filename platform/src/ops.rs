//! The ops HTTP endpoints every service exposes: `/healthz` (the process is
//! alive), `/readyz` (every dependency answers) and `/metrics` (Prometheus
//! text). The ingress mounts [`router`] next to its API; processors and
//! sinks serve it alone with [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Named readiness checks, each run with a timeout on every `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    pub fn check<F, Fut>(mut self, name: &'static str, f: F) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(f()))));
        self
    }

    /// Postgres answers `SELECT 1`.
    pub fn postgres(self, pool: sqlx::PgPool) -> Readiness {
        self.check("postgres", move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
    }

    /// The broker answers a metadata request.
    pub fn kafka(self, producer: rdkafka::producer::FutureProducer) -> Readiness {
        self.check("kafka", move || {
            let p = producer.clone();
            async move {
                use rdkafka::producer::Producer;
                tokio::task::spawn_blocking(move || {
                    p.client()
                        .fetch_metadata(None, Duration::from_secs(2))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
        })
    }

    /// The schema registry answers `GET /subjects`.
    pub fn registry(self, url: String) -> Readiness {
        let client = reqwest::Client::new();
        self.check("schema_registry", move || {
            let (client, url) = (
                client.clone(),
                format!("{}/subjects", url.trim_end_matches('/')),
            );
            async move {
                let r = client.get(url).send().await.map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("status {}", r.status()))
                }
            }
        })
    }

    pub async fn run(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut out = Vec::with_capacity(self.checks.len());
        for (name, check) in &self.checks {
            let result = match tokio::time::timeout(Duration::from_secs(3), check()).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_owned()),
            };
            out.push((*name, result));
        }
        out
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let results = readiness.run().await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| {
            let v = match r {
                Ok(()) => serde_json::Value::from("ok"),
                Err(e) => serde_json::Value::from(e),
            };
            (name.to_owned(), v)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "checks": body })),
    )
        .into_response()
}

async fn metrics() -> Response {
    let mut buf = Vec::new();
    let families = prometheus::gather();
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves the ops endpoints on `addr` until `shutdown` resolves; returns
/// the bound address (port 0 picks a free one) once listening.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(readiness))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "ops server failed");
        }
    });
    tracing::info!(%bound, "ops endpoints listening");
    Ok(bound)
}
