//! Wiring for `processors coupon`: the stage boot, the coupon definitions
//! table (every version, for the limits an order was priced at), then the
//! runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::CouponProcessor;
use crate::runner::{Start, SystemClock};

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut start = Start::boot(&config, shutdown).await?;
    let definitions = start.join(&topics::COUPONS).await?;
    start
        .run(
            CouponProcessor::new(definitions),
            ops_addr,
            // No timers: a reservation ends with its order's commit or release.
            Duration::from_secs(60),
            Arc::new(SystemClock),
        )
        .await
}
