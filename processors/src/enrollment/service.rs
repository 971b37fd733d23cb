//! Wiring for `processors enrollment`: the stage boot, the catalog table
//! (followed so a paid line of a closed internship fails instead of
//! enrolling), then the runner until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::config::PipelineConfig;
use schemas::topics;

use super::processor::EnrollmentProcessor;
use crate::runner::{Start, SystemClock};

pub async fn run(
    config: PipelineConfig,
    ops_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut start = Start::boot(&config, shutdown).await?;
    let catalog = start.join(&topics::CATALOG_INTERNSHIPS).await?;
    start
        .run(
            EnrollmentProcessor::new(catalog),
            ops_addr,
            // No timers: the tick only paces idle waits.
            Duration::from_secs(60),
            Arc::new(SystemClock),
        )
        .await
}
