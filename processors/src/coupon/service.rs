//! Wiring for `processors coupon`: the stage boot, the coupon definitions
//! table (every version, for the limits an order was priced at), then the
//! runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::CouponProcessor;
use crate::runner::{self, RunnerDeps, SystemClock};
use crate::tables::GlobalTable;

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut booted = platform::stage::boot(&config, shutdown).await?;
    let definitions = GlobalTable::follow(
        &config.kafka_brokers,
        booted.codec.clone(),
        &topics::COUPONS,
    )
    .await?;
    let table = definitions.clone();
    booted.readiness = booted.readiness.check("coupons", move || {
        let loaded = table.is_loaded();
        async move {
            if loaded {
                Ok(())
            } else {
                Err("coupon definitions still loading".to_owned())
            }
        }
    });
    booted.serve_ops(ops_addr).await?;
    definitions.wait_loaded(Duration::from_secs(120)).await?;
    let deps = RunnerDeps {
        stage: runner::stage_deps(&config, &booted),
        instance: runner::instance_from_env(),
        // No timers: a reservation ends with its order's commit or release.
        tick: Duration::from_secs(60),
        clock: Arc::new(SystemClock),
    };
    runner::run(
        Arc::new(CouponProcessor::new(Arc::new(definitions))),
        deps,
        booted.shutdown.wait(),
    )
    .await
}
