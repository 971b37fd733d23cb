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
    sim_requests: IntCounterVec,
    sim_webhooks: IntCounterVec,
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
            sim_requests: IntCounterVec::new(
                Opts::new(
                    "gateway_simulator_requests_total",
                    "Requests the gateway simulator answered, by route template and status",
                ),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
            sim_webhooks: IntCounterVec::new(
                Opts::new(
                    "gateway_simulator_webhook_deliveries_total",
                    "Webhook delivery attempts by the simulator (delivered, refused, failed)",
                ),
                &["provider", "outcome"],
            )
            .expect("valid metric"),
        };
        let registry = prometheus::default_registry();
        for collector in [
            Box::new(m.calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.latency.clone()),
            Box::new(m.retries.clone()),
            Box::new(m.sim_requests.clone()),
            Box::new(m.sim_webhooks.clone()),
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

/// A request the simulator answered.
pub struct SimulatorRequest<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
}

impl SimulatorRequest<'_> {
    pub fn emit(&self) {
        metrics()
            .sim_requests
            .with_label_values(&[self.method, self.route, &self.status.to_string()])
            .inc();
        tracing::info!(
            method = self.method,
            route = self.route,
            path = self.path,
            status = self.status,
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

/// One attempt of the simulator to deliver a webhook.
pub struct WebhookDelivery<'a> {
    pub provider: Gateway,
    pub event_id: &'a str,
    pub kind: &'a str,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<&'a str>,
}

impl WebhookDelivery<'_> {
    pub fn emit(&self) {
        let outcome = match (self.status, self.error) {
            (Some(s), _) if (200..300).contains(&s) => "delivered",
            (Some(_), _) => "refused",
            (None, _) => "failed",
        };
        metrics()
            .sim_webhooks
            .with_label_values(&[self.provider.as_str(), outcome])
            .inc();
        tracing::info!(
            provider = %self.provider,
            event_id = self.event_id,
            kind = self.kind,
            attempt = self.attempt,
            status = self.status,
            error = self.error,
            outcome,
            "webhook delivery"
        );
    }
}
