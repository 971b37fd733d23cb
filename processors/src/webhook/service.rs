//! Wiring for `processors webhook` and `processors webhook-retry`: the
//! stage boot, then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;

use super::processor::WebhookProcessor;
use super::retry::{RetryPolicy, RetryProcessor};
use crate::runner::{self, Clock, SystemClock};

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // No timers: the tick only paces idle waits.
    let tick = Duration::from_secs(60);
    runner::serve(
        WebhookProcessor,
        config,
        ops_addr,
        tick,
        Arc::new(SystemClock),
        shutdown,
    )
    .await
}

/// `WEBHOOK_RETRY_*` (see [`RetryPolicy`]) and `WEBHOOK_RETRY_TICK_MS`
/// (200: how often the timer looks for what is due).
pub async fn run_retry(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tick =
        Duration::from_millis(platform::config::var("WEBHOOK_RETRY_TICK_MS", "200").parse()?);
    run_retry_with(
        config,
        RetryPolicy::from_env()?,
        tick,
        Arc::new(SystemClock),
        ops_addr,
        shutdown,
    )
    .await
}

pub async fn run_retry_with(
    config: PipelineConfig,
    policy: RetryPolicy,
    tick: Duration,
    clock: Arc<dyn Clock>,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    runner::serve(
        RetryProcessor { policy },
        config,
        ops_addr,
        tick,
        clock,
        shutdown,
    )
    .await
}
