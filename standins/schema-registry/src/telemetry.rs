//! Logs and metrics: the JSON-lines subscriber, the Prometheus registry, and
//! the middleware that logs and counts every request by route template.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use tracing_subscriber::EnvFilter;

/// JSON lines on stdout, filtered by `RUST_LOG` (default `info`). Safe to call
/// twice: the second call keeps the first subscriber.
pub fn init_subscriber() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}

/// One registry per application, not the process-global one, so several
/// registries in one test process do not share counters.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// New subject versions (a schema already present is not counted).
    pub schemas_registered: IntCounter,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "schema_registry_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "schema_registry_http_request_duration_seconds",
                "HTTP request latency",
            ),
            &["method", "route"],
        )?;
        let schemas_registered = IntCounter::new(
            "schema_registry_schemas_registered_total",
            "Schema versions registered by this instance",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(schemas_registered.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            schemas_registered,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

/// Logs one line per request and counts it. Metric labels use the route
/// template (`/subjects/{subject}/versions`), never the raw path, so subjects
/// do not blow up the metrics' cardinality; the log line has both.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    metrics
        .requests
        .with_label_values(&[method.as_str(), route.as_str(), &status.to_string()])
        .inc();
    metrics
        .latency
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        route = %route,
        path = %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}
