//! Wiring for `processors enrollment`: the stage boot, the catalog table
//! (followed so a paid line of a closed internship fails instead of
//! enrolling), then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::EnrollmentProcessor;
use crate::runner::{self, RunnerDeps, SystemClock};
use crate::tables::GlobalTable;

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut booted = platform::stage::boot(&config, shutdown).await?;
    let catalog = GlobalTable::follow(
        &config.kafka_brokers,
        booted.codec.clone(),
        &topics::CATALOG_INTERNSHIPS,
    )
    .await?;
    let table = catalog.clone();
    booted.readiness = booted.readiness.check("catalog", move || {
        let loaded = table.is_loaded();
        async move {
            if loaded {
                Ok(())
            } else {
                Err("catalog still loading".to_owned())
            }
        }
    });
    booted.serve_ops(ops_addr).await?;
    // Never decide on a partial catalog: a line of an internship not read
    // yet would fail as unknown.
    catalog.wait_loaded(Duration::from_secs(120)).await?;
    let deps = RunnerDeps {
        stage: runner::stage_deps(&config, &booted),
        instance: runner::instance_from_env(),
        // No timers: the tick only paces idle waits.
        tick: Duration::from_secs(60),
        clock: Arc::new(SystemClock),
    };
    runner::run(
        Arc::new(EnrollmentProcessor::new(Arc::new(catalog))),
        deps,
        booted.shutdown.wait(),
    )
    .await
}
