//! HTTP metrics: requests and latency per route template and status class
//! (bounded labels: never raw paths or tokens), plus business counters.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge_vec,
    HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
};

pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub errors: IntCounterVec,
    pub carts_created: IntCounter,
    /// Orders by status, as the read model has them (refreshed by
    /// [`refresh_orders_periodically`]).
    pub orders: IntGaugeVec,
    /// Gateway webhooks by gateway and outcome (accepted, refused, failed).
    pub webhooks: IntCounterVec,
}

pub fn metrics() -> &'static HttpMetrics {
    static M: OnceLock<HttpMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = HttpMetrics {
            requests: register_int_counter_vec!(
                "http_requests_total",
                "HTTP requests",
                &["route", "method", "class"]
            )
            .expect("metric registers once"),
            latency: register_histogram_vec!(
                "http_request_duration_seconds",
                "HTTP response time",
                &["route", "class"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]
            )
            .expect("metric registers once"),
            errors: register_int_counter_vec!(
                "http_errors_total",
                "Non-2xx answers by error class",
                &["class"]
            )
            .expect("metric registers once"),
            carts_created: register_int_counter!(
                "carts_created_total",
                "Carts created (accepted by the broker)"
            )
            .expect("metric registers once"),
            orders: register_int_gauge_vec!(
                "orders",
                "Orders by status, as the read model has them",
                &["status"]
            )
            .expect("metric registers once"),
            webhooks: register_int_counter_vec!(
                "webhooks_received_total",
                "Gateway webhooks by gateway and outcome (accepted, refused, failed)",
                &["gateway", "outcome"]
            )
            .expect("metric registers once"),
        };
        // Every series at 0 from the start: a rate over a first scrape is
        // 0, not absent.
        for gateway in ["razorpay", "stripe"] {
            for outcome in ["accepted", "refused", "failed"] {
                m.webhooks.with_label_values(&[gateway, outcome]);
            }
        }
        m
    })
}

/// Every `every`, counts the orders by status in Postgres for the `orders`
/// gauge: exact, whatever a processor replayed, at the cost of one small
/// query per period.
pub fn refresh_orders_periodically(
    pool: sqlx::PgPool,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let counted: Result<Vec<(String, i64)>, _> =
                sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status")
                    .fetch_all(&pool)
                    .await;
            match counted {
                Ok(rows) => {
                    let gauge = &metrics().orders;
                    for status in [
                        "pending",
                        "awaiting_payment",
                        "paid",
                        "failed",
                        "expired",
                        "refunded",
                    ] {
                        let n = rows.iter().find(|(s, _)| s == status).map_or(0, |r| r.1);
                        gauge.with_label_values(&[status]).set(n);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "orders not counted"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

pub async fn layer(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let class = format!("{}xx", response.status().as_u16() / 100);
    let m = metrics();
    m.requests
        .with_label_values(&[&route, &method, &class])
        .inc();
    m.latency
        .with_label_values(&[&route, &class])
        .observe(started.elapsed().as_secs_f64());
    if !response.status().is_success() {
        m.errors.with_label_values(&[&class]).inc();
    }
    response
}
