//! Wiring for `processors webhook`: the stage boot, then the runner until
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;

use super::processor::WebhookProcessor;
use crate::runner::{self, SystemClock};

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
