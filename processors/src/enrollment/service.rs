//! Wiring for `processors enrollment`: the stage boot, then the runner
//! until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;

use super::processor::EnrollmentProcessor;
use crate::runner::{self, RunnerDeps, SystemClock};

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let booted = platform::stage::boot(&config, shutdown).await?;
    booted.serve_ops(ops_addr).await?;
    let deps = RunnerDeps {
        stage: runner::stage_deps(&config, &booted),
        instance: crate::cart::service::instance_from_env(),
        // No timers.
        tick: Duration::from_secs(60),
        clock: Arc::new(SystemClock),
    };
    runner::run(Arc::new(EnrollmentProcessor), deps, booted.shutdown.wait()).await
}
