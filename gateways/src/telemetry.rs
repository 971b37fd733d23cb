//! Every metric and log line of this crate, as typed events with fixed
//! names and bounded labels (gateway, operation, outcome kind, route
//! template), registered once in the process-wide Prometheus registry that
//! `platform::ops` serves at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::error::GatewayError;
use crate::Gateway;

struct Metrics {
    calls: IntCounterVec,
    latency: HistogramVec,
    retries: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // The names and labels are constants: building them cannot fail.
        let m = Metrics {
            calls: IntCounterVec::new(
                Opts::new(
                    "gateway_calls_total",
                    "HTTP calls to payment gateways by outcome (ok or the error kind)",
                ),
                &["gateway", "operation", "outcome"],
            )
            .expect("valid metric"),
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "gateway_call_duration_seconds",
                    "Latency of HTTP calls to payment gateways",
                ),
                &["gateway", "operation"],
            )
            .expect("valid metric"),
            retries: IntCounterVec::new(
                Opts::new(
                    "gateway_retries_total",
                    "Gateway operations retried after a retryable failure",
                ),
                &["gateway", "operation"],
            )
            .expect("valid metric"),
        };
        let registry = prometheus::default_registry();
        for collector in [
            Box::new(m.calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.latency.clone()),
            Box::new(m.retries.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                tracing::warn!(error = %e, "gateway metric not registered");
            }
        }
        m
    })
}

/// One HTTP exchange with a gateway: every attempt, successful or not.
pub struct GatewayCall<'a> {
    pub gateway: Gateway,
    pub operation: &'static str,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<&'a GatewayError>,
}

impl GatewayCall<'_> {
    pub fn emit(&self) {
        let outcome = self.error.map_or("ok", GatewayError::kind);
        let m = metrics();
        m.calls
            .with_label_values(&[self.gateway.as_str(), self.operation, outcome])
            .inc();
        m.latency
            .with_label_values(&[self.gateway.as_str(), self.operation])
            .observe(self.latency.as_secs_f64());
        let latency_ms = self.latency.as_secs_f64() * 1000.0;
        match self.error {
            None => tracing::info!(
                gateway = %self.gateway,
                operation = self.operation,
                status = self.status,
                latency_ms,
                "gateway call"
            ),
            Some(error) => tracing::warn!(
                gateway = %self.gateway,
                operation = self.operation,
                status = self.status,
                latency_ms,
                error = %error,
                retryable = error.retryable(),
                "gateway call failed"
            ),
        }
    }
}

/// A retryable failure, and the wait before the next attempt.
pub struct RetryScheduled<'a> {
    pub gateway: Gateway,
    pub operation: &'static str,
    pub attempt: u32,
    pub delay: Duration,
    pub error: &'a GatewayError,
}

impl RetryScheduled<'_> {
    pub fn emit(&self) {
        metrics()
            .retries
            .with_label_values(&[self.gateway.as_str(), self.operation])
            .inc();
        tracing::info!(
            gateway = %self.gateway,
            operation = self.operation,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            error = %self.error,
            "retrying gateway call"
        );
    }
}
