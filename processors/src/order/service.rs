//! Wiring for `processors order`: the stage boot (codec, producer, ops
//! endpoints), then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use rules::order::OrderPolicy;
use schemas::records::order::LatePayment;

use super::processor::OrderProcessor;
use crate::runner::{self, Clock, SystemClock};

/// Order timing and policy: `ORDER_PAYMENT_TTL_SECS` (1800: a payment
/// token is valid 30 minutes), `ORDER_EXPIRY_TICK_MS` (5000: how often the
/// timers look), `ORDER_RECONCILE_AFTER_MS` (600000: an attempt without
/// news for 10 minutes is looked up at its gateway) and
/// `ORDER_LATE_PAYMENT` (`enroll`, the default, or `refund`: what a payment
/// after expiry does). Tests also bring their own clock.
#[derive(Clone)]
pub struct Settings {
    pub policy: OrderPolicy,
    pub tick: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let ttl_secs: i64 = platform::config::var("ORDER_PAYMENT_TTL_SECS", "1800").parse()?;
        anyhow::ensure!(ttl_secs > 0, "ORDER_PAYMENT_TTL_SECS must be positive");
        let reconcile_after_ms: i64 =
            platform::config::var("ORDER_RECONCILE_AFTER_MS", "600000").parse()?;
        anyhow::ensure!(
            reconcile_after_ms > 0,
            "ORDER_RECONCILE_AFTER_MS must be positive"
        );
        let late_payment = match platform::config::var("ORDER_LATE_PAYMENT", "enroll").as_str() {
            "enroll" => LatePayment::Enrolled,
            "refund" => LatePayment::RefundDue,
            other => anyhow::bail!("ORDER_LATE_PAYMENT must be enroll or refund, not {other:?}"),
        };
        Ok(Settings {
            policy: OrderPolicy {
                attempt_ttl_ms: ttl_secs * 1000,
                late_payment,
                reconcile_after_ms,
            },
            tick: Duration::from_millis(
                platform::config::var("ORDER_EXPIRY_TICK_MS", "5000").parse()?,
            ),
            clock: Arc::new(SystemClock),
        })
    }
}

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, Settings::from_env()?, ops_addr, shutdown).await
}

pub async fn run_with(
    config: PipelineConfig,
    settings: Settings,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    super::processor::register_metrics();
    runner::serve(
        OrderProcessor::new(settings.policy),
        config,
        ops_addr,
        settings.tick,
        settings.clock,
        shutdown,
    )
    .await
}
