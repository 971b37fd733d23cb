//! Wiring for `processors order`: the stage boot (codec, producer, ops
//! endpoints), then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use rules::order::OrderPolicy;

use super::processor::OrderProcessor;
use crate::runner::{self, Clock, SystemClock};

/// Order timing: `ORDER_PAYMENT_TTL_SECS` (1800: a payment token is valid
/// 30 minutes) and `ORDER_EXPIRY_TICK_MS` (5000: how often the expiry
/// timer looks). Tests also bring their own clock.
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
        Ok(Settings {
            policy: OrderPolicy {
                attempt_ttl_ms: ttl_secs * 1000,
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
