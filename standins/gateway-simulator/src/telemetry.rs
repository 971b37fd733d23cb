//! The simulator's metrics and log lines, as typed events with fixed names
//! and bounded labels, registered once in the process-wide registry that
//! `platform::ops` serves at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts};

use gateways::Gateway;

struct Metrics {
    requests: IntCounterVec,
    webhooks: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // The names and labels are constants: building them cannot fail.
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "gateway_simulator_requests_total",
                    "Requests the gateway simulator answered, by route template and status",
                ),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
            webhooks: IntCounterVec::new(
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
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.webhooks.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                tracing::warn!(error = %e, "simulator metric not registered");
            }
        }
        m
    })
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
            .requests
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
            .webhooks
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
